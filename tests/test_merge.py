"""Merge math: Setting 1 and 2 against PEFT's add_weighted_adapter and against the dynamic two-adapter forward."""
import json
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from modmt.export.direction import ExportOptions, merged_model
from modmt.runtime.lora_merge import load_adapter, merged_deltas
from modmt.runtime.merge_weights import MergeWeights, parse_weights
from modmt.runtime.errors import ModmtError
from modmt.train.pair_forward import IN, OUT, attach_layer_weights, load_pair
from modmt.train.pool import Pool

INPUT = torch.tensor([[3, 17, 42, 99, 7, 250, 12]])


def peft_delta(tiny_model_dir, pool, src, tgt, weights, combination):
    model = load_pair(AutoModelForCausalLM.from_pretrained(tiny_model_dir), pool.adapter_dir("in", src),
                      pool.adapter_dir("out", tgt))
    model.add_weighted_adapter([IN, OUT], list(weights), "merged", combination_type=combination)
    deltas = {}
    for name, module in model.base_model.model.named_modules():
        if hasattr(module, "get_delta_weight") and "merged" in getattr(module, "lora_A", {}):
            deltas[f"{name}.weight"] = module.get_delta_weight("merged")
    return deltas


@pytest.mark.parametrize("setting, combination", [(1, "cat"), (2, "linear")])
@pytest.mark.parametrize("weights", [(0.3, 0.7), (0.9, 0.1), (1.0, 0.0), (0.05, 0.45)])  # last: 1:9@0.5
def test_deltas_match_peft_add_weighted_adapter(tiny_model_dir, tiny_pool, setting, combination, weights):
    pool = Pool(tiny_pool)
    ours = merged_deltas(load_adapter(pool.adapter_dir("in", "ja")), load_adapter(pool.adapter_dir("out", "zh")),
                         MergeWeights(weights), setting)
    theirs = peft_delta(tiny_model_dir, pool, "ja", "zh", weights, combination)
    assert sorted(ours) == sorted(theirs) and len(ours) == 14
    for name in ours:
        torch.testing.assert_close(torch.from_numpy(ours[name]), theirs[name], rtol=1e-5, atol=1e-6)


def test_setting_2_differs_from_setting_1(tiny_pool):
    pool = Pool(tiny_pool)
    a, b = load_adapter(pool.adapter_dir("in", "ja")), load_adapter(pool.adapter_dir("out", "zh"))
    one, two = merged_deltas(a, b, MergeWeights((0.5, 0.5)), 1), merged_deltas(a, b, MergeWeights((0.5, 0.5)), 2)
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not np.allclose(one[name], two[name])


def dynamic_logits(tiny_model_dir, pool, src, tgt, weights_of_layer):
    model = load_pair(AutoModelForCausalLM.from_pretrained(tiny_model_dir), pool.adapter_dir("in", src),
                      pool.adapter_dir("out", tgt))
    attach_layer_weights(model, weights_of_layer)
    with torch.no_grad():
        return model(INPUT).logits


@pytest.mark.parametrize("w", ["3:7", "1:9", "1:0", "0:1"])
def test_setting_1_equals_both_adapters_active_at_w(tiny_model_dir, tiny_pool, w):
    pool = Pool(tiny_pool)
    merged, _, record = merged_model(pool, "ja", "zh", ExportOptions(weights=w, setting=1))
    w_in, w_out = record["weights"]["w_in"], record["weights"]["w_out"]
    with torch.no_grad():
        static = merged(INPUT).logits
    torch.testing.assert_close(static, dynamic_logits(tiny_model_dir, pool, "ja", "zh", lambda i: (w_in, w_out)),
                               rtol=1e-4, atol=5e-5)  # float32 sums in another order


def test_learned_per_layer_weights_fold_like_the_dynamic_forward(tmp_path, tiny_model_dir, tiny_pool):
    pool_dir = tmp_path / "pool"
    shutil.copytree(tiny_pool, pool_dir)
    pool = Pool(pool_dir)
    layers = [{"w_in": 0.8, "w_out": 0.2}, {"w_in": 0.25, "w_out": 0.75}]
    pool.weights_file("ja", "zh").parent.mkdir(parents=True)
    pool.weights_file("ja", "zh").write_text(json.dumps({"layers": layers}))
    merged, _, record = merged_model(pool, "ja", "zh", ExportOptions(weights="learned"))
    assert record["weights"] == {"learned": [[0.8, 0.2], [0.25, 0.75]]}
    with torch.no_grad():
        static = merged(INPUT).logits
    dynamic = dynamic_logits(tiny_model_dir, pool, "ja", "zh", lambda i: (layers[i]["w_in"], layers[i]["w_out"]))
    torch.testing.assert_close(static, dynamic, rtol=1e-4, atol=5e-5)  # float32 sums in another order


def test_only_chosen_modules_change_and_the_rest_is_bit_identical(tiny_model_dir, tiny_pool):
    merged, _, record = merged_model(Pool(tiny_pool), "ja", "zh", ExportOptions(targets=["q_proj", "down_proj"]))
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    merged_params, changed = dict(merged.named_parameters()), []
    for name, param in base.named_parameters():
        if not torch.equal(param, merged_params[name]):
            changed.append(name)
    assert sorted(changed) == sorted(record["merged_modules"]) == [
        "model.layers.0.mlp.down_proj.weight", "model.layers.0.self_attn.q_proj.weight",
        "model.layers.1.mlp.down_proj.weight", "model.layers.1.self_attn.q_proj.weight"]


def test_weight_parsing():
    assert parse_weights("3:7").uniform == pytest.approx((0.3, 0.7))
    assert parse_weights("0.3:0.7").uniform == pytest.approx((0.3, 0.7))
    assert parse_weights("1:0").uniform == (1.0, 0.0) and parse_weights("0:1").uniform == (0.0, 1.0)
    for bad, message in [("-1:2", "non-negative"), ("0:0", "both adapters zero"), ("3-7", "IN:OUT"),
                         ("a:b", "IN:OUT"), ("1:2:3", "IN:OUT")]:
        with pytest.raises(ModmtError, match=message):
            parse_weights(bad)
    with pytest.raises(ModmtError, match="modmt-train weights"):
        parse_weights("learned", None)


def test_scaled_weights_sum_to_the_scale_and_scale_the_delta(tiny_pool):
    from modmt.runtime.merge_weights import weights_argument

    assert parse_weights("1:9@0.5").uniform == pytest.approx((0.05, 0.45))
    assert parse_weights(" 3 : 7 @ 1 ").uniform == pytest.approx((0.3, 0.7))
    for bad, message in [("1:9@0", "SCALE above 0"), ("1:9@", "IN:OUT@SCALE"), ("1:9@-1", "IN:OUT@SCALE"),
                         ("1:9@1e999", "IN:OUT@SCALE"), ("learned@0.5", "IN:OUT@SCALE")]:
        with pytest.raises(ModmtError, match=message):
            parse_weights(bad)
    # A manifest records the scaled pair; the --w it came from is given back and parses to the same pair.
    for text in ("1:9@0.5", "3:7", "1:0@0.25"):
        recorded = parse_weights(text).to_json()
        assert parse_weights(weights_argument(recorded)).uniform == pytest.approx(parse_weights(text).uniform)
    pool = Pool(tiny_pool)
    a, b = load_adapter(pool.adapter_dir("in", "ja")), load_adapter(pool.adapter_dir("out", "zh"))
    for setting in (1, 2):
        full, half = (merged_deltas(a, b, parse_weights(w), setting) for w in ("1:9", "1:9@0.5"))
        for name in full:
            np.testing.assert_allclose(half[name], 0.5 * full[name], rtol=1e-5, atol=1e-7)


def test_setting_2_with_different_ranks_suggests_setting_1(tmp_path, tiny_model_dir, tiny_pool):
    from safetensors.torch import load_file, save_file

    pool_dir = tmp_path / "pool"
    shutil.copytree(tiny_pool, pool_dir)
    adapter = Pool(pool_dir).adapter_dir("out", "zh")
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["r"] = 8
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    tensors = {k: torch.cat([v, v], dim=0 if "lora_A" in k else 1) for k, v in
               load_file(adapter / "adapter_model.safetensors").items()}
    save_file(tensors, adapter / "adapter_model.safetensors")
    a, b = load_adapter(Pool(pool_dir).adapter_dir("in", "ja")), load_adapter(adapter)
    with pytest.raises(ModmtError, match="needs equal ranks.*use --setting 1"):
        merged_deltas(a, b, MergeWeights((0.5, 0.5)), 2)
    assert merged_deltas(a, b, MergeWeights((0.5, 0.5)), 1)  # Setting 1 takes mixed ranks
