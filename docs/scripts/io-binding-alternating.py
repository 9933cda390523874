"""The runtime's steps with the KV cache kept as ONNX Runtime values (IO binding, row gather on the
provider: runtime/resident_decoder.py) against numpy arrays in and out of every step, on the CPU,
alternating in one process so that drifts of the machine hit both alike. Batch 8 at beam 5 and
batch 1 greedy; outputs must be identical.

    .venv/bin/python docs/scripts/io-binding-alternating.py exports/q/en-fr-int8 [more exports]
"""
import statistics
import sys
import time

from modmt.runtime.languages import load_registry
from modmt.runtime.ort_options import OrtOptions
from modmt.runtime.translator import Translator
from modmt.train.corpus import open_corpus

segments = open_corpus("corpora/ddtp", load_registry()).segments("devtest", "en")[:32]
settings = {"batch 8, beam 5 (sentences/s)": dict(texts=segments, beam=5, batch_size=8),
            "batch 1, greedy (sentences/s)": dict(texts=segments[:8], beam=1, batch_size=1)}
for export in sys.argv[1:]:
    translator = Translator(export, provider="cpu")
    translator.translate(segments[:8], beam=5, max_new_tokens=16, batch_size=8)  # warm-up
    for label, kwargs in settings.items():
        times, outputs = {"numpy steps": [], "IO binding": []}, {}
        for _ in range(3):
            for name, flag in (("numpy steps", False), ("IO binding", True)):
                translator.decoder.ort_options = OrtOptions(io_binding=flag)
                started = time.perf_counter()
                outputs[name] = translator.translate(max_new_tokens=64, **kwargs)
                times[name].append(len(kwargs["texts"]) / (time.perf_counter() - started))
        same = outputs["numpy steps"] == outputs["IO binding"]
        print(f"{export}, {label}, {len(kwargs['texts'])} segments, 3 alternating runs; identical outputs: {same}")
        for name, values in times.items():
            print(f"  {name:12s} median {statistics.median(values):.2f}  runs {', '.join(f'{v:.2f}' for v in values)}")
    del translator
