"""Milliseconds per decoding step of each export on the same token sequence, the exports alternating in rounds
in one process (so the VM's drift, ±20 % between runs, hits them alike): a beam-5 batch of 8 (40 rows), two
rows and one, after a 64-position prompt, 32 steps fed the same token in every precision (so the work is
equal, whatever each precision would have generated; sentences/s also counts how long its outputs are).
Each round also measures the machine's read bandwidth (benchmarks/roofline.py) right before each export's one-row
step, so the share of the memory roofline compares a step with the bandwidth of the same minute (a VM's both drift).

    .venv/bin/python docs/scripts/step-time.py [--rounds 3] exports/cpu/en-fr-none exports/cpu/en-fr-int8 ...
"""
import json
import statistics
import sys
import time

import numpy as np
from pathlib import Path

from modmt.benchmarks.roofline import read_bandwidth, weight_bytes_per_token

from modmt.runtime.decoding import left_pad
from modmt.runtime.languages import load_registry
from modmt.runtime.translator import Translator
from modmt.train.corpus import open_corpus

args = sys.argv[1:]
rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 3
exports = [a for i, a in enumerate(args) if a != "--rounds" and (i == 0 or args[i - 1] != "--rounds")]
segments = open_corpus("corpora/ddtp", load_registry()).segments("devtest", "en")[:8]
translators = {e: Translator(e, provider="cpu", verify="size") for e in exports}


def step_ms(t, rows: int) -> float:
    prompts = [t.encode(s)[0] for s in segments for _ in range(5)][:rows]
    ids, mask = left_pad(prompts, t.pad_id, multiple=64)
    _, cache = t.decoder.prefill(ids, mask)
    tokens = np.full(rows, 1000, dtype=np.int64)  # the same token every step, in every precision
    times = []
    for _ in range(32):
        mask = np.concatenate([mask, np.ones((rows, 1), dtype=mask.dtype)], axis=1)
        started = time.perf_counter()
        _, cache = t.decoder.step(tokens, mask, cache)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times[4:])


weight_bytes = {e: weight_bytes_per_token(Path(e) / "model.onnx") for e in exports}
results = {e: {"40 rows": [], "2 rows": [], "1 row": [], "GB/s": [], "1 row % of roofline": []} for e in exports}
for _ in range(rounds):
    for export, t in translators.items():
        for label, rows in (("40 rows", 40), ("2 rows", 2)):
            results[export][label].append(round(step_ms(t, rows), 1))
        bandwidth = read_bandwidth(t.decoder.session.get_session_options().intra_op_num_threads)
        one_row = step_ms(t, 1)
        results[export]["1 row"].append(round(one_row, 1))
        results[export]["GB/s"].append(round(bandwidth / 1e9, 1))
        results[export]["1 row % of roofline"].append(round(100 * weight_bytes[export] / bandwidth / (one_row / 1000)))
for export, row in results.items():
    print(json.dumps({"export": export, "precision": translators[export].manifest["quantization"],
                      "weight MB per token": round(weight_bytes[export] / 1e6), **row}), flush=True)
