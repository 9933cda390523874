"""A routed base on the real model: each sentence decoded alone vs in batches of 16 (the offline API). Usage: python docs/scripts/routed-alone-vs-batch.py BASE CORPUS
(docs/results.md, "Batch invariance"; output of the 2026-12-06 run in docs/serve-2026-12-06/)."""
import sys
from modmt.benchmarks.routing import segments
from modmt.runtime.routed_translator import RoutedTranslator
texts = segments(sys.argv[2], 32)
jobs = [(("en", "fr") if i % 2 == 0 else ("fr", "en")) for i in range(32)]
src = [texts[d[0]][i // 2] for i, d in enumerate(jobs)]
kw = dict(beam=5, max_new_tokens=48)
for _ in (1,):
    r = RoutedTranslator([sys.argv[1]], provider="cpu", verify="size")
    batch = r.translate(src, directions=jobs, batch_size=16, **kw)
    alone = [r.translate([t], directions=[d], batch_size=1, **kw)[0] for t, d in zip(src, jobs)]
    same = sum(a == b for a, b in zip(batch, alone))
    print(f"bank as {'initializers' if r.bank_initializers else 'inputs'}: alone == batch-16 for {same} of {len(src)}", flush=True)
    for i, (a, b) in enumerate(zip(batch, alone)):
        if a != b:
            print("  ", i, jobs[i], repr(a[:80]), "|", repr(b[:80]), flush=True)
