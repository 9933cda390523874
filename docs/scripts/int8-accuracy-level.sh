#!/usr/bin/env bash
# int8 at accuracy_level 0 (float compute) vs 4 (int8 compute), same weights; modmt only.
# Needs the exports under exports/q/ (docs/results.md, "Edge precision": modmt-export ... --quantize) and corpora/ddtp.
set -x
cd "$(dirname "$0")/../.."
B=.venv/bin
rm -rf exports/q/en-fr-int8-acc0
$B/python -c "
from pathlib import Path
from modmt.export.direction import quantize_export
from modmt.export.quantize import QuantRecipe
quantize_export(Path('exports/q/en-fr-none'), Path('exports/q/en-fr-int8-acc0'), QuantRecipe(bits=8, head_bits=8, embedding_bits=8, symmetric=True, accuracy_level=0))
"
$B/modmt-bench latency exports/q/en-fr-int8 exports/q/en-fr-int8-acc0 --engines modmt --data corpora/ddtp --limit 16 --batch 8 --beam 5 --latency-beam 1 --max-new-tokens 64 --out results/latency-acc
