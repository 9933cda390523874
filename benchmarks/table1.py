"""Table 1 of the paper: methods as rows, per-language "l->" and "->l" chrF++ averages as columns."""
import csv
import io
from dataclasses import dataclass
from statistics import mean


@dataclass(frozen=True)
class Method:
    key: str          # cache and file name: base, full, in, out, s1-3:7, s2-1:9, learned
    label: str        # row label as in the paper
    weights: str      # what `modmt-export --w` takes ("base" and "full" are not merges)
    setting: int = 1

    @property
    def merged(self) -> bool:
        return self.key.startswith(("s1-", "s2-")) or self.key == "learned"


def table1_methods(ratios=("1:9", "3:7", "7:3", "9:1"), full: bool = False, learned: bool = False) -> list[Method]:
    methods = [Method("base", "Pre-train", "base")]
    if full:
        methods.append(Method("full", "Full-parameter fine-tuning", "full"))
    methods += [Method("in", "LoRA_in", "1:0"), Method("out", "LoRA_out", "0:1")]
    for setting in (1, 2):
        methods += [Method(f"s{setting}-{r}", f"Setting {setting} ({r})", r, setting) for r in ratios]
    if learned:
        methods.append(Method("learned", "Setting 1 (learned)", "learned", 1))
    return methods


def column_averages(scores: dict, langs: list[str]) -> dict:
    """scores {(src, tgt): chrF} -> {"en->": avg over targets, "->en": avg over sources, ...}."""
    columns = {}
    for lang in langs:
        outgoing = [v for (s, t), v in scores.items() if s == lang]
        incoming = [v for (s, t), v in scores.items() if t == lang]
        columns[f"{lang}→"] = mean(outgoing) if outgoing else None
        columns[f"→{lang}"] = mean(incoming) if incoming else None
    return columns


def build_table(results: dict, methods: list[Method], langs: list[str], params: dict) -> list[dict]:
    """Rows of Table 1; a merged method's cell is marked when it beats both LoRA_in and LoRA_out."""
    rows = []
    for method in methods:
        scores = results.get(method.key)
        if not scores:
            continue
        rows.append({"method": method.label, "key": method.key, "params": params.get(method.key),
                     "columns": column_averages(scores, langs), "beats_both": {}})
    single = {row["key"]: row["columns"] for row in rows if row["key"] in ("in", "out")}
    for row in rows:
        if row["key"] not in ("in", "out", "base", "full") and len(single) == 2:
            for col, value in row["columns"].items():
                others = [single["in"][col], single["out"][col]]
                row["beats_both"][col] = value is not None and all(o is not None and value > o for o in others)
    return rows


def _params(value) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.2f}%" if value < 1 else "100%"


def to_markdown(rows: list[dict], langs: list[str]) -> str:
    columns = [f"{l}→" for l in langs] + [f"→{l}" for l in langs]
    lines = ["| Method | %Params | " + " | ".join(columns) + " |", "|---|---:|" + "---:|" * len(columns)]
    for row in rows:
        cells = []
        for col in columns:
            value = row["columns"].get(col)
            text = "-" if value is None else f"{value:.2f}"
            cells.append(f"<u>{text}</u>" if row["beats_both"].get(col) else text)
        lines.append(f"| {row['method']} | {_params(row['params'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(results: dict, methods: list[Method]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["method", "src", "tgt", "chrf++"])
    for method in methods:
        for (src, tgt), score in sorted(results.get(method.key, {}).items()):
            writer.writerow([method.key, src, tgt, f"{score:.4f}"])
    return buffer.getvalue()
