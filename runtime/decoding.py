"""Greedy and beam search over a KV-cached decoder, in numpy, with transformers' `generate` semantics.

The decoder is anything with `prefill(ids, mask) -> (logits, cache)`, `step(tokens, mask, cache)
-> (logits, cache)` and `select(tensors, rows) -> tensors` (those rows of each), and optionally a
`search_head` that does the per-step log-softmax and top-k where the model runs
(runtime/search_head.py) and a `host(logits)` that brings logits kept on a device to numpy
(runtime/resident_decoder.py); without them, logits are numpy [rows, vocab]. Each source is
prefilled once and its cache expanded to the beams; sentences leave the batch as soon as their search is over. Scores,
length penalty and the early-stopping heuristic follow transformers 4.5x `_beam_search`, so on the
same model the outputs are the same tokens.

There is one decoding loop, `RunningBatch`: sentences prefilled together, then one decoder step at a
time (`step`), each step followed by the search's choice (`decide`), which retires finished sentences
at once. Offline translation runs one batch to its end; the server's continuous batcher
(runtime/server_batcher.py) runs several, steps whichever is due, and joins two batches into one
(`join`) when their caches line up, so sentences enter and leave between steps.

A sentence's tokens do not depend on what shares its batch (batch invariance): ONNX Runtime's CPU
kernels compute each row the same way whatever the other rows, given two conditions that the search
keeps. (1) A key's column modulo PAD_MULTIPLE is the same whatever the batch: the attention's
softmax sums a row's keys in SIMD lanes (8 or 16 wide, unrolled 4x on AVX-512), so its real keys
must sit at the same position modulo the lanes whatever the batch's longest prompt; padding each
prompt to the left of a multiple of 64 makes a key's position modulo 64 its own, alone or in any
batch (the masked keys add exact zeros). Two running batches therefore join only when their cache
lengths agree modulo 64 (the shorter is padded on the left by a multiple of 64), or modulo the smaller
multiple that runtime/join_alignment.py measures for the decoder on this CPU, which is also what the
translators and the server pad prompts to (a 44-token prompt is prefilled at 44 or 48 columns, not 64).
(2) A step never
runs one row: several kernels (a MatMul whose right side is an input, as the routed graph's adapter
bank; MatMulNBits at 4 bits) take another path at M = 1, so a lone row gets a copy beside it (a
"passenger", whose output is thrown away). One limit stays: ORT's float GEMM sums a product of more
than 256 keys (head size 64) in chunks of 256 counted from the first padded key, so a row whose
keys cross a chunk boundary at other places alone than in a batch may differ in its last bits
(docs/results.md, "Batch invariance"). A running batch that sentences join and leave (the server's)
drops leading columns no row attends to by the same multiples (RunningBatch.trim), so its cache stays the
length of what it holds.
"""
from dataclasses import dataclass, replace

import numpy as np

from modmt.runtime.errors import ModmtError

NEG = -1.0e9
PAD_MULTIPLE = 64
TRIM_AT = 32  # RunningBatch.trim copies the cache once: only for at least this many columns


def log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float32, copy=False)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def left_pad(prompts: list[list[int]], pad_id: int, multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """ids and attention mask [rows, width], prompts aligned to the right; width a multiple of `multiple`."""
    width = -(-max(len(p) for p in prompts) // multiple) * multiple
    ids = np.full((len(prompts), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(prompts), width), dtype=np.int64)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = p
        mask[i, width - len(p):] = 1
    return ids, mask


@dataclass(frozen=True)
class DecodeSettings:
    """How sentences are decoded, the one settings object of every translator, the server and the batch jobs.

    beam 1 is greedy search; length_penalty and early_stopping mean what they mean in transformers'
    `generate`; batch_size is how many sentences an offline call decodes together (the server's
    batches are bounded by its own max_batch instead); guard: answer with the best finished hypothesis
    in the target language where the best is surely in another (runtime/target_guard.py).
    """
    beam: int = 5
    max_new_tokens: int = 256
    length_penalty: float = 1.0
    early_stopping: bool | str = False  # transformers' default
    batch_size: int = 8
    guard: bool = True

    def check(self) -> None:
        if self.beam < 1 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise ModmtError(f"beam ({self.beam}), max new tokens ({self.max_new_tokens}) and batch size "
                             f"({self.batch_size}) must each be at least 1")

    @staticmethod
    def of(settings: "DecodeSettings | None" = None, **choices) -> "DecodeSettings":
        """settings (or the defaults) with the given fields replaced: translate(texts, beam=1) reads as before."""
        return replace(settings or DecodeSettings(), **choices)


@dataclass
class Finished:
    """A sentence whose search is over: its best tokens, and its n-best (best first, stop tokens removed)."""
    item: object
    tokens: list[int]
    nbest: list[list[int]]
    complete: bool = True   # False: the best hypothesis stopped at max_new_tokens, not at a stop token


def row_candidates(decoder, logits, keep_k: int):
    """Per row: (log-probabilities, token ids) of its keep_k best tokens, or (log-probabilities over the
    vocabulary, None) without a search head. Row by row, so any rows of a batch may be taken after."""
    head = getattr(decoder, "search_head", None)
    if head is not None:
        return head.top(logits, keep_k)                              # [rows, keep_k] each, best first
    return log_softmax(getattr(decoder, "host", np.asarray)(logits)), None


def sentence_candidates(logprobs: np.ndarray, ids, running: np.ndarray, keep_k: int):
    """The keep_k best continuations of each sentence over its k beams, best first: (scores, beam, token),
    each [sentences, keep_k]; equal scores rank by beam, then token."""
    a, k = running.shape
    if ids is not None:  # the search head's per-beam top keep_k: each sentence's best keep_k are among them
        flat = (logprobs.reshape(a, k, keep_k) + running[:, :, None]).reshape(a, k * keep_k)
        order = np.argsort(-flat, axis=1, kind="stable")[:, :keep_k]  # stable: beam order, then TopK's
        return (np.take_along_axis(flat, order, 1), order // keep_k,
                np.take_along_axis(ids.reshape(a, k * keep_k), order, 1))
    scores = logprobs.reshape(a, k, -1) + running[:, :, None]
    vocab = scores.shape[-1]
    flat = scores.reshape(a, k * vocab)
    top = np.sort(np.argpartition(-flat, keep_k - 1, axis=1)[:, :keep_k], axis=1)  # index order for ties
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(flat, top, 1), axis=1, kind="stable"), 1)
    return np.take_along_axis(flat, top, 1), top // vocab, top % vocab


def best_candidates(decoder, logits: np.ndarray, running: np.ndarray, keep_k: int):
    """Both stages on one sentence set: row_candidates, then sentence_candidates."""
    logprobs, ids = row_candidates(decoder, logits, keep_k)
    return sentence_candidates(logprobs, ids, running, keep_k)


class GreedySearch:
    """The greedy search of sentences that started together: one row each."""

    def __init__(self, items: list, settings: DecodeSettings, stop_ids: set[int]):
        self.items, self.limit, self.stop_ids = items, settings.max_new_tokens, stop_ids
        self.outputs = [[] for _ in items]
        self.active = np.arange(len(items))  # sentences still searching, in row order
        self.generated = 0

    def initial_rows(self) -> np.ndarray:
        return np.arange(len(self.items))

    @property
    def rows(self) -> int:
        return len(self.active)

    def row_items(self) -> list:
        return [self.items[i] for i in self.active]

    def decide(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[Finished]]:
        """tokens: this search's rows' argmax. Returns (rows kept, their next tokens, sentences finished)."""
        self.generated += 1
        keep, done = [], []
        for row, (item, token) in enumerate(zip(self.active, tokens)):
            self.outputs[item].append(int(token))
            if int(token) not in self.stop_ids and self.generated < self.limit:
                keep.append(row)
            else:
                out = [t for t in self.outputs[item] if t not in self.stop_ids]
                done.append(Finished(self.items[item], out, [out], int(token) in self.stop_ids))
        keep = np.array(keep, dtype=np.int64)
        self.active = self.active[keep]
        return keep, tokens[keep].astype(np.int64), done


class BeamSearch:
    """The beam search of sentences that started together: k rows each, transformers' arithmetic."""

    def __init__(self, items: list, settings: DecodeSettings, stop_ids: set[int]):
        n, k = len(items), settings.beam
        self.items, self.settings, self.stop_ids, self.k = items, settings, stop_ids, k
        self.keep_k = max(2, 1 + len(stop_ids)) * k  # candidates kept per step, as transformers does
        self.running = np.zeros((n, k), dtype=np.float32)
        self.running[:, 1:] = NEG                    # at first only beam 0 is real
        self.sequences = np.zeros((n, k, 0), dtype=np.int64)
        self.finished_scores = np.full((n, k), NEG, dtype=np.float32)
        self.finished = [[[] for _ in range(k)] for _ in range(n)]
        self.improvable = np.ones(n, dtype=bool)
        self.active = np.arange(n)                   # sentences still searching, in row order
        self.generated = 0

    def initial_rows(self) -> np.ndarray:
        """Each source is prefilled once; its k beams share that row."""
        return np.repeat(np.arange(len(self.items)), self.k)

    @property
    def rows(self) -> int:
        return len(self.active) * self.k

    def row_items(self) -> list:
        return [self.items[i] for i in self.active for _ in range(self.k)]

    def result(self, item: int) -> Finished:
        ranked = [int(b) for b in np.argsort(-self.finished_scores[item], kind="stable")
                  if self.finished_scores[item, b] > NEG / 2]
        nbest = [[t for t in self.finished[item][b] if t not in self.stop_ids] for b in ranked]
        best = self.finished[item][int(np.argmax(self.finished_scores[item]))]
        return Finished(self.items[item], [t for t in best if t not in self.stop_ids], nbest,
                        bool(best) and best[-1] in self.stop_ids)

    def decide(self, logprobs: np.ndarray, ids) -> tuple[np.ndarray, np.ndarray, list[Finished]]:
        """logprobs, ids: row_candidates of this search's rows. Returns (rows kept, next tokens, finished)."""
        k, lp, limit, active = self.k, self.settings.length_penalty, self.settings.max_new_tokens, self.active
        top_scores, beam_of, token_of = sentence_candidates(logprobs, ids, self.running[active], self.keep_k)
        self.generated = generated = self.generated + 1
        hits_stop = np.isin(token_of, list(self.stop_ids)) | (generated >= limit)

        # Finished hypotheses: only among the first k candidates, length-normalised.
        for r, item in enumerate(active):
            if not self.improvable[item]:
                continue
            if self.settings.early_stopping is True and (self.finished_scores[item] > NEG / 2).all():
                continue
            for c in range(k):
                if hits_stop[r, c]:
                    score = top_scores[r, c] / (generated ** lp)
                    worst = int(np.argmin(self.finished_scores[item]))
                    if score > self.finished_scores[item, worst]:
                        self.finished_scores[item, worst] = score
                        self.finished[item][worst] = [*self.sequences[item, beam_of[r, c]], int(token_of[r, c])]

        # Running beams: the best k candidates that did not stop.
        masked = top_scores + hits_stop * NEG
        order = np.argsort(-masked, axis=1, kind="stable")[:, :k]
        chosen_beam = np.take_along_axis(beam_of, order, 1)
        chosen_token = np.take_along_axis(token_of, order, 1)
        self.running[active] = np.take_along_axis(masked, order, 1)
        sequences = np.zeros((len(self.items), k, generated), dtype=np.int64)
        sequences[active] = np.concatenate(
            [np.take_along_axis(self.sequences[active], chosen_beam[:, :, None], 1), chosen_token[:, :, None]], axis=2)
        self.sequences = sequences

        # transformers' early-stop heuristic: can the best running beam still beat the worst finished one?
        length = (limit if self.settings.early_stopping == "never" and lp > 0 else generated)
        best_running = self.running[active, 0] / (length ** lp)
        worst_finished = np.where((self.finished_scores[active] > NEG / 2).all(axis=1),
                                  self.finished_scores[active].min(axis=1), NEG)
        self.improvable[active] &= best_running > worst_finished
        done = ~self.improvable[active] | hits_stop.all(axis=1)
        if self.settings.early_stopping is True:
            done |= (self.finished_scores[active] > NEG / 2).all(axis=1)
        if generated >= limit:
            done[:] = True
        finished = [self.result(int(i)) for i in active[done]]
        # The cache follows the chosen beams of the sentences still searching.
        still = np.flatnonzero(~done)
        self.active = active[still]
        rows = (still[:, None] * k + chosen_beam[still]).reshape(-1).astype(np.int64)
        return rows, chosen_token[still].reshape(-1).astype(np.int64), finished


def _host_array(value) -> np.ndarray:
    return value if isinstance(value, np.ndarray) else value.numpy()


def left_padded(parts: list[tuple]) -> tuple[list, np.ndarray]:
    """Caches side by side, each with masked columns more on its left: parts are (decoder, cache, mask, rows,
    columns), of which the first `rows` rows are taken and `columns` columns added to both the cache and the
    mask (the padded caches must then be as long as each other). What a join does, and what
    runtime/join_alignment.py probes; each tensor is written once into its joined array (on the host)."""
    layers = [[_host_array(t)[:rows] for t in getattr(decoder, "kv_of", lambda c: c)(cache)]
              for decoder, cache, _, rows, _ in parts]
    total, columns = sum(part[3] for part in parts), [part[4] for part in parts]
    kv = []
    for tensors in zip(*layers):
        first = tensors[0]
        joined = np.zeros((total, first.shape[1], first.shape[2] + columns[0], *first.shape[3:]), first.dtype)
        start = 0
        for t, pad in zip(tensors, columns):
            joined[start:start + len(t), :, pad:] = t
            start += len(t)
        kv.append(joined)
    mask, start = np.zeros((total, parts[0][2].shape[1] + columns[0]), np.int64), 0
    for (_, _, part_mask, rows, pad) in parts:
        mask[start:start + rows, pad:] = part_mask[:rows]
        start += rows
    return kv, mask


class RunningBatch:
    """Sentences decoding together: a KV cache, its attention mask, and the searches whose rows it holds.

    Between calls a batch is *ready*: its searches have chosen the next tokens (`tokens`) and the cache
    holds their rows, in the searches' order. `step()` runs the decoder once and lets every search choose
    again, returning the sentences that finished. decoder_for(row_items) gives the decoder for rows whose
    items are row_items (a routed base routes each row by its item); items are opaque here.
    """

    def __init__(self, decoder_for, items: list, prompts: list[list[int]], settings: DecodeSettings,
                 stop_ids: set[int], pad_id: int, pad_multiple: int = PAD_MULTIPLE):
        """pad_multiple: prompts are padded on the left to a multiple of it (condition 1 above); translators
        and the server give the join multiple runtime/join_alignment.py measured (their `pad_multiple`),
        which keeps every bit and pads less."""
        settings.check()
        self.decoder_for, self.settings = decoder_for, settings
        self.decoder = decoder_for(list(items))
        ids, mask = left_pad(prompts, pad_id, pad_multiple)
        logits, cache = self.decoder.prefill(ids, mask)  # each source once ...
        search = (GreedySearch if settings.beam == 1 else BeamSearch)(list(items), settings, stop_ids)
        rows = search.initial_rows()                     # ... then shared by its beams
        if len(rows) != len(prompts) or (rows != np.arange(len(prompts))).any():
            cache, mask = self.decoder.select(cache, rows), mask[rows]
        self.searches, self.cache, self.mask, self.cache_rows = [search], cache, mask, len(rows)
        self.tokens = np.zeros(0, dtype=np.int64)
        self.just_prefilled = True
        self.finished_at_start = self._decide(logits, rows)

    @property
    def done(self) -> bool:
        return not self.searches

    @property
    def width(self) -> int:
        """Cache length: the next token's key goes to this column."""
        return self.mask.shape[1]

    @property
    def sentences(self) -> int:
        return sum(len(s.active) for s in self.searches)

    @property
    def rows(self) -> int:
        return len(self.tokens)

    def items(self) -> list:
        return [s.items[i] for s in self.searches for i in s.active]

    def _decide(self, logits, logit_rows: np.ndarray) -> list[Finished]:
        """Every search chooses its rows' next tokens from logits[logit_rows]; the cache keeps the rows chosen."""
        if self.settings.beam == 1:
            scores, ids = getattr(self.decoder, "host", np.asarray)(logits).argmax(axis=-1)[logit_rows], None
        else:
            logprobs, ids = row_candidates(self.decoder, logits, self.searches[0].keep_k)
            scores, ids = logprobs[logit_rows], (None if ids is None else ids[logit_rows])
        keep, tokens, finished, offset = [], [], [], 0
        for search in self.searches:
            n = search.rows
            part = slice(offset, offset + n)
            if self.settings.beam == 1:
                rows, chosen, done = search.decide(scores[part])
            else:
                rows, chosen, done = search.decide(scores[part], None if ids is None else ids[part])
            keep.append(rows + offset)
            tokens.append(chosen)
            finished += done
            offset += n
        self._keep(keep, tokens)
        return finished

    def _keep(self, keep: list[np.ndarray], tokens: list[np.ndarray]) -> None:
        """The cache keeps these rows (one array per search, in cache rows), fed these tokens next."""
        self.searches = [s for s in self.searches if s.rows]
        rows = np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
        self.tokens = np.concatenate(tokens) if tokens else np.zeros(0, dtype=np.int64)
        if len(rows) == 1:  # a step never runs one row: another row rides along, its output thrown away
            rows = np.array([rows[0], (rows[0] + 1) % self.cache_rows if self.cache_rows > 1 else rows[0]])
        if len(rows) and (len(rows) != self.cache_rows or (rows != np.arange(self.cache_rows)).any()):
            self.cache, self.mask = self.decoder.select(self.cache, rows), self.mask[rows]
        self.cache_rows = len(rows)

    def drop(self, gone) -> int:
        """Remove the sentences whose item gone(item) is true (a client that went away); how many."""
        keep, tokens, offset, count = [], [], 0, 0
        for search in self.searches:
            per = search.rows // len(search.active)  # 1 row a sentence in greedy search, k in beam search
            alive = np.array([not gone(search.items[i]) for i in search.active], dtype=bool)
            rows = offset + np.flatnonzero(np.repeat(alive, per))
            keep.append(rows)
            tokens.append(self.tokens[rows])
            count += int((~alive).sum())
            offset += search.rows
            search.active = search.active[alive]
        if count:
            self._keep(keep, tokens)
        return count

    def step(self) -> list[Finished]:
        """One decoder step over every row, then the searches' choices: the sentences that finished."""
        tokens = self.tokens if len(self.tokens) == self.cache_rows else np.concatenate([self.tokens, self.tokens[:1]])
        self.mask = np.concatenate([self.mask, np.ones((self.cache_rows, 1), dtype=np.int64)], axis=1)
        logits, self.cache = self.decoder.step(tokens.astype(np.int64), self.mask, self.cache)
        return self._decide(logits, np.arange(len(self.tokens)))

    def can_join(self, other: "RunningBatch", multiple: int | None = PAD_MULTIPLE) -> bool:
        """Whether other's rows may share this batch's steps; multiple: only where the cache lengths agree
        modulo it, so that no bit of either changes (condition 1; runtime/join_alignment.py measures the
        smallest safe multiple of a decoder); None: whenever (a row's keys may move between SIMD lanes and
        its last bits change)."""
        return (other is not self and not self.done and not other.done and other.decoder_for == self.decoder_for
                and (multiple is None or (self.width - other.width) % multiple == 0))

    def join(self, other: "RunningBatch") -> None:
        """Take other's sentences into this batch: caches padded on the left to one length (by a multiple of
        the join multiple where can_join said so, so no key changes its lane), rows side by side, one decoder."""
        assert self.can_join(other, None)
        width = max(self.width, other.width)
        kv, mask = left_padded([(b.decoder, b.cache, b.mask, b.rows, width - b.width) for b in (self, other)])
        self.searches += other.searches
        self.tokens = np.concatenate([self.tokens, other.tokens])
        self.decoder = self.decoder_for([item for s in self.searches for item in s.row_items()])
        self.cache = getattr(self.decoder, "adopt", lambda kv: kv)(kv)
        self.mask = mask
        self.cache_rows = len(self.tokens)
        other.searches, other.tokens = [], np.zeros(0, dtype=np.int64)

    def trim(self, multiple: int = PAD_MULTIPLE, at_least: int = TRIM_AT) -> int:
        """Drop the cache's first columns where every row is masked (the padding of sentences that left, or of
        longer prompts), a multiple of `multiple` of them so no key changes its lane (the join multiple, as a
        join pads), when at least `at_least` can go: in a batch that sentences keep joining and leaving, the
        cache would otherwise only grow, and every step attends to, copies and reorders all of it. How many."""
        attended = self.mask.any(axis=0)
        first = int(attended.argmax()) if attended.any() else self.width
        columns = first - first % multiple
        if columns < max(at_least, 1):
            return 0
        kv = getattr(self.decoder, "kv_of", lambda c: c)(self.cache)
        self.cache = [*(np.ascontiguousarray(_host_array(t)[:, :, columns:]) for t in kv), *self.cache[len(kv):]]
        self.mask = np.ascontiguousarray(self.mask[:, columns:])
        return columns

    def run(self) -> list[Finished]:
        """Step until every sentence is finished (offline decoding)."""
        finished = self.finished_at_start
        while not self.done:
            finished += self.step()
        return finished


def search(decoder, prompts: list[list[int]], stop_ids: set[int], pad_id: int, settings: DecodeSettings) -> list[list[int]]:
    """The best tokens of each prompt, in order: greedy search at beam 1, beam search otherwise."""
    finished = RunningBatch(lambda items: decoder, range(len(prompts)), prompts, settings, stop_ids, pad_id).run()
    out = [None] * len(prompts)
    for f in finished:
        out[f.item] = f.tokens
    return out


def greedy(decoder, prompts, stop_ids, pad_id, max_new_tokens: int) -> list[list[int]]:
    return search(decoder, prompts, stop_ids, pad_id, DecodeSettings(1, max_new_tokens))


def beam_search(decoder, prompts, stop_ids, pad_id, settings: DecodeSettings) -> list[list[int]]:
    return search(decoder, prompts, stop_ids, pad_id, settings)


def translate_texts(texts: list[str], encode, decoder_for, tokenizer, stop_ids: set[int], pad_id: int,
                    settings: DecodeSettings, max_input_tokens: int, on_truncate=None,
                    pad_multiple: int = PAD_MULTIPLE, choose=None) -> list[str]:
    """The offline loop every translator shares: one output per text, in order, "" for a blank one.

    encode(i) -> (prompt ids, uncut source length) for text i; decoder_for(indices) -> the decoder of
    rows whose texts are those indices (a routed batch gets its rows' directions); tokenizer: a
    `tokenizers.Tokenizer` that turns the output ids back into text. Prompts are sorted by length so
    that each batch pads little; on_truncate(i, length, limit) hears of a source cut to max_input_tokens;
    pad_multiple: as in RunningBatch (a translator gives the join multiple it probed, as the server does);
    choose(i, hypotheses) -> the one to answer text i with, of its decoded n-best (best first): the guard.
    """
    settings.check()
    results, prompts = [""] * len(texts), {}
    for i, text in enumerate(texts):
        if text.strip():
            prompts[i], length = encode(i)
            if length > max_input_tokens and on_truncate is not None:
                on_truncate(i, length, max_input_tokens)
    order = sorted(prompts, key=lambda i: len(prompts[i]))
    for start in range(0, len(order), settings.batch_size):
        chunk = order[start:start + settings.batch_size]
        for f in RunningBatch(decoder_for, chunk, [prompts[i] for i in chunk], settings, stop_ids, pad_id,
                              pad_multiple).run():
            if choose is None:
                results[f.item] = tokenizer.decode(f.tokens, skip_special_tokens=True).strip()
            else:
                results[f.item] = choose(f.item, hypotheses_of(f, tokenizer))
    return results


def hypotheses_of(f: Finished, tokenizer) -> list[str]:
    """A finished sentence's distinct texts, the best first, then its n-best in the beam's order."""
    texts = [tokenizer.decode(f.tokens, skip_special_tokens=True).strip()]
    for tokens in f.nbest:
        if tokens != f.tokens:
            text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
            if text not in texts:
                texts.append(text)
    return texts
