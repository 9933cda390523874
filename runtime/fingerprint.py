"""Base-model fingerprints: which exact weights an adapter pool or an export was built on.

The fingerprint is a sha256 over the model's config.json (minus bookkeeping keys) and the bytes of
its weight files. Hashing a 2 GB model takes seconds, so the result is cached beside the model,
keyed by each file's size and modification time.
"""
import hashlib
import json
import os
from pathlib import Path

from modmt.runtime.errors import ModmtError

_CACHE = ".modmt-fingerprint.json"
_IGNORED_CONFIG_KEYS = {"_name_or_path", "transformers_version", "architectures_version"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _weight_files(model_dir: Path) -> list[Path]:
    return sorted(p for p in model_dir.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES))


def model_fingerprint(model_dir: str | os.PathLike) -> str:
    model_dir = Path(model_dir)
    config_path = model_dir / "config.json"
    if not config_path.exists():
        raise ModmtError(f"{model_dir} is not a model directory (no config.json); "
                         "pass a Hugging Face model directory, a hub id or a .gguf file")
    weights = _weight_files(model_dir)
    if not weights:
        raise ModmtError(f"{model_dir} has no weight files (*.safetensors); the model directory is incomplete")
    stamp = {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in [config_path, *weights]}
    cache_path = model_dir / _CACHE
    try:
        cached = json.loads(cache_path.read_text())
        if cached.get("stamp") == stamp:
            return cached["fingerprint"]
    except (OSError, ValueError):
        pass

    config = json.loads(config_path.read_text(encoding="utf-8"))
    config = {k: v for k, v in config.items() if k not in _IGNORED_CONFIG_KEYS}
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for p in weights:
        h.update(p.name.encode())
        h.update(sha256_file(p).encode())
    fingerprint = h.hexdigest()[:32]
    try:
        cache_path.write_text(json.dumps({"fingerprint": fingerprint, "stamp": stamp}))
    except OSError:
        pass  # a read-only model directory: just hash again next time
    return fingerprint
