"""Commands of the training layer: `modmt-train`, `modmt data` and `modmt model`."""
from pathlib import Path

import click

from modmt.runtime.command_line import run_cli
from modmt.runtime.languages import load_registry
from modmt.runtime.options import (BATCH, DROPOUT, EPOCHS, LEARNING_RATE, NON_NEGATIVE_INT, POSITIVE_FLOAT, POSITIVE_INT,
                                   RANK, SEQUENCE_LENGTH, SHARE)


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


@data_group.command("gettext")
@click.option("--langs", default="en,fr,de,ja,zh", show_default=True, help="Language codes; must include en.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Corpus directory to write.")
@click.option("--locale-dir", type=click.Path(path_type=Path, exists=True, file_okay=False),
              default="/usr/share/locale", show_default=True, help="Folder of <locale>/LC_MESSAGES/*.mo.")
@click.option("--exclude-corpus", type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="A training corpus whose texts must not appear in this one (e.g. corpora/ddtp).")
@click.option("--max-segments", type=POSITIVE_INT, default=1000, show_default=True,
              help="At most this many segments, half dev, half devtest; the messages after them are the train split.")
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
def gettext_command(langs, out, locale_dir, exclude_corpus, max_segments, force):
    """Build an out-of-domain test corpus from installed programs' translated messages (.mo files).

    Messages translated into every language and reading as sentences, aligned by their English
    msgid, split into dev and devtest by a hash of it; the messages beyond --max-segments are a small
    train split (general-domain pairs that `modmt-train adapters --mix-data` can mix in).
    """
    from modmt.train.corpus import open_corpus
    from modmt.train.gettext_corpus import build_gettext_corpus

    registry = load_registry()
    languages = registry.parse_list(langs)
    if "en" not in [lang.code for lang in languages]:
        raise click.UsageError("--langs must include en: messages align through their English msgid")
    exclude = set()
    if exclude_corpus is not None:
        training = open_corpus(exclude_corpus, registry)
        for code in training.languages():
            if code != "en":
                for english, text in training.pairs(code):
                    exclude.update((english, text))
    info = build_gettext_corpus(locale_dir, languages, out, exclude, max_segments, force)
    click.echo(f"wrote {out}: dev {info['dev']}, devtest {info['devtest']} segments x {len(languages)} languages, "
               f"train {info['train']} pairs per language "
               f"from {len(info['domains'])} message domains ({info['excluded_as_training_text']} left out as "
               "training text)")


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
@click.option("--seed", type=NON_NEGATIVE_INT, default=0, show_default=True)
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
    """Train LoRA_in/LoRA_out adapters, the full fine-tuning baseline, and merge weights.

    Training runs on transformers' Trainer, so the same command runs on several GPUs under
    `accelerate launch -m modmt.train.cli ...` or `torchrun --nproc-per-node N -m modmt.train.cli ...`.
    """


def training_options(f):
    """Options shared by every training command."""
    options = [
        click.option("--model", required=True, help="Base model: hub id, local directory, .gguf, or a known name."),
        click.option("--data", "data", required=True, type=click.Path(path_type=Path),
                     help="Corpus: a modmt corpus directory or a FLORES-101/200 folder."),
        click.option("--epochs", type=EPOCHS, default=2.0, show_default=True, help="Epochs (the paper: 2)."),
        click.option("--batch-size", type=BATCH, default=8, show_default=True),
        click.option("--max-length", type=SEQUENCE_LENGTH, default=256, show_default=True,
                     help="Longest prompt+target in tokens; longer pairs are skipped and counted."),
        click.option("--max-pairs", type=POSITIVE_INT, default=None,
                     help="Cap on training pairs per adapter (a seeded random subset), for CPU budgets."),
        click.option("--seed", type=NON_NEGATIVE_INT, default=0, show_default=True),
        click.option("--save-steps", type=POSITIVE_INT, default=100, show_default=True, help="Checkpoint interval (for --resume)."),
        click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint."),
        click.option("--gradient-checkpointing", is_flag=True,
                     help="Recompute activations in the backward pass: same result, less memory, ~30% slower."),
        click.option("--micro-batch-size", type=BATCH, default=None,
                     help="Examples per forward pass, accumulated up to --batch-size per optimizer step: "
                          "same training, less memory."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@train_group.command("adapters")
@training_options
@click.option("--langs", default="en,fr,de,ja,zh", show_default=True, help="Languages to train adapters for.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The adapter pool directory.")
@click.option("--rank", type=RANK, default=8, show_default=True, help="LoRA rank r.")
@click.option("--alpha", type=POSITIVE_FLOAT, default=16, show_default=True, help="LoRA alpha (scaling = alpha / r).")
@click.option("--dropout", type=DROPOUT, default=0.05, show_default=True, help="LoRA dropout.")
@click.option("--targets", default="all-linear", show_default=True,
              help="Modules to adapt: all-linear, or a comma list such as q_proj,v_proj.")
@click.option("--lr", type=LEARNING_RATE, default=2e-4, show_default=True, help="Learning rate (the paper used 2e-5 for its runs).")
@click.option("--retrain", is_flag=True, help="Train again adapters the pool already has.")
@click.option("--english-adapters", type=click.Choice(["pooled", "copy"]), default=None,
              help="pooled (a new pool's default): LoRA_out(en) learns x->en and LoRA_in(en) en->x, balanced over the "
                   "other languages, so merges into and out of English translate; copy: English's adapters learn "
                   "en->en, as in the paper (for reproducing it: its x->en merges copy their source). Default: "
                   "the pool's recorded recipe.")
@click.option("--frozen-base", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="fp16: keep the frozen base's matrices in fp16 while training (computed in fp32): about half "
                   "the memory, ~10-20% slower; the adapters learn against the base rounded to fp16 (CPU only).")
@click.option("--mix-data", type=click.Path(path_type=Path), default=None,
              help="A corpus of another domain (e.g. `modmt data gettext`'s) whose pairs replace --mix-share of each "
                   "adapter's: general-domain text, to keep the base model's general ability.")
@click.option("--mix-share", type=SHARE, default=0.25,
              show_default=True, help="Share of each adapter's pairs taken from --mix-data.")
def adapters_command(model, data, epochs, batch_size, max_length, max_pairs, seed, save_steps, resume,
                     gradient_checkpointing, micro_batch_size, langs, out, rank, alpha, dropout, targets, lr, retrain,
                     english_adapters, frozen_base, mix_data, mix_share):
    """Train LoRA_in(l) on l->en and LoRA_out(l) on en->l for every language l into a pool.

    English's two adapters train on the other languages' x->en and en->x pairs (the paper's en->en
    copies with --english-adapters copy). Adapters the pool already has
    are skipped, so `--langs ko` on an existing pool trains only Korean's two adapters.
    """
    from modmt.train.adapters import LoraSettings, train_pool
    from modmt.train.corpus import open_corpus
    from modmt.train.models import resolve_model
    from modmt.train.trainer import TrainSettings

    settings = TrainSettings(epochs=epochs, learning_rate=lr, batch_size=batch_size, max_length=max_length,
                             seed=seed, max_pairs=max_pairs, save_steps=save_steps,
                             gradient_checkpointing=gradient_checkpointing, micro_batch_size=micro_batch_size)
    lora = LoraSettings(rank=rank, alpha=alpha, dropout=dropout, targets=targets)
    lora.check()  # cheap checks first: a typo should not wait for a corpus or a model to load
    settings.check()
    registry = load_registry()
    codes = [lang.code for lang in registry.parse_list(langs)]
    corpus = open_corpus(data, registry)
    mix = (open_corpus(mix_data, registry), mix_share) if mix_data is not None else None
    train_pool(resolve_model(model), corpus, registry, codes, out, lora, settings, resume=resume, retrain=retrain,
               english=english_adapters, frozen_base=frozen_base, mix=mix)


@train_group.command("full")
@training_options
@click.option("--langs", default="en,fr,de,ja,zh", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Directory for the fine-tuned model.")
@click.option("--lr", type=LEARNING_RATE, default=2e-5, show_default=True, help="Learning rate (the paper: 2e-5).")
@click.option("--force", is_flag=True, help="Replace a fine-tuned model already in --out.")
def full_command(model, data, epochs, batch_size, max_length, max_pairs, seed, save_steps, resume,
                 gradient_checkpointing, micro_batch_size, langs, out, lr, force):
    """Full-parameter fine-tuning baseline on every l->en and en->l pair (Table 1's comparison row)."""
    from modmt.train.corpus import open_corpus
    from modmt.train.full import train_full
    from modmt.train.models import resolve_model
    from modmt.train.trainer import TrainSettings

    registry = load_registry()
    codes = [lang.code for lang in registry.parse_list(langs)]
    settings = TrainSettings(epochs=epochs, learning_rate=lr, batch_size=batch_size, max_length=max_length,
                             seed=seed, max_pairs=max_pairs, save_steps=save_steps,
                             gradient_checkpointing=gradient_checkpointing, micro_batch_size=micro_batch_size)
    train_full(resolve_model(model), open_corpus(data, registry), registry, codes, out, settings, resume, force)


@train_group.command("weights")
@click.argument("src")
@click.argument("tgt")
@click.option("--pool", "pool_dir", type=click.Path(path_type=Path), required=True)
@click.option("--data", "data", required=True, type=click.Path(path_type=Path))
@click.option("--model", default=None, help="Base model (default: the one recorded in the pool).")
@click.option("--split", default="dev", show_default=True,
              help="Multi-way split that provides SRC->TGT pairs when neither side is English.")
@click.option("--epochs", type=EPOCHS, default=2.0, show_default=True)
@click.option("--batch-size", type=BATCH, default=8, show_default=True)
@click.option("--max-length", type=SEQUENCE_LENGTH, default=256, show_default=True)
@click.option("--max-pairs", type=POSITIVE_INT, default=None)
@click.option("--lr", type=LEARNING_RATE, default=0.05, show_default=True,
              help="Learning rate for the per-layer logits (they start at 1.0, i.e. 0.5/0.5).")
@click.option("--seed", type=NON_NEGATIVE_INT, default=0, show_default=True)
def weights_command(src, tgt, pool_dir, data, model, split, epochs, batch_size, max_length, max_pairs, lr, seed):
    """Learn per-layer merge weights (w_in, w_out) for SRC->TGT with both adapters frozen (section 3.4)."""
    from modmt.train.corpus import open_corpus
    from modmt.train.models import resolve_model
    from modmt.train.pool import Pool
    from modmt.train.trainer import TrainSettings
    from modmt.train.weight_learning import learn_weights

    registry = load_registry()
    pool = Pool(pool_dir)
    model_dir = resolve_model(model or pool.read()["base_model"])
    settings = TrainSettings(epochs=epochs, learning_rate=lr, batch_size=batch_size, max_length=max_length,
                             seed=seed, max_pairs=max_pairs)
    settings.check()
    learn_weights(model_dir, pool, open_corpus(data, registry), registry, src, tgt, settings, split)


def main():
    run_cli(train_group, "modmt-train")


if __name__ == "__main__":  # `torchrun -m modmt.train.cli ...` and `accelerate launch -m modmt.train.cli ...`
    main()
