"""Same tokens and speed before and after the bounded-memory export (issue 21)?

An export made by the earlier pipeline (Optimum's onnx_export_from_model, whole-model graph steps) and
one made now from the same pool and weights translate the same devtest segments at beam 5, batch 8;
prints how many outputs are identical, the largest last-position logit difference, and sentences/s
of each over alternating rounds.

    python docs/scripts/export-before-after.py OLD_EXPORT NEW_EXPORT --data corpora/ddtp --src en --tgt fr
"""
import argparse
import json
import time

import numpy as np

from modmt.runtime.decoding import left_pad
from modmt.runtime.languages import load_registry
from modmt.runtime.translator import Translator
from modmt.train.corpus import open_corpus

parser = argparse.ArgumentParser()
parser.add_argument("old")
parser.add_argument("new")
parser.add_argument("--data", required=True)
parser.add_argument("--src", default="en")
parser.add_argument("--tgt", default="fr")
parser.add_argument("--segments", type=int, default=32)
parser.add_argument("--rounds", type=int, default=3)
args = parser.parse_args()

sources = open_corpus(args.data, load_registry()).segments("devtest", args.src)[:args.segments]
result = {"segments": len(sources), "beam": 5, "batch": 8, "rounds": args.rounds}
translators = {name: Translator(path, provider="cpu") for name, path in (("old", args.old), ("new", args.new))}
ids, mask = left_pad([translators["old"].encode(s)[0] for s in sources[:8]], translators["old"].pad_id)
logits = {name: t.decoder.prefill(ids, mask)[0] for name, t in translators.items()}
result["max_logit_difference"] = float(np.abs(logits["old"] - logits["new"]).max())
outputs, seconds = {}, {"old": [], "new": []}
for _ in range(args.rounds):
    for name, translator in translators.items():
        started = time.perf_counter()
        outputs[name] = translator.translate(sources, beam=5, batch_size=8, max_new_tokens=64)
        seconds[name].append(time.perf_counter() - started)
result["identical_outputs"] = sum(a == b for a, b in zip(outputs["old"], outputs["new"]))
result["sentences_per_s"] = {name: [round(len(sources) / s, 3) for s in values] for name, values in seconds.items()}
print(json.dumps(result, indent=2))
