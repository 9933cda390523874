"""Parse --w into merge weights: 'IN:OUT' normalised to sum 1, optionally scaled ('IN:OUT@S': the pair sums
to S, so the merged delta is S times as strong), or 'learned' per-layer weights from the pool."""
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from modmt.runtime.errors import ModmtError


@dataclass(frozen=True)
class MergeWeights:
    uniform: tuple[float, float] | None          # (w_in, w_out) for every layer
    per_layer: tuple[tuple[float, float], ...] | None = None  # learned: one pair per decoder layer

    def for_layer(self, index: int | None) -> tuple[float, float]:
        if self.per_layer is None:
            return self.uniform
        if index is None or index >= len(self.per_layer):
            raise ModmtError(f"learned weights cover {len(self.per_layer)} layers, but the adapters "
                             f"touch layer {index}; learn the weights again for this pool")
        return self.per_layer[index]

    def to_json(self):
        if self.per_layer is not None:
            return {"learned": [list(w) for w in self.per_layer]}
        return {"w_in": self.uniform[0], "w_out": self.uniform[1]}

    @classmethod
    def from_json(cls, data: dict) -> "MergeWeights":
        if "learned" in data:
            return cls(None, tuple((float(a), float(b)) for a, b in data["learned"]))
        return cls((float(data["w_in"]), float(data["w_out"])))


def weights_argument(weights_json: dict) -> str:
    """The --w value that reproduces a manifest's recorded weights ('learned', 'base' or 'IN:OUT')."""
    if "learned" in weights_json:
        return "learned"
    if "base" in weights_json:
        return "base"
    w_in, w_out = weights_json["w_in"], weights_json["w_out"]
    total = w_in + w_out
    return f"{w_in}:{w_out}" if math.isclose(total, 1.0) else f"{w_in / total}:{w_out / total}@{total}"


def parse_weights(text: str, learned_file: Path | None = None) -> MergeWeights:
    text = text.strip()
    if text == "learned":
        if learned_file is None or not learned_file.exists():
            raise ModmtError(f"no learned weights at {learned_file}; run `modmt-train weights SRC TGT --pool POOL "
                             "--data CORPUS` first")
        try:
            layers = json.loads(learned_file.read_text(encoding="utf-8"))["layers"]
            pairs = tuple((float(w["w_in"]), float(w["w_out"])) for w in layers)
        except (ValueError, KeyError, TypeError) as e:
            raise ModmtError(f"learned weights {learned_file} are malformed ({type(e).__name__}: {e}); learn them "
                             "again with `modmt-train weights SRC TGT --pool POOL --data CORPUS`") from None
        if not pairs or any(not (math.isfinite(a) and math.isfinite(b) and a >= 0 and b >= 0) for a, b in pairs):
            raise ModmtError(f"learned weights {learned_file} hold no layers or a negative or non-finite weight; "
                             "learn them again with `modmt-train weights`")
        return MergeWeights(None, pairs)
    number = r"\s*([0-9]*\.?[0-9]+)\s*"
    match = re.fullmatch(f"{number}:{number}(?:@{number})?", text)
    if not match:
        raise ModmtError(f"--w {text!r} is not IN:OUT with non-negative numbers (e.g. 3:7, 0.3:0.7, 1:0), "
                         "IN:OUT@SCALE (e.g. 1:9@0.5) or 'learned'")
    w_in, w_out = float(match.group(1)), float(match.group(2))
    scale = float(match.group(3)) if match.group(3) is not None else 1.0
    if not math.isfinite(w_in + w_out + scale):
        raise ModmtError(f"--w {text!r} is too large a number; give a ratio such as 3:7")
    if w_in + w_out == 0:
        raise ModmtError("--w 0:0 gives both adapters zero weight; give at least one a positive weight")
    if scale == 0:
        raise ModmtError(f"--w {text!r} scales the adapters to nothing; give a SCALE above 0 (1 is the plain merge), "
                         "or translate with the base model")
    total = w_in + w_out
    # Both settings scale dW by the pair's sum: Setting 1 linearly, Setting 2 through sqrt(w) on A and on B.
    return MergeWeights((scale * w_in / total, scale * w_out / total))
