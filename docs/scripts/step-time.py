"""Milliseconds per decoding step of each export on the same token sequence: a beam-5 batch of 8 (40 rows) and
one row, after a 64-position prompt, 48 steps fed the same tokens in every precision (so the work is equal,
whatever each precision would have generated; sentences/s also counts how long each one's outputs are).

    .venv/bin/python docs/scripts/step-time.py exports/cpu/en-fr-none exports/cpu/en-fr-int8 ...
"""
import json
import statistics
import sys
import time

import numpy as np

from modmt.runtime.decoding import left_pad
from modmt.runtime.languages import load_registry
from modmt.runtime.translator import Translator
from modmt.train.corpus import open_corpus

segments = open_corpus("corpora/ddtp", load_registry()).segments("devtest", "en")[:8]
for export in sys.argv[1:]:
    t = Translator(export, provider="cpu", verify="size")
    row = {"export": export, "precision": t.manifest["quantization"]}
    for label, rows in (("40 rows", 40), ("1 row", 1)):
        prompts = [t.encode(s)[0] for s in segments for _ in range(5)][:rows]
        ids, mask = left_pad(prompts, t.pad_id, multiple=64)
        _, cache = t.decoder.prefill(ids, mask)
        tokens = np.full(rows, 1000, dtype=np.int64)  # the same token every step, in every precision
        times = []
        for _ in range(48):
            mask = np.concatenate([mask, np.ones((rows, 1), dtype=mask.dtype)], axis=1)
            started = time.perf_counter()
            _, cache = t.decoder.step(tokens, mask, cache)
            times.append(time.perf_counter() - started)
        row[label] = round(1000 * statistics.median(times[4:]), 1)
    print(json.dumps(row), flush=True)
    del t
