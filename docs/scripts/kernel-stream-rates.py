"""How fast each weight kernel of the recipes reads its weights at one row, beside float32 MatMul's rate
(the memory roofline of benchmarks/roofline.py): per kernel, 1 GiB or more of weights in matrices of the
model's widest shape (896 x 4864), each read once a pass, more than any last-level cache; best of 5 passes,
the kernels alternating in rounds. A kernel that reads slower than the roofline caps the batch-1 step
of every export that uses it, whatever the graph around it does.

    .venv/bin/python docs/scripts/kernel-stream-rates.py [--rounds 3] [--more]

--more: also the settings the recipes do not use (4 bits in blocks of 64 and 128; float compute, accuracy level 1).
"""
import json
import sys
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from modmt.benchmarks.roofline import read_bandwidth

K, N, THREADS = 896, 4864, 2
rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 3
rng = np.random.default_rng(0)


def matmul_nbits(i: int, bits: int, block: int, level: int = 4):
    blob = block * bits // 8
    blocks = K // block
    inits = [numpy_helper.from_array(rng.integers(0, 256, (N, blocks, blob), dtype=np.uint8), f"w{i}"),
             numpy_helper.from_array(rng.uniform(0.001, 0.01, N * blocks).astype(np.float32), f"s{i}")]
    node = helper.make_node("MatMulNBits", ["x", f"w{i}", f"s{i}"], [f"y{i}"], domain="com.microsoft",
                            K=K, N=N, bits=bits, block_size=block, accuracy_level=level)
    return node, inits, N * blocks * (blob + 4)


def int8_gemm(i: int):
    inits = [numpy_helper.from_array(rng.integers(-127, 128, (K, N), dtype=np.int8), f"w{i}"),
             numpy_helper.from_array(rng.uniform(0.001, 0.01, N).astype(np.float32), f"s{i}")]
    node = helper.make_node("MatMulIntegerToFloat", ["xq", f"w{i}", "xs", f"s{i}", "xz"], [f"y{i}"],
                            domain="com.microsoft")
    return node, inits, K * N + 4 * N


KERNELS = {  # recipe: one matrix's (node, initializers, bytes)
    "w8a8: MatMulIntegerToFloat u8 x s8": int8_gemm,
    "int8: MatMulNBits 8 bits, blocks of 32": lambda i: matmul_nbits(i, 8, 32),
    "int8-b128: MatMulNBits 8 bits, blocks of 128": lambda i: matmul_nbits(i, 8, 128),
    "int4: MatMulNBits 4 bits, blocks of 32": lambda i: matmul_nbits(i, 4, 32),
}
if "--more" in sys.argv:
    KERNELS = {
        "MatMulNBits 4 bits, blocks of 64": lambda i: matmul_nbits(i, 4, 64),
        "MatMulNBits 4 bits, blocks of 128": lambda i: matmul_nbits(i, 4, 128),
        "MatMulNBits 4 bits, blocks of 32, float compute (level 1)": lambda i: matmul_nbits(i, 4, 32, 1),
        "MatMulNBits 4 bits, blocks of 128, float compute (level 1)": lambda i: matmul_nbits(i, 4, 128, 1),
        "MatMulNBits 8 bits, blocks of 32, float compute (level 1)": lambda i: matmul_nbits(i, 8, 32, 1),
    }


def session(build):
    nodes, inits, size, i = [], [], 0, 0
    while size < (1 << 30):
        node, more, nbytes = build(i)
        nodes.append(node)
        inits += more
        size += nbytes
        i += 1
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, K]),
              helper.make_tensor_value_info("xq", TensorProto.UINT8, [1, K])]
    inits += [numpy_helper.from_array(np.array(0.01, np.float32), "xs"), numpy_helper.from_array(np.array(64, np.uint8), "xz")]
    graph = helper.make_graph(nodes, "kernels", inputs, [helper.make_tensor_value_info(n.output[0], TensorProto.FLOAT, None)
                                                         for n in nodes], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]), size


sessions = {name: session(build) for name, build in KERNELS.items()}
feed = {"x": rng.standard_normal((1, K)).astype(np.float32), "xq": rng.integers(1, 128, (1, K), dtype=np.uint8)}
rates = {name: [] for name in ["float32 MatMul (the roofline)", *KERNELS]}
for _ in range(rounds):
    rates["float32 MatMul (the roofline)"].append(read_bandwidth(THREADS) / 1e9)
    for name, (s, size) in sessions.items():
        wanted = [i.name for i in s.get_inputs()]
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            s.run(None, {k: v for k, v in feed.items() if k in wanted})
            best = min(best, time.perf_counter() - started)
        rates[name].append(size / best / 1e9)
roofline = float(np.median(rates["float32 MatMul (the roofline)"]))
for name, values in rates.items():
    print(json.dumps({"kernel": name, "GB/s": [round(v, 1) for v in values],
                      "median % of the roofline": round(100 * float(np.median(values)) / roofline)}))
