"""The report's sections on the base model's general ability: the headline rows out of the training domain,
each learning rate out of domain, weaker merges, and training with general-domain pairs mixed in."""
import json
from pathlib import Path
from statistics import mean

from modmt.benchmarks.report_cells import load_cells, row_label, trial_order
from modmt.benchmarks.run_layout import RunLayout
from modmt.benchmarks.significance import SegmentStats


def out_of_domain_lines(work: Path, ood_rows, ood_stats, order, labels, stats, all_dirs: list[str]) -> list[str]:
    """The headline rows' gain over the base in domain beside their change out of it (another corpus)."""
    if not ood_rows:
        return []
    info_path = RunLayout(work).corpora / "quality-ood.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    keys = [k for k in order if k in ood_rows and k != "base" and all(d in ood_rows[k] for d in all_dirs)]
    if "base" not in ood_rows or not keys:
        return []
    sizes = sorted({c["n"] for cells in ood_rows.values() for c in cells.values()})
    lines = ["## Out of the training domain", "",
             f"The headline rows again on {info.get('source', 'another corpus')} ({'/'.join(map(str, sizes))} "
             "segments per direction; software messages, not package descriptions). − base and − full FT: mean "
             "chrF++ difference over all 20 directions, paired [95 % interval]; the gain ratio divides by full "
             "fine-tuning's gain on the same corpus, and is left out (-) where that gain's interval is not above "
             "zero.", "",
             "| Method | in domain: − base | out of domain: − base | in domain: − full FT | out of domain: − full FT "
             "| in domain: gain ratio | out of domain: gain ratio |", "|---|---:|---:|---:|---:|---:|---:|"]
    hurt, above_full = [], []
    for key in keys:
        cells = {}
        for name, st in (("in", stats), ("out", ood_stats)):
            for versus in ("base", "full"):
                if key != versus and st.common([key, versus], all_dirs) == all_dirs:
                    cells[name, versus] = st.difference(key, versus, all_dirs)
            # a share of full fine-tuning's gain: none where that gain's interval is not above zero (out of
            # domain it may not be), and "-" then, where the plain difference to full fine-tuning says it
            if key != "full" and st.common([key, "base", "full"], all_dirs) == all_dirs:
                cells[name, "ratio"] = st.gain_ratio(key, "base", "full", all_dirs, require_gain=True)
        if cells.get(("out", "base")) and cells["out", "base"].high < 0:
            hurt.append(row_label(key, labels))
        if cells.get(("out", "full")) and cells["out", "full"].low > 0:
            above_full.append(row_label(key, labels))
        lines.append("| " + " | ".join([row_label(key, labels)] + [str(cells.get(c) or "-") for c in (
            ("in", "base"), ("out", "base"), ("in", "full"), ("out", "full"), ("in", "ratio"), ("out", "ratio"))])
            + " |")
    lines += ["", f"Rows below the base out of domain (interval below zero): {', '.join(hurt) or 'none'}.",
              f"Rows above full fine-tuning out of domain (interval above zero): {', '.join(above_full) or 'none'}.",
              ""]
    return lines


def ood_trial_lines(work: Path, chrf, ood_cells: list[dict], tune: dict | None) -> list[str]:
    """Each tuning trial's row out of domain beside its dev score: does a lower learning rate keep more of
    the base model's general ability, and what does it cost in domain?"""
    trial_cells = load_cells(work, "quality-ood-trials")
    base_cells = [c for c in ood_cells if c["pool"] == "main" and c["method"] == "base"]
    if not trial_cells or tune is None:
        return []
    stats = SegmentStats(chrf)
    sizes = {}
    for key, cell in [("base", c) for c in base_cells] + [(c["pool"], c) for c in trial_cells]:
        direction = f"{cell['src']}-{cell['tgt']}"  # each (row, direction) at its largest sample
        if cell["n"] >= sizes.get((key, direction), 0):
            sizes[(key, direction)] = cell["n"]
            stats.add(key, direction, cell["hypotheses"], cell["references"])
    directions = sorted({f"{c['src']}-{c['tgt']}" for c in trial_cells})
    lines = ["## Learning rate and general ability", "",
             "Every tuning trial's row (as scored on dev: full fine-tuning, or the pooled recipe's Setting 1 at "
             "1:9) on the out-of-domain devtest, over the directions with English; − base: mean chrF++ "
             "difference to the pre-trained model on the same segments, paired [95 % interval].", "",
             "| side | learning rate | dev chrF++ (in domain) | out of domain chrF++ | out of domain − base |",
             "|---|---:|---:|---:|---:|"]
    base_done = stats.common(["base"], directions) == directions  # the ood-quality stage scores the base
    dev_cells = load_cells(work, "tune/quality")
    retrained = []
    for t in sorted(tune["trials"], key=trial_order):
        trial = RunLayout(work).trial(t["side"], t["lr"]).name
        key = f"tune-{trial}"
        if stats.common([key], directions) != directions:
            lines.append(f"| {t['side']} | {t['lr']:g} | {t['dev_chrf']:.2f} | (not scored yet) | - |")
            continue
        # a trial whose model was deleted after its dev cells and trained again for these (on another machine)
        was_retrained = models_disagree([c for c in dev_cells if c["pool"] == trial],
                                        [c for c in trial_cells if c["pool"] == key])
        if was_retrained:
            retrained.append(f"{t['side']} {t['lr']:g}")
        mark = " ‡" if was_retrained else ""
        against_base = (str(stats.difference(key, "base", directions))
                        if stats.common([key, "base"], directions) == directions else "(base not scored yet)")
        lines.append(f"| {t['side']} | {t['lr']:g}{mark} | {t['dev_chrf']:.2f} | "
                     f"{mean(stats.score(key, d) for d in directions):.2f} | {against_base} |")
    base = (f"; base out of domain {mean(stats.score('base', d) for d in directions):.2f} chrF++ on them"
            if base_done else "")
    lines += ["", f"Directions: {', '.join(directions)}{base}."]
    if retrained:
        lines.append(f"‡ ({', '.join(retrained)}): the model was trained again (same data, seed and settings) to "
                     "score it out of domain, and its weights are not bit-identical to those its dev cells were "
                     "scored with (the cells' fingerprints say which): the two columns come from two trainings.")
    return lines + [""]


def models_disagree(first: list[dict], second: list[dict]) -> bool:
    """Whether two sets of cells name a different fine-tuned model or adapter under the same name (from
    the fingerprints the evidence records; cells without them do not disagree)."""
    def models(cells):
        found = {}
        for cell in cells:
            prints = cell.get("fingerprints") or {}
            found.update({"full": prints["full_model"]} if prints.get("full_model") else {})
            found.update(prints.get("adapters") or {})
        return found
    a, b = models(first), models(second)
    return any(a[name] != b[name] for name in a.keys() & b.keys() if a[name] and b[name])


DOMAINS = (("in domain", "quality"), ("out of domain", "quality-ood"))


def ability_cells(chrf, rows: dict[str, dict[str, list[dict]]], domain_cells: dict[str, list[dict]]) -> dict[str, list[str]]:
    """Table cells for rows given as key -> {domain: cells}, in domain then out of domain: chrF++, the paired
    difference to the base and the paired difference to the first row (the one the others change), on the
    rows' own sample (the largest n among them) and directions; a row missing any of them reads "(not
    scored yet)". The base comes from the Table-1 cells of each domain (domain_cells: folder -> cells)."""
    stats, directions = {}, {}
    for name, folder in DOMAINS:
        stats[name] = SegmentStats(chrf)
        variant = [c for row in rows.values() for c in row.get(name, [])]
        n = max((c["n"] for c in variant), default=0)
        base = [c for c in domain_cells[folder] if c["pool"] == "main" and c["method"] == "base"]
        for key, cells in [("base", base), *((k, row.get(name, [])) for k, row in rows.items())]:
            for cell in cells:
                if cell["n"] == n:
                    stats[name].add(key, f"{cell['src']}-{cell['tgt']}", cell["hypotheses"], cell["references"])
        directions[name] = sorted({f"{c['src']}-{c['tgt']}" for c in variant})
    first = next(iter(rows))
    table = {}
    for key in rows:
        table[key] = []
        for name, _ in DOMAINS:
            common = stats[name].common([key, "base"], directions[name])
            if not directions[name] or common != directions[name]:
                table[key] += ["(not scored yet)", "-", "-"]
                continue
            # Beside each row's gain over the base, what it changes against the first row on the same
            # segments: two gains' intervals may overlap while their paired difference excludes zero.
            against_first = (str(stats[name].difference(key, first, common))
                             if key != first and stats[name].common([key, first], common) == common else "-")
            table[key] += [f"{mean(stats[name].score(key, d) for d in common):.2f}",
                           str(stats[name].difference(key, "base", common)), against_first]
    return table


def pooled_row(domain_cells: dict[str, list[dict]], method: str) -> dict[str, list[dict]]:
    """The pooled recipe's Table-1 cells of `method`, in and out of domain."""
    return {name: [c for c in domain_cells[folder] if c["pool"] == "pooled" and c["method"] == method]
            for name, folder in DOMAINS}


def variant_cells(work: Path, variant: str) -> dict[str, list[dict]]:
    """A variant's cells (reproduce's quality-VARIANT and quality-ood-VARIANT folders), in and out of domain."""
    return {"in domain": load_cells(work, f"quality-{variant}"),
            "out of domain": load_cells(work, f"quality-ood-{variant}")}


def ability_table(first: str, align: str, versus: str, rows, chrf, domain_cells: dict[str, list[dict]]) -> list[str]:
    """A row per key: its chrF++ and paired differences to the base and to the first row (the column named
    `versus`), in domain and out of it."""
    lines = [f"| {first} | in domain chrF++ | in domain − base | in domain {versus} | out of domain chrF++ "
             f"| out of domain − base | out of domain {versus} |", f"|{align}|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {key} | " + " | ".join(cells) + " |" for key, cells in ability_cells(chrf, rows, domain_cells).items()]
    return lines + [""]


def scale_lines(work: Path, chrf, domain_cells: dict[str, list[dict]]) -> list[str]:
    """The pooled recipe's best Setting-1 row with merge weights summing to S < 1, beside the plain merge
    (S = 1), in domain and out of it: what a weaker merge costs in domain and keeps of general ability."""
    scaled = variant_cells(work, "scale")
    if not any(scaled.values()):
        return []
    method = next(c["method"] for cells in scaled.values() for c in cells).split("@")[0]  # e.g. s1-1:9
    scales = sorted({float(c["method"].split("@")[1]) for cells in scaled.values() for c in cells}, reverse=True)
    rows = {"1": pooled_row(domain_cells, method)}
    for scale in scales:
        rows[f"{scale:g}"] = {name: [c for c in cells if float(c["method"].split("@")[1]) == scale]
                              for name, cells in scaled.items()}
    lines = ["## Weaker merges and general ability", "",
             f"The pooled recipe's {method.replace('s1-', 'Setting 1 at ')} with its merge weights summing to S "
             "(`--w IN:OUT@S`: the merged delta S times as strong; S = 1 is the Table-1 row), over the directions "
             "with English on the headline sample; − base: mean chrF++ difference to the pre-trained model on "
             "the same segments, paired [95 % interval]; − S = 1: the same against the plain merge. No training: the "
             "same adapters, other weights.", ""]
    return lines + ability_table("S", "---:", "− S = 1", rows, chrf, domain_cells)


def mix_lines(work: Path, chrf, domain_cells: dict[str, list[dict]], stages: dict) -> list[str]:
    """The pooled recipe trained with general-domain pairs mixed in (the `mix` stage), beside the recipe
    as trained on the training domain alone, in domain and out of it."""
    mixed = variant_cells(work, "mix")
    if not any(mixed.values()):
        return []
    method = next(c["method"] for cells in mixed.values() for c in cells)
    share = (stages.get("mix", {}).get("result") or {}).get("share")
    rows = {"training domain only": pooled_row(domain_cells, method),
            f"{share:.0%} general-domain pairs mixed in" if share else "general-domain pairs mixed in": mixed}
    lines = ["## Mixing general-domain pairs into training", "",
             f"The pooled recipe's {method.replace('s1-', 'Setting 1 at ')}, its adapters trained again with a share "
             "of every adapter's pairs (the same number in all) taken from the out-of-domain corpus' train split "
             "(messages that are never its dev or devtest ones, but the same register: the out-of-domain test is "
             "then no longer a domain these adapters never saw). Directions with English, headline sample; − base "
             "as above; − training domain only: the same against the recipe as trained without the mix.", ""]
    return lines + ability_table("training", "---", "− training domain only", rows, chrf, domain_cells)
