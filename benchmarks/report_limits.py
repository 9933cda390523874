"""The report's "where the method stops": per direction, each recipe's best merged row against full fine-tuning,
beside the training data its languages had."""
import json
from pathlib import Path

from modmt.benchmarks.report_cells import row_label
from modmt.benchmarks.run_layout import RunLayout
from modmt.runtime.languages import ENGLISH


def merged_candidates(ratios: dict) -> list[str]:
    """The best merged row (by gain ratio) of each recipe: the paper's and the pooled one."""
    best = []
    for pooled in (False, True):
        keys = [k for k, (g, _) in ratios.items() if g is not None and ("+" in k) == pooled
                and k.split("+")[0].startswith(("s1-", "s2-", "learned"))]
        if keys:
            best.append(max(keys, key=lambda k: ratios[k][0].value))
    return best


def training_pairs(work: Path) -> dict[str, int]:
    """Pairs each language had available in the training corpus (English: every pair has it)."""
    path = RunLayout(work).corpora / "quality.json"
    if not path.exists():
        return {}
    train = json.loads(path.read_text()).get("train", {})
    return {name.split("-")[1]: n for name, n in train.items()}


def limits_lines(work: Path, rows, labels, stats, all_dirs: list[str], best_rows: list[str]) -> list[str]:
    """Where the method stops: per direction, the best merged rows minus full fine-tuning, beside how much
    training data the direction's languages had."""
    from modmt.benchmarks.plots import plot_gap_vs_data

    settings = json.loads(RunLayout(work).settings.read_text())
    cap = settings["profile"].get("adapter_pairs")
    available = training_pairs(work)
    if not best_rows or not available:
        return []

    def fewest(direction):  # the scarcer non-English language of the direction
        langs = [l for l in direction.split("-") if l != ENGLISH]
        return min(available.get(l, 0) for l in langs)

    lines = ["## Where the method stops", "",
             "Each direction's best merged row of each recipe minus full fine-tuning, paired [95 % interval], "
             "beside the training pairs its scarcer non-English language had in the corpus"
             + (f" (each adapter and each full-FT direction used at most {cap} of them at this profile)"
                if cap else "") + ".", "",
             "| direction | pairs available | pairs used | " + " | ".join(row_label(k, labels) + " − full FT"
                                                                for k in best_rows) + " |",
             "|---|---:|---:|" + "---:|" * len(best_rows)]
    points = {k: [] for k in best_rows}
    for d in sorted(all_dirs, key=lambda d: (-fewest(d), d)):
        diffs = []
        for key in best_rows:
            if stats.common([key, "full"], [d]) != [d]:
                diffs.append("-")
                continue
            diff = stats.difference(key, "full", [d])
            points[key].append((fewest(d), diff))
            diffs.append(f"**{diff}**" if diff.high < 0 else str(diff))
        n = fewest(d)
        used = min(n, cap) if cap else n
        lines.append(f"| {d} | {n} | {used} | " + " | ".join(diffs) + " |")
    lines.append("")
    for key in best_rows:
        pts = points[key]
        losses = [f"{n}" for n, diff in pts if diff.high < 0]
        lines.append(f"- {row_label(key, labels)}: loses to full fine-tuning (interval below zero) in "
                     f"{len(losses)} of {len(pts)} directions; " + _rank_note(pts, cap))
    figure = plot_gap_vs_data({row_label(k, labels): v for k, v in points.items()}, RunLayout(work).plots)
    return lines + ["", f"![gap vs data](plots/{figure.name})", ""]


def _rank_note(points, cap) -> str:
    import numpy as np

    if len(points) < 3:
        return "too few directions for a trend."
    data = np.array([n for n, _ in points], dtype=float)
    gap = np.array([d.value for _, d in points])
    used = np.minimum(data, cap) if cap else data
    if len(set(used.tolist())) == 1:
        return (f"every direction trained on the same {int(used[0])} pairs at this profile, so whether the gap "
                "grows with scarcer data cannot be read from this run (the profile caps what each language "
                "gets; the corpus' own sizes only differ in what the base model saw).")
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731 (Spearman = Pearson on ranks; ties broken by order)
    rho = float(np.corrcoef(rank(used), rank(gap))[0, 1])
    return f"Spearman ρ between pairs used and the gap = {rho:+.2f} over {len(points)} directions (no interval)."
