"""Where a training process's resident memory is: RssAnon (heap, tensors) and RssFile (the safetensors
weights, which transformers memory-maps) every 0.2 s, and VmHWM, while ja's two adapters train with the
demo's settings (batch 8, gradient checkpointing) on PAIRS pairs in micro-batches of MICRO, with the frozen
base stored in FROZEN (fp32, the default, or fp16: train/frozen_fp16.py).

    .venv/bin/python docs/scripts/train-rss-timeline.py MICRO OUT.json PAIRS [FROZEN]   e.g.  4 /tmp/t.json 48 fp16

glibc tunables go in front (MALLOC_MMAP_THRESHOLD_=131072 ...), and OMP_NUM_THREADS=1 for one thread.
Prints the largest sample of each phase (load, train in, train out); OUT.json has every sample.
"""
import sys, threading, time, json
from pathlib import Path
micro = int(sys.argv[1]); out = sys.argv[2]; frozen = sys.argv[4] if len(sys.argv) > 4 else "fp32"
samples = []; t0 = time.time(); phase = ["start"]
def status():
    d = {}
    for line in open("/proc/self/status"):
        if line.startswith(("VmRSS", "RssAnon", "RssFile", "VmHWM")):
            k, v = line.split(":"); d[k] = int(v.split()[0]) // 1024
    return d
def sample():
    while True:
        samples.append({"t": round(time.time() - t0, 1), "phase": phase[0], **status()}); time.sleep(0.2)
threading.Thread(target=sample, daemon=True).start()
import shutil
from modmt.runtime.languages import load_registry
from modmt.train import adapters as A
from modmt.train.corpus import open_corpus
from modmt.train.trainer import TrainSettings
from modmt.train.models import DEFAULT_MODEL, fetch_model
orig_load = A.load_base
def load_base(d):
    phase[0] = "load"; r = orig_load(d); phase[0] = "loaded"; return r
A.load_base = load_base
orig_train = A.train_adapter
def train_adapter(*a, **k):
    phase[0] = f"train {a[3]}"; r = orig_train(*a, **k); phase[0] = "between"; return r
A.train_adapter = train_adapter
shutil.rmtree('/tmp/probe/pool', ignore_errors=True)
r = load_registry()
started = time.time()
infos = A.train_pool(fetch_model(DEFAULT_MODEL), open_corpus('corpora/ddtp', r), r, ['ja'], Path('/tmp/probe/pool'), A.LoraSettings(),
             TrainSettings(epochs=1, learning_rate=1e-3, batch_size=8, max_pairs=int(sys.argv[3]), seed=0, gradient_checkpointing=True,
                           micro_batch_size=micro), frozen_base=frozen)
seconds = round(time.time() - started, 1)
phase[0] = "done"; time.sleep(0.5)
json.dump({"frozen_base": frozen, "seconds": seconds, "losses": {f"{i['role']}/{i['lang']}": [i["first_loss"], i["final_loss"]]
           for i in infos}, "samples": samples}, open(out, "w"))
print(frozen, seconds, "s", [(i["role"], i["first_loss"], i["final_loss"]) for i in infos])
peaks = {}
for s in samples:
    p = peaks.setdefault(s["phase"], s)
    if s["VmRSS"] > p["VmRSS"]: peaks[s["phase"]] = s
for k, s in peaks.items(): print(k, s)
