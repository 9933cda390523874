"""`modmt-bench latency`: load time, batch-1 latency percentiles, batch-N throughput and peak memory per engine."""
import gc
import json
import logging
import os
from pathlib import Path

import numpy as np

from modmt.benchmarks.engines import (CTranslate2Engine, EngineMissing, ModmtEngine, OptimumEngine,
                                      TransformersEngine, timed)
from modmt.benchmarks.roofline import read_bandwidth, weight_bytes_per_token
from modmt.runtime.cpu_features import cpu_description
from modmt.runtime.errors import ModmtError
from modmt.runtime.ort_options import OrtOptions

log = logging.getLogger(__name__)

ENGINES = ("modmt", "transformers", "optimum", "ctranslate2")


def reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM to the current RSS
    except OSError:
        pass


def peak_rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None


def merged_hf_dir(manifest: dict, work: Path) -> Path:
    """The export's merged weights as a Hugging Face directory, for the peers that load one (cached)."""
    from modmt.export.direction import ExportOptions, merged_model
    from modmt.runtime.merge_weights import weights_argument
    from modmt.train.models import load_tokenizer
    from modmt.train.pool import Pool

    weights = weights_argument(manifest["weights"])
    out = work / f"merged-{manifest['src']}-{manifest['tgt']}-s{manifest['setting']}-{weights.replace(':', '_')}"
    if not (out / "config.json").exists():
        model, base_dir, _ = merged_model(Pool(manifest["pool"]), manifest["src"], manifest["tgt"],
                                          ExportOptions(weights=weights, setting=manifest["setting"]), manifest["base_model"])
        model.save_pretrained(out, safe_serialization=True)
        load_tokenizer(base_dir).save_pretrained(out)
    return out


def optimum_dir(hf_dir: Path, work: Path) -> Path:
    """Optimum's own export of the merged model (all-position logits, its default graph)."""
    out = work / f"optimum-{hf_dir.name}"
    if not (out / "model.onnx").exists():
        from optimum.exporters.onnx import main_export

        main_export(str(hf_dir), str(out), task="text-generation-with-past", do_validation=False)
    return out


def measure(engine, segments, batch, beam, max_new_tokens, count_tokens, latency_beam) -> dict:
    """Batch-1 latency and tokens/s at `latency_beam`, then throughput over all segments at batch/beam."""
    per_sentence, tokens_1 = [], 0
    for text in segments:
        outputs, seconds = timed(engine.translate, [text], latency_beam, max_new_tokens, 1)
        per_sentence.append(seconds)
        tokens_1 += count_tokens(outputs[0])
    outputs, seconds = timed(engine.translate, segments, beam, max_new_tokens, batch)
    tokens = sum(count_tokens(o) for o in outputs)
    return {"p50_ms": 1000 * float(np.percentile(per_sentence, 50)), "p90_ms": 1000 * float(np.percentile(per_sentence, 90)),
            "p99_ms": 1000 * float(np.percentile(per_sentence, 99)), "batch1_tokens_per_s": tokens_1 / sum(per_sentence),
            "sentences_per_s": len(segments) / seconds, "tokens_per_s": tokens / seconds, "outputs": outputs}


def run_latency(exports: list[Path], segments: list[str], engines: list[str], batch: int, beam: int,
                max_new_tokens: int, work: Path, threads: int | None, provider: str, latency_beam: int = 1,
                ort_options: OrtOptions = OrtOptions()) -> list[dict]:
    unknown = set(engines) - set(ENGINES)
    if unknown:
        raise ModmtError(f"unknown engine(s) {sorted(unknown)}; choose from {', '.join(ENGINES)}")
    work.mkdir(parents=True, exist_ok=True)
    rows, peers_done = [], set()
    for export in exports:
        reference = ModmtEngine(export, provider=provider, threads=threads, ort_options=ort_options)
        manifest = reference.translator.manifest
        count = reference.decode_count
        plans = []
        if "modmt" in engines:
            plans.append(("modmt", reference.precision, lambda: ModmtEngine(export, provider=provider, threads=threads,
                                                                              ort_options=ort_options)))
        hf_dir = None
        for name in engines:
            if name == "modmt":
                continue
            # CTranslate2's int8 is int8 x int8 (rows of activations quantized at run time): the peer of
            # both modmt's weight-only int8 and its w8a8.
            int8 = reference.precision.startswith(("int8", "w8a8"))
            precision = "int8" if name == "ctranslate2" and int8 else "fp32"
            if (name, precision) in peers_done:
                continue
            peers_done.add((name, precision))
            hf_dir = hf_dir or merged_hf_dir(manifest, work)
            if name == "transformers":
                plans.append((name, "fp32", lambda: TransformersEngine(hf_dir, reference, threads=threads)))
            elif name == "optimum":
                plans.append((name, "fp32", lambda: OptimumEngine(optimum_dir(hf_dir, work), reference)))
            elif name == "ctranslate2":
                quant = "int8_float32" if precision == "int8" else "float32"
                plans.append((name, precision, lambda q=quant: CTranslate2Engine(hf_dir, reference, work, q, threads)))
        for name, precision, make in plans:
            gc.collect()
            reset_peak_rss()
            log.info(f"  {name} ({precision}) ...")
            try:
                engine, load_s = timed(make)
            except EngineMissing as e:
                rows.append({"engine": name, "precision": precision, "skipped": str(e)})
                log.info(f"  {name}: skipped ({e})")
                continue
            row = {"engine": name, "precision": precision, "load_s": load_s, "export": str(export),
                   **measure(engine, segments, batch, beam, max_new_tokens, count, latency_beam)}
            row["peak_rss_mb"] = peak_rss_mb()
            if name == "modmt":
                row["weight_mb_per_token"] = weight_bytes_per_token(Path(engine.translator.decoder.model_path)) / 1e6
            rows.append(row)
            del engine
    bandwidth = read_bandwidth(threads or os.cpu_count() or 1)
    for row in rows:
        row["read_gb_per_s"] = bandwidth / 1e9
        if "weight_mb_per_token" in row:  # the batch-1 ceiling if decoding were bound by reading weights
            row["roofline_tokens_per_s"] = bandwidth / (row["weight_mb_per_token"] * 1e6)
    fastest_peer = max((r["sentences_per_s"] for r in rows if r["engine"] != "modmt" and "skipped" not in r), default=None)
    for row in rows:
        if "skipped" not in row and fastest_peer:
            row["vs_fastest_peer"] = row["sentences_per_s"] / fastest_peer
    return rows


def latency_markdown(rows: list[dict], batch: int, beam: int, n: int, latency_beam: int = 1) -> str:
    lines = [f"| engine | precision | load s | p50 ms | p90 ms | p99 ms | tok/s | roofline tok/s (batch 1, beam "
             f"{latency_beam}) | sent/s | tok/s (batch {batch}, beam {beam}) | peak RSS MB | x fastest peer |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['engine']} | {r['precision']} | skipped: {r['skipped']} ||||||||||")
            continue
        roofline = f"{r['roofline_tokens_per_s']:.1f}" if "roofline_tokens_per_s" in r else "–"
        lines.append(f"| {r['engine']} | {r['precision']} | {r['load_s']:.2f} | {r['p50_ms']:.0f} | {r['p90_ms']:.0f} | "
                     f"{r['p99_ms']:.0f} | {r['batch1_tokens_per_s']:.1f} | {roofline} | {r['sentences_per_s']:.2f} | "
                     f"{r['tokens_per_s']:.1f} | {r['peak_rss_mb'] or 0:.0f} | {r.get('vs_fastest_peer', 0):.2f} |")
    machine = f"{cpu_description()}; {os.cpu_count()} cores"
    bandwidth = next((r["read_gb_per_s"] for r in rows if "read_gb_per_s" in r), None)
    roofline = (f"; roofline = measured read bandwidth ({bandwidth:.1f} GB/s, float32 MatMul streaming 1 GiB) / weight bytes read per "
                "token (every initializer but the gathered embedding)" if bandwidth else "")
    return (f"{n} segments; batch 1 at beam {latency_beam} for latency, batch {batch} at beam {beam} for throughput; "
            f"machine: {machine}{roofline}\n\n" + "\n".join(lines) + "\n")


def save_latency(rows, out: Path, markdown: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "latency.md").write_text(markdown)
    (out / "latency.json").write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
