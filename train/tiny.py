"""A tiny test kit: a Qwen2-architecture model and tokenizer, and a five-language toy corpus.

Built in seconds on a CPU, with the chat special tokens and a Qwen2.5-style chat template, so every
stage (training, merging, export, runtime) runs on it exactly as on the real model. The numbers
it produces mean nothing; the code paths are the real ones.
"""
import json
from pathlib import Path

from modmt.runtime.errors import ModmtError

TINY_SENTENCES = Path(__file__).parent / "tiny_sentences.tsv"
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Qwen2.5-Instruct's chat template without the tool-calling branches.
QWEN_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def tiny_sentences() -> dict[str, list[str]]:
    """code -> 24 aligned sentences in en, fr, de, ja, zh."""
    lines = TINY_SENTENCES.read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    rows = [line.split("\t") for line in lines[1:]]
    return {code: [row[i] for row in rows] for i, code in enumerate(header)}


def write_tiny_corpus(out: Path) -> Path:
    """A modmt corpus: 16 sentences of training pairs, 4 dev and 4 devtest, five-way aligned."""
    table = tiny_sentences()
    for split, rows in (("dev", slice(16, 20)), ("devtest", slice(20, 24))):
        (out / split).mkdir(parents=True, exist_ok=True)
        for code, lines in table.items():
            (out / split / f"{code}.txt").write_text("\n".join(lines[rows]) + "\n", encoding="utf-8")
    (out / "train").mkdir(parents=True, exist_ok=True)
    for code, lines in table.items():
        if code != "en":
            pairs = zip(table["en"][:16], lines[:16])
            (out / "train" / f"en-{code}.tsv").write_text("".join(f"{e}\t{x}\n" for e, x in pairs),
                                                          encoding="utf-8")
    return out


def build_tiny_tokenizer(vocab_size: int = 512):
    """A byte-level BPE tokenizer (like Qwen's) trained on the toy sentences, as a transformers tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    texts = [s for lines in tiny_sentences().values() for s in lines]
    tok.train_from_iterator(texts * 4, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   chat_template=QWEN_CHAT_TEMPLATE, model_max_length=512)


def build_tiny_model(out: Path, seed: int = 0, hidden_size: int = 64, layers: int = 2) -> Path:
    """Write a random tiny Qwen2ForCausalLM and its tokenizer to `out` (a Hugging Face directory)."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    if layers < 1 or hidden_size % 16:
        raise ModmtError("the tiny model needs layers >= 1 and a hidden size divisible by 16")
    tokenizer = build_tiny_tokenizer()
    eos, pad = tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    # initializer_range 0.2 (not 0.02): with tied embeddings that small, logits stay near-uniform
    # and a LoRA cannot move them, so the tests could not tell learning from noise.
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True, initializer_range=0.2,
                         bos_token_id=pad, eos_token_id=eos, pad_token_id=pad)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).eval()
    model.generation_config = GenerationConfig(eos_token_id=[eos, pad], pad_token_id=pad,
                                               bos_token_id=pad, do_sample=False)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "modmt-model.json").write_text(json.dumps({"name": "tiny", "seed": seed}) + "\n")
    return out
