"""A reproduce run's cells as Table-1 rows: reading them, keying and labelling rows, and their segment statistics."""
import json
from pathlib import Path

from modmt.benchmarks.significance import SegmentStats
from modmt.runtime.languages import ENGLISH


ROW_ORDER = ["base", "full", "in", "out", "s1-1:9", "s1-3:7", "s1-7:3", "s1-9:1", "s2-1:9", "s2-3:7", "s2-7:3",
             "s2-9:1", "learned"]


def load_cells(work: Path, folder: str = "quality") -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((work / folder).glob("*/*/*/*.json"))]


def row_key(cell: dict) -> str:
    return cell["method"] if cell["pool"] == "main" else f"{cell['method']}+pooled-en"


def row_label(key: str, labels: dict) -> str:
    method, _, pooled = key.partition("+")
    label = labels.get(method, method)
    return f"{label}, pooled en †" if pooled else label


def collect(cells: list[dict], chrf):
    """Rows {key: {direction: cell}} at the largest sample each (direction, row) has, and the segment stats."""
    rows, labels = {}, {}
    for cell in cells:
        key, direction = row_key(cell), f"{cell['src']}-{cell['tgt']}"
        labels[cell["method"]] = cell["label"]
        current = rows.setdefault(key, {}).get(direction)
        if current is None or cell["n"] > current["n"]:
            rows[key][direction] = cell
    # A pooled-en row has only the directions with English; the others use exactly the main pool's
    # adapters, so they take the main row's cell (same adapters, same segments). A direction with English
    # that the pooled row lacks stays missing: the main pool's English adapters are another recipe.
    for key in [k for k in rows if k.endswith("+pooled-en")]:
        main = rows.get(key.split("+")[0], {})
        for direction, cell in main.items():
            if ENGLISH not in direction.split("-"):
                rows[key].setdefault(direction, cell)
    stats = SegmentStats(chrf)
    for key, cells in rows.items():
        for direction, cell in cells.items():
            stats.add(key, direction, cell["hypotheses"], cell["references"])
    return rows, labels, stats


def fmt(value, digits=2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def trial_order(trial: dict) -> tuple:
    """Full fine-tuning's trials first, each side by learning rate (a trial beyond the grid where its rate falls)."""
    return trial["side"] != "full", trial["lr"]
