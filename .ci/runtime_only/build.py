"""Run in the full environment: tiny exports for the runtime-only check, and what the Python API gives on them.

Writes OUT/standalone (fp32 ja->zh), OUT/base (an int8 shared base with every direction) and
OUT/expected.json: the translations the runtime-only environment must reproduce token for token.
"""
import json
import sys
from pathlib import Path

from modmt.export.direction import ExportOptions, export_direction
from modmt.export.shared_base import export_all_directions
from modmt.runtime.languages import load_registry
from modmt.runtime.routed_translator import RoutedTranslator
from modmt.runtime.translator import Translator
from modmt.train.adapters import LoraSettings, train_pool
from modmt.train.corpus import open_corpus
from modmt.train.tiny import build_tiny_model, write_tiny_corpus
from modmt.train.trainer import TrainSettings

TEXTS = ["猫はソファで寝ています。", "The train leaves at noon.", "Der Hund schläft.", "パン", "Bonjour tout le monde"]
MIXED = [("ja", "zh"), ("en", "fr"), ("de", "en"), ("zh", "ja"), ("fr", "de")]

out = Path(sys.argv[1])
registry = load_registry()
model = build_tiny_model(out / "model")
corpus = open_corpus(write_tiny_corpus(out / "corpus"), registry)
train_pool(model, corpus, registry, ["en", "fr", "de", "ja", "zh"], out / "pool", LoraSettings(rank=4, alpha=8),
           TrainSettings(epochs=2, learning_rate=1e-2, batch_size=4, save_steps=1000))
export_direction(out / "pool", "ja", "zh", ExportOptions(weights="3:7"), out / "standalone", registry)
export_all_directions(out / "pool", ExportOptions(quantize="int8"), out / "base", registry)
standalone = Translator(out / "standalone", provider="cpu")
routed = RoutedTranslator([out / "base"], provider="cpu")
expected = {
    "texts": TEXTS, "mixed": MIXED,
    "greedy": standalone.translate(TEXTS, beam=1, max_new_tokens=6),
    "beam": standalone.translate(TEXTS, beam=3, max_new_tokens=6),
    "routed": routed.translate(TEXTS, directions=MIXED, beam=2, max_new_tokens=5),
}
(out / "expected.json").write_text(json.dumps(expected, ensure_ascii=False), encoding="utf-8")
print(f"runtime-only check: exports and expected outputs in {out}")
