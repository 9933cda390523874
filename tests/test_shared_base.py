"""Shared-base exports: the base once, directions folded in at load; same logits as standalone exports."""
import json
import shutil
from itertools import product

import numpy as np
import pytest

from modmt.export.direction import ExportOptions, export_direction
from modmt.export.shared_base import export_shared_direction
from modmt.runtime.decoding import left_pad
from modmt.runtime.errors import ModmtError
from modmt.runtime.languages import load_registry
from modmt.runtime.translator import Translator

TEXTS = ["猫はソファで寝ています。", "The train leaves at noon, and then a longer tail.", "パン"]
LANGS = ["en", "fr", "de", "ja", "zh"]


def size(path):
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def prefill(export):
    translator = Translator(export, provider="cpu")
    ids, mask = left_pad([translator.encode(t)[0] for t in TEXTS], translator.pad_id)
    return translator.decoder.prefill(ids, mask)[0], translator


@pytest.fixture(scope="module")
def shared(tmp_path_factory, tiny_pool):
    """All 25 directions of the five languages on one shared base."""
    root = tmp_path_factory.mktemp("shared")
    registry = load_registry()
    for src, tgt in product(LANGS, LANGS):
        options = ExportOptions(weights="1:9", setting=2) if (src, tgt) == ("en", "ja") else ExportOptions()
        export_shared_direction(tiny_pool, src, tgt, options, root / "base", root / f"{src}-{tgt}", registry)
    return root


@pytest.mark.parametrize("src, tgt, options", [("ja", "zh", ExportOptions()),
                                               ("en", "ja", ExportOptions(weights="1:9", setting=2))])
def test_same_logits_as_a_standalone_export(tmp_path, tiny_pool, shared, src, tgt, options):
    export_direction(tiny_pool, src, tgt, options, tmp_path / "standalone", load_registry())
    want, _ = prefill(tmp_path / "standalone")
    got, translator = prefill(shared / f"{src}-{tgt}")
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert translator.translate(["猫です。"], beam=3, max_new_tokens=5) == \
        Translator(tmp_path / "standalone", provider="cpu").translate(["猫です。"], beam=3, max_new_tokens=5)


def test_disk_use_is_the_base_once_plus_each_adapter_once(tmp_path, tiny_pool, shared):
    export_direction(tiny_pool, "ja", "zh", ExportOptions(), tmp_path / "standalone", load_registry())
    standalone = size(tmp_path / "standalone")
    directions = [shared / f"{s}-{t}" for s, t in product(LANGS, LANGS)]
    assert all([p.name for p in d.iterdir()] == ["modmt.json"] and size(d) < 20_000 for d in directions)
    adapters = shared / "base" / "adapters"
    assert sorted(p.name for p in adapters.iterdir()) == sorted(f"{r}-{l}" for r in ("in", "out") for l in LANGS)
    # Everything but the adapters is one standalone export's worth of bytes (plus the weight index), and the
    # routed graphs (every direction in one session; the bank as inputs, and as initializers of a fixed
    # rank over one small file of zeros), which read the same weights file: graphs only.
    graphs = [shared / "base" / name for name in ("routed.onnx", "routed-fixed.onnx")]
    assert all(g.stat().st_size < 2 * (shared / "base" / "model.onnx").stat().st_size for g in graphs)
    zeros = (shared / "base" / "routed-zeros.bin").stat().st_size
    assert zeros < (shared / "base" / "model.onnx.data").stat().st_size / 10
    routed = sum(g.stat().st_size for g in graphs) + zeros
    assert size(shared / "base") - size(adapters) - routed <= 1.05 * standalone
    # So 25 directions cost base + 10 adapters + 25 small manifests: with real adapters at 0.7% of the
    # base each, that is about 1.07x one export (measured on the real model in docs/results.md).
    total = size(shared)
    assert total == size(shared / "base") + sum(size(d) for d in directions)


def test_changed_base_or_adapter_is_refused(tmp_path, shared):
    copy = tmp_path / "copy"
    shutil.copytree(shared, copy)
    adapter = copy / "base" / "adapters" / "in-ja" / "adapter_model.safetensors"
    data = bytearray(adapter.read_bytes())
    data[-1] ^= 1
    adapter.write_bytes(bytes(data))
    with pytest.raises(ModmtError, match="adapter file .* is missing or changed; re-export the direction"):
        Translator(copy / "ja-zh", provider="cpu")
    manifest = json.loads((copy / "base" / "modmt.json").read_text())
    manifest["export_seconds"] = 0
    (copy / "base" / "modmt.json").write_text(json.dumps(manifest))
    with pytest.raises(ModmtError, match="changed since this direction was exported"):
        Translator(copy / "fr-de", provider="cpu")


def test_shared_base_refuses_fp16_and_a_base_of_another_precision(tmp_path, tiny_pool, shared):
    with pytest.raises(ModmtError, match="shared-base exports are fp32 \\(or --quantize with a recipe\\)"):
        export_shared_direction(tiny_pool, "ja", "zh", ExportOptions(dtype="fp16"), shared / "base",
                                tmp_path / "x", load_registry())
    with pytest.raises(ModmtError, match="is quantized 'none', not 'int8': pass --quantize none"):
        export_shared_direction(tiny_pool, "ja", "zh", ExportOptions(quantize="int8"), shared / "base",
                                tmp_path / "x", load_registry())
    with pytest.raises(ModmtError, match="cannot be calibrated per direction"):  # w8a8 smooths per direction
        export_shared_direction(tiny_pool, "ja", "zh", ExportOptions(quantize="w8a8", calibration=tmp_path),
                                shared / "base", tmp_path / "x", load_registry())


def test_quantized_shared_base_applies_each_direction_on_a_float_side_path(tmp_path, tiny_pool):
    import onnx

    registry = load_registry()
    base = tmp_path / "base-int8"
    for (src, tgt), options in ((("ja", "zh"), ExportOptions(weights="3:7", quantize="int8")),
                                (("en", "ja"), ExportOptions(weights="1:9", setting=2, quantize="int8")),
                                (("ja", "zh"), ExportOptions(weights="base", quantize="int8"))):
        name = f"{src}-{tgt}" + ("-base" if options.weights == "base" else "")
        manifest = export_shared_direction(tiny_pool, src, tgt, options, base, tmp_path / name, registry)
        assert manifest["quantization"] == "int8"
    graph = onnx.load(str(base / "model.onnx"))
    index = json.loads((base / "modmt.json").read_text())["side_paths"]
    ops = [n.op_type for n in graph.graph.node]
    side = [n for n in graph.graph.node if n.name.startswith("modmt_lora_x")]
    assert len(side) == 2 * len(index) and all(n.op_type == "MatMul" for n in side)  # side paths stay float
    weights = {i.name for i in graph.graph.initializer}
    float_weight_matmuls = {n.name for n in graph.graph.node if n.op_type == "MatMul" and n.input[1] in weights}
    assert float_weight_matmuls == {n.name for n in side}  # every other weight matrix is quantized
    assert ops.count("MatMulNBits") == len(index) + 1  # + the output projection
    for (src, tgt), options in ((("ja", "zh"), ExportOptions(weights="3:7")),
                                (("en", "ja"), ExportOptions(weights="1:9", setting=2))):
        export_direction(tiny_pool, src, tgt, options, tmp_path / f"fp32-{src}-{tgt}", registry)
        export_direction(tiny_pool, src, tgt, ExportOptions(weights=options.weights, setting=options.setting,
                                                            quantize="int8"), tmp_path / f"int8-{src}-{tgt}", registry)
        want, _ = prefill(tmp_path / f"fp32-{src}-{tgt}")
        scale = np.abs(want).max()
        shared_error = np.abs(prefill(tmp_path / f"{src}-{tgt}")[0] - want).max() / scale
        standalone_error = np.abs(prefill(tmp_path / f"int8-{src}-{tgt}")[0] - want).max() / scale
        # Same tolerance as a standalone int8 export (tests/test_export.py), and of the same order as it.
        assert 0 < shared_error < 0.2 and shared_error < 3 * standalone_error, (shared_error, standalone_error)
    # Without its side path (the base row), ja->zh is far from the merged model: the path carries the delta.
    want, _ = prefill(tmp_path / "fp32-ja-zh")
    base_error = np.abs(prefill(tmp_path / "ja-zh-base")[0] - want).max() / np.abs(want).max()
    shared_error = np.abs(prefill(tmp_path / "ja-zh")[0] - want).max() / np.abs(want).max()
    assert base_error > 3 * shared_error, (base_error, shared_error)
    # Directions are manifests only: n x n directions cost the quantized base once.
    assert [p.name for p in (tmp_path / "ja-zh").iterdir()] == ["modmt.json"]
