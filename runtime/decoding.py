"""Greedy and beam search over a KV-cached decoder, in numpy, with transformers' `generate` semantics.

The decoder is anything with `prefill(ids, mask) -> (logits, cache)`, `step(tokens, mask, cache)
-> (logits, cache)` and `select(tensors, rows) -> tensors` (those rows of each), and optionally a
`search_head` that does the per-step log-softmax and top-k where the model runs
(runtime/search_head.py) and a `host(logits)` that brings logits kept on a device to numpy
(runtime/resident_decoder.py); without them, logits are numpy [rows, vocab]. Each source is
prefilled once and its cache expanded to the beams; sentences leave the batch as soon as their search is over. Scores,
length penalty and the early-stopping heuristic follow transformers 4.5x `_beam_search`, so on the
same model the outputs are the same tokens.

A sentence's tokens do not depend on what shares its batch (batch invariance): ONNX Runtime's CPU
kernels compute each row the same way whatever the other rows, given two conditions that the search
keeps. (1) The padded width is a multiple of PAD_MULTIPLE: the attention's softmax sums a row's keys
in SIMD lanes (8 or 16 wide, unrolled 4x on AVX-512), so its real keys must sit at the same
position modulo the lanes whatever the batch's longest prompt; padding each prompt to the left of a
multiple of 64 makes a key's position modulo 64 its own, alone or in any batch (the masked keys add
exact zeros). (2) A step never runs one row: several kernels (a MatMul whose right side is an input,
as the routed graph's adapter bank; MatMulNBits at 4 bits) take another path at M = 1, so a lone
row keeps a finished one beside it (a "passenger", whose output is thrown away). One limit stays:
ORT's float GEMM sums a product of more than 256 keys (head size 64) in chunks of 256 counted from
the first padded key, so a row whose keys cross a chunk boundary at other places alone than in a
batch may differ in its last bits (docs/results.md, "Batch invariance").
"""
from dataclasses import dataclass

import numpy as np

from modmt.runtime.errors import ModmtError

NEG = -1.0e9


def log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float32, copy=False)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


PAD_MULTIPLE = 64


def left_pad(prompts: list[list[int]], pad_id: int, multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """ids and attention mask [rows, width], prompts aligned to the right; width a multiple of `multiple`."""
    width = -(-max(len(p) for p in prompts) // multiple) * multiple
    ids = np.full((len(prompts), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(prompts), width), dtype=np.int64)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = p
        mask[i, width - len(p):] = 1
    return ids, mask


@dataclass
class SearchSettings:
    beam: int = 5
    max_new_tokens: int = 256
    length_penalty: float = 1.0
    early_stopping: bool | str = False  # transformers' default


PASSENGER = -1  # a row kept only so that a step never runs one row (module docstring)


def greedy(decoder, prompts: list[list[int]], stop_ids: set[int], pad_id: int, max_new_tokens: int) -> list[list[int]]:
    ids, mask = left_pad(prompts, pad_id, PAD_MULTIPLE)
    host = getattr(decoder, "host", np.asarray)
    logits, cache = decoder.prefill(ids, mask)
    outputs = [[] for _ in prompts]
    active = np.arange(len(prompts))
    if len(prompts) == 1:  # the prefill ran S rows; the steps would run one: a copy rides along
        active, mask, cache = np.array([0, PASSENGER]), mask[[0, 0]], decoder.select(cache, np.array([0, 0]))
        logits = decoder.select([logits], np.array([0, 0]))[0]
    for step in range(max_new_tokens):
        tokens = host(logits).argmax(axis=-1)
        keep, finished = [], []
        for row, (item, token) in enumerate(zip(active, tokens)):
            if item == PASSENGER:
                finished.append(row)
                continue
            outputs[item].append(int(token))
            if int(token) not in stop_ids and step + 1 < max_new_tokens:
                keep.append(row)
            else:
                finished.append(row)
        if not keep:
            break
        if len(keep) == 1 and finished:  # one row left: a finished one rides along as a passenger
            keep.append(finished[0])
            active = active.copy()
            active[finished[0]] = PASSENGER
        if len(keep) < len(active):  # finished sentences leave the batch
            rows = np.array(keep)
            active, mask, tokens, cache = active[rows], mask[rows], tokens[rows], decoder.select(cache, rows)
        mask = np.concatenate([mask, np.ones((len(active), 1), dtype=np.int64)], axis=1)
        logits, cache = decoder.step(tokens.astype(np.int64), mask, cache)
    return [[t for t in out if t not in stop_ids] for out in outputs]


def best_candidates(decoder, logits: np.ndarray, running: np.ndarray, keep_k: int):
    """The keep_k best continuations of each sentence over its k beams × the vocabulary, best first.

    Returns (scores, beam, token), each [sentences, keep_k]; equal scores rank by beam, then token.
    A decoder with a `search_head` computes log-softmax and per-beam top-keep_k where its model runs
    (runtime/search_head.py; exact, since each sentence's best keep_k are among each beam's); the
    numpy fallback does the same over the whole vocabulary.
    """
    a, k = running.shape
    head = getattr(decoder, "search_head", None)
    if head is not None:
        logprobs, ids = head.top(logits, keep_k)                     # [a * k, keep_k] each
        flat = (logprobs.reshape(a, k, keep_k) + running[:, :, None]).reshape(a, k * keep_k)
        order = np.argsort(-flat, axis=1, kind="stable")[:, :keep_k]  # stable: beam order, then TopK's
        return (np.take_along_axis(flat, order, 1), order // keep_k,
                np.take_along_axis(ids.reshape(a, k * keep_k), order, 1))
    scores = log_softmax(logits).reshape(a, k, -1) + running[:, :, None]
    vocab = scores.shape[-1]
    flat = scores.reshape(a, k * vocab)
    top = np.sort(np.argpartition(-flat, keep_k - 1, axis=1)[:, :keep_k], axis=1)  # index order for ties
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(flat, top, 1), axis=1, kind="stable"), 1)
    return np.take_along_axis(flat, top, 1), top // vocab, top % vocab


def beam_search(decoder, prompts: list[list[int]], stop_ids: set[int], pad_id: int,
                settings: SearchSettings) -> list[list[int]]:
    k, lp, limit = settings.beam, settings.length_penalty, settings.max_new_tokens
    n = len(prompts)
    keep_k = max(2, 1 + len(stop_ids)) * k  # candidates kept per step, as transformers does
    ids, mask = left_pad(prompts, pad_id, PAD_MULTIPLE)  # k >= 2 beams: a step runs two rows or more
    logits, cache = decoder.prefill(ids, mask)      # each source once ...
    rows = np.repeat(np.arange(n), k)               # ... then its cache is shared by its k beams
    cache, mask, (logits,) = decoder.select(cache, rows), mask[rows], decoder.select([logits], rows)

    running = np.zeros((n, k), dtype=np.float32)
    running[:, 1:] = NEG                            # at first only beam 0 is real
    sequences = np.zeros((n, k, 0), dtype=np.int64)
    finished_scores = np.full((n, k), NEG, dtype=np.float32)
    finished = [[[] for _ in range(k)] for _ in range(n)]
    improvable = np.ones(n, dtype=bool)
    active = np.arange(n)                           # items still searching, in cache order

    for step in range(limit):
        top_scores, beam_of, token_of = best_candidates(decoder, logits, running[active], keep_k)
        generated = step + 1
        hits_stop = np.isin(token_of, list(stop_ids)) | (generated >= limit)

        # Finished hypotheses: only among the first k candidates, length-normalised.
        for r, item in enumerate(active):
            if not improvable[item]:
                continue
            if settings.early_stopping is True and (finished_scores[item] > NEG / 2).all():
                continue
            for c in range(k):
                if hits_stop[r, c]:
                    score = top_scores[r, c] / (generated ** lp)
                    worst = int(np.argmin(finished_scores[item]))
                    if score > finished_scores[item, worst]:
                        finished_scores[item, worst] = score
                        finished[item][worst] = [*sequences[item, beam_of[r, c]], int(token_of[r, c])]

        # Running beams: the best k candidates that did not stop.
        masked = top_scores + hits_stop * NEG
        order = np.argsort(-masked, axis=1, kind="stable")[:, :k]
        chosen_beam = np.take_along_axis(beam_of, order, 1)
        chosen_token = np.take_along_axis(token_of, order, 1)
        running[active] = np.take_along_axis(masked, order, 1)
        new_sequences = np.zeros((n, k, generated), dtype=np.int64)
        new_sequences[active] = np.concatenate(
            [np.take_along_axis(sequences[active], chosen_beam[:, :, None], 1), chosen_token[:, :, None]], axis=2)
        sequences = new_sequences

        # transformers' early-stop heuristic: can the best running beam still beat the worst finished one?
        length = (limit if settings.early_stopping == "never" and lp > 0 else generated)
        best_running = running[active, 0] / (length ** lp)
        worst_finished = np.where((finished_scores[active] > NEG / 2).all(axis=1),
                                  finished_scores[active].min(axis=1), NEG)
        improvable[active] &= best_running > worst_finished
        done = ~improvable[active] | hits_stop.all(axis=1)
        if settings.early_stopping is True:
            done |= (finished_scores[active] > NEG / 2).all(axis=1)
        if done.all() or generated >= limit:
            break
        # Reorder the cache to the chosen beams, dropping items whose search is over.
        still = np.flatnonzero(~done)
        cache_rows = (still[:, None] * k + chosen_beam[still]).reshape(-1)
        active = active[still]
        cache, mask = decoder.select(cache, cache_rows), mask[cache_rows]
        mask = np.concatenate([mask, np.ones((len(cache_rows), 1), dtype=np.int64)], axis=1)
        logits, cache = decoder.step(chosen_token[still].reshape(-1), mask, cache)

    best = [finished[i][int(np.argmax(finished_scores[i]))] for i in range(n)]
    return [[t for t in seq if t not in stop_ids] for seq in best]


def search(decoder, prompts: list[list[int]], stop_ids: set[int], pad_id: int, settings: SearchSettings) -> list[list[int]]:
    """Greedy search at beam 1, beam search otherwise."""
    if settings.beam == 1:
        return greedy(decoder, prompts, stop_ids, pad_id, settings.max_new_tokens)
    return beam_search(decoder, prompts, stop_ids, pad_id, settings)


def translate_texts(texts: list[str], encode, decoder_for, tokenizer, stop_ids: set[int], pad_id: int,
                    settings: SearchSettings, batch_size: int, max_input_tokens: int, on_truncate=None) -> list[str]:
    """The decoding loop every translator shares: one output per text, in order, "" for a blank one.

    encode(i) -> (prompt ids, uncut source length) for text i; decoder_for(indices) -> the decoder of
    one batch of texts (a routed batch gets its rows' directions); tokenizer: a `tokenizers.Tokenizer`
    that turns the output ids back into text. Prompts are
    sorted by length so that each batch pads little; on_truncate(i, length, limit) hears of a source
    cut to max_input_tokens.
    """
    if settings.beam < 1 or batch_size < 1 or settings.max_new_tokens < 1:
        raise ModmtError("beam, batch size and max new tokens must be at least 1")
    results, prompts = [""] * len(texts), {}
    for i, text in enumerate(texts):
        if text.strip():
            prompts[i], length = encode(i)
            if length > max_input_tokens and on_truncate is not None:
                on_truncate(i, length, max_input_tokens)
    order = sorted(prompts, key=lambda i: len(prompts[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        for i, ids in zip(chunk, search(decoder_for(chunk), [prompts[i] for i in chunk], stop_ids, pad_id, settings)):
            results[i] = tokenizer.decode(ids, skip_special_tokens=True).strip()
    return results
