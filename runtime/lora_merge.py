"""Merge LoRA_in(src) and LoRA_out(tgt) into one delta per target weight matrix, with numpy.

Setting 1 (sum of products, PEFT's combination_type="cat"):
    dW = w_in * s_in * B_in @ A_in  +  w_out * s_out * B_out @ A_out
Setting 2 (A and B merged separately, PEFT's "linear"; same rank required):
    dW = (sqrt(w_in s_in) B_in + sqrt(w_out s_out) B_out) @ (sqrt(w_in s_in) A_in + sqrt(w_out s_out) A_out)
where s = lora_alpha / r (or / sqrt(r) with rsLoRA) is each adapter's own scaling; with equal
scalings this is the paper's eq. 4 times s. Weights may differ per decoder layer (learned weights).
The export folds these deltas into the base before ONNX export; a shared-base export folds them
at session creation, so the math lives here, in the torch-free layer, once.
"""
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modmt.runtime.errors import ModmtError
from modmt.runtime.merge_weights import MergeWeights
from modmt.runtime.safetensors_np import read_safetensors

_KEY = re.compile(r"^base_model\.model\.(.+)\.lora_([AB])\.weight$")


@dataclass
class Adapter:
    path: Path
    scaling: float
    rank: int
    factors: dict  # module name (e.g. model.layers.0.self_attn.q_proj) -> {"A": array, "B": array}


def adapter_shape(path: Path, weights_file: str = "adapter_model.safetensors") -> Adapter:
    """An adapter's rank and scaling from its adapter_config.json, factors not read (an empty dict)."""
    config_path, weights_path = path / "adapter_config.json", path / weights_file
    if not config_path.exists() or not weights_path.exists():
        raise ModmtError(f"{path} is not a complete PEFT adapter (adapter_config.json and "
                         f"{weights_file} needed); retrain it")
    config = json.loads(config_path.read_text())
    if config.get("peft_type", "LORA") != "LORA":
        raise ModmtError(f"{path} is a {config.get('peft_type')} adapter; modmt merges LoRA adapters only")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ModmtError(f"{path} uses per-module ranks (rank_pattern/alpha_pattern), which modmt does not merge")
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    scaling = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    return Adapter(path, scaling, rank, {})


def load_adapter(path: Path, weights_file: str = "adapter_model.safetensors") -> Adapter:
    """A PEFT LoRA adapter directory (adapter_config.json + weights) as float32 numpy factors."""
    adapter = adapter_shape(path, weights_file)
    weights_path = path / weights_file
    factors = adapter.factors
    for key, array in read_safetensors(weights_path).items():
        match = _KEY.match(key)
        if match is None:
            raise ModmtError(f"{path}: unexpected tensor {key} (embedding or DoRA adapters are not merged)")
        factors.setdefault(match.group(1), {})[match.group(2)] = array.astype(np.float32)
    return adapter


def layer_index(module: str) -> int | None:
    match = re.search(r"\.layers\.(\d+)\.", module)
    return int(match.group(1)) if match else None


def merged_factors(lora_in: Adapter, lora_out: Adapter, weights: MergeWeights, setting: int,
                   targets: list[str] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{base weight name: (B, A)} with dW = B @ A, for every module either adapter covers.

    Both settings are low-rank products: Setting 1 stacks the two adapters (rank r_in + r_out),
    Setting 2 sums their factors (rank r). A quantized shared base applies them as a side path
    next to its quantized matrices instead of folding dW in (runtime/shared_fold.py).
    """
    if setting not in (1, 2):
        raise ModmtError(f"--setting must be 1 or 2, got {setting}")
    if setting == 2 and lora_in.rank != lora_out.rank:
        raise ModmtError(f"Setting 2 merges A and B separately and needs equal ranks, but LoRA_in has rank "
                         f"{lora_in.rank} and LoRA_out rank {lora_out.rank}; use --setting 1")
    modules = sorted(set(lora_in.factors) | set(lora_out.factors))
    if targets:
        unknown = [t for t in targets if not any(m.endswith("." + t) for m in modules)]
        if unknown:
            raise ModmtError(f"--targets {','.join(unknown)}: the adapters do not adapt such modules; they adapt "
                             f"{', '.join(sorted({m.rsplit('.', 1)[1] for m in modules}))}")
        modules = [m for m in modules if m.rsplit(".", 1)[1] in targets]
    factors = {}
    for module in modules:
        w_in, w_out = weights.for_layer(layer_index(module))
        parts = [(w, adapter.scaling, adapter.factors[module]) for w, adapter in
                 ((w_in, lora_in), (w_out, lora_out)) if module in adapter.factors]
        if setting == 1 or len(parts) == 1:
            # With one adapter present the two settings agree: w * s * B @ A.
            b = np.concatenate([np.float32(w * s) * f["B"] for w, s, f in parts], axis=1)
            a = np.concatenate([f["A"] for _, _, f in parts], axis=0)
        else:
            a = sum(np.float32(math.sqrt(w * s)) * f["A"] for w, s, f in parts)
            b = sum(np.float32(math.sqrt(w * s)) * f["B"] for w, s, f in parts)
        factors[f"{module}.weight"] = (np.asarray(b, dtype=np.float32), np.asarray(a, dtype=np.float32))
    return factors


def merged_deltas(lora_in: Adapter, lora_out: Adapter, weights: MergeWeights, setting: int,
                  targets: list[str] | None = None) -> dict[str, np.ndarray]:
    """{base weight name: dW} for every module either adapter covers (restricted to `targets` names)."""
    return {name: b @ a for name, (b, a) in merged_factors(lora_in, lora_out, weights, setting, targets).items()}
