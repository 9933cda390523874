"""Merge LoRA_in(src) and LoRA_out(tgt) into one static delta per target weight matrix.

Setting 1 (sum of products, PEFT's combination_type="cat"):
    dW = w_in * s_in * B_in @ A_in  +  w_out * s_out * B_out @ A_out
Setting 2 (A and B merged separately, PEFT's "linear"; same rank required):
    dW = (sqrt(w_in s_in) B_in + sqrt(w_out s_out) B_out) @ (sqrt(w_in s_in) A_in + sqrt(w_out s_out) A_out)
where s = lora_alpha / r (or / sqrt(r) with rsLoRA) is each adapter's own scaling; with equal
scalings this is the paper's eq. 4 times s. Weights may differ per decoder layer (learned weights).
"""
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from modmt.export.weights_spec import MergeWeights
from modmt.runtime.errors import ModmtError

_KEY = re.compile(r"^base_model\.model\.(.+)\.lora_([AB])\.weight$")


@dataclass
class Adapter:
    path: Path
    scaling: float
    rank: int
    factors: dict  # module name (e.g. model.layers.0.self_attn.q_proj) -> {"A": tensor, "B": tensor}


def load_adapter(path: Path) -> Adapter:
    from safetensors.torch import load_file

    config_path, weights_path = path / "adapter_config.json", path / "adapter_model.safetensors"
    if not config_path.exists() or not weights_path.exists():
        raise ModmtError(f"{path} is not a complete PEFT adapter (adapter_config.json and "
                         "adapter_model.safetensors needed); retrain it")
    config = json.loads(config_path.read_text())
    if config.get("peft_type", "LORA") != "LORA":
        raise ModmtError(f"{path} is a {config.get('peft_type')} adapter; modmt merges LoRA adapters only")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ModmtError(f"{path} uses per-module ranks (rank_pattern/alpha_pattern), which modmt does not merge")
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    scaling = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    factors = {}
    for key, tensor in load_file(weights_path).items():
        match = _KEY.match(key)
        if match is None:
            raise ModmtError(f"{path}: unexpected tensor {key} (embedding or DoRA adapters are not merged)")
        factors.setdefault(match.group(1), {})[match.group(2)] = tensor.float()
    return Adapter(path, scaling, rank, factors)


def layer_index(module: str) -> int | None:
    match = re.search(r"\.layers\.(\d+)\.", module)
    return int(match.group(1)) if match else None


def merged_deltas(lora_in: Adapter, lora_out: Adapter, weights: MergeWeights, setting: int,
                  targets: list[str] | None = None) -> dict:
    """{base weight name: dW} for every module either adapter covers (restricted to `targets` names)."""
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
    deltas = {}
    for module in modules:
        w_in, w_out = weights.for_layer(layer_index(module))
        parts = [(w, adapter.scaling, adapter.factors[module]) for w, adapter in
                 ((w_in, lora_in), (w_out, lora_out)) if module in adapter.factors]
        if setting == 1 or len(parts) == 1:
            # With one adapter present the two settings agree: w * s * B @ A.
            delta = sum(w * s * (f["B"] @ f["A"]) for w, s, f in parts)
        else:
            a = sum(math.sqrt(w * s) * f["A"] for w, s, f in parts)
            b = sum(math.sqrt(w * s) * f["B"] for w, s, f in parts)
            delta = b @ a
        deltas[f"{module}.weight"] = delta
    return deltas


def fold_deltas(model, deltas: dict) -> None:
    """W += dW in place for the named weights; every other tensor stays the base's, bit for bit."""
    import torch

    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, delta in deltas.items():
            if name not in params:
                raise ModmtError(f"the base model has no weight {name}: the adapters were trained on another "
                                 "architecture")
            param = params[name]
            if param.shape != delta.shape:
                raise ModmtError(f"{name}: adapter delta {tuple(delta.shape)} does not fit the base weight "
                                 f"{tuple(param.shape)}; the adapters belong to another base model")
            param.copy_((param.float() + delta.to(param.device)).to(param.dtype))
