"""How far apart two running batches' caches may be and still join without changing a bit: probed per decoder.

Prompts are padded on the left to a multiple of PAD_MULTIPLE (64) columns, so a key's column modulo
64 is its own in any batch (runtime/decoding.py, condition 1). The server's batches may join only
where that stays true for every row: the shorter cache is padded on the left by a multiple of the
*join multiple*. 64 is always safe; the kernels ONNX Runtime picks for a model on a CPU usually
need less (measured: 4 for the real model's routed int8 base on an AVX-512 VNNI Xeon), and a
smaller multiple lets a batch that started a few steps later join after at most that many steps
alone instead of running beside the others to the end, and translators and the server pad prompts
only to that multiple (a prompt of 70 tokens is prefilled at 72 columns, not 128). Which one holds depends on
the kernels, so it is measured, not assumed: two rows are prefilled and stepped, and the prefill and
the next step are run again with m, 3m and 5m extra padded columns (the step at two cache lengths);
the smallest power of two m whose logits are equal bit for bit wins. Nothing here changes what a
sentence decodes to, only when two batches may share their steps and how much padding a prefill computes.
"""
import numpy as np

from modmt.runtime.decoding import PAD_MULTIPLE, left_pad, left_padded

CANDIDATES = (1, 2, 4, 8, 16, 32)  # below PAD_MULTIPLE, each dividing it
PROBE_TEXTS = ("Hello, world.", "A small web server for static files.")  # the two short prompts a translator probes with
WARM_STEPS = (1, 7)                 # the cache lengths probed: PAD_MULTIPLE + 1 and + 8 columns


def padded(decoder, cache: list, mask: np.ndarray, columns: int) -> tuple[list, np.ndarray]:
    """The cache (a copy, in the decoder's form) and mask with `columns` masked columns more on the left."""
    kv, mask = left_padded([(decoder, cache, mask, len(mask), columns)])
    return getattr(decoder, "adopt", lambda c: c)(kv), mask


def join_multiple(decoder, prompts: list[list[int]], pad_id: int) -> int:
    """The smallest m in CANDIDATES for which extra left padding by m, 3m and 5m columns leaves a step's
    logits bit for bit equal at both probed cache lengths; PAD_MULTIPLE where none does.

    decoder: a decoder as runtime/decoding.py uses it, for two rows; prompts: two short prompts.
    """
    host = getattr(decoder, "host", np.asarray)
    ids, mask = left_pad(prompts, pad_id, PAD_MULTIPLE)
    logits, cache = decoder.prefill(ids, mask)
    first, first_mask = host(logits).copy(), mask
    states, done = [], 0
    for steps in WARM_STEPS:  # (tokens, mask, cache) ready for the next step at each probed length
        while done < steps:
            tokens = host(logits).argmax(axis=-1).astype(np.int64)
            mask = np.concatenate([mask, np.ones((len(mask), 1), np.int64)], axis=1)
            logits, cache = decoder.step(tokens, mask, cache)
            done += 1
        tokens = host(logits).argmax(axis=-1).astype(np.int64)
        step_mask = np.concatenate([mask, np.ones((len(mask), 1), np.int64)], axis=1)
        kept, step_mask = padded(decoder, cache, step_mask, 0)  # a copy, which the probes below step from
        state = (tokens, step_mask, kept)
        reference = host(decoder.step(*state)[0]).copy()
        states.append((state, reference))

    def exact(columns: int) -> bool:
        for (tokens, step_mask, kept), reference in states:
            cache_more, mask_more = padded(decoder, kept, step_mask, columns)
            if not np.array_equal(host(decoder.step(tokens, mask_more, cache_more)[0]), reference):
                return False
        # The prefill too: translators and the server pad prompts to the join multiple, not to PAD_MULTIPLE.
        ids_more = np.concatenate([np.full((len(ids), columns), pad_id, ids.dtype), ids], axis=1)
        mask_more = np.concatenate([np.zeros((len(ids), columns), first_mask.dtype), first_mask], axis=1)
        return np.array_equal(host(decoder.prefill(ids_more, mask_more)[0]), first)

    def exact_prefill(m: int) -> bool:  # the prompts padded to m alone, as translators and the server pad them
        ids_m, mask_m = left_pad(prompts, pad_id, m)
        return np.array_equal(host(decoder.prefill(ids_m, mask_m)[0]), first)

    for m in CANDIDATES:
        if all(exact(k * m) for k in (1, 3, 5)) and exact_prefill(m):
            return m
    return PAD_MULTIPLE
