"""Weight learning (section 3.4): per-layer (w_in, w_out) = softmax(two logits), both adapters frozen.

The logits start at 1.0 (so 0.5/0.5) and are trained on SRC->TGT pairs; the result goes to
POOL/weights/SRC-TGT.json, which `modmt-export --w learned` reads.
"""
import logging
import time
from pathlib import Path


from modmt.runtime.errors import ModmtError
from modmt.runtime.fingerprint import model_fingerprint
from modmt.runtime.languages import ENGLISH, LanguageRegistry
from modmt.train.adapters import load_base
from modmt.train.corpus import Corpus
from modmt.train.distributed import is_main_process, wait_for_main_process
from modmt.train.data import Direction, cap_pairs, data_hash, direction_pairs, encode_pairs
from modmt.train.pair_forward import attach_layer_weights, decoder_layers, load_pair
from modmt.runtime.atomic import write_json_atomic
from modmt.train.pool import Pool
from modmt.train.trainer import TrainSettings, run_trainer

log = logging.getLogger(__name__)


def weight_learning_pairs(corpus: Corpus, src: str, tgt: str, split: str) -> list[tuple[str, str]]:
    """SRC->TGT pairs: bitext for directions through English, else the multi-way `split`."""
    if ENGLISH in (src, tgt) and src != tgt:
        return direction_pairs(corpus, Direction(src, tgt))
    table = corpus.multiway(split, [src, tgt])
    return list(zip(table[src], table[tgt]))


def learn_weights(model_dir: Path, pool: Pool, corpus: Corpus, registry: LanguageRegistry, src: str, tgt: str,
                  settings: TrainSettings, split: str = "dev") -> dict:
    import torch

    registry.get(src), registry.get(tgt)
    fingerprint = model_fingerprint(model_dir)
    in_dir, out_dir = pool.require("in", src, fingerprint), pool.require("out", tgt, fingerprint)
    direction = Direction(src, tgt)
    pairs = cap_pairs(weight_learning_pairs(corpus, src, tgt, split), settings.max_pairs, settings.seed)
    if not pairs:
        raise ModmtError(f"no {src}->{tgt} pairs to learn weights from in {corpus.root}")

    base, tokenizer = load_base(model_dir)
    model = load_pair(base, in_dir, out_dir)
    n_layers = len(decoder_layers(model))
    # Registered on the PeftModel so Trainer's optimizer finds it: the only trainable tensor.
    model.modmt_pair_logits = torch.nn.Parameter(torch.ones(n_layers, 2, device=base.device))
    attach_layer_weights(model, lambda i: torch.softmax(model.modmt_pair_logits[i].float(), dim=0))
    examples, too_long = encode_pairs(tokenizer, registry, direction, pairs, settings.max_length)
    started = time.perf_counter()
    stats = run_trainer(model, examples, tokenizer.pad_token_id, pool.root / ".work" / f"weights-{direction}",
                        TrainSettings(**{**settings.to_json(), "save_steps": 10**9}), resume=False)
    weights = torch.softmax(model.modmt_pair_logits.detach().float().cpu(), dim=1).tolist()
    result = {"src": src, "tgt": tgt, "base_fingerprint": fingerprint, "pairs": len(pairs),
              "skipped_too_long": too_long, "data_hash": data_hash(direction, pairs),
              "layers": [{"w_in": w[0], "w_out": w[1]} for w in weights],
              "logits": model.modmt_pair_logits.detach().float().cpu().tolist(),
              "train": settings.to_json(), **stats}
    if is_main_process():
        write_json_atomic(pool.weights_file(src, tgt), result)
    wait_for_main_process()
    mean_out = sum(w[1] for w in weights) / n_layers
    log.info(f"{src}->{tgt}: {len(pairs)} pairs, {stats['steps']} steps, "
               f"{(time.perf_counter() - started):.0f} s; mean w_out {mean_out:.3f} over {n_layers} layers "
               f"-> {pool.weights_file(src, tgt)}")
    return result
