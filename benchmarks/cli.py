"""`modmt-bench`: the measurements (quality in Table 1's layout, latency beside the peer engines, routing,
serving, export memory, Table 1 end to end and its report). Each command imports its heavy dependencies
only when it runs."""
import json
import os
from pathlib import Path

import click

from modmt.runtime.command_line import run_cli
from modmt.runtime.errors import ModmtError
from modmt.runtime.options import BATCH, BEAM, NEW_TOKENS, POSITIVE_INT, ROUNDS, THREADS
from modmt.runtime.tuned_weights import GRID


@click.group(name="bench")
def bench_group():
    """Measure quality (chrF++, Table-1 layout) and speed (latency, throughput)."""


def parse_directions(directions: str, registry) -> list[tuple[str, str]] | None:
    """--directions: None for "all", else the SRC-TGT pairs of a comma list, each code checked (one line if unknown)."""
    if directions == "all":
        return None
    pairs = []
    for d in directions.split(","):
        src, _, tgt = d.strip().partition("-")
        registry.get(src), registry.get(tgt)
        pairs.append((src, tgt))
    return pairs


@bench_group.command("quality")
@click.option("--pool", "pool_dir", type=click.Path(path_type=Path), required=True)
@click.option("--data", type=click.Path(path_type=Path), required=True, help="Corpus with multi-way dev/devtest.")
@click.option("--split", default="devtest", show_default=True)
@click.option("--directions", default="all", show_default=True, help="all, or a list like ja-zh,en-fr.")
@click.option("--methods", default=None, help="Subset of rows, e.g. base,in,out,s1-1:9,s1-3:7 (default: all).")
@click.option("--limit", type=POSITIVE_INT, default=None, help="First N segments of the split per direction.")
@click.option("--engine", type=click.Choice(["onnx", "torch"]), default="onnx", show_default=True,
              help="onnx: the runtime on shared-base exports (the deployed path); torch: fold into one "
                   "in-memory model and use transformers' generate.")
@click.option("--full-model", type=click.Path(path_type=Path), default=None,
              help="A `modmt-train full` model for the full fine-tuning row.")
@click.option("--beam", type=BEAM, default=5, show_default=True)
@click.option("--max-new-tokens", type=NEW_TOKENS, default=128, show_default=True)
@click.option("--batch", type=BATCH, default=8, show_default=True)
@click.option("--provider", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/quality"), show_default=True)
def quality_command(pool_dir, data, split, directions, methods, limit, engine, full_model, beam, max_new_tokens,
                    batch, provider, out):
    """chrF++ for every direction and Table-1 method; Markdown, CSV and JSON in --out (resumable)."""
    from modmt.benchmarks.quality import run_quality
    from modmt.runtime.languages import load_registry
    from modmt.train.corpus import open_corpus

    registry = load_registry()
    pairs = parse_directions(directions, registry)
    result = run_quality(pool_dir, open_corpus(data, registry), split, pairs, limit, engine, out, beam,
                         max_new_tokens, batch, full_model, methods.split(",") if methods else None, provider)
    click.echo(f"chrF++ signature: {result['signature']}")
    click.echo(result["markdown"])
    click.echo(f"written to {out}/table1.md, results.csv, results.json")


@bench_group.command("plots")
@click.option("--pool", "pool_dir", type=click.Path(path_type=Path), default=None, help="For the learned-weight curves.")
@click.option("--quality", "quality_dir", type=click.Path(path_type=Path), default=None,
              help="A `modmt-bench quality --out` folder, for heatmaps.")
@click.option("--exports", "exports_dir", type=click.Path(path_type=Path), default=None,
              help="A `modmt-bench exports --out` folder, for quality versus speed per precision.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/plots"), show_default=True)
def plots_command(pool_dir, quality_dir, exports_dir, out):
    """PNG plots: learned weights per layer (Figure 2), chrF++ heatmaps, quality versus speed."""
    import json

    from modmt.benchmarks.plots import plot_heatmaps, plot_learned_weights, plot_quality_vs_speed

    written = []
    if pool_dir:
        written += plot_learned_weights(pool_dir, out)
    if quality_dir:
        written += plot_heatmaps(quality_dir / "results.json", out)
    if exports_dir:
        data = json.loads((exports_dir / "exports.json").read_text())
        points = [{"label": r["quantization"] if r["quantization"] != "none" else r["dtype"], "chrf": r["chrf"],
                   "sentences_per_s": data["segments"] / r["seconds"]} for r in data["rows"]]
        written.append(plot_quality_vs_speed(points, out))
    for path in written:
        click.echo(str(path))
    if not written:
        click.echo("nothing to plot: give --pool with learned weights, --quality or --exports results", err=True)


@bench_group.command("exports")
@click.argument("exports", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), required=True)
@click.option("--split", default="devtest", show_default=True)
@click.option("--limit", type=POSITIVE_INT, default=24, show_default=True)
@click.option("--beam", type=BEAM, default=5, show_default=True)
@click.option("--batch", type=BATCH, default=8, show_default=True)
@click.option("--max-new-tokens", type=NEW_TOKENS, default=64, show_default=True)
@click.option("--provider", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--parity", is_flag=True, help="Also the max logit difference of the first export against PyTorch.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/exports"), show_default=True)
def exports_command(exports, data, split, limit, beam, batch, max_new_tokens, provider, parity, out):
    """Exports of one direction side by side (e.g. fp32, int8, int4): chrF++, seconds, load time, size."""
    from modmt.benchmarks.exports import compare_exports, logit_parity
    from modmt.benchmarks.quality import chrf_scorer
    from modmt.runtime.languages import load_registry
    from modmt.runtime.manifest import read_manifest
    from modmt.train.corpus import open_corpus

    first = read_manifest(exports[0], verify="size")
    table = open_corpus(data, load_registry()).multiway(split, [first["src"], first["tgt"]])
    sources, references = table[first["src"]][:limit], table[first["tgt"]][:limit]
    chrf = chrf_scorer()
    rows = compare_exports(list(exports), sources, references, beam, batch, max_new_tokens, provider, chrf)
    from modmt.runtime.atomic import write_json_atomic

    write_json_atomic(out / "exports.json", {"segments": len(sources), "beam": beam, "batch": batch,
                                             "src": first["src"], "tgt": first["tgt"], "references": references,
                                             "signature": str(chrf.get_signature()), "rows": rows})
    click.echo(f"{first['src']}->{first['tgt']}, {len(sources)} {split} segments, beam {beam}, batch {batch}; "
               f"chrF++ {chrf.get_signature()}\n")
    click.echo("| export | kind | dtype | quantization | chrF++ | Δ to the first [95 % CI] | seconds | load s | MB |\n"
               "|---|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        d = r["delta"]
        click.echo(f"| {r['export']} | {r['kind']} | {r['dtype']} | {r['quantization']} | {r['chrf']:.2f} | "
                   f"{d['value']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}] | {r['seconds']:.1f} | {r['load_s']:.2f} | "
                   f"{r['mb']:.0f} |")
    if parity:
        result = logit_parity(exports[0], sources[:4])
        click.echo(f"\nfp32 parity of {exports[0]}: max |ONNX - PyTorch| = {result['max_abs_diff']:.2e} "
                   f"(logits up to {result['max_abs_logit']:.1f}, {result['prompts']} prompts)")


@bench_group.command("quant-error")
@click.option("--model", default="qwen2.5-coder-0.5b-instruct", show_default=True,
              help="A fetched known model (its GGUF and its Hugging Face directory).")
def quant_error_command(model):
    """Relative RMS error that 4/8-bit blocks of 32 add to the base's matrices, by their GGUF storage type."""
    from modmt.benchmarks.quant_error import quantization_errors
    from modmt.train.models import resolve_model

    hf_dir = resolve_model(model)
    gguf = hf_dir.parent / "model.gguf"
    if not gguf.exists():
        raise ModmtError(f"no GGUF beside {hf_dir}; this measures models fetched with `modmt model fetch`")
    click.echo("| tensor | GGUF type | int4 symmetric | int4 zero point | int8 symmetric | int8 zero point |\n"
               "|---|---|---:|---:|---:|---:|")
    for r in quantization_errors(gguf, hf_dir):
        click.echo(f"| {r['tensor']} | {r['gguf_type']} | {r['sym4']:.4f} | {r['asym4']:.4f} | {r['sym8']:.4f} | "
                   f"{r['asym8']:.4f} |")


@bench_group.command("exports-summary")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
def exports_summary_command(results):
    """Average `modmt-bench exports` runs of several directions: each variant's chrF++ difference to the
    first export, with a 95 % paired-bootstrap interval over the segments of all directions."""
    from modmt.benchmarks.exports import summarize_exports

    click.echo(summarize_exports([p / "exports.json" if p.is_dir() else p for p in results]))


@bench_group.command("latency")
@click.argument("exports", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--engines", default="modmt,transformers,optimum,ctranslate2", show_default=True)
@click.option("--data", type=click.Path(path_type=Path), default=None, help="Corpus: source segments from it.")
@click.option("--input", "input_path", type=click.Path(path_type=Path), default=None, help="Or a file of segments.")
@click.option("--split", default="devtest", show_default=True)
@click.option("--limit", type=POSITIVE_INT, default=16, show_default=True, help="Number of segments.")
@click.option("--batch", type=BATCH, default=8, show_default=True)
@click.option("--beam", type=BEAM, default=5, show_default=True, help="Beam of the batch-N throughput run.")
@click.option("--latency-beam", type=BEAM, default=1, show_default=True,
              help="Beam of the batch-1 latency run (1: greedy, what the roofline assumes).")
@click.option("--max-new-tokens", type=NEW_TOKENS, default=64, show_default=True)
@click.option("--threads", type=THREADS, default=None)
@click.option("--provider", type=click.Choice(["auto", "cuda", "cpu"]), default="cpu", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("results/latency"), show_default=True)
@click.option("--numpy-search", is_flag=True, help="modmt: beam search's log-softmax and top-k in numpy, not the "
              "search head (for comparisons).")
@click.option("--no-io-binding", is_flag=True, help="modmt: feed every step numpy arrays instead of keeping the "
              "cache on the device (for comparisons).")
def latency_command(exports, engines, data, input_path, split, limit, batch, beam, latency_beam, max_new_tokens,
                    threads, provider, out, numpy_search, no_io_binding):
    """Latency (batch 1), throughput (batch N), load time and peak memory of modmt and its peers, in one run."""
    from modmt.benchmarks.latency import latency_markdown, run_latency, save_latency
    from modmt.runtime.errors import ModmtError
    from modmt.runtime.languages import load_registry
    from modmt.runtime.manifest import read_manifest
    from modmt.runtime.ort_options import OrtOptions
    from modmt.train.corpus import open_corpus, read_segments

    src = read_manifest(exports[0], verify="size")["src"]
    if input_path:
        segments = read_segments(input_path)[:limit]
    elif data:
        segments = open_corpus(data, load_registry()).segments(split, src)[:limit]
    else:
        raise ModmtError("give the segments: --data CORPUS (its SPLIT in the export's source language) or --input FILE")
    rows = run_latency(list(exports), segments, engines.split(","), batch, beam, max_new_tokens, out / "work",
                       threads, provider, latency_beam,
                       OrtOptions(search_head=not numpy_search, io_binding=not no_io_binding))
    markdown = latency_markdown(rows, batch, beam, len(segments), latency_beam)
    save_latency(rows, out, markdown)
    click.echo(markdown)


@bench_group.command("routing")
@click.argument("base", type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Corpus whose devtest split gives the sentences.")
@click.option("--segments", type=POSITIVE_INT, default=16, show_default=True,
              help="Devtest segments, spread over the four mixed directions.")
@click.option("--rounds", type=ROUNDS, default=2, show_default=True)
@click.option("--batch", type=BATCH, default=8, show_default=True)
@click.option("--beam", type=BEAM, default=5, show_default=True)
@click.option("--max-new-tokens", type=NEW_TOKENS, default=64, show_default=True)
@click.option("--folded", type=click.Path(file_okay=False, path_type=Path), multiple=True,
              help="A standalone export of en->fr with the same weights, for the side path's cost.")
@click.option("--clients", type=click.IntRange(1, 4096), default=32, show_default=True)
@click.option("--requests", type=click.IntRange(1, 100_000), default=64, show_default=True)
@click.option("--parts", default="memory,mixed,serve", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("results/routing.json"),
              show_default=True)
def routing_command(base, data, segments, rounds, batch, beam, max_new_tokens, folded, clients, requests, parts, out):
    """One routed session against a session per direction: memory, mixed-batch throughput, `modmt serve` under load."""
    from modmt.benchmarks.routing import run_routing

    chosen = [p.strip() for p in parts.split(",") if p.strip()]
    unknown = set(chosen) - {"memory", "mixed", "serve"}
    if unknown:
        raise ModmtError(f"--parts takes memory, mixed and serve, not {', '.join(sorted(unknown))}")
    result = run_routing(base, data, out, segments, rounds, batch, beam, max_new_tokens, list(folded), clients,
                         requests, chosen)
    click.echo(json.dumps(result, indent=2, ensure_ascii=False))


@bench_group.command("serve")
@click.argument("export", type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Corpus whose devtest split gives the sentences.")
@click.option("--directions", default="en-fr,fr-en", show_default=True, help="SRC-TGT pairs the requests mix.")
@click.option("--sentences", type=POSITIVE_INT, default=64, show_default=True)
@click.option("--clients", default="1,8,32", show_default=True, help="Concurrent clients, one run each per round.")
@click.option("--rounds", type=ROUNDS, default=1, show_default=True,
              help="Rounds of (offline API, then each client count), alternating.")
@click.option("--beam", type=BEAM, default=5, show_default=True)
@click.option("--max-new-tokens", type=NEW_TOKENS, default=48, show_default=True)
@click.option("--max-batch", type=BATCH, default=16, show_default=True)
@click.option("--threads", type=POSITIVE_INT, default=None)
@click.option("--join", type=click.Choice(["aligned", "any"]), default="aligned", show_default=True,
              help="The server's --join.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("results/serve.json"),
              show_default=True)
def serve_bench_command(export, data, directions, sentences, clients, rounds, beam, max_new_tokens, max_batch, threads,
                        join, out):
    """`modmt serve` against the offline Python API: throughput under N clients, a short request behind a long one."""
    from modmt.benchmarks.serving import run_serving

    try:
        pairs = [tuple(d.strip().split("-")) for d in directions.split(",") if d.strip()]
        counts = [int(c) for c in clients.split(",") if c.strip()]
    except ValueError:
        raise ModmtError("--clients is a comma-separated list of numbers, e.g. 1,8,32") from None
    if not pairs or any(len(p) != 2 for p in pairs) or not counts or min(counts) < 1:
        raise ModmtError("give --directions as SRC-TGT pairs (en-fr,fr-en) and --clients as numbers (1,8,32)")
    result = run_serving(export, data, pairs, sentences, counts, beam, max_new_tokens, max_batch, threads, out, join,
                         rounds)
    click.echo(json.dumps(result, indent=2, ensure_ascii=False))


@bench_group.command("export-memory")
@click.option("--pool", "pool_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--direction", default="en-fr", show_default=True, help="SRC-TGT of the pool to export.")
@click.option("--precisions", default=",".join(("fp32", "fp16", "int8", "int8-b128", "w8a8", "int4")),
              show_default=True)
@click.option("--layouts", default="standalone,shared", show_default=True,
              help="standalone, shared (a shared base is not calibrated: w8a8 and fp16 are standalone only).")
@click.option("--calibration", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Corpus for w8a8's calibration.")
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=Path("results/export-memory"),
              show_default=True, help="Where the exports are built (and removed after each is measured).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("results/export-memory.json"),
              show_default=True)
def export_memory_command(pool_dir, direction, precisions, layouts, calibration, work, out):
    """Peak RSS and wall time of `modmt-export` per precision and layout, as a ratio to the fp32 model's bytes."""
    import platform

    from modmt.benchmarks.export_memory import LAYOUTS, PRECISIONS, export_memory, write_rows
    from modmt.train.pool import Pool

    chosen = {"precisions": [p.strip() for p in precisions.split(",") if p.strip()],
              "layouts": [x.strip() for x in layouts.split(",") if x.strip()]}
    for key, known in (("precisions", PRECISIONS), ("layouts", LAYOUTS)):
        unknown = set(chosen[key]) - set(known)
        if unknown:
            raise ModmtError(f"--{key} takes {', '.join(known)}, not {', '.join(sorted(unknown))}")
    src, _, tgt = direction.partition("-")
    rows = export_memory(pool_dir, src, tgt, chosen["precisions"], chosen["layouts"], work, calibration)
    meta = Pool(pool_dir).read()
    write_rows(rows, out, {"pool": str(pool_dir), "base_model": meta["base_model"],
                           "base_parameters": meta["base_parameters"], "direction": direction,
                           "machine": f"{platform.machine()}, {os.cpu_count()} cores"})
    click.echo(f"wrote {out}")


@bench_group.command("shape-model")
@click.argument("shape", type=click.Choice(["qwen2.5-1.5b", "qwen2.5-3b"]))
@click.option("--tokenizer-from", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A Qwen2.5 model directory for the tokenizer and config (default: the fetched model).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Model directory to write.")
@click.option("--pool", "pool_dir", type=click.Path(path_type=Path), required=True,
              help="Pool of random en/fr adapters to write for it.")
def shape_model_command(shape, tokenizer_from, out, pool_dir):
    """A random-weight model with the shapes of a larger Qwen2.5, for memory and time only (its output is noise)."""
    from modmt.benchmarks.shape_models import build_shape_model
    from modmt.train.models import resolve_model

    tokenizer_from = tokenizer_from or resolve_model("qwen2.5-coder-0.5b-instruct")
    build_shape_model(shape, tokenizer_from, out, pool_dir)
    click.echo(f"wrote {out} and pool {pool_dir}")


@bench_group.command("reproduce")
@click.option("--model", default=None, help="Base model (default: qwen2.5-coder-0.5b-instruct, fetched if needed).")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Corpus (default: build the DDTP corpus into --workdir).")
@click.option("--profile", type=click.Choice(["paper", "cpu", "tiny"]), default="cpu", show_default=True,
              help="paper: the paper's settings (a GPU); cpu: one working session on 2 cores; tiny: the test kit.")
@click.option("--workdir", type=click.Path(path_type=Path), default=Path("results/reproduce"), show_default=True,
              help="Everything the run makes; a second run with the same options resumes here.")
@click.option("--provider", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--stop-after", type=click.Choice(["corpus", "tune", "adapters", "pooled-en", "full", "weights",
                                                  "pooled-weights", "quality", "ood-quality"]),
              default=None, help="Stop after this stage (and write the report of what exists).")
@click.option("--ood", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Also score the headline rows on this corpus from another domain (`modmt data gettext`).")
@click.option("--evidence", type=click.Path(path_type=Path), default=None,
              help="Where the run's committed evidence goes (default: WORKDIR/evidence); the report is built "
                   "from it alone. An existing evidence folder of the same run is resumed from (a new machine).")
def reproduce_command(model, data, profile, workdir, provider, stop_after, ood, evidence):
    """Table 1 end to end: adapters, full FT, weight learning, chrF++ of every row, report.md (resumable)."""
    from modmt.benchmarks.reproduce import reproduce

    report = reproduce(model, data, profile, workdir, provider, stop_after=stop_after, ood=ood, evidence=evidence)
    click.echo(Path(report).read_text(encoding="utf-8"))
    click.echo(f"report: {report}")


@bench_group.command("evidence")
@click.argument("workdir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The evidence folder to write or refresh.")
def evidence_command(workdir, out):
    """Copy a reproduce run's evidence (finished or still running) out of its work folder, then report."""
    from modmt.benchmarks.evidence import write_run_evidence
    from modmt.benchmarks.report import write_report

    write_run_evidence(workdir, out)
    click.echo(f"report: {write_report(out)}")


@bench_group.command("report")
@click.argument("evidence", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--docs", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Also replace the tables between this evidence folder's markers in a Markdown file "
                   "(docs/results.md).")
def report_command(evidence, docs):
    """Rebuild report.md from a reproduce run's evidence folder (committed JSON only, no models)."""
    from modmt.benchmarks.report import update_document, write_report

    report = write_report(evidence)
    click.echo(f"report: {report}")
    if docs is not None:
        update_document(docs, evidence)
        click.echo(f"updated {docs}")


def bench_main():
    run_cli(bench_group, "modmt-bench")


@click.command(name="tune")
@click.argument("base", type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), required=True, help="Corpus with a multi-way dev split.")
@click.option("--split", type=click.Choice(["dev", "devtest"]), default="dev", show_default=True,
              help="The split the weights are chosen on (score on the other one).")
@click.option("--directions", default="all", show_default=True, help="all of BASE's, or a list like ja-zh,en-fr.")
@click.option("--grid", default=",".join(GRID), show_default=True,
              help="The w_in:w_out ratios tried (IN:OUT, IN:OUT@SCALE for a stronger or weaker delta).")
@click.option("--limit", type=POSITIVE_INT, default=16, show_default=True,
              help="Segments per direction and ratio: the budget (20 directions x 6 ratios x 16 = 1920 decodes).")
@click.option("--beam", type=BEAM, default=1, show_default=True)
@click.option("--max-new-tokens", type=NEW_TOKENS, default=128, show_default=True)
@click.option("--batch", type=BATCH, default=8, show_default=True)
@click.option("--provider", type=click.Choice(["auto", "cuda", "cpu"]), default="auto", show_default=True)
@click.option("--threads", type=THREADS, default=None)
def tune_command(base, data, split, directions, grid, limit, beam, max_new_tokens, batch, provider, threads):
    """Choose w_in:w_out per direction of the shared base BASE on a dev split; record them in BASE.

    Every ratio of --grid is decoded for every direction through BASE's routed graph and scored with
    chrF++ and its off-target share; each direction keeps its best ratio, written to
    BASE/tuned_weights.json with its dev scores and the trace. `modmt serve BASE`, `modmt-translate
    BASE` and the Python API use them where a request names no w (an explicit --w still wins).
    """
    import sys

    from modmt.benchmarks.weight_tuning import summary_lines, tune_weights
    from modmt.runtime.decoding import DecodeSettings
    from modmt.runtime.languages import load_registry
    from modmt.runtime.merge_weights import parse_weights
    from modmt.train.corpus import open_corpus

    registry = load_registry()
    ratios = [w.strip() for w in grid.split(",") if w.strip()]
    for w in ratios:
        if w == "learned":
            raise ModmtError("--grid takes IN:OUT ratios; learned weights are exported with --w learned")
        parse_weights(w)  # a malformed ratio: one line before the model loads
    pairs = parse_directions(directions, registry)
    result = tune_weights(base, open_corpus(data, registry), split, pairs, ratios, limit,
                          DecodeSettings(beam, max_new_tokens, batch_size=batch), provider, threads,
                          command=" ".join(["modmt-tune", *sys.argv[1:]]))
    for line in summary_lines(result, base):
        click.echo(line)


def tune_main():
    run_cli(tune_command, "modmt-tune")
