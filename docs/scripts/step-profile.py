"""Where one export's decoding step goes: ONNX Runtime's profiler over 12 steps at ROWS rows after a 64-position prompt,
kernel time per step grouped by the node's place in the graph (GEMMs, attention, quantizers, cache, ...). The profiler
slows small nodes most: the small groups' shares are upper bounds.

    .venv/bin/python docs/scripts/step-profile.py exports/cpu/en-fr-w8a8 40
"""
import collections
import json
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort

from modmt.runtime.decoding import left_pad
from modmt.runtime.languages import load_registry
from modmt.runtime.translator import Translator
from modmt.train.corpus import open_corpus

export, rows = sys.argv[1], int(sys.argv[2])
STEPS = 12
GEMMS = {"MatMulIntegerToFloat", "MatMulNBits", "MatMul", "Gemm"}

segments = open_corpus("corpora/ddtp", load_registry()).segments("devtest", "en")[:8]
t = Translator(export, provider="cpu", verify="size")
options = ort.SessionOptions()
options.enable_profiling = True
options.profile_file_prefix = f"{tempfile.mkdtemp()}/step"
options.intra_op_num_threads = t.decoder.session.get_session_options().intra_op_num_threads
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
t.decoder.session = ort.InferenceSession(t.decoder.model_path, options, providers=["CPUExecutionProvider"])

prompts = [t.encode(s)[0] for s in segments for _ in range(5)][:rows]
ids, mask = left_pad(prompts, t.pad_id, multiple=64)
_, cache = t.decoder.prefill(ids, mask)
tokens = np.full(rows, 1000, dtype=np.int64)
started = time.perf_counter()
for _ in range(STEPS):
    mask = np.concatenate([mask, np.ones((rows, 1), dtype=mask.dtype)], axis=1)
    _, cache = t.decoder.step(tokens, mask, cache)
step_ms = 1000 * (time.perf_counter() - started) / STEPS
events = json.load(open(t.decoder.session.end_profiling()))
runs = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run")
first_step = runs[1]  # runs[0] is the prefill: not counted


def group(op: str, name: str) -> str:
    if op in GEMMS and "/self_attn/MatMul" not in name:
        return "weight GEMMs"
    if "/modmt_rowq_" in name:
        return "per-row activation quantizers"
    # Optimum's Qwen2 graph names the concatenations of past and new keys and values Concat_5 and Concat_6.
    if op == "Concat" and name.rsplit("/", 1)[-1] in ("Concat_5", "Concat_6"):
        return "KV cache concatenation"
    if "/self_attn/" in name:
        return "attention and rotary"
    if "layernorm" in name or op in ("SimplifiedLayerNormalization", "SkipSimplifiedLayerNormalization"):
        return "RMS norms"
    if "/mlp/" in name:
        return "MLP activation"
    return "other (embedding, masks, shapes)"


times = collections.Counter()
for e in events:
    if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= first_step:
        times[group(e["args"].get("op_name", ""), e["name"].removesuffix("_kernel_time"))] += e["dur"]
total = sum(times.values())
print(json.dumps({"export": export, "rows": rows, "profiled ms a step": round(step_ms, 1),
                  "kernel ms a step": round(total / STEPS / 1000, 1)}))
for name, us in times.most_common():
    print(json.dumps({"group": name, "ms a step": round(us / STEPS / 1000, 1), "share %": round(100 * us / total, 1)}))
