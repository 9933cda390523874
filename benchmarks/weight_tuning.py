"""`modmt-tune BASE --data CORPUS`: merge weights w_in:w_out chosen per direction on a dev split, recorded in BASE.

The paper's best ratio differs by direction (Table 1: 1:9 for most, more LoRA_in into English). A
shared base's routed graph decodes any weights per row, so every candidate ratio of every direction
is one row of the same batched passes: the dev split is decoded once per (direction, ratio), each
pair is scored with chrF++ (sacrebleu) and its off-target share (benchmarks/off_target.py), and the
direction keeps the ratio with the best chrF++ (fewer off-target outputs break a tie). The choice
is one number on a short, smooth curve, so a grid decoded in one batch is the search (a sequential
optimiser such as Optuna would decode fewer points, but one at a time: each pass would carry
fewer rows, which costs more here than the points it saves).

The choice, each direction's dev scores and the whole trace go to BASE/tuned_weights.json
(runtime/tuned_weights.py reads it): `modmt serve BASE`, `modmt-translate BASE`, the Python API and
Ray then use a direction's tuned weights where a request names none; an explicit w still wins.
"""
import time
from datetime import datetime, timezone
from pathlib import Path

from tqdm import tqdm

from modmt.benchmarks.off_target import off_target_shares
from modmt.runtime.decoding import DecodeSettings
from modmt.runtime.errors import ModmtError
from modmt.runtime.merge_weights import parse_weights
from modmt.runtime.tuned_weights import GRID, TUNED_FILE, write_tuned_weights


def tune_weights(base: Path, corpus, split: str = "dev", directions: list[tuple[str, str]] | None = None,
                 grid=GRID, limit: int = 16, settings: DecodeSettings = DecodeSettings(beam=1, max_new_tokens=128),
                 provider: str = "auto", threads: int | None = None, command: str = "") -> dict:
    """Decode `limit` segments of `split` per direction at every ratio of `grid`, record each direction's best."""
    from modmt.benchmarks.quality import chrf_scorer
    from modmt.runtime.routed_translator import RoutedTranslator

    started = time.perf_counter()
    candidates = [(w, parse_weights(w)) for w in grid]
    routed = RoutedTranslator([base], provider, threads)
    directions = directions or sorted(routed.directions)
    for src, tgt in directions:
        routed.direction(src, tgt)  # a direction the base does not hold: one line before any decoding
    langs = sorted({code for pair in directions for code in pair})
    table = corpus.multiway(split, langs)  # a split the corpus lacks: its one-line error
    n = min(limit, len(next(iter(table.values()))))
    if n == 0:
        raise ModmtError(f"the corpus's {split} split is empty; tuning needs segments to score")
    texts, rows = [], []
    for src, tgt in directions:
        for label, weights in candidates:
            texts += table[src][:n]
            rows += [(src, tgt, weights)] * n
    outputs = []
    chunk = settings.batch_size * 8
    with tqdm(total=len(texts), desc="tuning merge weights", unit="sent") as bar:
        for at in range(0, len(texts), chunk):
            outputs += routed.translate(texts[at:at + chunk], directions=rows[at:at + chunk], settings=settings)
            bar.update(len(texts[at:at + chunk]))
    chrf = chrf_scorer()
    record = {}
    at = 0
    for src, tgt in directions:
        trace = []
        for label, _ in candidates:
            hyps, sources, references = outputs[at:at + n], table[src][:n], table[tgt][:n]
            at += n
            shares = off_target_shares(hyps, references, src, tgt, langs, sources)
            trace.append({"w": label, "chrf": round(chrf.corpus_score(hyps, [references]).score, 3),
                          "off_target": round(shares["off_target"], 4), "copies": round(shares["copies"] or 0, 4)})
        best = max(trace, key=lambda t: (t["chrf"], -t["off_target"]))
        record[f"{src}-{tgt}"] = {"w": best["w"], "setting": routed.direction(src, tgt).setting,
                                  "dev": {"chrf": best["chrf"], "off_target": best["off_target"], "segments": n,
                                          "split": split},
                                  "trace": trace}
    result = {"format": "modmt-tuned-weights/1", "corpus": str(getattr(corpus, "root", "")), "split": split,
              "segments": n, "grid": list(grid), "beam": settings.beam, "max_new_tokens": settings.max_new_tokens,
              "chrf_signature": str(chrf.get_signature()), "command": command,
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
              "seconds": round(time.perf_counter() - started, 1), "directions": record}
    write_tuned_weights(routed.base_dir, result)
    return result


def summary_lines(result: dict, base: Path) -> list[str]:
    lines = [f"{direction}: w {r['w']} (dev chrF++ {r['dev']['chrf']:.2f}, off-target "
             f"{100 * r['dev']['off_target']:.0f} %; " +
             ", ".join(f"{t['w']} {t['chrf']:.1f}" for t in r["trace"]) + ")"
             for direction, r in result["directions"].items()]
    return lines + [f"recorded in {Path(base) / TUNED_FILE} ({result['seconds']:.0f} s, {result['segments']} "
                    f"{result['split']} segments per direction and ratio)"]
