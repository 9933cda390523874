"""Shared-base directions: a direction's merged LoRA delta goes into the shared base at session creation.

A shared-base export stores the base ONNX model once and its adapters once; a direction is a
manifest naming its two adapters and weights. At load, the merged delta becomes initializer
overrides that ONNX Runtime takes at session creation:
  fp32 base:      W + dW for each adapted matrix (the base indexes where each W lies in its
                  weights file): the weights a standalone export folds in before export.
  int8/int4 base: the matrices stay quantized; each has a float side path y += (x @ A) @ B whose
                  zero factors are replaced by the direction's merged factors (dW = (A @ B)^T),
                  so the delta stays exact and nothing is quantized at load.
"""
from pathlib import Path

import numpy as np

from modmt.runtime.errors import ModmtError
from modmt.runtime.fingerprint import sha256_file
from modmt.runtime.lora_merge import load_adapter, merged_factors
from modmt.runtime.manifest import MANIFEST, read_manifest
from modmt.runtime.merge_weights import MergeWeights

BASE_KIND, DIRECTION_KIND = "shared-base", "shared-direction"


def resolve_base(export_dir: Path, manifest: dict, verify: str, base_verify: str | None = None) -> tuple[Path, dict]:
    """The direction's shared base, checked; base_verify: how to check the base's own files (default: verify),
    "size" where the same base was verified in full a moment ago (a routed session's further directions)."""
    base_dir = (export_dir / manifest["base"]).resolve()
    redo = f"re-export the direction with `modmt-export {manifest['src']} {manifest['tgt']} --shared-base {base_dir}`"
    base = read_manifest(base_dir, base_verify or verify)
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


def check_side_rank(base: dict, factors: dict, base_dir: Path) -> None:
    """A quantized base's side paths have a fixed rank: a merged delta of higher rank does not fit."""
    paths = base.get("side_paths")
    if not paths:
        return
    for name, (b, a) in factors.items():
        path = paths.get(name)  # a matrix without a side path is reported where it is looked up
        if path is not None and a.shape[0] > path["rank"]:
            raise ModmtError(f"this direction's merged rank ({a.shape[0]} for {name}) is above the side-path rank "
                             f"{path['rank']} of the quantized shared base {base_dir}; use --setting 2 or "
                             "export a new shared base from a pool of lower-rank adapters")


def folded_initializers(base_dir: Path, base: dict, manifest: dict) -> dict[str, np.ndarray]:
    """ONNX initializer name -> array, for every matrix (or side path) the direction changes."""
    if not manifest["adapters"]:  # the pre-trained base itself
        return {}
    lora_in = load_adapter(base_dir / manifest["adapters"]["in"]["dir"])
    lora_out = load_adapter(base_dir / manifest["adapters"]["out"]["dir"])
    factors = merged_factors(lora_in, lora_out, MergeWeights.from_json(manifest["weights"]), manifest["setting"],
                             manifest.get("targets"))
    if base.get("side_paths"):
        return side_path_initializers(base, factors, base_dir)
    data = np.memmap(base_dir / base["weights_file"], dtype=np.uint8, mode="r")
    overrides = {}
    for name, (b, a) in factors.items():
        entry = base["weights_index"].get(name)
        if entry is None:
            raise ModmtError(f"the shared base has no index entry for {name}; re-export the base")
        weight = np.frombuffer(data, dtype=np.float32, count=entry["length"] // 4,
                               offset=entry["offset"]).reshape(entry["shape"])
        delta = b @ a
        overrides[entry["initializer"]] = np.ascontiguousarray(weight + (delta.T if entry["transposed"] else delta))
    return overrides


def side_path_initializers(base: dict, factors: dict, base_dir: Path) -> dict[str, np.ndarray]:
    """The side paths' A [K, rank] and B [rank, N] for y += (x @ A) @ B = x @ dW^T, padded with zeros to rank."""
    check_side_rank(base, factors, base_dir)
    overrides = {}
    for name, (b, a) in factors.items():
        path = base["side_paths"].get(name)
        if path is None:
            raise ModmtError(f"the shared base has no side path for {name}; re-export the base")
        (k, n), rank, r = path["shape"], path["rank"], a.shape[0]
        side_a, side_b = np.zeros((k, rank), np.float32), np.zeros((rank, n), np.float32)
        side_a[:, :r], side_b[:r, :] = a.T, b.T  # x @ A^T @ B^T = x @ (B @ A)^T
        overrides[path["a"]], overrides[path["b"]] = side_a, side_b
    return overrides
