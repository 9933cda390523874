#!/usr/bin/env bash
# Every CPU recipe of one real direction (en->fr, Qwen2.5-Coder-0.5B) on the CPU at hand: quality on
# the devtest against fp32, and speed beside CTranslate2 int8 in one run (docs/results.md, "Precisions
# per CPU"). Resumable: finished exports and result folders are kept. Needs `modmt model fetch` and
# `modmt data ddtp --out corpora/ddtp`.
set -ex
cd "$(dirname "$0")/../.."
B=.venv/bin
POOL=${POOL:-pools/real-enfr}
E=exports/cpu
$B/python -c "import ctranslate2" 2>/dev/null || $B/python -m pip install -q "ctranslate2>=4.0"  # the peer engine
tag=$(grep -m1 '^flags' /proc/cpuinfo | grep -q -w -E 'avx512_vnni|avx_vnni' && echo vnni || echo avx2)
[ -f $POOL/out/fr/modmt-adapter.json ] || $B/modmt-train adapters --model qwen2.5-coder-0.5b-instruct \
    --data corpora/ddtp --langs en,fr --max-pairs 32 --epochs 1 --out $POOL
[ -f $E/en-fr-none/modmt.json ] || $B/modmt-export en fr --pool $POOL --out $E/en-fr-none --force
for q in w8a8 int8 int8-b128 int4; do
  [ -f $E/en-fr-$q/modmt.json ] || $B/python -c "
from pathlib import Path
from modmt.export.direction import quantize_export
from modmt.export.quantize import RECIPES
quantize_export(Path('$E/en-fr-none'), Path('$E/en-fr-$q'), RECIPES['$q'],
                calibration=Path('corpora/ddtp') if '$q' == 'w8a8' else None)
"
done
[ -f $E/en-fr-w8a8-per-tensor/modmt.json ] || $B/python docs/scripts/per-tensor-w8a8.py $E/en-fr-w8a8 $E/en-fr-w8a8-per-tensor
all="$E/en-fr-none $E/en-fr-w8a8 $E/en-fr-w8a8-per-tensor $E/en-fr-int8 $E/en-fr-int8-b128 $E/en-fr-int4"
[ -f results/cpu-$tag/quality/exports.json ] || $B/modmt-bench exports $all --data corpora/ddtp --limit 160 --beam 1 \
    --batch 8 --max-new-tokens 96 --out results/cpu-$tag/quality
[ -f results/cpu-$tag/latency/latency.json ] || $B/modmt-bench latency $all --engines modmt,ctranslate2 \
    --data corpora/ddtp --limit 16 --batch 8 --beam 5 --latency-beam 1 --max-new-tokens 64 --out results/cpu-$tag/latency
