"""Seconds per sentence of weight-only int8 exports that differ only in accuracy_level and block size, beside fp32:
batch 1 greedy and batch 8 beam 5, 16 new tokens, on 8 DDTP devtest segments (one process, back to back).

    .venv/bin/python docs/scripts/int8-accuracy-level-timing.py exports/cpu/en-fr-none exports/cpu/en-fr-int8 ...
"""
import json
import sys
import time

from modmt.runtime.languages import load_registry
from modmt.runtime.translator import Translator
from modmt.train.corpus import open_corpus

segments = open_corpus("corpora/ddtp", load_registry()).segments("devtest", "en")[:8]
for export in sys.argv[1:]:
    t = Translator(export, provider="cpu", verify="size")
    t.translate(segments[:1], beam=1, max_new_tokens=4, batch_size=1)  # warm-up
    started = time.perf_counter()
    t.translate(segments[:2], beam=1, max_new_tokens=16, batch_size=1)
    greedy = (time.perf_counter() - started) / 2
    started = time.perf_counter()
    t.translate(segments, beam=5, max_new_tokens=16, batch_size=8)
    beam = (time.perf_counter() - started) / len(segments)
    recipe = t.manifest.get("quantization_recipe") or {}
    print(json.dumps({"export": export, "block_size": recipe.get("block_size"),
                      "accuracy_level": recipe.get("accuracy_level"), "s_per_sentence_batch1_greedy": round(greedy, 3),
                      "s_per_sentence_batch8_beam5": round(beam, 3)}), flush=True)
    del t
