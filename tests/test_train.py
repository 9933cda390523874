"""Adapter training on the tiny model: learning, routing, PEFT format, resume, extension, weights."""
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from modmt.runtime.errors import ModmtError
from modmt.runtime.languages import load_registry
from modmt.train.adapters import LoraSettings, train_pool
from modmt.train.corpus import open_corpus
from modmt.train.data import Direction, data_hash, direction_pairs
from modmt.train.pool import Pool
from modmt.train.tiny import build_tiny_model, write_tiny_corpus
from modmt.train.trainer import TrainSettings
from modmt.train.weight_learning import learn_weights

FAST = TrainSettings(epochs=2, learning_rate=5e-3, batch_size=4, seed=0, save_steps=3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    """A pool with en, ja, zh adapters on the tiny model and toy corpus (about 5 s), English's with the paper's
    recipe (en->en): one direction per adapter."""
    root = tmp_path_factory.mktemp("pool")
    registry = load_registry()
    corpus = open_corpus(write_tiny_corpus(root / "corpus"), registry)
    infos = train_pool(tiny_model_dir, corpus, registry, ["en", "ja", "zh"], root / "pool",
                       LoraSettings(rank=4, alpha=8, dropout=0.0), FAST, english="copy")
    return {"root": root, "corpus": corpus, "pool": Pool(root / "pool"), "infos": infos, "registry": registry}


def test_pool_layout_and_peft_loads_every_adapter(trained, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    meta = trained["pool"].read()
    assert sorted(meta["adapters"]) == ["in/en", "in/ja", "in/zh", "out/en", "out/ja", "out/zh"]
    assert meta["languages"] == ["en", "ja", "zh"]
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    inputs = torch.tensor([[5, 6, 7, 8]])
    reference = base(inputs).logits
    for key, info in meta["adapters"].items():
        assert 0 < info["trainable_ratio"] < 1 and info["trainable_parameters"] > 0
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                          str(trained["pool"].root / key))
        assert not torch.allclose(model(inputs).logits, reference), f"{key} changed nothing"
    assert not (trained["pool"].root / ".work" / "in-ja").exists()  # checkpoints removed when done


def test_routing_each_adapter_saw_only_its_direction(trained):
    meta, corpus = trained["pool"].read(), trained["corpus"]
    expected = {"in/ja": Direction("ja", "en"), "out/zh": Direction("en", "zh"), "in/en": Direction("en", "en"),
                "out/ja": Direction("en", "ja"), "in/zh": Direction("zh", "en")}
    for key, direction in expected.items():
        info = meta["adapters"][key]
        assert info["direction"] == str(direction)
        assert info["data_hash"] == data_hash(direction, direction_pairs(corpus, direction))
    # in/ja's sources are Japanese and its targets English: the pairs it hashed are ja->en.
    source, target = direction_pairs(corpus, Direction("ja", "en"))[0]
    assert source == "猫はソファで寝ています。" and target == "The cat sleeps on the sofa."


def test_loss_drops_on_a_learnable_mapping(tmp_path, tiny_model_dir):
    registry = load_registry()
    corpus = open_corpus(write_tiny_corpus(tmp_path / "corpus"), registry)
    settings = TrainSettings(epochs=8, learning_rate=1e-2, batch_size=4, seed=0, save_steps=1000)
    info = train_pool(tiny_model_dir, corpus, registry, ["fr"], tmp_path / "pool", LoraSettings(rank=8, alpha=16),
                      settings)[0]
    assert info["final_loss"] < 0.7 * info["first_loss"], info


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, tiny_model_dir, trained):
    registry, corpus = trained["registry"], trained["corpus"]
    lora = LoraSettings(rank=4, alpha=8, dropout=0.1)  # dropout: the RNG state must resume too
    with pytest.raises(KeyboardInterrupt):
        train_pool(tiny_model_dir, corpus, registry, ["ja"], tmp_path / "pool", lora, FAST, stop_after_step=3)
    pool = Pool(tmp_path / "pool")
    assert not pool.has("in", "ja") and not pool.adapter_dir("in", "ja").exists()  # no half adapter listed
    assert list(pool.work_dir("in", "ja").glob("checkpoint-3"))
    resumed = train_pool(tiny_model_dir, corpus, registry, ["ja"], tmp_path / "pool", lora, FAST, resume=True)
    assert resumed[0]["resumed_from"] == "checkpoint-3"
    straight = train_pool(tiny_model_dir, corpus, registry, ["ja"], tmp_path / "straight", lora, FAST)
    for role in ("in", "out"):
        a = load_file(pool.adapter_dir(role, "ja") / "adapter_model.safetensors")
        b = load_file(Pool(tmp_path / "straight").adapter_dir(role, "ja") / "adapter_model.safetensors")
        assert a.keys() == b.keys()
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6)
    assert [r["final_loss"] for r in resumed][-1] == pytest.approx(straight[-1]["final_loss"], rel=1e-4)


def test_adding_a_language_trains_only_its_adapters(tmp_path, tiny_model_dir, trained, monkeypatch):
    pool_dir = tmp_path / "pool"
    shutil.copytree(trained["pool"].root, pool_dir)
    corpus_dir = tmp_path / "corpus"
    shutil.copytree(trained["corpus"].root, corpus_dir)
    (corpus_dir / "train" / "en-ko.tsv").write_text("The cat.\t고양이.\nThe dog.\t개.\n", encoding="utf-8")
    langs = tmp_path / "langs.json"
    langs.write_text(json.dumps({"languages": [{"code": "ko", "name": "Korean"}]}))
    monkeypatch.setenv("MODMT_LANGUAGES", str(langs))
    registry = load_registry()
    before = {p: p.read_bytes() for p in pool_dir.rglob("*") if p.is_file() and p.name != "pool.json"}
    infos = train_pool(tiny_model_dir, open_corpus(corpus_dir, registry), registry, ["en", "ja", "ko"], pool_dir,
                       LoraSettings(rank=4, alpha=8, dropout=0.0), FAST)
    assert [(i["role"], i["lang"]) for i in infos] == [("in", "ko"), ("out", "ko")]
    for path, data in before.items():
        assert path.read_bytes() == data, f"{path} changed"
    assert sorted(Pool(pool_dir).read()["adapters"]) == sorted(
        ["in/en", "in/ja", "in/zh", "out/en", "out/ja", "out/zh", "in/ko", "out/ko"])


def test_pool_from_another_base_model_is_refused(tmp_path, trained):
    other = build_tiny_model(tmp_path / "other", seed=1)
    with pytest.raises(ModmtError, match="another base model"):
        train_pool(other, trained["corpus"], trained["registry"], ["fr"], trained["pool"].root,
                   LoraSettings(), FAST)


def test_bad_training_input(tmp_path, tiny_model_dir, trained):
    registry, corpus = trained["registry"], trained["corpus"]
    with pytest.raises(ModmtError, match="--rank must be a positive integer"):
        train_pool(tiny_model_dir, corpus, registry, ["fr"], tmp_path / "p", LoraSettings(rank=0), FAST)
    with pytest.raises(ModmtError, match="unknown language code 'xx'"):
        train_pool(tiny_model_dir, corpus, registry, ["xx"], tmp_path / "p", LoraSettings(), FAST)
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    with pytest.raises(ModmtError, match=r"expected .*en-de\.tsv"):
        train_pool(tiny_model_dir, open_corpus(empty, registry), registry, ["de"], tmp_path / "p", LoraSettings(), FAST)
    with pytest.raises(ModmtError, match="no LoRA_out\\(fr\\); train it with `modmt-train adapters"):
        trained["pool"].require("out", "fr")


def test_weight_learning_moves_the_weights(tiny_model_dir, trained):
    pool = trained["pool"]
    settings = TrainSettings(epochs=4, learning_rate=0.1, batch_size=2, seed=0)
    result = learn_weights(tiny_model_dir, pool, trained["corpus"], trained["registry"], "ja", "zh", settings)
    saved = json.loads(pool.weights_file("ja", "zh").read_text())
    assert len(saved["layers"]) == 2 and saved == json.loads(json.dumps(result))
    for layer in saved["layers"]:
        assert layer["w_in"] + layer["w_out"] == pytest.approx(1.0)
        assert abs(layer["w_out"] - 0.5) > 0.01, "weights did not move from 0.5/0.5"


def test_full_fine_tuning_baseline(tmp_path, tiny_model_dir, trained):
    from transformers import AutoModelForCausalLM

    from modmt.train.full import train_full

    settings = TrainSettings(epochs=1, learning_rate=1e-3, batch_size=8, max_pairs=8)
    info = train_full(tiny_model_dir, trained["corpus"], trained["registry"], ["en", "ja"], tmp_path / "full", settings)
    assert info["directions"] == ["ja-en", "en-ja"] and info["trainable_ratio"] == 1.0
    tuned = AutoModelForCausalLM.from_pretrained(tmp_path / "full")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert not torch.equal(tuned.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)
    with pytest.raises(ModmtError, match="--force"):
        train_full(tiny_model_dir, trained["corpus"], trained["registry"], ["ja"], tmp_path / "full", settings)


def test_gradient_checkpointing_trains_the_same_adapter(tmp_path, tiny_model_dir, trained, monkeypatch):
    """Recomputing activations (dropout included: its RNG state is replayed) gives the same adapter."""
    from dataclasses import replace

    import transformers.modeling_utils

    calls = []
    original = transformers.modeling_utils.checkpoint  # what gradient_checkpointing_enable binds
    monkeypatch.setattr(transformers.modeling_utils, "checkpoint", lambda *a, **k: calls.append(1) or original(*a, **k))
    lora = LoraSettings(rank=4, alpha=8, dropout=0.1)
    for name, checkpointing in (("plain", False), ("recomputed", True)):
        calls.clear()
        train_pool(tiny_model_dir, trained["corpus"], trained["registry"], ["ja"], tmp_path / name, lora,
                   replace(FAST, gradient_checkpointing=checkpointing))
        assert bool(calls) == checkpointing  # every decoder layer's forward went through checkpoint, or none
    for role in ("in", "out"):
        plain = load_file(tmp_path / "plain" / role / "ja" / "adapter_model.safetensors")
        recomputed = load_file(tmp_path / "recomputed" / role / "ja" / "adapter_model.safetensors")
        assert plain.keys() == recomputed.keys()
        assert max((plain[k] - recomputed[k]).abs().max().item() for k in plain) < 1e-6
        assert any(plain[k].abs().max() > 0 for k in plain if "lora_B" in k)  # it did train
    info = Pool(tmp_path / "recomputed").read()["adapters"]["in/ja"]
    assert info["train"]["gradient_checkpointing"] is True


def test_micro_batches_train_the_same_adapter(tmp_path, tiny_model_dir, trained):
    """A batch of 4 as 2 accumulated micro-batches of 2: the same optimizer steps, so the same adapter."""
    from dataclasses import replace

    lora = LoraSettings(rank=4, alpha=8, dropout=0.0)  # dropout masks would be drawn in another order
    for name, micro in (("whole", None), ("micro", 2)):
        train_pool(tiny_model_dir, trained["corpus"], trained["registry"], ["ja"], tmp_path / name, lora,
                   replace(FAST, micro_batch_size=micro))
    steps = {name: Pool(tmp_path / name).read()["adapters"]["in/ja"]["steps"] for name in ("whole", "micro")}
    assert steps["whole"] == steps["micro"] > 1  # optimizer steps, not forward passes
    for role in ("in", "out"):
        whole = load_file(tmp_path / "whole" / role / "ja" / "adapter_model.safetensors")
        micro = load_file(tmp_path / "micro" / role / "ja" / "adapter_model.safetensors")
        assert max((whole[k] - micro[k]).abs().max().item() for k in whole) < 1e-5
        assert any(whole[k].abs().max() > 0 for k in whole if "lora_B" in k)
    with pytest.raises(ModmtError, match="must divide"):
        TrainSettings(batch_size=8, micro_batch_size=3).check()


def _lora_step(model, ids):
    """Logits and the LoRA gradients of one forward/backward on a fresh PEFT wrapper (seeded init)."""
    from peft import get_peft_model

    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraSettings(rank=4, alpha=8, dropout=0.0).peft_config())
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)  # B starts at zero; non-zero so that A's gradient is too
    logits = peft_model(input_ids=ids).logits
    (logits.float() ** 2).mean().backward()
    grads = {n: p.grad.clone() for n, p in peft_model.named_parameters() if "lora_" in n}
    assert all(g.dtype == torch.float32 for g in grads.values())  # the adapter trains in fp32
    peft_model.unload()
    return logits.detach(), grads


def test_frozen_fp16_base_is_the_rounded_model_in_half_the_memory(tiny_model_dir, monkeypatch):
    """The fp16-stored base computes what the fp32 model with its matrices rounded to fp16 computes,
    forward and backward (the custom backward upcasts the saved fp16 weight), keeps tied weights tied,
    and closes its mapping of the checkpoint without changing the tensors left in fp32."""
    import gc

    from transformers import AutoModelForCausalLM

    from modmt.train import frozen_fp16
    from modmt.train.frozen_fp16 import FP16StoredLinear, store_frozen_base_in_fp16

    def mapped():
        return [line for line in open("/proc/self/maps") if str(tiny_model_dir) in line]

    rounded = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with torch.no_grad():
        for module in rounded.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Embedding)):
                module.weight.copy_(module.weight.half().float())
    fresh = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).state_dict()
    fresh_small = {k: v.clone() for k, v in fresh.items() if v.dim() == 1}  # norms, biases
    del fresh
    gc.collect()
    before = len(mapped())  # the rounded model's own mapping of the file
    stored = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    assert len(mapped()) > before  # transformers maps the safetensors file: the page release is exercised
    info = store_frozen_base_in_fp16(stored)
    gc.collect()
    assert len(mapped()) == before  # nothing of `stored` refers to the file any more
    assert info["kept_fp32"] == [] and info["fp16_matrices"] == 1 + 7 * 2  # embedding (= lm_head), 7 per layer
    assert stored.lm_head.weight is stored.model.embed_tokens.weight
    assert stored.lm_head.weight.dtype == torch.float16 and isinstance(stored.lm_head, FP16StoredLinear)
    for name, tensor in stored.state_dict().items():
        if name in fresh_small:
            assert tensor.dtype == torch.float32 and torch.equal(tensor, fresh_small[name]), name

    ids = torch.tensor([[5, 17, 99, 3, 250, 7]])
    want_logits, want_grads = _lora_step(rounded, ids)
    for chunk_bytes in (32 << 20, 1024):  # whole matrices; then a few rows at a time (every matrix chunked)
        monkeypatch.setattr(frozen_fp16, "CHUNK_ROWS_BYTES", chunk_bytes)
        got_logits, got_grads = _lora_step(stored, ids)
        assert got_logits.dtype == torch.float32
        assert (got_logits - want_logits).abs().max() < 1e-5
        assert want_grads.keys() == got_grads.keys() and len(got_grads) == 2 * 7 * 2
        for name, want in want_grads.items():
            assert torch.allclose(got_grads[name], want, rtol=1e-4, atol=1e-7), name
            assert want.abs().max() > 0


def test_frozen_fp16_keeps_a_matrix_fp16_cannot_hold(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    from modmt.train.frozen_fp16 import store_frozen_base_in_fp16

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight[0, 0] = 1e5  # beyond fp16's 65504: would become inf
    info = store_frozen_base_in_fp16(model)
    assert info["kept_fp32"] == ["model.layers.0.mlp.up_proj"]
    assert model.model.layers[0].mlp.up_proj.weight.dtype == torch.float32
    assert torch.isfinite(model(input_ids=torch.tensor([[1, 2, 3]])).logits).all()


def test_training_on_a_frozen_fp16_base(tmp_path, tiny_model_dir, trained):
    """The adapters trained on the fp16-stored base are close to the fp32 ones (the base differs by its
    rounding only) and the pool records how the base was stored."""
    lora = LoraSettings(rank=4, alpha=8, dropout=0.0)
    train_pool(tiny_model_dir, trained["corpus"], trained["registry"], ["ja"], tmp_path / "fp16", lora, FAST,
               frozen_base="fp16")
    info = Pool(tmp_path / "fp16").read()["adapters"]["in/ja"]
    assert info["frozen_base"]["frozen_base"] == "fp16" and info["frozen_base"]["fp16_matrices"] == 15
    assert "frozen_base" not in trained["pool"].read()["adapters"]["in/ja"]
    for role in ("in", "out"):
        fp32 = load_file(trained["root"] / "pool" / role / "ja" / "adapter_model.safetensors")
        fp16 = load_file(tmp_path / "fp16" / role / "ja" / "adapter_model.safetensors")
        for key in fp32:
            assert fp16[key].dtype == torch.float32
            assert (fp16[key] - fp32[key]).norm() < 0.1 * fp32[key].norm(), key  # Adam amplifies the rounding a little
    with pytest.raises(ModmtError, match="--frozen-base is one of fp32, fp16"):
        train_pool(tiny_model_dir, trained["corpus"], trained["registry"], ["ja"], tmp_path / "x", lora, FAST,
                   frozen_base="int8")


def test_mixing_general_domain_pairs_into_training(tmp_path, tiny_model_dir, trained):
    """--mix-data: a share of each adapter's pairs comes from another corpus, same direction, same count."""
    from modmt.train.data import adapter_data, mix_in

    general_root = tmp_path / "general" / "train"
    general_root.mkdir(parents=True)
    for code in ("ja", "zh"):
        (general_root / f"en-{code}.tsv").write_text("".join(f"General sentence {i}.\t[{code}] general {i}\n"
                                                            for i in range(40)))
    registry = trained["registry"]
    general = open_corpus(tmp_path / "general", registry)
    groups = adapter_data(trained["corpus"], "in", "ja", max_pairs=8, seed=0)
    mixed, taken = mix_in(groups, general, 0.25, seed=0)
    assert taken == 2 and [len(g) for _, g in mixed] == [6, 2] and {d for d, _ in mixed} == {groups[0][0]}
    assert set(mixed[0][1]) <= set(groups[0][1]) and all(src.startswith("[ja] general") for src, _ in mixed[1][1])
    with pytest.raises(ModmtError, match="--mix-share must be between 0 and 1"):
        mix_in(groups, general, 1.0, seed=0)

    train_pool(tiny_model_dir, trained["corpus"], registry, ["ja"], tmp_path / "mixed",
               LoraSettings(rank=4, alpha=8, dropout=0.0), replace_settings(FAST, max_pairs=8), mix=(general, 0.25))
    info = Pool(tmp_path / "mixed").read()["adapters"]["out/ja"]
    assert info["mixed_in"] == {"corpus": str(tmp_path / "general"), "share": 0.25, "pairs": 2}
    assert info["pairs"] == 8 and info["direction"] == "en-ja" and "+" in info["data_hash"]
    with pytest.raises(ModmtError, match="no training pairs for de: expected .*general/train/en-de.tsv"):  # before loading the model
        train_pool(tiny_model_dir, trained["corpus"], registry, ["de"], tmp_path / "x",
                   LoraSettings(rank=4, alpha=8), FAST, mix=(general, 0.25))


def replace_settings(settings, **changes):
    from dataclasses import replace

    return replace(settings, **changes)


def test_mixing_rounds_over_all_groups():
    """Four pooled-English groups of 2 pairs at a quarter: 2 general pairs in all, not 4 x round(0.5) = 0."""
    from modmt.train.data import Direction, mix_in

    class General:
        def pairs(self, code):
            return [(f"general {i}", f"[{code}] {i}") for i in range(10)]

    groups = [(Direction(code, "en"), [(f"{code} {i}", f"en {i}") for i in range(2)]) for code in ("fr", "de", "ja", "zh")]
    mixed, taken = mix_in(groups, General(), 0.25, seed=0)
    assert taken == 2 and sum(len(g) for _, g in mixed) == 8


def test_a_new_pool_trains_english_pooled_and_an_existing_pool_keeps_its_recipe(tmp_path, tiny_pool, tiny_model_dir,
                                                                                 registry):
    """The default English recipe is pooled (merges into English translate); a pool trained with the paper's copy
    recipe keeps it when extended without --english-adapters, and naming the other recipe is one clear error."""
    from modmt.train.tiny import write_tiny_corpus
    from modmt.train.trainer import TrainSettings

    corpus = open_corpus(write_tiny_corpus(tmp_path / "corpus"), registry)
    new = tmp_path / "new-pool"
    train_pool(tiny_model_dir, corpus, registry, ["en", "fr"], new, LoraSettings(rank=4, alpha=8),
               TrainSettings(epochs=1, batch_size=4, save_steps=1000, max_pairs=4))
    meta = json.loads((new / "pool.json").read_text())
    assert meta["english_adapters"] == "pooled"
    assert (meta["adapters"]["out/en"]["direction"], meta["adapters"]["in/en"]["direction"]) == ("fr-en", "en-fr")
    copy_pool = tmp_path / "copy-pool"
    shutil.copytree(tiny_pool, copy_pool)  # trained with english="copy" (tests/conftest.py)
    assert json.loads((copy_pool / "pool.json").read_text())["english_adapters"] == "copy"
    args = (tiny_model_dir, corpus, registry, ["en", "fr"], copy_pool, LoraSettings(rank=4, alpha=8), TrainSettings())
    assert train_pool(*args) == []  # nothing to train, and no complaint about the recipe
    with pytest.raises(ModmtError, match="'copy' recipe, not 'pooled'"):
        train_pool(*args, english="pooled")
