"""Weight-only int8 (MatMulNBits, 8 bits) with float compute (accuracy_level 0) beside int8 compute (4), blocks of
32 and 128: which one is not slower than fp32. Quantizes copies of an fp32 en->fr export; then time them with
`modmt-bench latency` (docs/results.md, "Precisions per CPU").

    .venv/bin/python docs/scripts/int8-accuracy-level.py exports/cpu/en-fr-none exports/cpu
"""
import sys
from dataclasses import replace
from pathlib import Path

from modmt.export.direction import quantize_export
from modmt.export.quantize import RECIPES

source, out = Path(sys.argv[1]), Path(sys.argv[2])
for name, recipe in {"int8-al0": replace(RECIPES["int8"], accuracy_level=0),
                     "int8-b128-al0": replace(RECIPES["int8-b128"], accuracy_level=0)}.items():
    target = out / f"en-fr-{name}"
    if not target.exists():
        quantize_export(source, target, recipe)
        print(f"wrote {target}")
