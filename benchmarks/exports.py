"""Compare exports of one direction (fp32, int8, int4, shared-base): chrF++, time, size, and fp32 logit parity."""
import time
from pathlib import Path

import numpy as np

from modmt.runtime.decoding import left_pad
from modmt.runtime.errors import ModmtError
from modmt.runtime.onnx_decoder import prefill_positions
from modmt.runtime.translator import Translator


def disk_bytes(export: Path) -> int:
    return sum(p.stat().st_size for p in export.rglob("*") if p.is_file())


def compare_exports(exports: list[Path], sources: list[str], references: list[str], beam: int, batch: int,
                    max_new_tokens: int, provider: str, chrf) -> list[dict]:
    rows = []
    for export in exports:
        translator = Translator(export, provider=provider)
        started = time.perf_counter()
        hyps = translator.translate(sources, beam=beam, max_new_tokens=max_new_tokens, batch_size=batch)
        seconds = time.perf_counter() - started
        manifest = translator.manifest
        rows.append({"export": str(export), "dtype": manifest["dtype"], "quantization": manifest["quantization"],
                     "kind": manifest.get("kind", "standalone"), "chrf": chrf.corpus_score(hyps, [references]).score,
                     "seconds": seconds, "load_s": translator.load_seconds, "mb": disk_bytes(export) / 1e6,
                     "recipe": manifest.get("quantization_recipe"), "hypotheses": hyps})
    add_differences(rows, references, chrf)
    return rows


def add_differences(rows: list[dict], references: list[str], chrf) -> None:
    """chrF++ of each export minus the first's, with a 95 % paired bootstrap interval over segments."""
    from modmt.benchmarks.significance import SegmentStats

    stats = SegmentStats(chrf)
    for i, row in enumerate(rows):
        stats.add(str(i), "direction", row["hypotheses"], references)
    for i, row in enumerate(rows):
        diff = stats.difference(str(i), "0", ["direction"])
        row["delta"] = {"value": diff.value, "low": diff.low, "high": diff.high}


def logit_parity(export: Path, sources: list[str]) -> dict:
    """Max |ONNX - PyTorch| of the last-position logits, the PyTorch side merged from the export's own pool."""
    import torch

    from modmt.export.direction import ExportOptions, merged_model
    from modmt.runtime.merge_weights import weights_argument
    from modmt.train.pool import Pool

    translator = Translator(export, provider="cpu")
    manifest = translator.manifest
    if "pool" not in manifest:
        raise ModmtError(f"{export} records no adapter pool (an older export); re-export it to check parity")
    model, _, _ = merged_model(Pool(manifest["pool"]), manifest["src"], manifest["tgt"],
                               ExportOptions(weights=weights_argument(manifest["weights"]), setting=manifest["setting"], targets=manifest.get("targets")),
                               manifest["base_model"])
    ids, mask = left_pad([translator.encode(s)[0] for s in sources], translator.pad_id)
    ours = translator.decoder.prefill(ids, mask)[0]
    positions = prefill_positions(mask)
    with torch.no_grad():
        theirs = model(torch.tensor(ids), attention_mask=torch.tensor(mask),
                       position_ids=torch.tensor(positions)).logits[:, -1].float().numpy()
    return {"max_abs_diff": float(np.abs(ours - theirs).max()), "max_abs_logit": float(np.abs(theirs).max()),
            "prompts": len(sources)}


def summarize_exports(files: list[Path]) -> str:
    """Markdown: per variant (by position in each run), mean chrF++ and mean difference to the first, over directions."""
    import json

    from modmt.benchmarks.quality import chrf_scorer
    from modmt.benchmarks.significance import SegmentStats

    runs = [json.loads(Path(f).read_text()) for f in files]
    variants = len(runs[0]["rows"])
    if any(len(r["rows"]) != variants or "references" not in r for r in runs):
        raise ModmtError("every run needs the same variants in the same order, from this version of `modmt-bench exports`")
    chrf = chrf_scorer()
    stats = SegmentStats(chrf)
    directions = []
    for run in runs:
        direction = f"{run['src']}-{run['tgt']}"
        directions.append(direction)
        for i, row in enumerate(run["rows"]):
            stats.add(str(i), direction, row["hypotheses"], run["references"])
    lines = [f"{len(runs)} directions ({', '.join(directions)}), {runs[0]['segments']} segments each, beam "
             f"{runs[0]['beam']}; chrF++ {chrf.get_signature()}", "",
             "| variant | MB (mean) | mean chrF++ | Δ to the first [95 % CI] | seconds (sum) |", "|---|---:|---:|---:|---:|"]
    for i in range(variants):
        rows = [run["rows"][i] for run in runs]
        label = rows[0]["quantization"] if rows[0]["quantization"] != "none" else rows[0]["dtype"]
        lines.append(f"| {label} | {sum(r['mb'] for r in rows) / len(rows):.0f} | "
                     f"{stats.mean_interval(str(i), directions).value:.2f} | "
                     f"{stats.difference(str(i), '0', directions)} | {sum(r['seconds'] for r in rows):.1f} |")
    return "\n".join(lines) + "\n"
