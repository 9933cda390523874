"""Which translator serves each direction of a `modmt serve` process.

Directions on a shared base share one routed session (runtime/routed_translator.py): one copy of
the base whatever their number, and one batch may mix them. A standalone export (its deltas
folded into its own weights) keeps a session of its own and serves only its direction.
"""
from modmt.runtime.errors import ModmtError
from modmt.runtime.merge_weights import weights_argument
from modmt.runtime.open_exports import group_exports, open_exports
from modmt.runtime.text_pieces import token_counter

class StandaloneBackend:
    """One folded export: translates its own direction; its weights were fixed at export.

    Like RoutedBackend, it gives the continuous batcher (runtime/server_batcher.py) what a
    RunningBatch needs: item(src, tgt, w), encode(text, item), decoder_for(row items), tokenizer,
    stop_ids, pad_id; count_tokens(text) for cutting texts into pieces; join_multiple, how far
    apart two of its batches' caches may be and still join; and guard, its target-language guard.
    """

    def __init__(self, translator):
        self.translator = translator
        self.directions = {(translator.src, translator.tgt)}
        self.tokenizer, self.stop_ids, self.pad_id = translator.tokenizer, translator.stop_ids, translator.pad_id
        self.count_tokens = token_counter(self.tokenizer)

    def item(self, src: str, tgt: str, w):
        self.check(src, tgt, w)
        return (src, tgt)

    def encode(self, text: str, item) -> tuple[list[int], int]:
        return self.translator.encode(text)

    def decoder_for(self, row_items: list):
        return self.translator.search_decoder

    @property
    def join_multiple(self) -> int:
        return self.translator.pad_multiple

    def check(self, src: str, tgt: str, w) -> None:
        if w is not None:
            raise ModmtError(f"{src}->{tgt} is served from a folded export, whose weights were fixed when it was "
                             "exported; serve a shared base to choose w per request")

    @property
    def guard(self):
        return self.translator.guard

    def default_weights(self, src: str, tgt: str) -> dict:
        if self.translator.tuned:  # a direction on a shared base folds in its base's tuned weights
            return tuned_entry(self.translator.tuned[1])
        weights = self.translator.manifest.get("weights") or {}
        return {"w": weights_argument(weights) if weights else None, "tuned": False}

    def translate(self, texts, directions, settings):
        return self.translator.translate(texts, settings)


class RoutedBackend:
    """Every direction of one shared base in one session; each text brings its direction and weights."""

    def __init__(self, routed):
        self.routed = routed
        self.directions = set(routed.directions)
        self.tokenizer, self.stop_ids, self.pad_id = routed.tokenizer, routed.stop_ids, routed.pad_id
        self.count_tokens = token_counter(self.tokenizer)

    def item(self, src: str, tgt: str, w):
        """(direction, weights): what routes a row."""
        return self.routed.requests(1, src=src, tgt=tgt, w=w)[0]

    def encode(self, text: str, item) -> tuple[list[int], int]:
        return self.routed.encode(text, item[0].template)

    def decoder_for(self, row_items: list):
        return self.routed.batch_decoder(row_items)

    @property
    def join_multiple(self) -> int:
        return self.routed.pad_multiple

    def check(self, src: str, tgt: str, w) -> None:
        self.routed.requests(1, src=src, tgt=tgt, w=w)

    @property
    def guard(self):
        return self.routed.guard

    def default_weights(self, src: str, tgt: str) -> dict:
        direction = self.routed.direction(src, tgt)
        if direction.tuned:
            return tuned_entry(direction.tuned[1])
        return {"w": weights_argument(direction.weights.to_json()), "tuned": False}

    def translate(self, texts, directions, settings):
        return self.routed.translate(texts, directions=directions, settings=settings)


def tuned_entry(record: dict) -> dict:
    """GET /directions' entry of a direction modmt-tune chose weights for."""
    chrf = (record.get("dev") or {}).get("chrf")
    return {"w": str(record["w"]), "tuned": True, **({"dev_chrf": float(chrf)} if isinstance(chrf, (int, float)) else {})}


def load_backends(paths: list[str], provider: str = "auto", threads: int | None = None,
                  max_input_tokens: int = 512) -> dict[tuple[str, str], object]:
    """{(src, tgt): backend} for every direction the paths hold; a direction given twice is an error."""
    from modmt.runtime.routed_translator import RoutedTranslator

    translators = open_exports(group_exports(paths), provider, threads, max_input_tokens)
    served = {}
    for translator in translators:
        backend = RoutedBackend(translator) if isinstance(translator, RoutedTranslator) else StandaloneBackend(translator)
        for direction in backend.directions:
            if direction in served:
                raise ModmtError(f"{direction[0]}->{direction[1]} is given twice; serve each direction once")
            served[direction] = backend
    return served
