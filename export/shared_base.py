"""Shared-base exports: the base model exported once, each direction a manifest folded in at load time.

BASE/ holds model.onnx + model.onnx.data (every weight external), an index from each adaptable
weight matrix to its initializer and byte range, and adapters/<role>-<lang>/ (each adapter stored
once, whatever the number of directions using it). A direction folder holds only modmt.json:
its adapters, weights, setting and prompt. The runtime (modmt.runtime.shared_fold) folds the deltas
into those matrices when it creates the session.
"""
import logging
import os
import shutil
import time
from pathlib import Path


from modmt.export.routed_graph import write_routed_graph
from modmt.export.direction import ExportOptions, check_adapter_base, direction_record, tool_versions, write_onnx
from modmt.runtime.atomic import atomic_directory
from modmt.runtime.errors import ModmtError
from modmt.runtime.fingerprint import model_fingerprint, sha256_file
from modmt.runtime.languages import LanguageRegistry
from modmt.runtime.lora_merge import load_adapter, merged_factors
from modmt.runtime.manifest import MANIFEST, read_manifest, write_manifest
from modmt.runtime.merge_weights import parse_weights
from modmt.runtime.shared_fold import BASE_KIND, DIRECTION_KIND, check_side_rank
from modmt.train.pool import Pool

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.onnx.data"


def _index_weights(final: Path, layer_weights: list[str], folded: dict[str, str]) -> dict:
    """Where each decoder-layer Linear weight lies in model.onnx.data: its initializer (stored
    transposed when export/onnx_graph.fold_weight_transposes folded it), byte range and shape."""
    import onnx

    graph = onnx.load(str(final / "model.onnx"), load_external_data=False).graph
    initializers = {init.name: init for init in graph.initializer}
    index = {}
    for name in layer_weights:
        transposed = name in folded
        init = initializers.get(folded.get(name, name))
        ext = {e.key: e.value for e in init.external_data} if init is not None else {}
        if ext.get("location") != WEIGHTS_FILE:
            raise ModmtError(f"cannot find {name} among the exported ONNX weights (was it fused or folded?)")
        index[name] = {"initializer": init.name, "offset": int(ext.get("offset", 0)), "length": int(ext["length"]),
                       "shape": list(init.dims), "transposed": transposed}
    return index


def export_shared_base(pool: Pool, base_dir: Path, registry: LanguageRegistry, model_dir: Path | None = None,
                       quantize: str = "none") -> dict:
    from modmt.train.models import resolve_model

    meta = pool.read()
    model_dir = resolve_model(model_dir or meta["base_model"])
    fingerprint = model_fingerprint(model_dir)
    if fingerprint != meta["base_fingerprint"]:
        raise ModmtError(f"pool {pool.root} was trained on another base model; pass the pool's base model")
    ranks = [info["lora"]["rank"] for info in meta["adapters"].values() if "lora" in info] or [8]
    # Setting 1 stacks both adapters: room for two of the pool's largest rank (more can be re-exported).
    # The routed graph's fixed bank has room for every adapter the pool holds now.
    return export_model_base(model_dir, base_dir, fingerprint, quantize, side_rank=2 * max(ranks),
                             bank_rank=sum(ranks))


def export_model_base(model_dir: Path, base_dir: Path, fingerprint: str | None = None, quantize: str = "none",
                      side_rank: int = 16, bank_rank: int | None = None) -> dict:
    """Export any Hugging Face model directory (the pre-trained base, or a fully fine-tuned model) as a shared base.

    quantize="none": fp32, each direction's deltas folded into the indexed matrices at load.
    quantize="int8"/"int4": the matrices quantized by that recipe, each with a float low-rank side
    path of rank `side_rank` (zeros here) that receives a direction's merged factors at load.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from modmt.export import onnx_graph
    from modmt.export.onnx_weights import GraphWeights
    from modmt.export.quantize import RECIPES
    from modmt.export.quantize import quantize as quantize_graph
    from modmt.train.models import load_tokenizer

    started = time.perf_counter()
    fingerprint = fingerprint or model_fingerprint(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    parameters = sum(p.numel() for p in model.parameters())
    layer_weights = [name for name, p in model.named_parameters() if p.dim() == 2 and ".layers." in name]
    with atomic_directory(base_dir) as final:
        folded, steps = write_onnx(model, load_tokenizer(model_dir), final, ExportOptions(), 4 * parameters,
                            "the shared base", external_data=True)
        index = _index_weights(final, layer_weights, folded)
        record = {"weights_file": WEIGHTS_FILE, "weights_index": index, "quantization": "none", "graph_steps": steps}
        if quantize != "none":
            recipe = RECIPES[quantize]
            weights = GraphWeights.load(final / "model.onnx")
            try:
                paths = onnx_graph.add_lora_side_paths(weights, index, side_rank)
                keep = [n.name for n in weights.graph.node if n.name.startswith("modmt_lora_x")]
                quantize_graph(weights, recipe, keep_float=keep)
                weights.save(final / "model.onnx", external_data=True)
            finally:
                weights.close()
            record = {"weights_file": WEIGHTS_FILE, "side_paths": paths, "quantization": quantize,
                      "quantization_recipe": recipe.to_json(), "graph_steps": steps}
        # Every direction in one session (runtime/routed_translator.py): the same weights, routed side paths.
        record["routed"] = write_routed_graph(final, record, bank_rank)
        manifest = write_manifest(final, {
            "kind": BASE_KIND, "base_fingerprint": fingerprint, "base_model": str(model_dir),
            "base_parameters": parameters, "dtype": "fp32", **record, "logits": "last",
            "export_seconds": round(time.perf_counter() - started, 1), "tools": tool_versions()})
    log.info(f"exported the shared base ({quantize if quantize != 'none' else 'fp32'}) to {base_dir} in "
               f"{manifest['export_seconds']} s")
    return manifest


def _store_adapter(pool: Pool, role: str, lang: str, base_dir: Path, fingerprint: str) -> dict:
    """Copy an adapter into the base once; return its folder and file hashes for the direction manifest."""
    source = pool.require(role, lang, fingerprint)
    check_adapter_base(source, fingerprint)
    rel = Path("adapters") / f"{role}-{lang}"
    target = base_dir / rel
    files = ("adapter_config.json", "adapter_model.safetensors")
    if not target.exists() or any(sha256_file(source / n) != sha256_file(target / n) for n in files):
        with atomic_directory(target) as tmp:
            for name in files:
                shutil.copy2(source / name, tmp / name)
    return {"dir": str(rel), "files": {n: sha256_file(target / n) for n in files}}


def export_shared_direction(pool_dir: Path, src: str, tgt: str, options: ExportOptions, base_dir: Path, out: Path,
                            registry: LanguageRegistry, force: bool = False, model_dir: Path | None = None) -> dict:
    if options.quantize == "w8a8" or options.calibration is not None:
        raise ModmtError("--shared-base stores one base for every direction, so it cannot be calibrated per "
                         "direction: use --quantize int8, int8-b128 or int4 with --shared-base")
    options.check()
    if options.dtype != "fp32" or not options.last_logits_only:
        raise ModmtError("shared-base exports are fp32 (or --quantize with a recipe), last-position logits; drop "
                         "--dtype/--all-logits or export a standalone direction")
    registry.get(src), registry.get(tgt)
    if out.exists() and not force:
        raise ModmtError(f"{out} already exists; choose another --out or pass --force to replace it")
    started = time.perf_counter()
    pool = Pool(pool_dir)
    if not (base_dir / MANIFEST).exists():
        export_shared_base(pool, base_dir, registry, model_dir, options.quantize)
    base = read_manifest(base_dir, verify="size")
    if base.get("kind") != BASE_KIND:
        raise ModmtError(f"{base_dir} is not a shared-base export (it has a {MANIFEST} of another kind)")
    if base.get("quantization", "none") != options.quantize:
        raise ModmtError(f"the shared base {base_dir} is quantized {base.get('quantization', 'none')!r}, not "
                         f"{options.quantize!r}: pass --quantize {base.get('quantization', 'none')} or use another "
                         "--shared-base folder")
    fingerprint = base["base_fingerprint"]
    if pool.read()["base_fingerprint"] != fingerprint:
        raise ModmtError(f"the shared base {base_dir} was exported from another base model than pool {pool_dir}")
    if options.weights == "base":  # the base model itself (a benchmark row): nothing to fold
        return export_plain_direction(base_dir, src, tgt, out, registry, pool.root)
    adapters = {"in": _store_adapter(pool, "in", src, base_dir, fingerprint),
                "out": _store_adapter(pool, "out", tgt, base_dir, fingerprint)}
    weights = parse_weights(options.weights, pool.weights_file(src, tgt))
    weights_json = weights.to_json()
    # Merge once now, so that a rank mismatch or a bad --targets fails here and not at load time.
    factors = merged_factors(load_adapter(base_dir / adapters["in"]["dir"]),
                             load_adapter(base_dir / adapters["out"]["dir"]), weights, options.setting,
                             options.targets)
    targets_of_base = base.get("side_paths") or base["weights_index"]
    missing = sorted(set(factors) - set(targets_of_base))
    if missing:
        raise ModmtError(f"the shared base has no index entry for {missing[0]}; re-export the base")
    check_side_rank(base, factors, base_dir)
    entries = pool.read()["adapters"]
    trainable = entries[f"in/{src}"]["trainable_parameters"] + entries[f"out/{tgt}"]["trainable_parameters"]
    return _write_direction(base_dir, base, src, tgt, out, registry, started, {
        "pool": str(pool.root.resolve()), "weights": weights_json, "setting": options.setting,
        "targets": options.targets, "merged_modules": sorted(factors), "adapters": adapters,
        "trainable_parameters": trainable, "trainable_ratio": trainable / base["base_parameters"]})


def export_all_directions(pool_dir: Path, options: ExportOptions, base_dir: Path, registry: LanguageRegistry,
                          force: bool = False, model_dir: Path | None = None) -> list[Path]:
    """Every direction between the pool's languages onto one shared base, under BASE/directions/SRC-TGT:
    what `modmt serve BASE` and `modmt-translate BASE` route between. Directions already there are kept
    (a killed run continues) unless `force`."""
    from itertools import permutations

    from modmt.runtime.open_exports import DIRECTIONS_FOLDER

    langs = [code for code in registry.codes if code in Pool(pool_dir).read()["languages"]]
    if len(langs) < 2:
        raise ModmtError(f"pool {pool_dir} has adapters for {len(langs)} language(s); directions need two")
    outs = []
    for src, tgt in permutations(langs, 2):
        out = base_dir / DIRECTIONS_FOLDER / f"{src}-{tgt}"
        if force or not (out / MANIFEST).exists():
            export_shared_direction(pool_dir, src, tgt, options, base_dir, out, registry, force=True,
                                    model_dir=model_dir)
        outs.append(out)
    return outs


def export_plain_direction(base_dir: Path, src: str, tgt: str, out: Path, registry: LanguageRegistry,
                           pool_root: Path | None = None) -> dict:
    """A direction that folds nothing: the shared base model itself, prompted for SRC->TGT."""
    base = read_manifest(base_dir, verify="size")
    return _write_direction(base_dir, base, src, tgt, out, registry, time.perf_counter(), {
        "pool": str(pool_root.resolve()) if pool_root else None, "weights": {"base": True}, "setting": 1,
        "targets": None, "merged_modules": [], "adapters": None, "trainable_parameters": 0, "trainable_ratio": 0.0})


def _write_direction(base_dir: Path, base: dict, src: str, tgt: str, out: Path, registry: LanguageRegistry,
                     started: float, merge_record: dict) -> dict:
    from modmt.train.models import load_tokenizer

    tokenizer = load_tokenizer(Path(base["base_model"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(out) as final:
        manifest = write_manifest(final, {
            "kind": DIRECTION_KIND, "base": os.path.relpath(base_dir.resolve(), out.resolve()),
            "base_manifest_sha256": sha256_file(base_dir / MANIFEST), "base_fingerprint": base["base_fingerprint"],
            "base_model": base["base_model"], "src": src, "tgt": tgt, **merge_record,
            "base_parameters": base["base_parameters"], "dtype": "fp32",
            "quantization": base.get("quantization", "none"), "logits": "last",
            **direction_record(tokenizer, src, tgt, registry, base_dir / "generation_config.json"),
            "export_seconds": round(time.perf_counter() - started, 2), "tools": tool_versions()})
    log.info(f"exported {src}->{tgt} on shared base {base_dir} to {out} in {manifest['export_seconds']} s")
    return manifest
