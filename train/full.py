"""The full-parameter fine-tuning baseline: every weight trained on all English-centric pairs, both directions."""
import json
import logging
import random
import shutil
from pathlib import Path


from modmt.runtime.atomic import atomic_directory
from modmt.runtime.errors import ModmtError
from modmt.runtime.fingerprint import model_fingerprint
from modmt.runtime.languages import ENGLISH, LanguageRegistry
from modmt.train.adapters import count_parameters, load_base
from modmt.train.corpus import Corpus
from modmt.train.distributed import is_main_process, wait_for_main_process
from modmt.train.data import Direction, cap_pairs, data_hash, direction_pairs, encode_pairs
from modmt.train.trainer import TrainSettings, run_trainer

log = logging.getLogger(__name__)


def train_full(model_dir: Path, corpus: Corpus, registry: LanguageRegistry, langs: list[str], out: Path,
               settings: TrainSettings, resume: bool = False, force: bool = False) -> dict:
    settings.check()
    if out.exists() and (out / "modmt-full.json").exists() and not force:
        raise ModmtError(f"{out} already holds a fine-tuned model; pass --force to train it again")
    directions = [d for code in langs if code != ENGLISH for d in (Direction(code, ENGLISH), Direction(ENGLISH, code))]
    if not directions:
        raise ModmtError("full fine-tuning needs at least one language besides en")
    model, tokenizer = load_base(model_dir)
    examples, hashes, skipped = [], {}, 0
    for direction in directions:
        pairs = cap_pairs(direction_pairs(corpus, direction), settings.max_pairs, settings.seed)
        encoded, too_long = encode_pairs(tokenizer, registry, direction, pairs, settings.max_length)
        examples += encoded
        skipped += too_long
        hashes[str(direction)] = data_hash(direction, pairs)
    random.Random(settings.seed).shuffle(examples)  # mix the directions within every batch
    if skipped:
        log.info(f"skipped {skipped} pairs longer than max_length {settings.max_length}")
    stats = run_trainer(model, examples, tokenizer.pad_token_id, out.with_name(f".{out.name}.work"), settings, resume)
    parameters = count_parameters(model)
    info = {"base_model": str(model_dir), "base_fingerprint": model_fingerprint(model_dir),
            "directions": [str(d) for d in directions], "data_hashes": hashes,
            "trainable_parameters": parameters, "trainable_ratio": 1.0, "train": settings.to_json(), **stats}
    if is_main_process():  # under torchrun every process holds the same model; one writes it
        with atomic_directory(out) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            (tmp / "modmt-full.json").write_text(json.dumps(info, indent=2) + "\n")
        shutil.rmtree(out.with_name(f".{out.name}.work"), ignore_errors=True)
    wait_for_main_process()
    if is_main_process():
        log.info(f"full fine-tuning: {len(examples)} examples, {stats['steps']} steps, loss "
                   f"{stats['first_loss']:.3f} -> {stats['final_loss']:.3f}, {stats['tokens_per_second']:.0f} "
                   f"tokens/s -> {out}")
    return info
