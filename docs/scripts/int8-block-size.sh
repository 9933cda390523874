#!/usr/bin/env bash
# int8 with blocks of 128 instead of 32 (fewer scales), same weights: speed, then quality on 50 segments.
# Needs the exports under exports/q/ (docs/results.md, "Edge precision": modmt-export ... --quantize) and corpora/ddtp.
set -x
cd "$(dirname "$0")/../.."
B=.venv/bin
[ -d exports/q/en-fr-int8-b128 ] || $B/python -c "
from pathlib import Path
from modmt.export.direction import quantize_export
from modmt.export.quantize import QuantRecipe
quantize_export(Path('exports/q/en-fr-none'), Path('exports/q/en-fr-int8-b128'), QuantRecipe(bits=8, head_bits=8, embedding_bits=8, symmetric=True, block_size=128))
"
$B/modmt-bench latency exports/q/en-fr-int8 exports/q/en-fr-int8-b128 --engines modmt --data corpora/ddtp --limit 16 --batch 8 --beam 5 --latency-beam 1 --max-new-tokens 64 --out results/latency-b128
$B/modmt-bench exports exports/q/en-fr-none exports/q/en-fr-int8 exports/q/en-fr-int8-b128 --data corpora/ddtp --limit 50 --beam 1 --max-new-tokens 64 --out results/edge-b128/en-fr
# The other three directions of the edge-precision sample, then the four-direction summary.
for d in en-de fr-de de-fr; do
  [ -d exports/q/$d-int8-b128 ] || $B/python -c "
from pathlib import Path
from modmt.export.direction import quantize_export
from modmt.export.quantize import QuantRecipe
quantize_export(Path('exports/q/$d-none'), Path('exports/q/$d-int8-b128'), QuantRecipe(bits=8, head_bits=8, embedding_bits=8, symmetric=True, block_size=128))
"
  $B/modmt-bench exports exports/q/$d-none exports/q/$d-int8 exports/q/$d-int8-b128 --data corpora/ddtp --limit 50 --beam 1 --max-new-tokens 64 --out results/edge-b128/$d
done
$B/modmt-bench exports-summary results/edge-b128/en-fr results/edge-b128/en-de results/edge-b128/fr-de results/edge-b128/de-fr
