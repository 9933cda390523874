"""Read .safetensors files with numpy alone: the runtime folds adapters without torch or the safetensors package.

The format is an 8-byte little-endian header length, a JSON header (name -> dtype, shape,
data_offsets) and the raw tensor bytes.
"""
import json
import struct
from pathlib import Path

import numpy as np

from modmt.runtime.errors import ModmtError

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    data = Path(path).read_bytes()
    try:
        (length,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8:8 + length])
    except (struct.error, ValueError):
        raise ModmtError(f"{path} is not a safetensors file (corrupt or truncated)") from None
    base, tensors = 8 + length, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[base + start: base + end]
        if info["dtype"] == "BF16":  # numpy has no bfloat16: widen to float32 (exact)
            array = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] in _DTYPES:
            array = np.frombuffer(raw, dtype=_DTYPES[info["dtype"]])
        else:
            raise ModmtError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        tensors[name] = array.reshape(info["shape"])
    return tensors
