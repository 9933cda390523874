"""Keep a frozen base model's matrices in fp16 and compute in fp32: what LoRA training holds resident halves.

Why: LoRA training on a CPU holds the whole fp32 base (2.5 GB for the 0.5B model) beside 1-2 GB of
training state, and that base is frozen. Stored in fp16 it is half the bytes; each matrix is turned
back into fp32 for its own product (a few ms, against tens for the product) and the result is
computed in fp32 as before. bf16 would do the same with a coarser rounding, and this CPU's bf16
products are 2.2x slower than fp32 (docs/results.md, "The demo"), so only the storage changes.

The adapters then learn against the base rounded to fp16 (relative error 2^-11 per weight) and are
exported onto the fp32 base: QLoRA does the same with a 4-bit base. docs/results.md measures what it
costs in chrF++.

Where the checkpoint is memory-mapped (transformers maps fp32 safetensors without copying), the pages
of each converted matrix are handed back to the kernel as soon as it is converted, so the conversion
never holds both copies; the small tensors left in fp32 (norms, biases) are copied out of the mapping
so that it closes.
"""
import ctypes
import mmap

import torch
from torch import nn
from torch.nn import functional as F

from modmt.runtime.errors import ModmtError

FP16_MAX = 65504.0  # a weight beyond it would become inf: its matrix stays fp32
CHUNK_ROWS_BYTES = 32 << 20  # the largest fp32 copy of a matrix's rows that a product makes at a time


def _row_chunks(weight16: torch.Tensor) -> list[tuple[int, int]]:
    rows = max(1, CHUNK_ROWS_BYTES // (4 * weight16.shape[1]))
    return [(start, min(start + rows, weight16.shape[0])) for start in range(0, weight16.shape[0], rows)]


class _FP16WeightProduct(torch.autograd.Function):
    """x @ W.T + b with W stored in fp16, upcast a block of rows at a time: the output projection's fp32
    copy alone would be 545 MB for the 0.5B model. Saves the fp16 W for backward (not an fp32 copy,
    which would keep every layer's weights in fp32 until the backward pass) and upcasts it again there."""

    @staticmethod
    def forward(ctx, x, weight16, bias):
        ctx.save_for_backward(weight16)
        chunks = _row_chunks(weight16)
        if len(chunks) == 1:
            return F.linear(x, weight16.to(x.dtype), bias)
        out = x.new_empty(*x.shape[:-1], weight16.shape[0])
        for start, end in chunks:
            out[..., start:end] = F.linear(x, weight16[start:end].to(x.dtype))
        return out if bias is None else out.add_(bias)

    @staticmethod
    def backward(ctx, grad):
        if not ctx.needs_input_grad[0]:
            return None, None, None
        (weight16,) = ctx.saved_tensors
        grad_x = None
        for start, end in _row_chunks(weight16):
            part = grad[..., start:end] @ weight16[start:end].to(grad.dtype)
            grad_x = part if grad_x is None else grad_x.add_(part)
        return grad_x, None, None


class FP16StoredLinear(nn.Linear):
    """A frozen nn.Linear whose weight is fp16 and whose product is fp32 (PEFT wraps it like any Linear)."""

    compute_dtype = torch.float32  # PEFT creates the adapter in this dtype, not the weight's (as for bnb layers)

    def forward(self, x):
        return _FP16WeightProduct.apply(x, self.weight, self.bias)


class FP16StoredEmbedding(nn.Embedding):
    """A frozen nn.Embedding stored in fp16 that returns fp32 rows."""

    compute_dtype = torch.float32

    def forward(self, ids):
        return super().forward(ids).float()


def _file_mappings() -> list[tuple[int, int]]:
    """(start, end) of this process's file-backed mappings of .safetensors files."""
    spans = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].strip().endswith(".safetensors"):
                start, end = (int(a, 16) for a in fields[0].split("-"))
                spans.append((start, end))
    return spans


def _in_mapping(tensor: torch.Tensor, spans: list[tuple[int, int]]) -> bool:
    start = tensor.data_ptr()
    return any(lo <= start and start + tensor.numel() * tensor.element_size() <= hi for lo, hi in spans)


def _release_mapped_pages(tensor: torch.Tensor, spans: list[tuple[int, int]]) -> None:
    """Drop the resident pages that lie wholly inside `tensor`'s bytes when they belong to a mapped
    checkpoint file. They are clean file pages (nothing writes into a frozen checkpoint), so the kernel
    can read them again if anything ever touched them; pages shared with a neighbouring tensor are kept."""
    if not _in_mapping(tensor, spans):
        return  # anonymous memory (a .bin checkpoint, a model built in memory): freed with the tensor
    start = tensor.data_ptr()
    end = start + tensor.numel() * tensor.element_size()
    page = mmap.PAGESIZE
    first, last = -(-start // page) * page, end // page * page
    if last > first:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), 4)  # MADV_DONTNEED


def store_frozen_base_in_fp16(model) -> dict:
    """Convert a CPU fp32 model in place, before PEFT wraps it: every nn.Linear and nn.Embedding
    weight to fp16 storage (tied weights stay one tensor), every other tensor copied out of the
    checkpoint's mapping. Returns what it did, for the pool's record."""
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in model.parameters()):
        raise ModmtError("--frozen-base fp16 is for a float32 base on the CPU (on a GPU the base is bf16 already)")
    spans = _file_mappings()
    converted: dict[int, nn.Parameter] = {}  # id of an fp32 weight -> its fp16 copy (tied weights share one)
    kept_fp32 = []
    with torch.no_grad():
        for name, module in model.named_modules():
            kind = {nn.Linear: FP16StoredLinear, nn.Embedding: FP16StoredEmbedding}.get(type(module))
            if kind is None:
                continue
            weight = module.weight
            if id(weight) not in converted:
                low, high = torch.aminmax(weight)
                if max(-low.item(), high.item()) > FP16_MAX:
                    kept_fp32.append(name)
                    continue
                converted[id(weight)] = nn.Parameter(weight.to(torch.float16), requires_grad=False)
                _release_mapped_pages(weight, spans)
            module.weight = converted[id(weight)]
            module.__class__ = kind
        for tensor in [*model.parameters(), *model.buffers()]:
            if _in_mapping(tensor, spans):  # norms, biases: copied out, so that the mapping can close
                tensor.data = tensor.data.clone()
    fp16_bytes = sum(p.numel() * 2 for p in converted.values())
    return {"frozen_base": "fp16", "fp16_matrices": len(converted), "fp16_bytes": fp16_bytes,
            "kept_fp32": kept_fp32}
