"""The memory-bandwidth floor of batch-1 decoding: weight bytes read per token ÷ measured read bandwidth.

At batch 1 every generated token reads every weight matrix once, so tokens/s cannot exceed
bandwidth / bytes. The embedding table is not counted (a token reads one row of it); everything
else that a MatMul, MatMulNBits, Gemm or other non-Gather node consumes is.
"""
import time
from pathlib import Path

import numpy as np

GATHERS = {"Gather", "GatherBlockQuantized"}


def weight_bytes_per_token(model_path: Path) -> int:
    """Bytes of the initializers a decoding step reads in full (all but those only gathered from)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    consumers: dict[str, set] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    total = 0
    for tensor in model.graph.initializer:
        ops = consumers.get(tensor.name, set())
        if not ops or ops <= GATHERS:
            continue
        external = {entry.key: entry.value for entry in tensor.external_data}
        total += int(external["length"]) if "length" in external else len(tensor.raw_data) or \
            onnx.numpy_helper.to_array(tensor).nbytes
    return total


def read_bandwidth(threads: int, megabytes: int = 1024, repeats: int = 5) -> float:
    """Bytes/s at which ONNX Runtime's float32 MatMul streams a weight matrix from memory at one row
    (best of `repeats`): the fastest read of weights that decoding can do here, so the ceiling a
    decoding step is measured against. The 1 GiB is eight matrices fed as inputs, each read once a
    pass, larger than any last-level cache. (numpy's sums, used before 2026-12-06, read 25-30 % slower
    than this MatMul on the Xeon, which let fp32 steps pass 100 % of their "roofline".)"""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    k, parts = 1024, 8
    n = megabytes * (1 << 20) // (4 * k * parts)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "stream",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k]),
                               helper.make_tensor_value_info("w", TensorProto.FLOAT, [k, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    matrices = [ort.OrtValue.ortvalue_from_numpy(np.ones((k, n), np.float32)) for _ in range(parts)]
    x = ort.OrtValue.ortvalue_from_numpy(np.ones((1, k), np.float32))
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for w in matrices:
            session.run_with_ort_values(["y"], {"x": x, "w": w})
        best = min(best, time.perf_counter() - started)
    return parts * k * n * 4 / best
