"""Multiply-accumulates per second of ONNX Runtime's u8 x s8 GEMM (MatMulIntegerToFloat, packed int8 weights) on one
896 x 4864 matrix, at 1, 8, 40, 128 and 512 rows on one and two threads: how near a decoding step's GEMMs (40 rows
at batch 8, beam 5) run to what the CPU's int8 instructions can do (the rate at 512 rows).

    .venv/bin/python docs/scripts/int8-gemm-rate.py
"""
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

K, N = 896, 4864
rng = np.random.default_rng(0)
graph = helper.make_graph(
    [helper.make_node("MatMulIntegerToFloat", ["a", "w", "sa", "sw", "za"], ["y"], domain="com.microsoft")], "gemm",
    [helper.make_tensor_value_info("a", TensorProto.UINT8, ["m", K])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    [numpy_helper.from_array(rng.integers(-127, 128, (K, N), dtype=np.int8), "w"),
     numpy_helper.from_array(np.array(1.0, np.float32), "sa"), numpy_helper.from_array(np.ones(N, np.float32), "sw"),
     numpy_helper.from_array(np.array(64, np.uint8), "za")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
model.ir_version = 8
for threads in (1, 2):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    for m in (1, 8, 40, 128, 512):
        a = rng.integers(1, 128, (m, K), dtype=np.uint8)
        for _ in range(3):
            session.run(None, {"a": a})
        repeats = max(5, 2000 // m)
        started = time.perf_counter()
        for _ in range(repeats):
            session.run(None, {"a": a})
        seconds = (time.perf_counter() - started) / repeats
        print(f"threads {threads}, {m:4d} rows: {seconds * 1e3:7.3f} ms, {m * K * N / seconds / 1e9:6.1f} GMAC/s")
