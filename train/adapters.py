"""Train the pool: LoRA_in(l) on l->en and LoRA_out(l) on en->l for each language, with PEFT and Trainer.

Each adapter is trained from the same frozen base, saved as a standard PEFT adapter directory,
renamed into the pool atomically, then listed in pool.json. A pool that already lists an adapter
skips it, so adding a language trains only that language's two adapters.
"""
import json
import logging
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path


from modmt.runtime.atomic import atomic_directory
from modmt.runtime.errors import ModmtError
from modmt.runtime.fingerprint import model_fingerprint
from modmt.runtime.languages import LanguageRegistry
from modmt.train.corpus import Corpus
from modmt.train.distributed import is_main_process, wait_for_main_process, world_size
from modmt.train.data import (DEFAULT_ENGLISH_RECIPE, ENGLISH_RECIPES, adapter_data, adapter_direction,
                               check_mix_share, data_hash, direction_pairs, encode_pairs, mix_in)
from modmt.train.pool import ROLES, Pool
from modmt.train.trainer import TrainSettings, run_trainer

log = logging.getLogger(__name__)

FROZEN_BASES = ("fp32", "fp16")  # how training stores the frozen base's matrices (it computes in fp32 either way)


@dataclass
class LoraSettings:
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    targets: str = "all-linear"  # or a comma list: q_proj,v_proj

    def check(self) -> None:
        if self.rank <= 0:
            raise ModmtError(f"--rank must be a positive integer, got {self.rank}")
        if self.alpha <= 0 or not 0 <= self.dropout < 1:
            raise ModmtError("--alpha must be > 0 and --dropout in [0, 1)")

    def peft_config(self):
        from peft import LoraConfig

        targets = self.targets if self.targets == "all-linear" else [t.strip() for t in self.targets.split(",")]
        return LoraConfig(r=self.rank, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=targets, bias="none", task_type="CAUSAL_LM")


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def load_base(model_dir: Path):
    """The base model (float32 on CPU, bf16 where a GPU supports it) and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM

    from modmt.train.models import load_tokenizer

    dtype = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model, load_tokenizer(model_dir)


def train_adapter(model, tokenizer, pool: Pool, role: str, lang: str, corpus: Corpus, registry: LanguageRegistry,
                  lora: LoraSettings, settings: TrainSettings, resume: bool, base_parameters: int,
                  stop_after_step: int | None = None, english: str = "copy", pooled_langs: list[str] = (),
                  storage: dict | None = None, mix: tuple[Corpus, float] | None = None) -> dict:
    """Train one adapter into the pool; returns what pool.json records for it."""
    import transformers
    from peft import get_peft_model

    seed = settings.seed + ROLES.index(role)  # en's two adapters see the same en->en data: differ by seed
    groups = adapter_data(corpus, role, lang, english, settings.max_pairs, seed, pooled_langs)
    if mix is not None:
        groups, mixed_pairs = mix_in(groups, mix[0], mix[1], seed)
    examples, too_long, pairs = [], 0, []
    for direction, group in groups:
        encoded, skipped = encode_pairs(tokenizer, registry, direction, group, settings.max_length)
        examples, too_long, pairs = examples + encoded, too_long + skipped, pairs + group
    if len(groups) > 1:
        random.Random(seed).shuffle(examples)  # pooled English adapters: every language in every batch
    if too_long and is_main_process():
        log.info(f"  {role}/{lang}: skipped {too_long} of {len(pairs)} pairs longer than "
                   f"--max-length {settings.max_length}")

    transformers.set_seed(seed)  # the LoRA initialisation is part of the run's determinism
    peft_model = get_peft_model(model, lora.peft_config())
    work = pool.work_dir(role, lang)
    try:
        stats = run_trainer(peft_model, examples, tokenizer.pad_token_id, work,
                            TrainSettings(**{**settings.to_json(), "seed": seed}), resume, stop_after_step)
        trainable = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
        info = {"role": role, "lang": lang, "direction": ",".join(dict.fromkeys(str(d) for d, _ in groups)),
                "pairs": len(pairs),
                "skipped_too_long": too_long,
                "data_hash": data_hash(groups[0][0], pairs) if len(groups) == 1 else
                "+".join(data_hash(d, g) for d, g in groups),
                "lora": asdict(lora), "train": {**settings.to_json(), "seed": seed, "processes": world_size()},
                "trainable_parameters": trainable, "trainable_ratio": trainable / base_parameters, **stats,
                **(storage or {})}
        if mix is not None:
            info["mixed_in"] = {"corpus": str(mix[0].root), "share": mix[1], "pairs": mixed_pairs}
        if is_main_process():  # under torchrun every process holds the same adapter; one writes it
            with atomic_directory(pool.adapter_dir(role, lang)) as tmp:
                peft_model.save_pretrained(tmp)
                (tmp / "modmt-adapter.json").write_text(json.dumps(
                    {**info, "base_fingerprint": pool.read()["base_fingerprint"]}, indent=2) + "\n")
            pool.record(role, lang, info)
            shutil.rmtree(work, ignore_errors=True)
        wait_for_main_process()
        return info
    finally:
        peft_model.unload()  # back to the untouched base for the next adapter


def train_pool(model_dir: Path, corpus: Corpus, registry: LanguageRegistry, langs: list[str], out: Path,
               lora: LoraSettings, settings: TrainSettings, resume: bool = False, retrain: bool = False,
               stop_after_step: int | None = None, english: str | None = None, frozen_base: str = "fp32",
               mix: tuple[Corpus, float] | None = None) -> list[dict]:
    """Train every missing adapter of `langs` into the pool at `out`; returns the new adapters' info.

    english: how English's two adapters are trained, "pooled" (x->en and en->x over the pool's other
    languages: merges into and out of English translate) or "copy" (the paper's en->en, for reproducing
    it: its x->en merges copy their source); a pool holds one recipe, recorded in pool.json. None: the
    pool's recorded recipe, and "pooled" for a new pool.
    frozen_base: "fp16" keeps the frozen base's matrices in fp16 while training (half the memory; the
    adapters learn against the rounded base, recorded with each of them; train/frozen_fp16.py).
    mix: (corpus, share): that share of each adapter's pairs comes from another corpus' pairs of the
    same direction (general-domain text, to keep the base model's general ability), recorded per adapter.
    """
    lora.check()
    settings.check()
    if frozen_base not in FROZEN_BASES:
        raise ModmtError(f"--frozen-base is one of {', '.join(FROZEN_BASES)}, got {frozen_base!r}")
    pool = Pool(out)
    recorded = pool.read().get("english_adapters", "copy") if pool.exists() else None
    english = english or recorded or DEFAULT_ENGLISH_RECIPE
    if english not in ENGLISH_RECIPES:
        raise ModmtError(f"--english-adapters is one of {', '.join(ENGLISH_RECIPES)}, got {english!r}")
    if mix is not None:
        check_mix_share(mix[1])
    for code in langs:
        registry.get(code)
        direction_pairs(corpus, adapter_direction("out", code))  # fail early on missing data
        if mix is not None:
            direction_pairs(mix[0], adapter_direction("out", code))
    fingerprint = model_fingerprint(model_dir)
    if pool.exists():
        pool.create_or_check(fingerprint, str(model_dir), 0)  # another base model: error before loading it
        if recorded != english:
            raise ModmtError(f"pool {out} trains English's adapters with the {recorded!r} recipe, not {english!r}; "
                             f"pass --english-adapters {recorded} or use a new --out")
    pooled_langs = sorted((set(langs) | set(pool.read().get("languages", []) if pool.exists() else ())) - {"en"})
    todo = [(role, code) for code in langs for role in ROLES if retrain or not pool.has(role, code)]
    if not todo:
        log.info(f"pool {out}: all adapters of {', '.join(langs)} are already trained")
        return []
    model, tokenizer = load_base(model_dir)
    base_parameters = count_parameters(model)
    storage = {}
    if frozen_base == "fp16":
        from modmt.train.frozen_fp16 import store_frozen_base_in_fp16

        storage = {"frozen_base": store_frozen_base_in_fp16(model)}
    if is_main_process():
        pool.create_or_check(fingerprint, str(model_dir), base_parameters, english)
    wait_for_main_process()
    echo = log.info if is_main_process() else (lambda message: None)
    trained = []
    for role, code in todo:
        source = "pooled x->en / en->x" if code == "en" and english == "pooled" else str(adapter_direction(role, code))
        echo(f"== LoRA_{role}({code}): {source} pairs")
        started = time.perf_counter()
        info = train_adapter(model, tokenizer, pool, role, code, corpus, registry, lora, settings, resume,
                             base_parameters, stop_after_step, english, pooled_langs, storage, mix)
        loss = f"{info['first_loss']:.3f} -> {info['final_loss']:.3f}" if info["final_loss"] is not None else "n/a"
        echo(f"{role}/{code}: {info['pairs']} pairs, {info['steps']} steps, loss {loss}, "
             f"{info['tokens_per_second']:.0f} tokens/s, {(time.perf_counter() - started) / 60:.1f} min, "
             f"{info['trainable_parameters'] / 1e6:.2f}M trainable ({100 * info['trainable_ratio']:.2f}% "
             "of the base)")
        trained.append(info)
    return trained
