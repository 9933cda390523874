"""How a translator runs its ONNX Runtime sessions: switches a caller passes (benchmarks compare them), never read from the environment."""
from dataclasses import dataclass


@dataclass(frozen=True)
class OrtOptions:
    spin: bool = True         # intra-op threads spin while waiting for work: faster steps, busier cores
    search_head: bool = True  # beam search's log-softmax and top-k run as a small graph on the provider (False: numpy)
    io_binding: bool = True   # with the search head: keep the KV cache on the device between steps
