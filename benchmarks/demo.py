"""`modmt demo`: the main job end to end on the embedded default, every step cached.

Steps: fetch the demo model, build the DDTP corpus, then (as those stages exist) train the ten
adapters, export ja->zh at 3:7, translate devtest segments and report chrF++ and latency. Offline
it falls back to the built-in tiny model and toy corpus, and says loudly that the numbers mean nothing.
"""
from pathlib import Path

import click

from modmt.runtime.errors import ModmtError


def step(title: str):
    click.secho(f"==> {title}", bold=True, err=True)


def run_demo(workdir: Path, offline: bool) -> dict:
    from modmt.train.models import DEFAULT_MODEL, fetch_model
    from modmt.train.tiny import build_tiny_model, write_tiny_corpus

    workdir.mkdir(parents=True, exist_ok=True)
    toy = offline
    step("1/2 base model")
    if not toy:
        try:
            model_dir = fetch_model(DEFAULT_MODEL, progress=lambda m: click.echo(f"    {m}", err=True))
        except ModmtError as e:
            click.secho(f"    could not fetch {DEFAULT_MODEL} ({e}); falling back to the tiny model", err=True)
            toy = True
    if toy:
        model_dir = workdir / "tiny-model"
        if not (model_dir / "config.json").exists():
            build_tiny_model(model_dir)
        click.secho("    USING THE BUILT-IN TINY RANDOM MODEL AND TOY CORPUS: THE NUMBERS MEAN NOTHING",
                    fg="red", bold=True, err=True)

    step("2/2 corpus")
    corpus = workdir / ("tiny-corpus" if toy else "ddtp")
    if (corpus / "devtest").exists():
        click.echo(f"    cached: {corpus}", err=True)
    elif toy:
        write_tiny_corpus(corpus)
    else:
        from modmt.runtime.languages import load_registry
        from modmt.train.ddtp import build_corpus, fetch_translation_lists
        from modmt.train.models import modmt_home

        languages = load_registry().parse_list("en,fr,de,ja,zh")
        try:
            lists = fetch_translation_lists(modmt_home() / "ddtp", languages)
            counts = build_corpus(lists, languages, corpus)
            click.echo(f"    {counts['train']} train pairs, {counts['devtest']} devtest segments", err=True)
        except ModmtError as e:
            click.secho(f"    DDTP unavailable ({e}); using the toy corpus", err=True)
            corpus = write_tiny_corpus(workdir / "tiny-corpus")
    return {"model": model_dir, "corpus": corpus, "toy": toy}


@click.command(name="demo")
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("modmt-demo"), show_default=True,
              help="Where the demo keeps its corpus, adapters and exports (reused by a second run).")
@click.option("--offline", is_flag=True, help="Use the built-in tiny model and toy corpus; no network.")
def demo_command(workdir, offline):
    """Run the main job on the embedded default (Qwen2.5-Coder-0.5B-Instruct, Debian DDTP corpus)."""
    result = run_demo(workdir, offline)
    click.echo(f"model:  {result['model']}\ncorpus: {result['corpus']}")
