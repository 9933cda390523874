#!/usr/bin/env bash
# --quantize w8a8 (int8 x int8 GEMMs, inputs smoothed on training text) for the four edge-precision
# directions, then its speed beside CTranslate2 int8: one `modmt-bench latency` run and three
# alternating rounds in one process. Quality: docs/scripts/edge-full-devtest.sh.
# Needs the fp32 exports under exports/q/ (docs/results.md, "Edge precision") and corpora/ddtp.
set -x
cd "$(dirname "$0")/../.."
B=.venv/bin
for d in en-fr en-de fr-de de-fr; do
  [ -d exports/q/$d-w8a8 ] || $B/python -c "
from pathlib import Path
from modmt.export.direction import quantize_export
from modmt.export.quantize import RECIPES
quantize_export(Path('exports/q/$d-none'), Path('exports/q/$d-w8a8'), RECIPES['w8a8'], calibration=Path('corpora/ddtp'))
"
done
$B/modmt-bench latency exports/q/en-fr-none exports/q/en-fr-int8 exports/q/en-fr-int8-b128 exports/q/en-fr-w8a8 exports/q/en-fr-int4 --engines modmt,ctranslate2 --data corpora/ddtp --limit 16 --batch 8 --beam 5 --latency-beam 1 --max-new-tokens 64 --out results/latency-w8a8
$B/python docs/scripts/w8a8-vs-ctranslate2-alternating.py results/latency-w8a8/work exports/q/en-fr-w8a8 exports/q/en-fr-int8
