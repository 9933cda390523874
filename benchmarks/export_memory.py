"""`modmt-bench export-memory`: peak RSS and wall time of `modmt-export` per precision and layout.

Each export runs as its own process (benchmarks/peak_memory.py), so each figure is that export's
own peak; the ratio is to the fp32 model's bytes (4 x its parameters, the embedding and an untied
output projection counted once each), the figure issue #21's bound is stated in.
"""
import json
import logging
import shutil
import sys
from pathlib import Path


from modmt.benchmarks.peak_memory import run_measured
from modmt.runtime.errors import ModmtError

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8", "int8-b128", "w8a8", "int4")
LAYOUTS = ("standalone", "shared")
SHARED_PRECISIONS = ("fp32", "int8", "int8-b128", "int4")  # a shared base is not calibrated per direction


def export_command(pool: Path, src: str, tgt: str, precision: str, layout: str, out: Path, work: Path,
                   calibration: Path | None) -> list[str]:
    command = [sys.executable, "-c", "from modmt.export.cli import main; main()", src, tgt, "--pool", str(pool), "--out", str(out), "--force"]
    if precision == "fp16":
        command += ["--dtype", "fp16"]
    elif precision != "fp32":
        command += ["--quantize", precision]
    if precision == "w8a8":
        if calibration is None:
            raise ModmtError("w8a8 calibrates on training text: pass --calibration CORPUS")
        command += ["--calibration", str(calibration)]
    if layout == "shared":
        command += ["--shared-base", str(work / f"base-{precision}")]
    return command


def export_memory(pool: Path, src: str, tgt: str, precisions: list[str], layouts: list[str], work: Path,
                  calibration: Path | None = None) -> list[dict]:
    """One row per (layout, precision): seconds, peak RSS, its ratio to the fp32 model's bytes."""
    from modmt.train.pool import Pool

    model_bytes = 4 * Pool(pool).read()["base_parameters"]
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for layout in layouts:
        for precision in precisions:
            if layout == "shared" and precision not in SHARED_PRECISIONS:
                continue
            out = work / f"{layout}-{precision}"
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(work / f"base-{precision}", ignore_errors=True)  # the base is what a shared export builds
            with open(work / f"{layout}-{precision}.log", "w") as log:
                measured = run_measured(export_command(pool, src, tgt, precision, layout, out, work, calibration), log)
            if measured["returncode"] != 0:
                raise ModmtError(f"modmt-export ({layout}, {precision}) failed: see {work}/{layout}-{precision}.log")
            rows.append({"layout": layout, "precision": precision, **measured,
                         "model_bytes": model_bytes, "ratio": round(measured["peak_rss_bytes"] / model_bytes, 2)})
            log.info(f"{layout:10} {precision:9} {measured['seconds']:7.1f} s  peak {measured['peak_rss_bytes'] / 1e9:5.2f} GB"
                       f"  {rows[-1]['ratio']:.2f}x the fp32 model")
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(work / f"base-{precision}", ignore_errors=True)
    return rows


def write_rows(rows: list[dict], path: Path, meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
