"""Commands of the training layer: `modmt-train`, `modmt data` and `modmt model`."""
from pathlib import Path

import click

from modmt.runtime.errors import run_cli
from modmt.runtime.languages import load_registry


@click.group(name="data")
def data_group():
    """Build and inspect parallel corpora."""


@data_group.command("ddtp")
@click.option("--langs", default="en,fr,de,ja,zh", show_default=True,
              help="Language codes; must include en (the records align through English).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Corpus directory to write.")
@click.option("--long", "include_long", is_flag=True, help="Also train on long descriptions (one line each).")
@click.option("--lists", type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Use Translation-* files already in this folder instead of running apt-get update.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def ddtp_command(langs, out, include_long, lists, force):
    """Build a modmt corpus from Debian's translated package descriptions (DDTP).

    Records translated into every language go to dev/devtest (split by a hash of their
    Description-md5); all others become train/en-xx.tsv pairs, never repeating a held-out text.
    """
    from modmt.train.ddtp import build_corpus, fetch_translation_lists
    from modmt.train.models import modmt_home

    languages = load_registry().parse_list(langs)
    missing = [lang.code for lang in languages if not lang.ddtp]
    if missing:
        raise click.UsageError(f"no DDTP code for {', '.join(missing)}; add \"ddtp\" in your languages file")
    if lists is None:
        click.echo("fetching Translation files with apt-get update ...", err=True)
        lists = fetch_translation_lists(modmt_home() / "ddtp", languages)
    counts = build_corpus(lists, languages, out, include_long=include_long, force=force)
    click.echo(f"wrote {out}")
    for name, n in counts["train"].items():
        click.echo(f"  train/{name}.tsv  {n:>6} pairs")
    click.echo(f"  dev      {counts['dev']:>6} segments x {len(languages)} languages")
    click.echo(f"  devtest  {counts['devtest']:>6} segments x {len(languages)} languages")


@data_group.command("tiny")
@click.option("--out", type=click.Path(path_type=Path), required=True)
def tiny_corpus_command(out):
    """Write the built-in 24-sentence five-language toy corpus (for smoke tests)."""
    from modmt.train.tiny import write_tiny_corpus

    write_tiny_corpus(out)
    click.echo(f"wrote {out} (toy data: any score on it means nothing)")


@data_group.command("show")
@click.argument("corpus", type=click.Path(path_type=Path))
def show_corpus_command(corpus):
    """Print a corpus's format, languages and sizes (any supported layout)."""
    from modmt.train.corpus import SPLITS, open_corpus

    c = open_corpus(corpus, load_registry())
    click.echo(f"{corpus}: {c.format} corpus, languages {', '.join(c.languages())}")
    for code in c.languages():
        sizes = [f"{split} {len(c.segments(split, code))}" for split in SPLITS
                 if c.segment_file(split, c.registry.get(code)).exists()]
        pairs = f"{len(c.pairs(code))} training pairs" if code != "en" else ""
        click.echo(f"  {code}: {', '.join([pairs, *sizes]).strip(', ')}")


@click.group(name="model")
def model_group():
    """Fetch and inspect base models."""


@model_group.command("fetch")
@click.argument("name", default="qwen2.5-coder-0.5b-instruct")
def fetch_command(name):
    """Install a known base model into the cache ($MODMT_HOME, default ~/.cache/modmt)."""
    from modmt.train.models import fetch_model

    path = fetch_model(name, progress=lambda msg: click.echo(msg, err=True))
    click.echo(str(path))


@model_group.command("list")
def list_models_command():
    """List the models `modmt model fetch` knows, and whether each is fetched."""
    from modmt.train.models import KNOWN_MODELS, modmt_home

    for name, spec in KNOWN_MODELS.items():
        hf_dir = modmt_home() / "models" / name / "hf"
        state = f"fetched: {hf_dir}" if (hf_dir / "modmt-model.json").exists() else "not fetched"
        click.echo(f"{name}  ({state})\n  {spec.description}")


@model_group.command("tiny")
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--seed", default=0, show_default=True)
def tiny_model_command(out, seed):
    """Write a random tiny Qwen2 model and tokenizer (for tests and offline smoke runs)."""
    from modmt.train.tiny import build_tiny_model

    build_tiny_model(out, seed=seed)
    click.echo(str(out))


@model_group.command("fingerprint")
@click.argument("model")
def fingerprint_command(model):
    """Print the base-model fingerprint that pools and exports record."""
    from modmt.runtime.fingerprint import model_fingerprint
    from modmt.train.models import resolve_model

    click.echo(model_fingerprint(resolve_model(model)))


@click.group(name="train")
def train_group():
    """Train LoRA_in/LoRA_out adapters, the full fine-tuning baseline, and merge weights."""


def main():
    run_cli(train_group, "modmt-train")
