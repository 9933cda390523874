"""The adapter pool on disk: POOL/in/<lang>/, POOL/out/<lang>/ (PEFT adapter directories) and POOL/pool.json.

pool.json records the base-model fingerprint, and for every finished adapter its LoRA config,
trainable-parameter count and ratio, data hash and final loss. An adapter is listed only after its
directory has been renamed into place, so a killed run never leaves a half adapter marked done.
"""
import json
import os
from pathlib import Path

from modmt.runtime.atomic import write_json_atomic
from modmt.runtime.errors import ModmtError

ROLES = ("in", "out")
POOL_FILE = "pool.json"


class Pool:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.meta_path = self.root / POOL_FILE

    def adapter_dir(self, role: str, lang: str) -> Path:
        return self.root / role / lang

    def weights_file(self, src: str, tgt: str) -> Path:
        return self.root / "weights" / f"{src}-{tgt}.json"

    def work_dir(self, role: str, lang: str) -> Path:
        """Checkpoints of an adapter still in training (kept for --resume, removed when done)."""
        return self.root / ".work" / f"{role}-{lang}"

    def exists(self) -> bool:
        return self.meta_path.exists()

    def read(self) -> dict:
        if not self.meta_path.exists():
            raise ModmtError(f"{self.root} is not an adapter pool (no {POOL_FILE}); "
                             "train one with `modmt-train adapters --out POOL`")
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except ValueError as e:  # also UnicodeDecodeError
            raise ModmtError(f"{self.meta_path} is corrupt ({e}); restore it or retrain the pool") from None
        if not (isinstance(meta, dict) and isinstance(meta.get("base_fingerprint"), str)
                and isinstance(meta.get("adapters"), dict)
                and all(isinstance(v, dict) for v in meta["adapters"].values())):
            raise ModmtError(f"{self.meta_path} is not a modmt pool file (it needs base_fingerprint and an adapters "
                             "table); restore it or retrain the pool")
        return meta

    def create_or_check(self, fingerprint: str, base_model: str, base_parameters: int,
                        english_adapters: str = "copy") -> dict:
        """Open the pool for training on this base; a pool from another base is an error."""
        if self.exists():
            meta = self.read()
            if meta["base_fingerprint"] != fingerprint:
                raise ModmtError(f"pool {self.root} was trained on another base model (fingerprint "
                                 f"{meta['base_fingerprint']}, this one {fingerprint}); use a new --out "
                                 "or the pool's base model")
            return meta
        meta = {"format": "modmt-pool/1", "base_fingerprint": fingerprint, "base_model": base_model,
                "base_parameters": base_parameters, "english_adapters": english_adapters, "adapters": {}}
        write_json_atomic(self.meta_path, meta)
        return meta

    def has(self, role: str, lang: str) -> bool:
        return self.exists() and f"{role}/{lang}" in self.read()["adapters"]

    def record(self, role: str, lang: str, info: dict) -> None:
        meta = self.read()
        meta["adapters"][f"{role}/{lang}"] = info
        meta["languages"] = sorted({key.split("/")[1] for key in meta["adapters"]})
        write_json_atomic(self.meta_path, meta)

    def require(self, role: str, lang: str, fingerprint: str | None = None) -> Path:
        """The directory of a finished adapter, or an error that says how to train it."""
        meta = self.read()
        if fingerprint is not None and meta["base_fingerprint"] != fingerprint:
            raise ModmtError(f"pool {self.root} was trained on another base model "
                             f"({meta['base_fingerprint']} != {fingerprint}); pass the pool's base model")
        path = self.adapter_dir(role, lang)
        if f"{role}/{lang}" not in meta["adapters"] or not (path / "adapter_config.json").exists():
            raise ModmtError(f"pool {self.root} has no LoRA_{role}({lang}); train it with "
                             f"`modmt-train adapters --model {meta.get('base_model', 'MODEL')} "
                             f"--data CORPUS --langs {lang} --out {self.root}`")
        return path
