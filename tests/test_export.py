"""ONNX export: logit parity with the PyTorch merged model, manifest, atomicity, quantized variants, bad input."""
import json
import shutil

import numpy as np
import pytest
import torch

from modmt.export.direction import ExportOptions, export_direction, merged_model
from modmt.runtime.decoding import left_pad
from modmt.runtime.errors import ModmtError
from modmt.runtime.languages import load_registry
from modmt.runtime.translator import Translator
from modmt.train.pool import Pool
from modmt.train.tiny import build_tiny_model

TEXTS = ["猫はソファで寝ています。", "The train leaves at noon, and then a longer tail.", "パン"]


def onnx_and_torch_logits(export_dir, pool_dir, options):
    translator = Translator(export_dir, provider="cpu")
    prompts = [translator.encode(t)[0] for t in TEXTS]
    ids, mask = left_pad(prompts, translator.pad_id)
    onnx_logits, cache = translator.decoder.prefill(ids, mask)
    model, _, _ = merged_model(Pool(pool_dir), translator.src, translator.tgt, options)
    positions = np.where(mask == 0, 1, np.cumsum(mask, axis=1) - 1)
    with torch.no_grad():
        out = model(torch.tensor(ids), attention_mask=torch.tensor(mask), position_ids=torch.tensor(positions),
                    use_cache=True)
    # One cached step too: the KV cache path must agree as well.
    next_tokens = onnx_logits.argmax(-1)
    mask2 = np.concatenate([mask, np.ones((len(TEXTS), 1), dtype=np.int64)], axis=1)
    onnx_step, _ = translator.decoder.step(next_tokens, mask2, cache)
    with torch.no_grad():
        step = model(torch.tensor(next_tokens).view(-1, 1), attention_mask=torch.tensor(mask2),
                     position_ids=torch.tensor(mask2.sum(1, keepdims=True) - 1), past_key_values=out.past_key_values)
    return (onnx_logits, out.logits[:, -1].numpy()), (onnx_step, step.logits[:, -1].numpy())


def test_fp32_export_matches_pytorch_and_records_the_manifest(tiny_export, tiny_pool):
    manifest = json.loads((tiny_export / "modmt.json").read_text())
    assert (manifest["src"], manifest["tgt"], manifest["setting"]) == ("ja", "zh", 1)
    assert manifest["weights"] == {"w_in": 0.3, "w_out": 0.7} and manifest["logits"] == "last"
    pool_meta = Pool(tiny_pool).read()
    assert manifest["base_fingerprint"] == pool_meta["base_fingerprint"]
    assert manifest["trainable_parameters"] == 2 * pool_meta["adapters"]["in/ja"]["trainable_parameters"]
    assert set(manifest["files"]) == {"model.onnx", "tokenizer.json", "config.json", "generation_config.json"}
    for ours, theirs in onnx_and_torch_logits(tiny_export, tiny_pool, ExportOptions(weights="3:7")):
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, atol=1e-4)
    # ... with the attention rewritten to read the 2 KV heads directly (export/grouped_attention.py)
    import onnx

    graph = onnx.load(str(tiny_export / "model.onnx")).graph
    layers = sum(o.name.startswith("present.") and o.name.endswith(".key") for o in graph.output)
    assert sum(n.name.endswith("/MatMulQK") for n in graph.node) == layers
    assert not [n.name for n in graph.node if n.op_type == "Expand" and "self_attn" in n.name], "no repeated cache"


@pytest.mark.parametrize("src, tgt, w, setting", [("en", "ja", "1:9", 2), ("zh", "en", "9:1", 1)])
def test_more_directions_settings_and_weights(tmp_path, tiny_pool, src, tgt, w, setting):
    options = ExportOptions(weights=w, setting=setting)
    export_direction(tiny_pool, src, tgt, options, tmp_path / "e", load_registry())
    for ours, theirs in onnx_and_torch_logits(tmp_path / "e", tiny_pool, options):
        np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_quantized_variants_load_and_stay_close(tmp_path, tiny_pool, tiny_export):
    import onnx

    reference = Translator(tiny_export, provider="cpu")
    prompts = [reference.encode(t)[0] for t in TEXTS]
    ids, mask = left_pad(prompts, reference.pad_id)
    want = reference.decoder.prefill(ids, mask)[0]
    scale = np.abs(want).max()
    fp32_graph = onnx.load(str(tiny_export / "model.onnx"))
    weights = {i.name for i in fp32_graph.graph.initializer}
    # Weight matrices, and the output projection (tied here: a Transpose of the embedding table).
    linear = sum(n.op_type == "MatMul" and (n.input[1] in weights or "logits" in n.output)
                 for n in fp32_graph.graph.node)
    # Tolerances relative to the largest logit of this random tiny model (hidden size 64, where one
    # block of 32 is half a row): sanity bounds, and int8 must beat int4. Real-model quality: docs/results.md.
    errors = {}
    for quantize, bits, tolerance in (("int8", 8, 0.2), ("int8-b128", 8, 0.2), ("int4", 4, 1.0)):
        out = tmp_path / quantize
        manifest = export_direction(tiny_pool, "ja", "zh", ExportOptions(weights="3:7", quantize=quantize), out,
                                    load_registry())
        assert manifest["quantization"] == quantize
        recipe = manifest["quantization_recipe"]
        assert recipe["bits"] == bits and recipe["head_bits"] == 8
        assert recipe["block_size"] == (128 if quantize == "int8-b128" else 32)
        blocks = {next(a.i for a in n.attribute if a.name == "block_size") for n in
                  onnx.load(str(out / "model.onnx")).graph.node if n.op_type == "MatMulNBits"}
        assert blocks == {recipe["block_size"]}, "the graph uses the recipe's block size"
        graph = onnx.load(str(out / "model.onnx"))
        nbits = {n.name: next(a.i for a in n.attribute if a.name == "bits") for n in graph.graph.node
                 if n.op_type == "MatMulNBits"}
        assert len(nbits) == linear, "every weight matrix is quantized, nothing else"
        head = next(n for n in graph.graph.node if "logits" in n.output)
        assert head.op_type == "MatMulNBits" and nbits[head.name] == 8, "the output projection stays at 8 bits"
        assert sorted(set(nbits.values())) == sorted({bits, 8})
        table = next(i for i in fp32_graph.graph.initializer if i.name == "model.embed_tokens.weight")
        floats = [i.name for i in graph.graph.initializer if i.data_type == onnx.TensorProto.FLOAT
                  and np.prod(i.dims) >= np.prod(table.dims) // 4]  # scales are a 32nd of it or less
        assert not floats, f"the embedding table is quantized too, not kept in float: {floats}"
        translator = Translator(out, provider="cpu")
        got = translator.decoder.prefill(ids, mask)[0]
        error = np.abs(got - want).max() / scale
        assert 0 < error < tolerance, (quantize, error)  # 0 would mean the quantizer did nothing
        errors[quantize] = error
        assert len(translator.translate(TEXTS, beam=2, max_new_tokens=4)) == 3
    assert errors["int8"] < errors["int4"]
    fp16 = export_direction(tiny_pool, "ja", "zh", ExportOptions(weights="3:7", dtype="fp16"), tmp_path / "fp16",
                            load_registry())
    assert fp16["dtype"] == "fp16"


def test_corrupt_or_partial_exports_are_refused(tmp_path, tiny_export):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_export, broken)
    data = bytearray((broken / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (broken / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ModmtError, match="corrupt: model.onnx does not match its sha256"):
        Translator(broken)
    (broken / "tokenizer.json").unlink()
    with pytest.raises(ModmtError, match="incomplete: tokenizer.json is missing"):
        Translator(broken, verify="size")
    (broken / "modmt.json").write_text("{not json")
    with pytest.raises(ModmtError, match="corrupt"):
        Translator(broken)
    (broken / "modmt.json").unlink()
    with pytest.raises(ModmtError, match="never finished"):
        Translator(broken)


def test_bad_export_input(tmp_path, tiny_pool, tiny_export):
    registry = load_registry()
    with pytest.raises(ModmtError, match="already exists; choose another --out or pass --force"):
        export_direction(tiny_pool, "ja", "zh", ExportOptions(), tiny_export, registry)
    partial = tmp_path / "partial-pool"  # a pool without LoRA_out(fr)
    shutil.copytree(tiny_pool, partial)
    meta = json.loads((partial / "pool.json").read_text())
    del meta["adapters"]["out/fr"]
    (partial / "pool.json").write_text(json.dumps(meta))
    shutil.rmtree(partial / "out" / "fr")
    with pytest.raises(ModmtError, match=r"no LoRA_out\(fr\); train it with `modmt-train adapters .*--langs fr"):
        export_direction(partial, "ja", "fr", ExportOptions(), tmp_path / "x", registry)
    with pytest.raises(ModmtError, match="unknown language code 'xx'"):
        export_direction(tiny_pool, "xx", "zh", ExportOptions(), tmp_path / "x", registry)
    other = build_tiny_model(tmp_path / "other-base", seed=7)
    with pytest.raises(ModmtError, match="another base model"):
        export_direction(tiny_pool, "ja", "zh", ExportOptions(), tmp_path / "x", registry, model_dir=other)
    # An adapter copied in from a pool of another base model.
    pool_dir = tmp_path / "pool"
    shutil.copytree(tiny_pool, pool_dir)
    meta_file = Pool(pool_dir).adapter_dir("in", "ja") / "modmt-adapter.json"
    meta = json.loads(meta_file.read_text())
    meta["base_fingerprint"] = "0" * 32
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ModmtError, match="adapter .* was trained on another base model"):
        export_direction(pool_dir, "ja", "zh", ExportOptions(), tmp_path / "x", registry)
    assert not list(tmp_path.glob(".x.*")), "a failed export left its work folder behind"


def test_quantize_export_requantizes_an_fp32_export(tmp_path, tiny_export):
    from dataclasses import replace

    from modmt.export.direction import quantize_export
    from modmt.export.quantize import RECIPES

    recipe = replace(RECIPES["int4"], head_bits=4, head_symmetric=False)  # a variant to try side by side
    manifest = quantize_export(tiny_export, tmp_path / "q", recipe)
    assert manifest["quantization"] == "int4" and manifest["quantization_recipe"]["head_bits"] == 4
    assert manifest["prompt"] == Translator(tiny_export, provider="cpu").manifest["prompt"]
    assert len(Translator(tmp_path / "q", provider="cpu").translate(TEXTS, beam=1, max_new_tokens=3)) == 3
    with pytest.raises(ModmtError, match="not an fp32, unquantized standalone export"):
        quantize_export(tmp_path / "q", tmp_path / "again", recipe)


def test_w8a8_runs_int8_gemms_calibrated_on_training_text(tmp_path, tiny_pool, tiny_export):
    import onnx

    reference = Translator(tiny_export, provider="cpu")
    ids, mask = left_pad([reference.encode(t)[0] for t in TEXTS], reference.pad_id)
    want = reference.decoder.prefill(ids, mask)[0]
    fp32_graph = onnx.load(str(tiny_export / "model.onnx"))
    weights = {i.name for i in fp32_graph.graph.initializer}
    linear = sum(n.op_type == "MatMul" and (n.input[1] in weights or "logits" in n.output)
                 for n in fp32_graph.graph.node)
    corpus = tiny_pool.parent / "corpus"
    with pytest.raises(ModmtError, match="pass --calibration CORPUS"):
        export_direction(tiny_pool, "ja", "zh", ExportOptions(quantize="w8a8"), tmp_path / "x", load_registry())
    with pytest.raises(ModmtError, match="--calibration is read only by recipes that calibrate"):
        ExportOptions(quantize="int8", calibration=corpus).check()
    manifest = export_direction(tiny_pool, "ja", "zh", ExportOptions(weights="3:7", quantize="w8a8", calibration=corpus),
                                tmp_path / "w8a8", load_registry())
    recipe = manifest["quantization_recipe"]
    assert recipe["smooth"] == ["down_proj", "norm"] and recipe["smooth_alpha"] == 0.8 and "down_proj" in recipe["dynamic"]
    assert recipe["calibration"]["split"] == "train" and recipe["calibration"]["sequences"] > 0
    graph = onnx.load(str(tmp_path / "w8a8" / "model.onnx"))
    ops = [n.op_type for n in graph.graph.node]
    assert ops.count("MatMulIntegerToFloat") == linear and "MatMulNBits" not in ops, "every matrix is int8 x int8"
    assert not [i.name for i in graph.graph.initializer if i.data_type == onnx.TensorProto.FLOAT and len(i.dims) == 2
                and i.dims[0] * i.dims[1] >= 64 * 64], "no float weight matrix is left"
    translator = Translator(tmp_path / "w8a8", provider="cpu")
    error = np.abs(translator.decoder.prefill(ids, mask)[0] - want).max() / np.abs(want).max()
    assert 0 < error < 0.2, error
    assert len(translator.translate(TEXTS, beam=2, max_new_tokens=4)) == 3


def test_smoothing_keeps_the_float_model_and_calibration_skips_padding(tmp_path, tiny_export):
    """The SmoothQuant fold is exact in float; maxima over a padded batch equal those of its sequences alone."""
    import onnx
    import onnxruntime as ort

    from modmt.export.onnx_weights import GraphWeights
    from modmt.export.quantize import output_projection, untie_output_projection
    from modmt.export.smoothquant import activation_max, smooth, smoothing_groups

    weights = GraphWeights.load(tiny_export / "model.onnx", scratch_dir=tmp_path)
    model = weights.model
    layers = sum(n.op_type == "MatMul" and "down_proj" in n.name for n in model.graph.node)
    tensors = [g.tensor for g in smoothing_groups(model, ("down_proj", "norm"), weights_only=False)]
    assert len(tensors) == 3 * layers + 1, "each layer's two norms and MLP product, and the final norm"
    reference = Translator(tiny_export, provider="cpu")
    sequences = [reference.encode(t)[0] for t in TEXTS]
    together = activation_max(tiny_export / "model.onnx", tensors, sequences, reference.pad_id, batch_size=3)
    alone = [activation_max(tiny_export / "model.onnx", tensors, [s], reference.pad_id) for s in sequences]
    for name in tensors:
        np.testing.assert_allclose(together[name], np.max([a[name] for a in alone], axis=0), rtol=1e-5)
    untie_output_projection(weights, output_projection(model))
    groups = smoothing_groups(model, ("down_proj", "norm"))
    assert len(groups) == len(tensors), "once untied, the output projection can be rescaled too"
    before = {name: weights.array(name).copy() for name in weights.initializers}
    rng = np.random.default_rng(0)
    smooth(weights, groups, {n: together[n] * rng.uniform(0.1, 10, together[n].shape) for n in tensors}, 0.8)
    changed = {name for name in weights.initializers
               if name not in before or not np.array_equal(weights.array(name), before[name])}
    graph_weights = {n.name: n.input[1] for n in model.graph.node if n.op_type == "MatMul"}
    rescaled = {graph_weights[node] for g in groups for node, _ in g.consumers}
    assert rescaled <= changed and len(rescaled) == 6 * layers + 1, "every matrix but the attention output"
    # ... and each group's absorber (weights shared by the exporter got private copies first); the up
    # projections absorb the down projections' scales and are themselves rescaled for the norm's
    assert len(changed - rescaled) == len(groups) - layers
    (tmp_path / "s").mkdir()
    weights.save(tmp_path / "s" / "model.onnx")
    weights.close()
    ids, mask = left_pad(sequences, reference.pad_id)
    session = ort.InferenceSession(str(tmp_path / "s" / "model.onnx"), providers=["CPUExecutionProvider"])
    feed = {"input_ids": ids, "attention_mask": mask, "position_ids": np.where(mask == 0, 1, np.cumsum(mask, 1) - 1)}
    feed.update({n: np.zeros((len(TEXTS), reference.decoder.kv_heads, 0, reference.decoder.head_dim), np.float32)
                 for n in reference.decoder.past_names})
    np.testing.assert_allclose(session.run(["logits"], feed)[0][:, -1], reference.decoder.prefill(ids, mask)[0],
                               rtol=1e-4, atol=1e-4)
