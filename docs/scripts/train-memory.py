"""Peak resident memory of training one language's two adapters with the demo's settings (48 pairs, batch 8,
gradient checkpointing) from a small process, for a given micro-batch size.

    .venv/bin/python docs/scripts/train-memory.py MICRO LANGS [ENV=VALUE]   e.g.  4 ja   or   4 ja MALLOC_ARENA_MAX=2
"""
import sys, json
from modmt.benchmarks.peak_memory import run_measured
micro, langs, env = sys.argv[1], sys.argv[2], (sys.argv[3] if len(sys.argv) > 3 else "")
code = f"""
from pathlib import Path
from modmt.runtime.languages import load_registry
from modmt.train.adapters import LoraSettings, train_pool
from modmt.train.corpus import open_corpus
from modmt.train.trainer import TrainSettings
from modmt.train.models import DEFAULT_MODEL, fetch_model
import shutil; shutil.rmtree('/tmp/train-memory-pool', ignore_errors=True)
r = load_registry()
train_pool(fetch_model(DEFAULT_MODEL), open_corpus('corpora/ddtp', r), r, {langs.split(',')!r}, Path('/tmp/train-memory-pool'), LoraSettings(),
           TrainSettings(epochs=1, learning_rate=1e-3, batch_size=8, max_pairs=48, seed=0, gradient_checkpointing=True,
                         micro_batch_size={micro}))
"""
import os
if env:
    k, v = env.split("=")
    os.environ[k] = v
with open(f"/tmp/train-memory-{micro}-{langs}.log", "w") as log:
    print(micro, langs, env, json.dumps(run_measured([sys.executable, "-c", code], log)), flush=True)
