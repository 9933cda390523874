"""Export one direction: merge its two adapters, fold the deltas into the base, ONNX via Optimum, manifest.

The export is built in a hidden sibling folder and renamed into place at the end, so a killed
export never leaves a directory that looks finished.
"""
import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import onnx

from modmt.export.merge import fold_factors
from modmt.export.quantize import CALIBRATION_NEEDED, RECIPES
from modmt.runtime.atomic import atomic_directory
from modmt.runtime.errors import ModmtError
from modmt.runtime.fingerprint import model_fingerprint
from modmt.runtime.languages import LanguageRegistry
from modmt.runtime.lora_merge import load_adapter, merged_factors
from modmt.runtime.manifest import write_manifest
from modmt.runtime.merge_weights import parse_weights
from modmt.train.pool import Pool

log = logging.getLogger(__name__)


# What the runtime reads beside model.onnx (and the shared base's model.onnx.data).
RUNTIME_FILES = ("tokenizer.json", "config.json", "generation_config.json")


@dataclass
class ExportOptions:
    weights: str = "3:7"
    setting: int = 1
    targets: list[str] | None = None   # module names to merge (default: all the adapters cover)
    dtype: str = "fp32"                # fp32 | fp16
    quantize: str = "none"             # none | a recipe of export/quantize.py
    last_logits_only: bool = True
    calibration: Path | None = None    # corpus directory, for recipes that calibrate (w8a8)

    def check(self) -> None:
        if self.dtype not in ("fp32", "fp16") or self.quantize not in ("none", *RECIPES):
            raise ModmtError(f"--dtype is fp32 or fp16; --quantize is none, {', '.join(RECIPES)}")
        if self.dtype == "fp16" and self.quantize != "none":
            raise ModmtError("quantized exports keep fp32 activations; use --dtype fp32 with --quantize")
        calibrates = self.quantize != "none" and bool(RECIPES[self.quantize].smooth)
        if self.calibration is not None and not calibrates:
            raise ModmtError(f"--calibration is read only by recipes that calibrate (w8a8), not --quantize "
                             f"{self.quantize}; drop it")
        if calibrates and self.calibration is None:
            raise ModmtError(f"--quantize {self.quantize} calibrates on training text: pass --calibration CORPUS "
                             "(a corpus directory such as the one `modmt data ddtp` builds)")
        if calibrates and not Path(self.calibration).is_dir():
            raise ModmtError(f"--calibration {self.calibration} is not a directory; point it at a corpus "
                             "(`modmt data ddtp --out DIR` builds one)")


def tool_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in ("modmt", "torch", "transformers", "peft", "optimum", "optimum-onnx", "onnx", "onnxruntime"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    return versions


def check_adapter_base(path: Path, fingerprint: str) -> None:
    meta_path = path / "modmt-adapter.json"
    if meta_path.exists():
        recorded = json.loads(meta_path.read_text()).get("base_fingerprint")
        if recorded and recorded != fingerprint:
            raise ModmtError(f"adapter {path} was trained on another base model ({recorded}, the pool's is "
                             f"{fingerprint}); retrain it into this pool")


def merged_model(pool: Pool, src: str, tgt: str, options: ExportOptions, model_dir: Path | None = None):
    """The base model with the direction's merged deltas folded in, plus what the manifest records."""
    import torch
    from transformers import AutoModelForCausalLM

    from modmt.train.models import resolve_model

    meta = pool.read()
    model_dir = resolve_model(model_dir or meta["base_model"])
    fingerprint = model_fingerprint(model_dir)
    in_dir = pool.require("in", src, fingerprint)
    out_dir = pool.require("out", tgt, fingerprint)
    for path in (in_dir, out_dir):
        check_adapter_base(path, fingerprint)
    if options.weights == "base":  # the pre-trained model itself: a benchmark row, no adapters
        factors, weights_json = {}, {"base": True}
    else:
        weights = parse_weights(options.weights, pool.weights_file(src, tgt))
        lora_in, lora_out = load_adapter(in_dir), load_adapter(out_dir)
        factors = merged_factors(lora_in, lora_out, weights, options.setting, options.targets)  # (B, A) per matrix
        weights_json = weights.to_json()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    fold_factors(model, factors)
    adapters = meta["adapters"]
    trainable = 0 if not factors else \
        adapters[f"in/{src}"]["trainable_parameters"] + adapters[f"out/{tgt}"]["trainable_parameters"]
    base_parameters = sum(p.numel() for p in model.parameters())
    record = {"base_fingerprint": fingerprint, "base_model": str(model_dir), "pool": str(pool.root.resolve()),
              "src": src, "tgt": tgt, "languages": meta.get("languages", []), "weights": weights_json, "setting": options.setting,
              "merged_modules": sorted(factors), "trainable_parameters": trainable,
              "trainable_ratio": trainable / base_parameters, "base_parameters": base_parameters}
    return model, model_dir, record


def write_onnx(model, tokenizer, final: Path, options: ExportOptions, weight_bytes: int, label: str,
               external_data: bool = False, calibration: list | None = None,
               pad_id: int = 0) -> tuple[dict[str, str], dict]:
    """Export `model` (a torch model, consumed: export/torch_to_onnx.py moves its weights to disk
    before the trace) into `final`, then the graph steps, each on one tensor at a time
    (export/onnx_weights.py): folded weight transposes, last-position logits, attention
    without repeated KV heads, dtype, quantization. Returns {parameter: initializer} of the folded
    Linear weights (the shared base indexes them) and what each graph step did (modmt.json's
    "graph_steps"). tokenizer: the model's transformers tokenizer, saved beside the graph as Optimum does."""
    from modmt.export import onnx_graph
    from modmt.export.grouped_attention import grouped_attention
    from modmt.export.onnx_weights import GraphWeights
    from modmt.export.torch_to_onnx import WEIGHTS_FILE, torch_to_onnx

    with tempfile.TemporaryDirectory(prefix=".optimum.", dir=final.parent) as work:
        raw = Path(work) / "optimum"
        log.info(f"exporting {label} with Optimum (text-generation-with-past) ...")
        weights = GraphWeights.load(torch_to_onnx(model, raw), owned=(WEIGHTS_FILE,))
        tokenizer.save_pretrained(raw)
        try:
            folded = onnx_graph.fold_weight_transposes(weights)
            steps = {"fold_weight_transposes": f"{len(folded)} weights stored transposed"}
            steps["last_position_logits"] = "skipped: --all-logits"
            if options.last_logits_only:
                onnx_graph.last_position_logits(weights.model)
                steps["last_position_logits"] = "applied"
            config = json.loads((raw / "config.json").read_text())
            steps["grouped_attention"] = grouped_attention(
                weights.model, config["num_attention_heads"],
                config.get("num_key_value_heads") or config["num_attention_heads"])
            large = external_data or weight_bytes > onnx_graph.EXTERNAL_DATA_ABOVE
            if options.dtype == "fp16":
                onnx_graph.to_fp16(weights)
            elif options.quantize != "none":
                recipe = RECIPES[options.quantize]
                float_graph = None
                if recipe.smooth:  # calibration runs the float graph: its weights are the files in `raw`
                    float_graph = raw / "float.onnx"
                    onnx.save_model(weights.model, str(float_graph))
                steps["smoothquant"] = onnx_graph.to_quantized(weights, recipe, float_graph, calibration, pad_id)
                large = external_data or weight_bytes * recipe.bits // 32 > onnx_graph.EXTERNAL_DATA_ABOVE
            weights.save(final / "model.onnx", external_data=large)
        finally:
            weights.close()
        for name in RUNTIME_FILES:
            if (raw / name).exists():
                shutil.copy2(raw / name, final / name)
    return folded, {"model_type": config.get("model_type"), **steps}


def direction_record(tokenizer, src, tgt, registry: LanguageRegistry, generation_config: Path) -> dict:
    """What the runtime needs to prompt and stop for a direction: prefix/suffix ids, stop and pad ids."""
    from modmt.train.prompts import render_prompt, stop_token_ids

    template = render_prompt(tokenizer, registry.get(src), registry.get(tgt))
    stops = stop_token_ids(template, json.loads(generation_config.read_text()).get("eos_token_id"))
    return {"prompt": template.to_json(), "stop_token_ids": stops,
            "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]}


def export_direction(pool_dir: Path, src: str, tgt: str, options: ExportOptions, out: Path,
                     registry: LanguageRegistry, force: bool = False, model_dir: Path | None = None) -> dict:
    from modmt.train.models import load_tokenizer
    from modmt.train.prompts import render_prompt

    options.check()
    registry.get(src), registry.get(tgt)
    if out.exists() and not force:
        raise ModmtError(f"{out} already exists; choose another --out or pass --force to replace it")
    started = time.perf_counter()
    model, base_dir, record = merged_model(Pool(pool_dir), src, tgt, options, model_dir)
    tokenizer = load_tokenizer(base_dir)
    recipe = RECIPES.get(options.quantize)
    sequences = None if recipe is None else calibration_text(
        options.calibration, recipe, src, tgt, tokenizer.backend_tokenizer,
        render_prompt(tokenizer, registry.get(src), registry.get(tgt)))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(out) as final:
        _, steps = write_onnx(model, tokenizer, final, options, 4 * record["base_parameters"], f"{src}->{tgt}",
                              calibration=sequences, pad_id=tokenizer.pad_token_id or 0)
        manifest = write_manifest(final, {
            **record, "dtype": options.dtype, "quantization": options.quantize, "graph_steps": steps,
            "quantization_recipe": recipe_record(recipe, options.calibration, sequences) if recipe else None,
            "logits": "last" if options.last_logits_only else "all",
            **direction_record(tokenizer, src, tgt, registry, final / "generation_config.json"),
            "export_seconds": round(time.perf_counter() - started, 1), "tools": tool_versions()})
    size = sum(p.stat().st_size for p in out.iterdir())
    log.info(f"exported {src}->{tgt} (w {options.weights}, setting {options.setting}, {options.dtype}, "
               f"quantize {options.quantize}) to {out}: {size / 1e6:.1f} MB in {manifest['export_seconds']} s; "
               f"trainable ratio {100 * record['trainable_ratio']:.2f}%")
    return manifest


def recipe_record(recipe, corpus_dir, sequences) -> dict:
    record = recipe.to_json()
    if sequences is not None:
        record["calibration"] = {"corpus": str(corpus_dir), "split": "train", "sequences": len(sequences)}
    return record


def calibration_text(corpus_dir: Path | None, recipe, src: str, tgt: str, tokenizer, template) -> list | None:
    """Training sequences for a recipe that calibrates (None for one that does not); tokenizer: `tokenizers`."""
    if not recipe.smooth:
        return None
    if corpus_dir is None:
        raise ModmtError(CALIBRATION_NEEDED)
    from modmt.export.smoothquant import calibration_sequences

    return calibration_sequences(Path(corpus_dir), src, tgt, tokenizer, template)


def quantize_export(source: Path, out: Path, recipe, force: bool = False, calibration: Path | None = None) -> dict:
    """A quantized copy of an fp32 standalone export, without exporting again (recipe: a QuantRecipe).

    For trying recipes side by side: the weights, prompt and stop tokens are the source's.
    calibration: a corpus directory, for recipes that calibrate on its training split.
    """
    from tokenizers import Tokenizer

    from modmt.export import onnx_graph
    from modmt.export.onnx_weights import GraphWeights
    from modmt.runtime.manifest import read_manifest
    from modmt.runtime.prompt import PromptTemplate

    manifest = read_manifest(source, verify="size")
    if manifest.get("kind") or manifest["dtype"] != "fp32" or manifest["quantization"] != "none":
        raise ModmtError(f"{source} is not an fp32, unquantized standalone export")
    if out.exists() and not force:
        raise ModmtError(f"{out} already exists; choose another --out or pass --force to replace it")
    started = time.perf_counter()
    keep = {k: v for k, v in manifest.items() if k not in ("format", "files", "export_seconds")}
    sequences = calibration_text(calibration, recipe, manifest["src"], manifest["tgt"],
                                 Tokenizer.from_file(str(source / "tokenizer.json")),
                                 PromptTemplate.from_json(manifest["prompt"]))
    with atomic_directory(out) as final:
        weights = GraphWeights.load(source / "model.onnx", scratch_dir=final)
        try:
            onnx_graph.to_quantized(weights, recipe, source / "model.onnx", sequences, manifest["pad_token_id"])
            weights_bytes = 4 * manifest["base_parameters"] * recipe.bits // 32
            weights.save(final / "model.onnx", external_data=weights_bytes > onnx_graph.EXTERNAL_DATA_ABOVE)
        finally:
            weights.close()
        for name in RUNTIME_FILES:
            shutil.copy2(source / name, final / name)
        # The recipe's --quantize name where it is one of them, so benchmarks can tell variants apart.
        name = next((n for n, r in RECIPES.items() if r == recipe), f"int{recipe.bits}")
        return write_manifest(final, {**keep, "quantization": name,
                                      "quantization_recipe": recipe_record(recipe, calibration, sequences),
                                      "export_seconds": round(time.perf_counter() - started, 1)})
