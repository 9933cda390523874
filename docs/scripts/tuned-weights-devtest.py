"""Tuned weights and the target-language guard scored on devtest (the split modmt-tune did not see).

1. Greedy, every ratio of the tuning grid for every direction of BASE (one routed session): each fixed ratio's
   pooled chrF++ over all directions, and the tuned weights' (each direction at its recorded ratio), with a
   paired-bootstrap interval of tuned minus the best single fixed ratio (benchmarks/significance.py).
2. Beam 5 at the tuned weights: per direction chrF++ and off-target share (py3langid over the base's languages,
   benchmarks/off_target.py) with the beam's best (guard off) and with the guard's choice (guard on).
Writes OUT (JSON) and prints the tables.

    python tuned-weights-devtest.py BASE CORPUS OUT [--limit 32]
"""
import argparse
import json
import time
from pathlib import Path

from modmt.benchmarks.off_target import off_target_shares
from modmt.benchmarks.quality import chrf_scorer
from modmt.benchmarks.significance import SegmentStats
from modmt.runtime.decoding import DecodeSettings, RunningBatch, hypotheses_of
from modmt.runtime.languages import load_registry
from modmt.runtime.routed_translator import RoutedTranslator
from modmt.runtime.tuned_weights import TUNED_FILE
from modmt.train.corpus import open_corpus


def nbest(routed, texts, rows, settings):
    """Each text's hypotheses (best first) with rows[i] = (src, tgt, w)."""
    items = routed.requests(len(texts), directions=rows)
    out = [None] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for at in range(0, len(order), settings.batch_size):
        chunk = order[at:at + settings.batch_size]
        prompts = [routed.encode(texts[i], items[i][0].template)[0] for i in chunk]
        for f in RunningBatch(lambda rs: routed.batch_decoder([items[i] for i in rs]), chunk, prompts, settings,
                              routed.stop_ids, routed.pad_id, routed.pad_multiple).run():
            out[f.item] = hypotheses_of(f, routed.tokenizer)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("base", type=Path)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--limit", type=int, default=32)
    args = parser.parse_args()
    tuned = json.loads((args.base / TUNED_FILE).read_text())
    grid = tuned["grid"]
    routed = RoutedTranslator([args.base], provider="cpu")
    directions = sorted(routed.directions)
    langs = sorted({c for d in directions for c in d})
    table = open_corpus(args.corpus, load_registry()).multiway("devtest", langs)
    n = min(args.limit, len(table[langs[0]]))
    chrf = chrf_scorer()
    stats = SegmentStats(chrf)
    started = time.perf_counter()
    texts, rows = [], []
    for src, tgt in directions:
        for w in grid:
            texts += table[src][:n]
            rows += [(src, tgt, w)] * n
    greedy = [h[0] for h in nbest(routed, texts, rows, DecodeSettings(beam=1, max_new_tokens=128, batch_size=8))]
    at, outputs = 0, {}
    for src, tgt in directions:
        for w in grid:
            outputs[(src, tgt, w)] = greedy[at:at + n]
            at += n
    names = [f"fixed {w}" for w in grid] + ["tuned"]
    for src, tgt in directions:
        refs = table[tgt][:n]
        for w in grid:
            stats.add(f"fixed {w}", f"{src}-{tgt}", outputs[(src, tgt, w)], refs)
        stats.add("tuned", f"{src}-{tgt}", outputs[(src, tgt, tuned["directions"][f"{src}-{tgt}"]["w"])], refs)
    dirs = [f"{s}-{t}" for s, t in directions]
    pooled = {name: stats.mean_interval(name, dirs) for name in names}
    best_fixed = max((name for name in names if name != "tuned"), key=lambda name: pooled[name].value)
    difference = stats.difference("tuned", best_fixed, dirs)
    greedy_seconds = time.perf_counter() - started

    beam_texts = [t for src, tgt in directions for t in table[src][:n]]
    beam_rows = [(src, tgt, None) for src, tgt in directions for _ in range(n)]
    hyps = nbest(routed, beam_texts, beam_rows, DecodeSettings(beam=5, max_new_tokens=128, batch_size=8))
    per_direction, at = {}, 0
    for src, tgt in directions:
        h, refs, sources = hyps[at:at + n], table[tgt][:n], table[src][:n]
        at += n
        plain = [x[0] for x in h]
        guarded = [x[routed.guard.choose(x, s, tgt)[0]] for x, s in zip(h, sources)]
        per_direction[f"{src}-{tgt}"] = {
            name: {"chrf": round(chrf.corpus_score(o, [refs]).score, 2),
                   **{k: v for k, v in off_target_shares(o, refs, src, tgt, langs, sources).items()}}
            for name, o in (("guard off", plain), ("guard on", guarded))}
        per_direction[f"{src}-{tgt}"]["changed"] = sum(a != b for a, b in zip(plain, guarded))
    result = {"base": str(args.base), "corpus": str(args.corpus), "split": "devtest", "segments": n,
              "grid": grid, "tuned_on": {k: tuned[k] for k in ("split", "segments", "beam")},
              "pooled_greedy": {name: str(pooled[name]) for name in names}, "best_fixed": best_fixed,
              "tuned_minus_best_fixed": str(difference), "greedy_seconds": round(greedy_seconds),
              "beam5_tuned": per_direction, "seconds": round(time.perf_counter() - started),
              "chrf_signature": str(chrf.get_signature())}
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print("| weights | pooled chrF++ (greedy, devtest) |\n|---|---:|")
    for name in names:
        print(f"| {name} | {pooled[name]} |")
    print(f"tuned − best fixed ({best_fixed}): {difference}")
    print("| direction | chrF++ guard off | guard on | off-target off | on | changed |\n|---|---:|---:|---:|---:|---:|")
    for d, r in per_direction.items():
        print(f"| {d} | {r['guard off']['chrf']} | {r['guard on']['chrf']} | "
              f"{100 * r['guard off']['off_target']:.0f} % | {100 * r['guard on']['off_target']:.0f} % | {r['changed']} |")


if __name__ == "__main__":
    main()
