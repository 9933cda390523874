"""The routed side path's cost against a folded export of the same direction (en->fr, Setting 1 at 3:7, fp32).

Batch 1 greedy latency per sentence and batch 8 beam 5 throughput, alternating variants round by round:
  folded     `modmt-export en fr --pool pools/bench8 --out exports/en-fr-fp32` (deltas in the weights)
  routed     `modmt-export --all-directions --pool pools/bench8 --shared-base exports/routed-fp32`,
             RoutedTranslator over all 20 directions, whole bank (rank 80: all 10 adapters; the cut
             bank of the 2026-12-05 figures was removed on 2026-12-06)
Run from the repository root: python docs/scripts/side-path-cost.py [ROUNDS]
"""
import json
import sys
import time

from modmt.runtime.languages import load_registry
from modmt.runtime.routed_translator import RoutedTranslator
from modmt.runtime.translator import Translator
from modmt.train.corpus import open_corpus

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
texts = open_corpus("corpora/ddtp", load_registry()).multiway("devtest", ["en"])["en"][:16]
folded = Translator("exports/en-fr-fp32", provider="cpu", verify="size")
whole = RoutedTranslator(["exports/routed-fp32"], provider="cpu", verify="size")
variants = {"folded export": lambda xs, **d: folded.translate(xs, **d),
            "routed, whole bank": lambda xs, **d: whole.translate(xs, src="en", tgt="fr", **d)}
results = {name: {"batch1_ms_per_sentence": [], "batch8_beam5_sentences_per_s": []} for name in variants}
outputs = {}
for _ in range(rounds):
    for name, run in variants.items():
        started = time.perf_counter()
        for text in texts[:8]:
            run([text], beam=1, batch_size=1, max_new_tokens=64)
        results[name]["batch1_ms_per_sentence"].append(1000 * (time.perf_counter() - started) / 8)
        started = time.perf_counter()
        outputs[name] = run(texts, beam=5, batch_size=8, max_new_tokens=64)
        results[name]["batch8_beam5_sentences_per_s"].append(len(texts) / (time.perf_counter() - started))
reference = outputs["folded export"]
for name in variants:
    results[name]["equal_to_folded"] = f"{sum(a == b for a, b in zip(outputs[name], reference))} of {len(texts)}"
print(json.dumps(results, indent=2))
