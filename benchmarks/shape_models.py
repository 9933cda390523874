"""Random-weight models with the shapes of larger bases, and a pool of random adapters for them.

Memory and time of an export depend on the shapes, not the values: Qwen2.5-1.5B- and 3B-shaped
models (their config.json, the real tokenizer) measure how the export scales without a model hub.
Their translations are noise; never benchmark quality on them.
"""
import json
import shutil
from pathlib import Path

# From the models' config.json on the hub (Qwen2.5-1.5B-Instruct, Qwen2.5-3B-Instruct): both tie
# their output projection to the embedding.
SHAPES = {
    "qwen2.5-1.5b": {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                     "num_attention_heads": 12, "num_key_value_heads": 2, "tie_word_embeddings": True},
    "qwen2.5-3b": {"hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
                   "num_attention_heads": 16, "num_key_value_heads": 2, "tie_word_embeddings": True},
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "vocab.json", "merges.txt", "generation_config.json",
                   "special_tokens_map.json", "added_tokens.json")


def build_shape_model(shape: str, tokenizer_dir: Path, out: Path, pool_dir: Path, langs=("en", "fr"), rank: int = 8):
    """A random `shape` model in `out` (fp32 safetensors) and `pool_dir` with random LoRA_in/out for `langs`."""
    import torch
    from peft import get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from modmt.runtime.fingerprint import model_fingerprint
    from modmt.train.adapters import LoraSettings
    from modmt.train.pool import Pool

    config = AutoConfig.from_pretrained(tokenizer_dir)   # the real model's: vocabulary, rope, norms
    for key, value in SHAPES[shape].items():
        setattr(config, key, value)
    config.layer_types = ["full_attention"] * config.num_hidden_layers  # one per layer, as the 0.5B's
    config.max_window_layers = config.num_hidden_layers
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (Path(tokenizer_dir) / name).exists():
            shutil.copy2(Path(tokenizer_dir) / name, out / name)
    fingerprint = model_fingerprint(out)
    parameters = sum(p.numel() for p in model.parameters())
    pool = Pool(pool_dir)
    pool.create_or_check(fingerprint, str(out), parameters)
    lora = LoraSettings(rank=rank)
    for lang in langs:
        for role in ("in", "out"):
            peft_model = get_peft_model(model, lora.peft_config())
            for name, p in peft_model.named_parameters():
                if "lora_B" in name:  # PEFT starts B at zero: a random B makes the merge do real work
                    torch.nn.init.normal_(p, std=0.01)
            trainable = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
            target = pool.adapter_dir(role, lang)
            peft_model.save_pretrained(target)
            (target / "modmt-adapter.json").write_text(json.dumps({"base_fingerprint": fingerprint}) + "\n")
            pool.record(role, lang, {"role": role, "lang": lang, "lora": vars(lora), "random": True,
                                     "trainable_parameters": trainable, "trainable_ratio": trainable / parameters})
            model = peft_model.unload()
    return out
