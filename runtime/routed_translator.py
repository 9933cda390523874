"""`RoutedTranslator`: every direction of a shared base in one ONNX session, mixed in one batch.

A shared base's routed.onnx (export/routed_graph.py) reads its weights once and gives each batch
row its own low-rank side path over a bank of the loaded adapters' factors. Here the bank is
built from the directions' adapters (each adapter once, however many directions use it), and
each batch gets a small coefficient table: one slot per (direction, weights, setting) it holds,
each row pointing at its slot. So memory is the base plus the adapters, whatever the number of
directions, and a batch may mix directions and merge weights chosen per request.
"""
import logging
import math
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from modmt.runtime.decoding import DecodeSettings, translate_texts
from modmt.runtime.errors import ModmtError
from modmt.runtime.lora_merge import Adapter, adapter_shape, load_adapter
from modmt.runtime.manifest import read_manifest
from modmt.runtime.merge_weights import MergeWeights, parse_weights
from modmt.runtime.onnx_decoder import OnnxDecoder
from modmt.runtime.open_exports import direction_exports
from modmt.runtime.ort_options import OrtOptions
from modmt.runtime.prompt import PromptTemplate, clean_text
from modmt.runtime.resident_decoder import SearchDecoderMixin
from modmt.runtime.shared_fold import BASE_KIND, DIRECTION_KIND, resolve_base
from modmt.runtime.target_guard import TargetGuard, guarded_choice
from modmt.runtime.tuned_weights import read_tuned_weights

# The routed graph's inputs (export/routed_graph.py builds the graph with these names).
ROUTE, COEF, MIX = "modmt_route", "modmt_route_coef", "modmt_route_mix"
log = logging.getLogger(__name__)


@dataclass
class RoutedDirection:
    src: str
    tgt: str
    export_dir: Path
    template: PromptTemplate
    weights: MergeWeights        # the export's weights
    setting: int
    adapters: tuple[int, int]    # index of LoRA_in(src) and LoRA_out(tgt) in the bank
    tuned: tuple[MergeWeights, dict] | None = None  # modmt-tune's weights and record (runtime/tuned_weights.py)

    @property
    def default_weights(self) -> MergeWeights:
        """What a request that names no w gets: the tuned weights where the base has them, else the export's."""
        return self.tuned[0] if self.tuned else self.weights


class RoutedTranslator(SearchDecoderMixin):
    """Directions exported onto one shared base (`modmt-export SRC TGT --shared-base BASE`), in one session.

    translate(texts, src=..., tgt=..., w=...) translates a list into one direction;
    translate(texts, directions=[(src, tgt) or (src, tgt, w), ...]) gives each text its own.
    """

    def __init__(self, exports: list[str | Path], provider: str = "auto", threads: int | None = None,
                 verify: str = "full", max_input_tokens: int = 512, ort_options: OrtOptions = OrtOptions()):
        from tokenizers import Tokenizer

        started = time.perf_counter()
        paths = direction_exports(exports)
        if not paths:
            raise ModmtError("no direction exports given; export some with `modmt-export SRC TGT --shared-base BASE`")
        self.base_dir, base, manifests = None, None, []
        for path in paths:
            manifest = read_manifest(path, verify)
            if manifest.get("kind") != DIRECTION_KIND or not manifest.get("adapters"):
                raise ModmtError(f"{path} is not a direction on a shared base (made with `modmt-export SRC TGT "
                                 "--shared-base BASE`), so it cannot share a session; serve it on its own")
            # The base's hundreds of megabytes are hashed once, not once per direction.
            base_dir, base_manifest = resolve_base(path, manifest, verify, "size" if self.base_dir else None)
            if self.base_dir is None:
                self.base_dir, base = base_dir, base_manifest
            elif base_dir != self.base_dir:
                raise ModmtError(f"{path} is on the shared base {base_dir}, not {self.base_dir}: one routed session "
                                 "holds the directions of one base")
            manifests.append((path, manifest))
        if base.get("kind") != BASE_KIND or "routed" not in base:
            raise ModmtError(f"the shared base {self.base_dir} has no routed graph (it was exported before routing); "
                             "export it again with this version of `modmt-export --shared-base`")
        self.routed = base["routed"]
        self.quantization_recipe = base.get("quantization_recipe")  # what runtime/cpu_features.py checks
        self.adapters: list[Adapter] = []
        index_of: dict[str, int] = {}
        self.directions: dict[tuple[str, str], RoutedDirection] = {}
        try:
            # The bank holds each adapter once, every LoRA_in before every LoRA_out, each role by language: an
            # order that does not depend on which other directions are loaded, so a row's two adapters add their
            # terms in the same order when a reload brings a new language's (runtime/server_cli.py).
            roles = {(role, str(m["src"] if role == "in" else m["tgt"])): m["adapters"][role]["dir"]
                     for _, m in manifests for role in ("in", "out")}
            for key in sorted(roles):
                if roles[key] not in index_of:
                    index_of[roles[key]] = len(self.adapters)
                    self.adapters.append(adapter_shape(self.base_dir / roles[key]))  # factors: into the bank below
            for path, m in manifests:
                pair = [index_of[m["adapters"][role]["dir"]] for role in ("in", "out")]
                if m.get("targets"):
                    raise ModmtError(f"{path} merges only {m['targets']}; routing merges every adapted module: "
                                     "export the direction without --targets")
                key = (str(m["src"]), str(m["tgt"]))
                if key in self.directions:
                    raise ModmtError(f"two exports of {key[0]}->{key[1]} given ({self.directions[key].export_dir} "
                                     f"and {path}); give one")
                self.directions[key] = RoutedDirection(
                    key[0], key[1], path, PromptTemplate.from_json(m["prompt"]), MergeWeights.from_json(m["weights"]),
                    int(m["setting"]), (pair[0], pair[1]))
            first = manifests[0][1]
            self.stop_ids = {int(i) for i in first["stop_token_ids"]}
            self.pad_id = int(first["pad_token_id"])
            if any({int(i) for i in m["stop_token_ids"]} != self.stop_ids or int(m["pad_token_id"]) != self.pad_id
                   for _, m in manifests):
                raise ModmtError("the directions disagree on stop or pad tokens; re-export them from one pool")
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise ModmtError(f"a direction manifest is malformed ({type(e).__name__}: {e}); re-export it with "
                             "`modmt-export`") from None
        for key, tuned in read_tuned_weights(self.base_dir).items():
            if key in self.directions:
                self.directions[key].tuned = tuned
        self.tokenizer = Tokenizer.from_file(str(self.base_dir / "tokenizer.json"))
        self.max_input_tokens = max_input_tokens
        import onnxruntime as ort

        # The bank as initializers of the base's fixed rank where it fits (export/routed_graph.py says why:
        # every row's arithmetic then holds whatever shares its batch), given once at session creation;
        # otherwise (a base exported before, or more adapters than it had room for) as inputs at every step.
        needed, fixed = sum(a.rank for a in self.adapters), self.routed.get("fixed_bank_rank")
        self.bank_initializers = bool(fixed) and needed <= fixed
        if fixed and not self.bank_initializers:
            log.warning(f"the adapters given need a bank of rank {needed}, more than the {fixed} that the shared base "
                        f"{self.base_dir} was exported with: a sentence's last bits may depend on what shares its "
                        "batch; export the base again from the grown pool to restore that")
        arrays = self._build_bank(fixed if self.bank_initializers else needed)
        graph = self.routed["fixed_graph"] if self.bank_initializers else self.routed["graph"]
        self.decoder = OnnxDecoder(str(self.base_dir / graph), provider, threads,
                                   arrays if self.bank_initializers else None, ort_options)
        self.device = "cuda" if self.decoder.providers[0] == "CUDAExecutionProvider" else "cpu"  # where banks live
        # OrtValues over the arrays (no copy on the CPU), handed to every step as they are (older bases).
        self.bank = {} if self.bank_initializers else \
            {name: ort.OrtValue.ortvalue_from_numpy(array, self.device) for name, array in arrays.items()}
        self._arrays = arrays  # the session or the OrtValues use these buffers on the CPU: keep them alive
        self._resident = None
        self.load_seconds = time.perf_counter() - started

    def _build_bank(self, rank: int) -> dict:
        """Each matrix's bank of `rank` columns: every adapter's A^T side by side [K, R], its B^T stacked
        [R, N], zeros after the last; and MIX."""
        ranks = [a.rank for a in self.adapters]
        self.offsets = np.cumsum([0, *ranks])
        self.bank_rank = int(self.offsets[-1])  # the adapters' columns
        self.bank_columns = rank                 # the session's: the adapters', then zeros
        self.layers = int(self.routed["layers"])
        feed, known = {}, set()
        for name, entry in self.routed["matrices"].items():
            (k, n), r = entry["shape"], self.bank_columns
            feed[entry["bank_a"]], feed[entry["bank_b"]] = np.zeros((k, r), np.float32), np.zeros((r, n), np.float32)
        for adapter, start in zip(self.adapters, self.offsets):  # one adapter's factors in memory at a time
            factors = load_adapter(adapter.path).factors
            known |= set(factors)
            for name, entry in self.routed["matrices"].items():
                pair = factors.get(name.removesuffix(".weight"))
                if pair is not None:
                    feed[entry["bank_a"]][:, start:start + adapter.rank] = pair["A"].T
                    feed[entry["bank_b"]][start:start + adapter.rank, :] = pair["B"].T
        self.bank_bytes = sum(a.nbytes for a in feed.values())
        missing = sorted(known - {n.removesuffix(".weight") for n in self.routed["matrices"]})
        if missing:
            raise ModmtError(f"the shared base {self.base_dir} has no routed side path for {missing[0]}; re-export it")
        # Setting 2 sums the two adapters' factors slot by slot: MIX maps slot a of every adapter to slot a of every other.
        # Columns past the adapters' are in no slot (-1): they mix with nothing.
        slot = np.concatenate([*(np.arange(r) for r in ranks), np.full(rank - int(self.offsets[-1]), -1)])
        feed[MIX] = ((slot[:, None] == slot[None, :]) & (slot[:, None] >= 0)).astype(np.float32)
        return feed


    def direction(self, src: str, tgt: str) -> RoutedDirection:
        found = self.directions.get((src, tgt))
        if found is None:
            held = ", ".join(f"{s}-{t}" for s, t in sorted(self.directions))
            raise ModmtError(f"no direction {src}->{tgt} here; this process holds {held}")
        return found

    def resolve_weights(self, direction: RoutedDirection, w) -> MergeWeights:
        """A request's --w: None (the tuned weights, else the export's), 'IN:OUT', or 'learned' where the export has
        learned weights."""
        if w is None:
            return direction.default_weights
        if isinstance(w, MergeWeights):
            return w
        if str(w).strip() == "learned":
            if direction.weights.per_layer is None:
                raise ModmtError(f"{direction.src}->{direction.tgt} was exported with fixed weights; learned "
                                 "weights need an export with --w learned")
            return direction.weights
        return parse_weights(str(w))

    def coefficients(self, direction: RoutedDirection, weights: MergeWeights, setting: int) -> np.ndarray:
        """[layers, 3, R]: cA, cB and f of one (direction, weights, setting) for every layer."""
        table = np.zeros((self.layers, 3, self.bank_columns), np.float32)
        table[:, 2, :] = 1.0 if setting == 1 else 0.0
        if setting == 2 and self.adapters[direction.adapters[0]].rank != self.adapters[direction.adapters[1]].rank:
            raise ModmtError(f"Setting 2 needs LoRA_in({direction.src}) and LoRA_out({direction.tgt}) of equal ranks")
        for layer in range(self.layers):
            for which, w in zip(direction.adapters, weights.for_layer(layer)):
                adapter, start = self.adapters[which], self.offsets[which]
                cols = slice(start, start + adapter.rank)
                if setting == 1:
                    table[layer, 0, cols], table[layer, 1, cols] = w * adapter.scaling, 1.0
                else:
                    table[layer, 0, cols] = table[layer, 1, cols] = math.sqrt(w * adapter.scaling)
        return table

    def encode(self, text: str, template: PromptTemplate) -> tuple[list[int], int]:
        body = self.tokenizer.encode(clean_text(text), add_special_tokens=False).ids
        return template.wrap(body[: self.max_input_tokens]), len(body)

    def requests(self, count: int, src=None, tgt=None, w=None, directions=None) -> list[tuple]:
        """Each item's (direction, weights), checked before any decoding."""
        if directions is None:
            if src is None or tgt is None:
                raise ModmtError("give src and tgt, or one direction per text")
            directions = [(src, tgt, w)] * count
        if len(directions) != count:
            raise ModmtError(f"{count} texts but {len(directions)} directions")
        resolved, cache = [], {}
        for item in directions:
            key = (item[0], item[1], item[2] if len(item) > 2 else w)
            if key not in cache:
                direction = self.direction(key[0], key[1])
                cache[key] = (direction, self.resolve_weights(direction, key[2]))
            resolved.append(cache[key])
        return resolved

    def translate(self, texts: list[str], src: str | None = None, tgt: str | None = None, w=None,
                  directions: list[tuple] | None = None, settings: DecodeSettings | None = None, on_truncate=None,
                  **choices) -> list[str]:
        """One translation per text, in order: all into src->tgt with weights w, or text i into directions[i]
        ((src, tgt) or (src, tgt, w)). settings and choices as in `Translator.translate`."""
        items = self.requests(len(texts), src, tgt, w, directions)
        settings = DecodeSettings.of(settings, **choices)
        choose = guarded_choice(self.guard, texts, lambda i: items[i][0].tgt) if settings.guard else None
        return translate_texts(texts, lambda i: self.encode(texts[i], items[i][0].template),
                               lambda chunk: self.batch_decoder([items[i] for i in chunk]),
                               self.tokenizer, self.stop_ids, self.pad_id, settings, self.max_input_tokens,
                               on_truncate, self.pad_multiple, choose)

    @cached_property
    def guard(self) -> TargetGuard:
        """The target-language guard over every language of the base's directions, made on first use."""
        return TargetGuard({"en", *(code for pair in self.directions for code in pair)})

    def probe(self, texts: tuple[str, ...]):
        """The decoder and prompts that runtime/join_alignment.py probes this base with (pad_multiple): rows of
        its first direction; every row is multiplied by the whole bank, so one direction stands for all."""
        src, tgt = min(self.directions)
        items = self.requests(len(texts), src, tgt)
        return self.batch_decoder(items), [self.encode(text, items[0][0].template)[0] for text in texts]

    def batch_decoder(self, items: list[tuple]) -> "RoutedDecoder":
        """A decoder for one batch: a slot per distinct (direction, weights, setting) and a route per row.
        Every row is multiplied by the whole bank (the columns of adapters it does not use get zero
        coefficients), so a row's arithmetic does not depend on which directions share its batch."""
        slots, route = {}, []
        for direction, weights in items:
            key = (direction.src, direction.tgt, weights)
            if key not in slots:
                slots[key] = (len(slots), self.coefficients(direction, weights, direction.setting))
            route.append(slots[key][0])
        table = np.stack([coef for _, coef in sorted(slots.values(), key=lambda s: s[0])])
        return RoutedDecoder(self.search_decoder, {**self.bank, COEF: table}, np.array(route, dtype=np.int64))


class Routes:
    """Each cache row's slot, carried at the end of the cache so that beam reorders move it too."""

    def __init__(self, rows: np.ndarray):
        self.rows = rows


class RoutedDecoder:
    """The decoding interface of runtime/decoding.py over a routed session: adds the routes to every run."""

    def __init__(self, inner, constant: dict, route: np.ndarray):
        self.inner, self.constant, self.route = inner, constant, route

    @property
    def search_head(self):
        return self.inner.search_head

    def host(self, logits):
        return getattr(self.inner, "host", np.asarray)(logits)

    def prefill(self, ids, mask):
        logits, cache = self.inner.prefill(ids, mask, {**self.constant, ROUTE: self.route})
        return logits, [*cache, Routes(self.route)]

    def step(self, tokens, mask, cache):
        routes = cache[-1]
        logits, new = self.inner.step(tokens, mask, cache[:-1], {**self.constant, ROUTE: routes.rows})
        return logits, [*new, routes]

    @staticmethod
    def kv_of(cache: list) -> list:
        """The cache's tensors, without the routes (runtime/decoding.py joins batches on them)."""
        return cache[:-1]

    def adopt(self, kv: list) -> list:
        """A cache of this decoder's rows from joined tensors: each row routed as batch_decoder was told."""
        return [*kv, Routes(self.route)]

    def select(self, values: list, rows: np.ndarray) -> list:
        if values and isinstance(values[-1], Routes):
            return [*self.inner.select(values[:-1], rows), Routes(values[-1].rows[rows])]
        return self.inner.select(values, rows)
