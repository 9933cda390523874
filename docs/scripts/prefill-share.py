"""How a batch-8 beam-5 run of one export splits between prefills, decoding steps and the rest (search, detokenizing),
and how many of the prefilled positions are padding: 16 DDTP devtest segments, after a warm-up batch.

    .venv/bin/python docs/scripts/prefill-share.py EXPORT [--pad-64]

--pad-64: prompts padded to 64 columns (as before 2026-12-06) instead of the translator's probed join multiple.
"""
import json
import sys
import time

from modmt.runtime import onnx_decoder, resident_decoder
from modmt.runtime.languages import load_registry
from modmt.runtime.translator import Translator
from modmt.train.corpus import open_corpus

totals = {"prefill s": 0.0, "step s": 0.0, "steps": 0, "prefill positions": 0, "prompt tokens": 0}
for cls in (resident_decoder.ResidentDecoder, onnx_decoder.OnnxDecoder):  # whichever the search drives
    def timed_prefill(self, ids, mask, *args, _prefill=cls.prefill, **kwargs):
        started = time.perf_counter()
        out = _prefill(self, ids, mask, *args, **kwargs)
        totals["prefill s"] += time.perf_counter() - started
        totals["prefill positions"] += ids.size
        totals["prompt tokens"] += int(mask.sum())
        return out

    def timed_step(self, *args, _step=cls.step, **kwargs):
        started = time.perf_counter()
        out = _step(self, *args, **kwargs)
        totals["step s"] += time.perf_counter() - started
        totals["steps"] += 1
        return out
    cls.prefill, cls.step = timed_prefill, timed_step

translator = Translator(sys.argv[1], provider="cpu", verify="size")
if "--pad-64" in sys.argv:
    translator.pad_multiple = 64
segments = open_corpus("corpora/ddtp", load_registry()).segments("devtest", translator.src)[:16]
translator.translate(segments[:8], beam=5, batch_size=8, max_new_tokens=64)  # warm-up (and the probe)
totals.update({k: 0 * v for k, v in totals.items()})
started = time.perf_counter()
translator.translate(segments, beam=5, batch_size=8, max_new_tokens=64)
total = time.perf_counter() - started
print(json.dumps({"export": sys.argv[1], "pad multiple": translator.pad_multiple, "total s": round(total, 2),
                  "sentences/s": round(len(segments) / total, 2), **{k: round(v, 2) for k, v in totals.items()},
                  "prefill share": round(totals["prefill s"] / total, 2), "step share": round(totals["step s"] / total, 2)}))
