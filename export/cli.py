"""`modmt-export SRC TGT`: build a deployable ONNX export of one translation direction."""
from pathlib import Path

import click

from modmt.runtime.command_line import run_cli
from modmt.runtime.errors import ModmtError
from modmt.runtime.languages import load_registry


@click.command(name="export")
@click.argument("src", required=False)
@click.argument("tgt", required=False)
@click.option("--pool", type=click.Path(path_type=Path), required=True,
              help="Adapter pool from `modmt-train adapters`.")
@click.option("--w", "weights", default="3:7", show_default=True,
              help="w_in:w_out, e.g. 3:7, 0.3:0.7, 1:0 (LoRA_in only), 0:1 (LoRA_out only), or 'learned'; "
                   "IN:OUT@S scales the merged delta by S (1:9@0.5: weights 0.05 and 0.45).")
@click.option("--setting", type=click.Choice(["1", "2"]), default="1", show_default=True,
              help="1: sum the products w*B*A; 2: merge A and B separately with sqrt(w) (same rank).")
@click.option("--targets", default=None,
              help="Merge only these modules (e.g. q_proj,v_proj); default: all the adapters cover.")
@click.option("--dtype", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="fp16 is for the CUDA execution provider.")
@click.option("--quantize", type=click.Choice(["none", "int8", "int8-b128", "w8a8", "int4"]), default="none",
              show_default=True, help="Recipes for CPUs and edge devices (export/quantize.py): int8 (weight-only, "
                                      "blocks of 32), int8-b128 (blocks of 128), w8a8 (int8 x int8 GEMMs: fastest "
                                      "at batch; needs --calibration), int4.")
@click.option("--calibration", type=click.Path(path_type=Path), default=None,
              help="Corpus directory whose training split calibrates --quantize w8a8 (e.g. corpora/ddtp).")
@click.option("--all-logits", is_flag=True, help="Keep logits for every position (default: last only).")
@click.option("--shared-base", type=click.Path(path_type=Path), default=None,
              help="Store the base once in this folder (exported on first use); the direction keeps only a "
                   "manifest and is folded in when the runtime loads it.")
@click.option("--all-directions", is_flag=True,
              help="With --shared-base: every direction between the pool's languages, under BASE/directions/ "
                   "(what `modmt serve BASE` routes between); no SRC TGT.")
@click.option("--model", default=None, help="Base model (default: the one recorded in the pool).")
@click.option("--out", type=click.Path(path_type=Path), help="Export directory (default exports/SRC-TGT).")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def export_command(src, tgt, pool, weights, setting, targets, dtype, quantize, calibration, all_logits, shared_base,
                   all_directions, model, out, force):
    """Merge LoRA_in(SRC) and LoRA_out(TGT) with weights w_in:w_out and export SRC->TGT to ONNX."""
    from modmt.export.direction import ExportOptions, export_direction
    from modmt.runtime.merge_weights import parse_weights

    if weights not in ("learned", "base"):
        parse_weights(weights)  # a malformed --w fails before minutes of model loading
    options = ExportOptions(weights=weights, setting=int(setting), dtype=dtype, quantize=quantize,
                            targets=[t.strip() for t in targets.split(",")] if targets else None,
                            last_logits_only=not all_logits, calibration=calibration)
    registry = load_registry()
    if all_directions:
        if src or tgt or out or not shared_base:
            raise ModmtError("--all-directions exports every direction of the pool onto --shared-base BASE: give "
                             "--shared-base and no SRC, TGT or --out")
        from modmt.export.shared_base import export_all_directions

        outs = export_all_directions(pool, options, shared_base, registry, force, model)
        click.echo(f"{len(outs)} directions on {shared_base}: serve them with `modmt serve {shared_base}`", err=True)
        return
    if not src or not tgt:
        raise ModmtError("give SRC and TGT (e.g. `modmt-export ja zh --pool POOL`), or --all-directions with "
                         "--shared-base")
    registry.get(src), registry.get(tgt)
    out = out or Path("exports") / f"{src}-{tgt}"
    if shared_base:
        from modmt.export.shared_base import export_shared_direction

        export_shared_direction(pool, src, tgt, options, shared_base, out, registry, force, model)
    else:
        export_direction(pool, src, tgt, options, out, registry, force, model)


def main():
    run_cli(export_command, "modmt-export")
