"""The memory-bandwidth floor of batch-1 decoding: weight bytes read per token ÷ measured read bandwidth.

At batch 1 every generated token reads every weight matrix once, so tokens/s cannot exceed
bandwidth / bytes. The embedding table is not counted (a token reads one row of it); everything
else that a MatMul, MatMulNBits, Gemm or other non-Gather node consumes is.
"""
import time
from concurrent.futures import ThreadPoolExecutor
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


def read_bandwidth(threads: int, megabytes: int = 512, repeats: int = 5) -> float:
    """Bytes/s that `threads` threads read from memory (numpy sums over disjoint slices; best of `repeats`)."""
    data = np.ones(megabytes * (1 << 20) // 8)
    slices = np.array_split(data, threads)
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats):
            started = time.perf_counter()
            list(pool.map(np.sum, slices))  # numpy releases the GIL inside the reduction
            best = min(best, time.perf_counter() - started)
    return data.nbytes / best
