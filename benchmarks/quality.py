"""`modmt-bench quality`: chrF++ of every direction and every Table-1 method, cached per (direction, method)."""
import json
import logging
import shutil
import time
from itertools import permutations
from pathlib import Path

from tqdm import tqdm

from modmt.benchmarks.off_target import off_target_markdown, off_target_shares
from modmt.benchmarks.table1 import Method, build_table, table1_methods, to_csv, to_markdown
from modmt.runtime.atomic import write_json_atomic
from modmt.runtime.errors import ModmtError
from modmt.train.pool import Pool

log = logging.getLogger(__name__)


def chrf_scorer():
    try:
        from sacrebleu.metrics import CHRF
    except ImportError:
        raise ModmtError("chrF++ needs sacrebleu: pip install 'modmt[bench]'") from None
    chrf = CHRF(word_order=2)  # chrF++
    # sacrebleu learns the reference count for its signature from the first scoring; score a
    # one-reference dummy so the signature exists even when every cell comes from the cache.
    chrf.corpus_score(["x"], [["x"]])
    return chrf


class TorchMethods:
    """Every method on one in-memory base: fold a direction's deltas in, translate, restore the weights."""

    def __init__(self, pool: Pool, full_dir: Path | None):
        import torch
        from transformers import AutoModelForCausalLM

        from modmt.train.models import load_tokenizer, resolve_model

        self.pool = pool
        self.model_dir = resolve_model(pool.read()["base_model"])
        self.model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=torch.float32).eval()
        self.tokenizer = load_tokenizer(self.model_dir)
        self.full_dir = full_dir
        self._full = None

    def translate(self, src, tgt, method: Method, texts, beam, max_new_tokens, batch_size):
        import torch

        from modmt.export.merge import fold_deltas
        from modmt.runtime.lora_merge import load_adapter, merged_deltas
        from modmt.runtime.merge_weights import parse_weights

        model = self.model
        saved = {}
        if method.key == "full":
            if self._full is None:
                from transformers import AutoModelForCausalLM

                self._full = AutoModelForCausalLM.from_pretrained(self.full_dir, dtype=torch.float32).eval()
            model = self._full
        elif method.key != "base":
            deltas = merged_deltas(load_adapter(self.pool.require("in", src)),
                                   load_adapter(self.pool.require("out", tgt)),
                                   parse_weights(method.weights, self.pool.weights_file(src, tgt)), method.setting)
            params = dict(model.named_parameters())
            saved = {name: params[name].detach().clone() for name in deltas}
            fold_deltas(model, deltas)
        try:
            return generate_texts(model, self.tokenizer, src, tgt, texts, beam, max_new_tokens, batch_size)
        finally:
            with torch.no_grad():
                params = dict(model.named_parameters())
                for name, value in saved.items():
                    params[name].copy_(value)  # exactly the base again


def generate_texts(model, hf_tokenizer, src, tgt, texts, beam, max_new_tokens, batch_size) -> list[str]:
    """transformers `generate` with modmt's prompt (the runtime's token ids), length-sorted batches."""
    import torch

    from modmt.benchmarks.engines import generate_batches
    from modmt.runtime.languages import load_registry
    from modmt.train.prompts import render_prompt, stop_token_ids

    registry = load_registry()
    template = render_prompt(hf_tokenizer, registry.get(src), registry.get(tgt))
    stops = stop_token_ids(template, model.generation_config.eos_token_id)
    pad = hf_tokenizer.pad_token_id if hf_tokenizer.pad_token_id is not None else stops[0]

    def generate(ids, mask):
        with torch.no_grad():
            out = model.generate(torch.tensor(ids, device=model.device), attention_mask=torch.tensor(mask, device=model.device),
                                 num_beams=beam, do_sample=False, max_new_tokens=max_new_tokens,
                                 eos_token_id=stops, pad_token_id=pad)
        return [[t for t in row[ids.shape[1]:].tolist() if t not in stops] for row in out]

    prompts = [template.source_ids(hf_tokenizer.backend_tokenizer, t) for t in texts]
    outputs = generate_batches(generate, prompts, pad, batch_size)
    return [" ".join(hf_tokenizer.decode(tokens, skip_special_tokens=True).split()) for tokens in outputs]


class OnnxMethods:
    """Every method through the deployable path: the runtime on shared-base exports.

    The base is exported once; each (direction, method) is a manifest folded in at load, so a
    Table-1 run costs one export, not one per row.
    """

    def __init__(self, pool: Pool, work: Path, provider: str, full_dir: Path | None = None):
        self.pool, self.work, self.provider, self.full_dir = pool, work, provider, full_dir

    @staticmethod
    def remove_base_exports(work: Path) -> None:
        """Delete the model-sized base exports under `work` (2.4-2.6 GB each on the 0.5B model); the
        per-direction manifests stay, and a later translate exports the base and its direction again."""
        for base in ("shared-base", "full-base"):
            shutil.rmtree(work / "exports" / base, ignore_errors=True)

    def translate(self, src, tgt, method: Method, texts, beam, max_new_tokens, batch_size):
        from modmt.export.direction import ExportOptions
        from modmt.export.shared_base import export_model_base, export_plain_direction, export_shared_direction
        from modmt.runtime.languages import load_registry
        from modmt.runtime.translator import Translator

        out = self.work / "exports" / f"{src}-{tgt}" / method.key
        base = self.work / "exports" / ("full-base" if method.key == "full" else "shared-base")
        # A direction's export is made again when its base was released (remove_base_exports) since.
        current = (out / "modmt.json").exists() and (base / "modmt.json").exists()
        if method.key == "full" and not current:
            # The fine-tuned model is a shared base of its own: exported once, prompted per direction.
            if self.full_dir is None:
                raise ModmtError("the full fine-tuning row needs --full-model DIR (a `modmt-train full` output)")
            if not (base / "modmt.json").exists():
                export_model_base(self.full_dir, base)
            export_plain_direction(base, src, tgt, out, load_registry())
        elif not current:
            export_shared_direction(self.pool.root, src, tgt,
                                    ExportOptions(weights=method.weights, setting=method.setting),
                                    base, out, load_registry(), force=True)
        translator = Translator(out, provider=self.provider, verify="size")
        return [" ".join(t.split()) for t in translator.translate(texts, beam=beam, max_new_tokens=max_new_tokens,
                                                                   batch_size=batch_size)]


def run_quality(pool_dir: Path, corpus, split: str, directions: list[tuple[str, str]] | None, limit: int | None,
                engine: str, out: Path, beam: int = 5, max_new_tokens: int = 128, batch_size: int = 8,
                full_dir: Path | None = None, methods: list[str] | None = None, provider: str = "auto") -> dict:
    pool = Pool(pool_dir)
    meta = pool.read()
    langs = [code for code in corpus.registry.codes if code in meta["languages"]]  # registry order: en first
    directions = directions or list(permutations(langs, 2))
    learned = all(pool.weights_file(s, t).exists() for s, t in directions)
    chosen = table1_methods(full=full_dir is not None, learned=learned)
    if methods:
        unknown = set(methods) - {m.key for m in chosen}
        if unknown:
            raise ModmtError(f"unknown method(s) {sorted(unknown)}; choose from {', '.join(m.key for m in chosen)}")
        chosen = [m for m in chosen if m.key in methods]
    chrf = chrf_scorer()
    table = corpus.multiway(split, sorted({l for d in directions for l in d}))
    n = min(limit or len(next(iter(table.values()))), len(next(iter(table.values()))))
    cache = out / "cache" / f"{split}-n{n}-beam{beam}-{engine}"
    runner = TorchMethods(pool, full_dir) if engine == "torch" else OnnxMethods(pool, out, provider, full_dir)

    results = {m.key: {} for m in chosen}
    off_target = {m.key: {} for m in chosen}  # per cell: benchmarks/off_target.py's shares
    total = len(chosen) * len(directions)
    with tqdm(total=total, desc="chrF++") as bar:
        for method in chosen:
            for src, tgt in directions:
                path = cache / f"{src}-{tgt}" / f"{method.key}.json"
                if path.exists():  # an interrupted run resumes here
                    cell = json.loads(path.read_text())
                    results[method.key][(src, tgt)] = cell["chrf"]
                    off_target[method.key][(src, tgt)] = cell.get("off_target_shares") or off_target_shares(
                        cell["hypotheses"], cell["references"], src, tgt, langs, table[src][:n])
                    bar.update(1)
                    continue
                sources, references = table[src][:n], table[tgt][:n]
                started = time.perf_counter()
                hyps = runner.translate(src, tgt, method, sources, beam, max_new_tokens, batch_size)
                score = chrf.corpus_score(hyps, [references]).score
                shares = off_target_shares(hyps, references, src, tgt, langs, sources)
                write_json_atomic(path, {"src": src, "tgt": tgt, "method": method.key, "chrf": score, "n": n,
                                         "seconds": round(time.perf_counter() - started, 2),
                                         "off_target_shares": shares, "hypotheses": hyps, "references": references})
                results[method.key][(src, tgt)] = score
                off_target[method.key][(src, tgt)] = shares
                bar.update(1)

    adapters = meta["adapters"]
    params = {"full": 1.0}
    for method in chosen:
        if method.key == "in":
            params["in"] = max(a["trainable_ratio"] for k, a in adapters.items() if k.startswith("in/"))
        elif method.key == "out":
            params["out"] = max(a["trainable_ratio"] for k, a in adapters.items() if k.startswith("out/"))
        elif method.merged:
            params[method.key] = max(adapters[f"in/{s}"]["trainable_ratio"] + adapters[f"out/{t}"]["trainable_ratio"]
                                     for s, t in directions)
    rows = build_table(results, chosen, langs, params)
    markdown = to_markdown(rows, langs)
    signature = str(chrf.get_signature())
    out.mkdir(parents=True, exist_ok=True)
    (out / "table1.md").write_text(f"chrF++ ({signature}), {split}, {n} segments per direction, beam {beam}, "
                                   f"engine {engine}\n\n{markdown}\n\n{off_target_markdown(off_target, chosen)}")
    (out / "results.csv").write_text(to_csv(results, chosen))
    write_json_atomic(out / "results.json", {
        "signature": signature, "split": split, "segments": n, "beam": beam, "engine": engine,
        "directions": [f"{s}-{t}" for s, t in directions], "languages": langs,
        "scores": {m: {f"{s}-{t}": v for (s, t), v in r.items()} for m, r in results.items()},
        "off_target": {m: {f"{s}-{t}": v for (s, t), v in r.items()} for m, r in off_target.items()},
        "table": rows})
    return {"markdown": markdown, "signature": signature, "rows": rows, "results": results}
