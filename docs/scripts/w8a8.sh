#!/usr/bin/env bash
# --quantize w8a8 (int8 x int8 GEMMs, down projections smoothed on training text) on the four
# edge-precision directions: quality against fp32 and int8, then speed beside CTranslate2 int8.
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
  $B/modmt-bench exports exports/q/$d-none exports/q/$d-int8 exports/q/$d-w8a8 --data corpora/ddtp --limit 50 --beam 1 --max-new-tokens 64 --out results/edge-w8a8/$d
done
$B/modmt-bench exports-summary results/edge-w8a8/en-fr results/edge-w8a8/en-de results/edge-w8a8/fr-de results/edge-w8a8/de-fr
$B/modmt-bench latency exports/q/en-fr-none exports/q/en-fr-int8 exports/q/en-fr-int8-b128 exports/q/en-fr-w8a8 exports/q/en-fr-int4 --engines modmt,ctranslate2 --data corpora/ddtp --limit 16 --batch 8 --beam 5 --latency-beam 1 --max-new-tokens 64 --out results/latency-w8a8
