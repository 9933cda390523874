"""Does a sentence's translation depend on its batch neighbours? en->fr, 16 devtest segments, batch 16 vs 4.

Run from the repository root after `modmt-export --all-directions --pool pools/bench8 --shared-base
exports/routed-int8 --quantize int8`: python docs/scripts/routed-batch-composition.py [BEAM]
"""
import sys

from modmt.runtime.languages import load_registry
from modmt.runtime.routed_translator import RoutedTranslator
from modmt.runtime.translator import Translator
from modmt.train.corpus import open_corpus

beam = int(sys.argv[1]) if len(sys.argv) > 1 else 1
src = open_corpus("corpora/ddtp", load_registry()).multiway("devtest", ["en"])["en"][:16]
candidates = {"shared-base Translator (one session per direction)":
              lambda b: Translator("exports/routed-int8/directions/en-fr", provider="cpu", verify="size").translate(
                  src, beam=beam, batch_size=b, max_new_tokens=64)}
routed = RoutedTranslator(["exports/routed-int8"], provider="cpu", verify="size")
candidates["routed (whole bank)"] = lambda b: routed.translate(src, src="en", tgt="fr", beam=beam, batch_size=b,
                                                               max_new_tokens=64)
for name, run in candidates.items():
    a, b = run(16), run(4)
    print(f"{name}: batch 16 vs 4: {sum(x == y for x, y in zip(a, b))} of {len(src)} identical")
