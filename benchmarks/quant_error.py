"""Weight reconstruction error of round-to-nearest block quantization, per matrix and per GGUF source type.

The base model comes from a GGUF whose matrices are stored in several formats (Q5_0, Q6_K, Q4_K,
Q8_0); its Hugging Face weights are those values dequantized. This measures, for a few matrices
of each kind, the relative RMS error that 4- and 8-bit blocks of 32 (symmetric, or with a zero
point) add on top: the evidence behind the int4/int8 recipes in modmt.export.quantize.
"""
from pathlib import Path

import numpy as np

HF_NAMES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
            "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
            "ffn_down": "mlp.down_proj"}


def hf_name(gguf_name: str) -> str:
    if gguf_name == "output.weight":
        return "lm_head.weight"
    _, layer, kind, _ = gguf_name.split(".")
    return f"model.layers.{layer}.{HF_NAMES[kind]}.weight"


def round_to_nearest(w: np.ndarray, bits: int, symmetric: bool, block: int = 32) -> np.ndarray:
    """w [out, in] quantized in blocks of `block` along the input axis (as MatMulNBits does), then dequantized."""
    rows, cols = w.shape
    b = w.reshape(rows, cols // block, block)
    if symmetric:
        scale = np.abs(b).max(-1, keepdims=True) / (2 ** (bits - 1) - 1)
        scale[scale == 0] = 1
        return (np.clip(np.rint(b / scale), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1) * scale).reshape(rows, cols)
    low, high = b.min(-1, keepdims=True), b.max(-1, keepdims=True)
    scale = (high - low) / (2 ** bits - 1)
    scale[scale == 0] = 1
    zero = np.clip(np.rint(-low / scale), 0, 2 ** bits - 1)
    return ((np.clip(np.rint(b / scale + zero), 0, 2 ** bits - 1) - zero) * scale).reshape(rows, cols)


def quantization_errors(gguf_file: Path, hf_dir: Path, per_type: int = 2) -> list[dict]:
    from gguf import GGUFReader
    from safetensors import safe_open

    types = {t.name: t.tensor_type.name for t in GGUFReader(str(gguf_file)).tensors}
    chosen, seen = [], {}
    for name, kind in types.items():
        if name.endswith(".weight") and kind != "F32" and (name == "output.weight" or name.startswith("blk.")):
            if seen.get(kind, 0) < per_type or name == "output.weight":
                chosen.append(name)
                seen[kind] = seen.get(kind, 0) + 1
    rows = []
    with safe_open(str(hf_dir / "model.safetensors"), "np") as f:
        for name in chosen:
            w = f.get_tensor(hf_name(name)).astype(np.float32)
            rms = float(np.sqrt((w ** 2).mean()))
            errors = {f"{'sym' if s else 'asym'}{b}": float(np.sqrt(((round_to_nearest(w, b, s) - w) ** 2).mean()) / rms)
                      for b, s in ((4, True), (4, False), (8, True), (8, False))}
            rows.append({"tensor": name, "gguf_type": types[name], **errors})
    return rows
