"""Model families beyond Qwen2 (issue 21): train, learn weights, export (fp32 with PyTorch parity, w8a8, int4,
an int8 shared base), greedy tokens against transformers' generate, routed directions."""
import numpy as np
import pytest
import torch

from modmt.export.direction import ExportOptions, export_direction, merged_model
from modmt.runtime.decoding import left_pad
from modmt.runtime.languages import load_registry
from modmt.runtime.translator import Translator
from modmt.train.pool import Pool
from modmt.train.trainer import TrainSettings
from modmt.train.weight_learning import learn_weights
from tests.test_int8_kernels import EMULATION_BOUND, cpu_int8_flags, kernel_error_against_emulation

TEXTS = ["猫はソファで寝ています。", "The train leaves at noon, and then a longer tail.", "パン"]
CAP = 5.0  # small, so that the cap bites on random weights


# family -> (config class, extra config): tiny random models with the project's tokenizer and chat template.
FAMILIES = {
    "llama": ("LlamaConfig", {}),
    "mistral": ("MistralConfig", {"sliding_window": None}),
    "qwen3": ("Qwen3Config", {"head_dim": 16}),
    "gemma": ("GemmaConfig", {"head_dim": 16}),
    "gemma2": ("Gemma2Config", {"head_dim": 16, "final_logit_softcapping": CAP, "attn_logit_softcapping": 50.0,
                                "sliding_window": 64}),
    "gemma3": ("Gemma3TextConfig", {"head_dim": 16, "sliding_window": 64}),
    "phi3": ("Phi3Config", {}),
}


def build_tiny_family(out, family: str):
    """A random tiny model of `family` with the project's tiny tokenizer and chat template."""
    import transformers
    from transformers import AutoModelForCausalLM, GenerationConfig

    from modmt.train.tiny import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    name, extra = FAMILIES[family]
    config = getattr(transformers, name)(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=512, initializer_range=0.2, bos_token_id=pad,
                                         eos_token_id=eos, pad_token_id=pad, **extra)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    model.generation_config = GenerationConfig(eos_token_id=[eos, pad], pad_token_id=pad, bos_token_id=pad,
                                               do_sample=False)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_train_export_translate_with_pytorch_parity(tmp_path, family):
    """Each family: adapters trained, a direction merged and exported (last-position logits, attention on
    the KV heads), its logits equal to the merged PyTorch model's. Gemma 2 caps its logits after the output
    projection (tanh(z / cap) * cap): the last-position cut finds the projection through those steps, so it
    needs no --all-logits (it used to stop with "no single MatMul producing 'logits'")."""
    from modmt.train.adapters import LoraSettings, train_pool
    from modmt.train.corpus import open_corpus
    from modmt.train.tiny import write_tiny_corpus

    registry = load_registry()
    model_dir = build_tiny_family(tmp_path / family, family)
    corpus = open_corpus(write_tiny_corpus(tmp_path / "corpus"), registry)
    train_pool(model_dir, corpus, registry, ["en", "ja", "zh"], tmp_path / "pool", LoraSettings(rank=4, alpha=8),
               TrainSettings(epochs=1, learning_rate=1e-2, batch_size=4, save_steps=1000))
    # Weight learning (section 3.4) on this family, and the export of its per-layer weights.
    learned = learn_weights(model_dir, Pool(tmp_path / "pool"), corpus, registry, "ja", "zh",
                            TrainSettings(epochs=2, learning_rate=0.1, batch_size=2, seed=0))
    assert len(learned["layers"]) == 2
    options = ExportOptions(weights="learned")
    manifest = export_direction(tmp_path / "pool", "ja", "zh", options, tmp_path / "ja-zh", registry)
    assert manifest["logits"] == "last" and len(manifest["weights"]["learned"]) == 2
    steps = manifest["graph_steps"]
    assert steps["last_position_logits"] == "applied" and steps["grouped_attention"].startswith("applied to 2 layers")
    translator = Translator(tmp_path / "ja-zh", provider="cpu")
    ids, mask = left_pad([translator.encode(t)[0] for t in TEXTS], translator.pad_id)
    ours = translator.decoder.prefill(ids, mask)[0]
    model, _, _ = merged_model(Pool(tmp_path / "pool"), "ja", "zh", options)
    positions = np.where(mask == 0, 1, np.cumsum(mask, axis=1) - 1)
    with torch.no_grad():
        theirs = model(torch.tensor(ids), attention_mask=torch.tensor(mask),
                       position_ids=torch.tensor(positions)).logits[:, -1].numpy()
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    if family == "gemma2":
        assert np.abs(ours).max() <= CAP and np.abs(ours).max() > 0.5 * CAP  # capped, and the cap is in play
    assert translator.translate(TEXTS[:1], beam=2, max_new_tokens=4)[0] is not None
    # Greedy decoding: the same tokens as transformers' generate on the merged PyTorch model.
    for text in TEXTS:
        prompt = translator.encode(text)[0]
        with torch.no_grad():
            generated = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                       max_new_tokens=6, do_sample=False)[0, len(prompt):].tolist()
        want = translator.tokenizer.decode(generated, skip_special_tokens=True).strip()
        assert translator.translate([text], beam=1, max_new_tokens=6) == [want], (family, text)
    # Setting 2 (A and B merged apart, sqrt of the weights) at a fixed ratio: the same parity with PyTorch.
    setting2 = ExportOptions(weights="3:7", setting=2)
    export_direction(tmp_path / "pool", "ja", "zh", setting2, tmp_path / "ja-zh-s2", registry)
    got = Translator(tmp_path / "ja-zh-s2", provider="cpu").decoder.prefill(ids, mask)[0]
    model2, _, _ = merged_model(Pool(tmp_path / "pool"), "ja", "zh", setting2)
    with torch.no_grad():
        want2 = model2(torch.tensor(ids), attention_mask=torch.tensor(mask),
                       position_ids=torch.tensor(positions)).logits[:, -1].numpy()
    np.testing.assert_allclose(got, want2, atol=1e-4)
    assert np.abs(want2 - theirs).max() > 1e-3  # another merge than the learned one: the check can tell them apart
    # fp16 weights and activations: near the fp32 export's logits.
    export_direction(tmp_path / "pool", "ja", "zh", ExportOptions(weights="learned", dtype="fp16"),
                     tmp_path / "ja-zh-fp16", registry)
    half = Translator(tmp_path / "ja-zh-fp16", provider="cpu")
    error = np.abs(half.decoder.prefill(ids, mask)[0].astype(np.float32) - ours).max() / np.abs(ours).max()
    assert error < 0.02, (family, "fp16", error)
    assert len(half.translate(TEXTS[:1], beam=2, max_new_tokens=3)) == 1
    # Quantized standalone exports: int8 x int8 (calibrated) and int4 stay near the float logits.
    for quantize in ("w8a8", "int4"):
        export_direction(tmp_path / "pool", "ja", "zh", ExportOptions(weights="learned", quantize=quantize,
                                                                      calibration=corpus.root if quantize == "w8a8" else None),
                         tmp_path / f"ja-zh-{quantize}", registry)
        quantized = Translator(tmp_path / f"ja-zh-{quantize}", provider="cpu")
        if quantize == "w8a8":
            smoothing = quantized.manifest["graph_steps"]["smoothquant"]
            assert smoothing.startswith("smoothed") and ("not smoothed" in smoothing) == (family == "phi3"), smoothing
        got = quantized.decoder.prefill(ids, mask)[0]
        if quantize == "w8a8":
            error = np.abs(got - ours).max() / np.abs(ours).max()
            assert error < 0.25, (family, quantize, error)
            kernel = kernel_error_against_emulation(tmp_path / f"ja-zh-{quantize}", ids, mask, got)
            assert kernel < EMULATION_BOUND, (family, "int8 kernels against the recipe in float", kernel, cpu_int8_flags())
        else:  # 4 bits on random 64-wide matrices: far from exact, still the same logits' shape
            correlation = np.corrcoef(got.ravel(), ours.ravel())[0, 1]
            assert correlation > 0.8, (family, quantize, correlation)
        assert len(quantized.translate(TEXTS, beam=2, max_new_tokens=3)) == 3
    # An int8 shared base, and both of its directions routed in one session: the shared-base tokens.
    from modmt.export.shared_base import export_shared_direction
    from modmt.runtime.routed_translator import RoutedTranslator

    for src, tgt in (("ja", "zh"), ("en", "ja")):
        export_shared_direction(tmp_path / "pool", src, tgt, ExportOptions(quantize="int8"), tmp_path / "base",
                                tmp_path / f"int8-{src}-{tgt}", registry)
    routed = RoutedTranslator([tmp_path / "int8-ja-zh", tmp_path / "int8-en-ja"], provider="cpu")
    got = routed.translate(TEXTS[:2], directions=[("ja", "zh"), ("en", "ja")], beam=2, max_new_tokens=5)
    want = [Translator(tmp_path / f"int8-{s}-{t}", provider="cpu").translate([x], beam=2, max_new_tokens=5)[0]
            for x, (s, t) in zip(TEXTS[:2], (("ja", "zh"), ("en", "ja")))]
    assert got == want


def test_a_family_optimum_cannot_export_is_refused_with_the_tested_ones(tmp_path):
    """Mamba has no ONNX config in Optimum: one line that names the tested families, before any work."""
    import transformers

    from modmt.export.torch_to_onnx import torch_to_onnx
    from modmt.runtime.errors import ModmtError

    config = transformers.MambaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, state_size=4)
    model = transformers.AutoModelForCausalLM.from_config(config)
    with pytest.raises(ModmtError, match=r"Optimum cannot export a 'mamba' model .*tested on qwen2, qwen3, llama"):
        torch_to_onnx(model, tmp_path / "out")
    assert not (tmp_path / "out" / "weights.data").exists(), "refused before the weights were moved"


@pytest.mark.parametrize("family", ["qwen2"] + sorted(FAMILIES))
def test_label_position_loss_equals_the_models_own(tmp_path, family, tiny_model_dir):
    """Training's loss (logits only from the first labelled position) equals the model's own loss and
    gives the same gradients, on a right-padded batch whose rows start their labels at different
    positions; Gemma 2's soft-capping included."""
    from types import SimpleNamespace

    from transformers import AutoModelForCausalLM

    from modmt.train.data import PadCollator
    from modmt.train.trainer import LabelPositionTrainer, accepts_logits_to_keep

    model_dir = tiny_model_dir if family == "qwen2" else build_tiny_family(tmp_path / family, family)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).train()
    assert accepts_logits_to_keep(model)
    examples = [{"input_ids": list(range(5, 5 + n)), "labels": [-100] * p + list(range(5 + p, 5 + n))}
                for n, p in ((12, 7), (9, 3), (15, 10))]
    batch = PadCollator(0)(examples)

    def loss_and_grads(fn):
        model.zero_grad()
        loss = fn()
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    torch.manual_seed(0)
    own, own_grads = loss_and_grads(lambda: model(**batch).loss)
    trainer = SimpleNamespace(args=SimpleNamespace(average_tokens_across_devices=False), model_accepts_loss_kwargs=True)
    torch.manual_seed(0)
    ours, our_grads = loss_and_grads(lambda: LabelPositionTrainer.compute_loss(trainer, model, dict(batch)))
    assert torch.allclose(own, ours, atol=1e-6), (own, ours)
    assert own_grads.keys() == our_grads.keys()
    for name in own_grads:
        assert torch.allclose(own_grads[name], our_grads[name], atol=1e-6), name
