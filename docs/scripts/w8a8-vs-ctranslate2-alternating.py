"""Batch 8, beam 5: modmt exports against CTranslate2 int8 on the same merged weights, alternating in
one process (--rounds rounds, default 3; median sentences/s), so that the machine's drifts between runs (seen as
20-30 % on this VM) hit every engine alike. --pad-64: each export also with its prompts padded to 64 columns
(as before 2026-12-06) instead of its probed join multiple.

    .venv/bin/python docs/scripts/w8a8-vs-ctranslate2-alternating.py [--rounds 3] [--pad-64] WORK EXPORT [EXPORT...]

WORK: the `--out DIR/work` of an earlier `modmt-bench latency ... --engines modmt,ctranslate2` run on
the first export (it holds the merged weights and the CTranslate2 conversion).
"""
import statistics
import sys
import time
from pathlib import Path

from modmt.benchmarks.engines import CTranslate2Engine, ModmtEngine
from modmt.benchmarks.latency import merged_hf_dir
from modmt.runtime.languages import load_registry
from modmt.train.corpus import open_corpus

args = sys.argv[1:]
rounds = int(args.pop(args.index("--rounds") + 1)) if "--rounds" in args else 3
args = [a for a in args if a != "--rounds"]
pad_64 = "--pad-64" in args
work, *exports = [a for a in args if a != "--pad-64"]
work = Path(work)
engines = {}
for e in exports:
    engines[f"modmt {Path(e).name}"] = ModmtEngine(Path(e), provider="cpu")
    if pad_64:
        engines[f"modmt {Path(e).name} pad 64"] = ModmtEngine(Path(e), provider="cpu")
        engines[f"modmt {Path(e).name} pad 64"].translator.pad_multiple = 64
reference = next(iter(engines.values()))
hf_dir = merged_hf_dir(reference.translator.manifest, work)
engines["ctranslate2 int8"] = CTranslate2Engine(hf_dir, reference, work, "int8_float32")
segments = open_corpus("corpora/ddtp", load_registry()).segments("devtest", reference.translator.src)[:16]
for engine in engines.values():  # warm-up
    engine.translate(segments[:8], 5, 16, 8)
times = {name: [] for name in engines}
for _ in range(rounds):
    for name, engine in engines.items():
        started = time.perf_counter()
        engine.translate(segments, 5, 64, 8)
        times[name].append(len(segments) / (time.perf_counter() - started))
print(f"{len(segments)} devtest segments, batch 8, beam 5, at most 64 new tokens; sentences/s, {rounds} alternating rounds")
peer = statistics.median(times["ctranslate2 int8"])
for name, values in times.items():
    median = statistics.median(values)
    print(f"  {name:28s} median {median:.2f} ({median / peer:.2f}x CTranslate2 int8)  "
          f"runs {', '.join(f'{v:.2f}' for v in values)}")
