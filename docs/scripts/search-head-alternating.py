"""Beam-5 batch-8 throughput with and without the search head, and with ONNX Runtime's thread spinning
on or off, alternating in one process so that drifts of the machine hit every configuration alike.

    .venv/bin/python docs/scripts/search-head-alternating.py exports/q/en-fr-int8 [exports/q/en-fr-none]
"""
import statistics
import sys
import time

from modmt.runtime.languages import load_registry
from modmt.runtime.ort_options import OrtOptions
from modmt.runtime.translator import Translator
from modmt.train.corpus import open_corpus

segments = open_corpus("corpora/ddtp", load_registry()).segments("devtest", "en")[:32]
for export in sys.argv[1:]:
    spinning = Translator(export, provider="cpu")
    sleeping = Translator(export, provider="cpu", ort_options=OrtOptions(spin=False))
    head = spinning.decoder.search_head
    configs = {"numpy search, spinning": (spinning, None), "search head, spinning": (spinning, head),
               "numpy search, no spinning": (sleeping, None), "search head, no spinning": (sleeping, head)}
    times, outputs = {name: [] for name in configs}, {}
    for name, (t, h) in configs.items():  # warm-up
        t.decoder.search_head = h
        t.translate(segments[:8], beam=5, max_new_tokens=16, batch_size=8)
    for _ in range(3):
        for name, (t, h) in configs.items():
            t.decoder.search_head = h
            started = time.perf_counter()
            outputs[name] = t.translate(segments, beam=5, max_new_tokens=64, batch_size=8)
            times[name].append(len(segments) / (time.perf_counter() - started))
    same = len({tuple(o) for o in outputs.values()}) == 1
    print(f"{export}: sentences/s at batch 8, beam 5, {len(segments)} segments, 3 alternating runs; "
          f"identical outputs in every configuration: {same}")
    for name, values in times.items():
        print(f"  {name:28s} median {statistics.median(values):.2f}  runs {', '.join(f'{v:.2f}' for v in values)}")
    del spinning, sleeping
