"""`modmt-translate`: translate lines with an exported direction on ONNX Runtime (no torch)."""
import click

from modmt.runtime.errors import run_cli
from modmt.runtime.options import ANY_FLOAT, POSITIVE_INT


@click.command(name="translate")
@click.argument("export_dir", type=click.Path(file_okay=False))
@click.option("-i", "--input", "input_path", type=click.Path(dir_okay=False), default="-",
              show_default=True, help="Input file, one segment per line ('-' for stdin).")
@click.option("-o", "--output", "output_path", type=click.Path(dir_okay=False), default="-",
              show_default=True, help="Output file, one translation per input line ('-' for stdout).")
@click.option("--beam", type=POSITIVE_INT, default=5, show_default=True, help="Beam size (1 = greedy).")
@click.option("--batch", type=POSITIVE_INT, default=8, show_default=True, help="Sentences decoded together.")
@click.option("--max-new-tokens", type=POSITIVE_INT, default=256, show_default=True)
@click.option("--length-penalty", type=ANY_FLOAT, default=1.0, show_default=True)
@click.option("--provider", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict", show_default=True,
              help="Undecodable UTF-8 input: stop with the line number, or replace bad bytes.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run into the same --output file.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output file.")
@click.option("--max-input-tokens", type=POSITIVE_INT, default=512, show_default=True,
              help="Longer source lines are truncated, with a warning naming the line.")
@click.option("--threads", type=POSITIVE_INT, default=None, help="CPU threads (default: all cores).")
def translate_command(export_dir, input_path, output_path, beam, batch, max_new_tokens, length_penalty,
                      provider, errors, resume, overwrite, max_input_tokens, threads):
    """Translate EXPORT_DIR's direction line by line: exactly one output line per input line."""
    from modmt.runtime.batch import open_batch, run_batch
    from modmt.runtime.translator import Translator

    # Input and output are checked first: a bad line or an existing output fails before the model loads.
    with open_batch(input_path, output_path, errors, resume, overwrite) as job:
        translator = Translator(export_dir, provider=provider, threads=threads, max_input_tokens=max_input_tokens)
        click.echo(f"loaded {translator.src}->{translator.tgt} from {export_dir} on {translator.provider} "
                   f"in {translator.load_seconds:.2f} s", err=True)
        run_batch(job, translator, beam=beam, batch_size=batch, max_new_tokens=max_new_tokens,
                  length_penalty=length_penalty)


def main():
    run_cli(translate_command, "modmt-translate")
