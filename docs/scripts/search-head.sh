#!/usr/bin/env bash
# Beam search with the search head (log-softmax + top-k on ONNX Runtime) against the numpy path, same exports.
# Needs the exports under exports/q/ (docs/results.md, "Edge precision": modmt-export ... --quantize) and corpora/ddtp.
set -x
cd "$(dirname "$0")/../.."
B=.venv/bin
for run in ${RUNS:-1 2}; do
  $B/modmt-bench latency exports/q/en-fr-none exports/q/en-fr-int8 --engines modmt --numpy-search --data corpora/ddtp \
    --limit 16 --batch 8 --beam 5 --latency-beam 1 --max-new-tokens 64 --out results/search-head/numpy-$run
  $B/modmt-bench latency exports/q/en-fr-none exports/q/en-fr-int8 --engines modmt --data corpora/ddtp \
    --limit 16 --batch 8 --beam 5 --latency-beam 1 --max-new-tokens 64 --out results/search-head/head-$run
done
$B/python - <<'PY'
import json
for run in [int(r) for r in __import__("os").environ.get("RUNS", "1 2").split()]:
    a = json.load(open(f"results/search-head/numpy-{run}/latency.json"))
    b = json.load(open(f"results/search-head/head-{run}/latency.json"))
    for x, y in zip(a, b):
        print(run, x["precision"], "numpy", round(x["sentences_per_s"], 2), "head", round(y["sentences_per_s"], 2),
              "identical outputs:", x["outputs"] == y["outputs"])
PY
