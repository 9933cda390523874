"""Training examples: which pairs each adapter learns from (the routing), tokenized with the shared prompt."""
import hashlib
import json
import random
from dataclasses import dataclass

from modmt.runtime.errors import ModmtError
from modmt.runtime.languages import ENGLISH, LanguageRegistry
from modmt.train.corpus import Corpus
from modmt.train.prompts import IGNORE_INDEX, render_prompt, training_example


@dataclass(frozen=True)
class Direction:
    src: str
    tgt: str

    def __str__(self) -> str:
        return f"{self.src}-{self.tgt}"


def adapter_direction(role: str, lang: str) -> Direction:
    """LoRA_in(l) learns l->en, LoRA_out(l) learns en->l; English's pair learns en->en."""
    return Direction(lang, ENGLISH) if role == "in" else Direction(ENGLISH, lang)


ENGLISH_RECIPES = ("copy", "pooled")
# pooled: on the Table-1 evidence its merges into English are on-target (copy's x->en copy the source)
DEFAULT_ENGLISH_RECIPE = "pooled"


def check_mix_share(share: float) -> None:
    if not 0 < share < 1:
        raise ModmtError(f"--mix-share must be between 0 and 1 (exclusive), got {share}")


def mix_in(groups: list, general: Corpus, share: float, seed: int) -> list:
    """The same groups with `share` of each group's pairs replaced by pairs of the same direction from
    `general` (a corpus of another domain): as many examples as before, fewer of the training domain.
    Returns the groups and how many pairs came from `general`."""
    check_mix_share(share)
    mixed, taken, seen = [], 0, 0
    for direction, pairs in groups:
        # rounded on the running total, so that small groups (pooled English: a quarter each) still add up
        k = round(share * (seen + len(pairs))) - round(share * seen)
        seen += len(pairs)
        extra = cap_pairs(direction_pairs(general, direction), k, seed) if k else []
        mixed.append((direction, cap_pairs(pairs, len(pairs) - len(extra), seed)))
        if extra:  # a general corpus with fewer pairs than asked for gives what it has
            mixed.append((direction, extra))
            taken += len(extra)
    return mixed, taken


def adapter_data(corpus: Corpus, role: str, lang: str, english: str = "copy", max_pairs: int | None = None,
                 seed: int = 0, pooled_langs: list[str] = ()) -> list[tuple[Direction, list[tuple[str, str]]]]:
    """The (direction, pairs) groups one adapter trains on, capped at max_pairs in all.

    english="copy" is the paper's recipe: English's adapters learn en->en copies. With "pooled",
    LoRA_out(en) learns x->en and LoRA_in(en) en->x, pooled over `pooled_langs` (the pool's other
    languages) and balanced (an equal share of max_pairs each), so that a merge into English translates
    instead of copying its source.
    """
    if english not in ENGLISH_RECIPES:
        raise ModmtError(f"--english-adapters is one of {', '.join(ENGLISH_RECIPES)}, got {english!r}")
    if lang != ENGLISH or english == "copy":
        direction = adapter_direction(role, lang)
        return [(direction, cap_pairs(direction_pairs(corpus, direction), max_pairs, seed))]
    others = [code for code in pooled_langs if code != ENGLISH]
    if not others:
        raise ModmtError("pooled English adapters need at least one other language in --langs")
    groups = []
    for i, code in enumerate(others):
        share = None if max_pairs is None else max_pairs // len(others) + (i < max_pairs % len(others))
        direction = Direction(code, ENGLISH) if role == "out" else Direction(ENGLISH, code)
        groups.append((direction, cap_pairs(direction_pairs(corpus, direction), share, seed)))
    return groups


def direction_pairs(corpus: Corpus, direction: Direction) -> list[tuple[str, str]]:
    """(source, target) pairs for an English-centric direction from the corpus's training data."""
    if direction.src == ENGLISH:
        return [(e, x) for e, x in corpus.pairs(direction.tgt)]
    return [(x, e) for e, x in corpus.pairs(direction.src)]


def cap_pairs(pairs: list, max_pairs: int | None, seed: int) -> list:
    """A seeded random subset of at most max_pairs (the same subset on every run)."""
    if max_pairs is None or len(pairs) <= max_pairs:
        return list(pairs)
    chosen = sorted(random.Random(seed).sample(range(len(pairs)), max_pairs))
    return [pairs[i] for i in chosen]


def data_hash(direction: Direction, pairs: list[tuple[str, str]]) -> str:
    h = hashlib.sha256(f"{direction}\n".encode())
    for source, target in pairs:
        h.update(json.dumps([source, target], ensure_ascii=False).encode() + b"\n")
    return h.hexdigest()[:16]


def encode_pairs(hf_tokenizer, registry: LanguageRegistry, direction: Direction,
                 pairs: list[tuple[str, str]], max_length: int) -> tuple[list[dict], int]:
    """Tokenized examples and how many pairs were longer than max_length (skipped, and reported)."""
    template = render_prompt(hf_tokenizer, registry.get(direction.src), registry.get(direction.tgt))
    examples, too_long = [], 0
    for source, target in pairs:
        example = training_example(template, hf_tokenizer.backend_tokenizer, source, target)
        if len(example["input_ids"]) > max_length:
            too_long += 1
            continue
        examples.append(example)
    return examples, too_long


class PadCollator:
    """Right-pads a batch: pad id for inputs, IGNORE_INDEX for labels, 0 in the attention mask."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, batch: list[dict]) -> dict:
        import torch

        width = max(len(ex["input_ids"]) for ex in batch)
        ids = [ex["input_ids"] + [self.pad_id] * (width - len(ex["input_ids"])) for ex in batch]
        labels = [ex["labels"] + [IGNORE_INDEX] * (width - len(ex["labels"])) for ex in batch]
        mask = [[1] * len(ex["input_ids"]) + [0] * (width - len(ex["input_ids"])) for ex in batch]
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
                "attention_mask": torch.tensor(mask)}
