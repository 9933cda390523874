"""Shared-base directions: fold a direction's LoRA deltas into the shared base's weights at session creation.

A shared-base export stores the base ONNX model once (weights in model.onnx.data, with an index
of where each adapted weight matrix lies) and its adapters once; a direction is a manifest naming
its two adapters and weights. At load, the merged deltas are added to those matrices in numpy
and handed to ONNX Runtime as initializer overrides: the same weights a standalone export folds
in before export, for seconds of work instead of a full re-export.
"""
from pathlib import Path

import numpy as np

from modmt.runtime.errors import ModmtError
from modmt.runtime.fingerprint import sha256_file
from modmt.runtime.lora_merge import load_adapter, merged_deltas
from modmt.runtime.manifest import MANIFEST, read_manifest
from modmt.runtime.merge_weights import MergeWeights

BASE_KIND, DIRECTION_KIND = "shared-base", "shared-direction"


def resolve_base(export_dir: Path, manifest: dict, verify: str) -> tuple[Path, dict]:
    base_dir = (export_dir / manifest["base"]).resolve()
    redo = f"re-export the direction with `modmt-export {manifest['src']} {manifest['tgt']} --shared-base {base_dir}`"
    base = read_manifest(base_dir, verify)
    if base.get("kind") != BASE_KIND:
        raise ModmtError(f"{base_dir} is not a shared-base export; {redo}")
    if sha256_file(base_dir / MANIFEST) != manifest["base_manifest_sha256"]:
        raise ModmtError(f"the shared base {base_dir} changed since this direction was exported; {redo}")
    for role in ("in", "out") if manifest["adapters"] else ():
        for name, digest in manifest["adapters"][role]["files"].items():
            path = base_dir / manifest["adapters"][role]["dir"] / name
            if not path.is_file() or (verify == "full" and sha256_file(path) != digest):
                raise ModmtError(f"adapter file {path} is missing or changed; {redo}")
    return base_dir, base


def folded_initializers(base_dir: Path, base: dict, manifest: dict) -> dict[str, np.ndarray]:
    """ONNX initializer name -> base weight + merged delta, for every matrix the direction changes."""
    if not manifest["adapters"]:  # the pre-trained base itself
        return {}
    lora_in = load_adapter(base_dir / manifest["adapters"]["in"]["dir"])
    lora_out = load_adapter(base_dir / manifest["adapters"]["out"]["dir"])
    deltas = merged_deltas(lora_in, lora_out, MergeWeights.from_json(manifest["weights"]), manifest["setting"],
                           manifest.get("targets"))
    data = np.memmap(base_dir / base["weights_file"], dtype=np.uint8, mode="r")
    overrides = {}
    for name, delta in deltas.items():
        entry = base["weights_index"].get(name)
        if entry is None:
            raise ModmtError(f"the shared base has no index entry for {name}; re-export the base")
        weight = np.frombuffer(data, dtype=np.float32, count=entry["length"] // 4,
                               offset=entry["offset"]).reshape(entry["shape"])
        overrides[entry["initializer"]] = np.ascontiguousarray(weight + (delta.T if entry["transposed"] else delta))
    return overrides
