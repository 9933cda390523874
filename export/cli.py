"""`modmt-export SRC TGT`: build a deployable ONNX export of one translation direction."""
import click

from modmt.runtime.errors import ModmtError, run_cli


@click.command(name="export")
@click.argument("src")
@click.argument("tgt")
@click.option("--pool", type=click.Path(file_okay=False), required=True, help="Adapter pool from `modmt-train adapters`.")
@click.option("--w", "weights", default="3:7", show_default=True,
              help="w_in:w_out, e.g. 3:7, 0.3:0.7, 1:0 (LoRA_in only), 0:1 (LoRA_out only), or 'learned'.")
@click.option("--setting", type=click.Choice(["1", "2"]), default="1", show_default=True,
              help="1: sum the products w*B*A; 2: merge A and B separately with sqrt(w) (same rank).")
@click.option("--dtype", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True)
@click.option("--quantize", type=click.Choice(["none", "int8", "int4"]), default="none", show_default=True)
@click.option("--out", type=click.Path(file_okay=False), help="Export directory (default exports/SRC-TGT).")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def export_command(src, tgt, pool, weights, setting, dtype, quantize, out, force):
    """Merge LoRA_in(SRC) and LoRA_out(TGT) with weights w_in:w_out and export SRC->TGT to ONNX."""
    raise ModmtError("modmt-export is not built yet in this version (tracked in issue 4)")


def main():
    run_cli(export_command, "modmt-export")
