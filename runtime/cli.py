"""`modmt-translate`: translate lines with an exported direction on ONNX Runtime (no torch)."""
import click

from modmt.runtime.command_line import run_cli
from modmt.runtime.errors import ModmtError
from modmt.runtime.options import ANY_FLOAT, BATCH, BEAM, INPUT_TOKENS, NEW_TOKENS, POSITIVE_INT, THREADS, FiniteFloat


@click.command(name="translate")
@click.argument("export_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("-i", "--input", "input_path", default="-", show_default=True,
              help="Input file, one segment per line ('-' for stdin). With --ray: a file, a folder or a quoted "
                   "glob such as 'in/*.txt'.")
@click.option("-o", "--output", "output_path", default="-", show_default=True,
              help="Output file, one translation per input line ('-' for stdout). With --ray: the folder that "
                   "gets one output file per input file, at the same relative path.")
@click.option("--beam", type=BEAM, default=5, show_default=True, help="Beam size (1 = greedy).")
@click.option("--batch", type=BATCH, default=8, show_default=True, help="Sentences decoded together.")
@click.option("--max-new-tokens", type=NEW_TOKENS, default=256, show_default=True)
@click.option("--length-penalty", type=ANY_FLOAT, default=1.0, show_default=True)
@click.option("--provider", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict", show_default=True,
              help="Undecodable UTF-8 input: stop with the line number, or replace bad bytes.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run into the same --output file "
                                             "(with --ray a rerun always continues the same job).")
@click.option("--overwrite", is_flag=True, help="Replace an existing --output file (with --ray: start the job again).")
@click.option("--max-input-tokens", type=INPUT_TOKENS, default=512, show_default=True,
              help="Longer source lines are truncated, with a warning naming the line (with --split sentences: "
                   "cut into pieces, never truncated).")
@click.option("--split", type=click.Choice(["none", "sentences"]), default="none", show_default=True,
              help="sentences: translate each line sentence by sentence (as modmt serve does), still one output "
                   "line per input line.")
@click.option("--threads", type=THREADS, default=None,
              help="CPU threads (default: all cores; with --ray: per worker, default 1).")
@click.option("--src", default=None, help="Routed base: the source language of a plain-text input (with --tgt); "
              "without them each line is src<TAB>tgt<TAB>text.")
@click.option("--tgt", default=None, help="Routed base: the target language of a plain-text input.")
@click.option("--w", "weights", default=None, help="Routed base: merge weights IN:OUT for every line (default: "
              "each direction's exported weights).")
@click.option("--guard/--no-guard", default=True, show_default=True,
              help="Answer with the beam's best hypothesis in the target language where the best is surely in "
                   "another language or copies its source (needs beam > 1 to act; counted in the summary line).")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Translate on Ray Data: 'local' starts Ray on this machine, 'auto' joins the running cluster, "
                   "ray://HOST:10001 a remote one. Several EXPORT_DIRs translate the input into each direction.")
@click.option("--workers", type=POSITIVE_INT, default=1, show_default=True,
              help="With --ray: actors, each holding one Translator.")
@click.option("--gpus-per-worker", type=FiniteFloat(0.0, 1024.0), default=0.0, show_default=True,
              help="With --ray: GPUs each actor reserves (use with --provider cuda).")
@click.option("--shard-lines", type=POSITIVE_INT, default=256, show_default=True,
              help="With --ray: lines per shard (rounded up to whole windows of 4 x --batch), the unit that "
                   "is retried and resumed.")
def translate_command(export_dirs, input_path, output_path, beam, batch, max_new_tokens, length_penalty,
                      provider, errors, resume, overwrite, max_input_tokens, split, threads, src, tgt, weights,
                      guard, ray_address, workers, gpus_per_worker, shard_lines):
    """Translate with EXPORT_DIR's direction line by line: exactly one output line per input line.

    EXPORT_DIR may be a shared base exported with --all-directions (or several directions on one
    shared base): one session serves every direction, and the input is src<TAB>tgt<TAB>text lines
    (or plain text with --src/--tgt)."""
    from modmt.runtime.decoding import DecodeSettings
    from modmt.runtime.open_exports import group_exports, open_exports

    groups = group_exports(export_dirs)
    if ray_address is not None:
        if split != "none":
            raise ModmtError("--split sentences does not run on Ray yet; translate without --ray, or without --split")
        return translate_on_ray(export_dirs, input_path, output_path, ray_address, workers, threads or 1,
                                gpus_per_worker, shard_lines, provider, overwrite,
                                DecodeSettings(beam, max_new_tokens, length_penalty, batch_size=batch, guard=guard),
                                max_input_tokens, errors)
    routed_options = any(v is not None for v in (src, tgt, weights))
    if routed_options and not groups.one_session:
        raise ModmtError("--src, --tgt and --w need directions on one shared base (`modmt-export SRC TGT "
                         "--shared-base BASE`); a folded export translates its own direction with its own weights")
    if len(groups.directions()) > 1 and not groups.one_session:
        raise ModmtError("several EXPORT_DIRs need --ray (one job, one output folder per direction); without it, "
                         "run modmt-translate once per direction")
    from modmt.runtime.batch import open_batch, read_lines, run_batch

    # Input and output are checked first: a bad line or an existing output fails before the model loads.
    with open_batch(input_path, output_path, errors, resume, overwrite) as job:
        if groups.mixed_input or routed_options:  # one session; each line says its direction (or --src/--tgt)
            from modmt.runtime.mixed_lines import MixedLines

            routed, = open_exports(groups, provider, threads, max_input_tokens)
            lines = MixedLines(routed, src, tgt, weights)
            lines.check_lines(read_lines(job.path, job.label, job.errors))
            click.echo(f"loaded {len(routed.directions)} directions from {', '.join(export_dirs)} in one session "
                       f"on {routed.provider} in {routed.load_seconds:.2f} s", err=True)
            translator, source = routed, lines
        else:
            translator, = open_exports(groups, provider, threads, max_input_tokens, fixed_weights=True)
            click.echo(f"loaded {translator.src}->{translator.tgt} from {export_dirs[0]} on {translator.provider} "
                       f"in {translator.load_seconds:.2f} s", err=True)
            source = translator
        echo_cpu_notice(translator)
        run_batch(job, by_sentence(source, translator.tokenizer, split, max_input_tokens),
                  DecodeSettings(beam, max_new_tokens, length_penalty, batch_size=batch, guard=guard))
        if guard and "guard" in vars(translator):  # made on first use: absent when every line was done already
            click.echo(f"modmt-translate: {translator.guard.counts.summary()}", err=True)


def by_sentence(translator, tokenizer, split: str, max_input_tokens: int):
    if split == "none":
        return translator
    from modmt.runtime.sentence_lines import SentenceLines

    return SentenceLines(translator, tokenizer, max_input_tokens)


def echo_cpu_notice(translator) -> None:
    """One line on stderr where the export's quantization recipe does not hold on this CPU."""
    from modmt.runtime.cpu_features import recipe_notice

    notice = recipe_notice(translator.quantization_recipe) if translator.provider == "CPUExecutionProvider" else None
    if notice:
        click.echo(notice, err=True)


def translate_on_ray(export_dirs, input_path, output_path, address, workers, threads, gpus_per_worker, shard_lines,
                     provider, overwrite, settings, max_input_tokens, errors):
    from modmt.runtime.ray_translate import translate_files

    if input_path == "-" or output_path == "-":
        raise ModmtError("--ray reads files and writes a folder: pass -i FILE|FOLDER|'GLOB' and -o FOLDER")
    summary = translate_files(list(export_dirs), input_path, output_path, address=address, workers=workers,
                              threads=threads, gpus_per_worker=gpus_per_worker, provider=provider,
                              shard_lines=shard_lines, overwrite=overwrite,
                              settings=settings,
                              max_input_tokens=max_input_tokens, errors=errors,
                              log=lambda message: click.echo(message, err=True))
    click.echo(f"translated {summary['translated_lines']} lines ({summary['skipped_shards']} of {summary['shards']} "
               f"shards were already done) into {summary['outputs']} files under {output_path} with "
               f"{workers} workers in {summary['seconds']:.1f} s", err=True)


def main():
    run_cli(translate_command, "modmt-translate")
