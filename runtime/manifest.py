"""The export manifest, modmt.json: what a direction export is, and the sha256 of every file in it.

Written last by the exporter (the export directory is renamed into place only after it); read
and checked by the runtime, which refuses a directory whose manifest or files do not check.
"""
import json
import os
from pathlib import Path

from modmt.runtime.errors import ModmtError
from modmt.runtime.fingerprint import sha256_file

MANIFEST = "modmt.json"
FORMAT = "modmt-export/1"


def file_hashes(root: Path) -> dict:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != MANIFEST}


def write_manifest(root: Path, data: dict) -> dict:
    data = {"format": FORMAT, **data, "files": file_hashes(root)}
    (root / MANIFEST).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return data


def read_manifest(root: str | os.PathLike, verify: str = "full") -> dict:
    """The manifest of an export; verify='full' checks every sha256, 'size' only that files exist."""
    root = Path(root)
    redo = "re-export it with `modmt-export`"
    if not root.is_dir():
        raise ModmtError(f"export {root} does not exist; create it with `modmt-export SRC TGT --pool POOL`")
    path = root / MANIFEST
    if not path.exists():
        raise ModmtError(f"{root} has no {MANIFEST}: it is not a modmt export, or an export that never "
                         f"finished; {redo}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModmtError(f"{path} is corrupt ({e}); {redo}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("files"), dict):
        raise ModmtError(f"{path} is not a {FORMAT} manifest; {redo} with this version of modmt")
    for name, digest in data["files"].items():
        file = root / name
        if not file.is_file():
            raise ModmtError(f"export {root} is incomplete: {name} is missing; {redo}")
        if verify == "full" and sha256_file(file) != digest:
            raise ModmtError(f"export {root} is corrupt: {name} does not match its sha256 in {MANIFEST}; {redo}")
    return data
