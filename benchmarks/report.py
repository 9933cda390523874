"""The report of a `modmt-bench reproduce` run: Table 1, gain ratios with intervals, the paper's findings, plots.

It reads only the run's cached cells (hypotheses and references per direction and method), so it
can be written at any point of a run: rows still missing are listed as missing, never guessed.
"""
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from statistics import mean

from modmt.benchmarks.report_ability import DOMAINS, mix_lines, ood_trial_lines, out_of_domain_lines, scale_lines
from modmt.benchmarks.report_cells import ROW_ORDER, collect, fmt, load_cells, row_label, trial_order
from modmt.benchmarks.report_limits import limits_lines, merged_candidates
from modmt.benchmarks.report_off_target import off_target_lines
from modmt.benchmarks.run_layout import RunLayout
from modmt.runtime.atomic import write_json_atomic
from modmt.runtime.languages import ENGLISH

AIM_RATIO, AIM_PARAMS = 0.70, 0.015


def columns_of(langs: list[str]) -> dict[str, callable]:
    cols = {f"{l}→": (lambda d, l=l: d.split("-")[0] == l) for l in langs}
    cols.update({f"→{l}": (lambda d, l=l: d.split("-")[1] == l) for l in langs})
    cols["avg"] = lambda d: True
    cols["non-en avg"] = lambda d: ENGLISH not in d.split("-")
    return cols


def param_ratio(pool_meta: dict, key: str) -> float | None:
    method = key.split("+")[0]
    ratios = {k: v["trainable_ratio"] for k, v in pool_meta.get("adapters", {}).items()}
    if method == "base":
        return None
    if method == "full":
        return 1.0
    ins = [v for k, v in ratios.items() if k.startswith("in/")]
    outs = [v for k, v in ratios.items() if k.startswith("out/")]
    if not ins or not outs:
        return None
    if method == "in":
        return max(ins)
    if method == "out":
        return max(outs)
    return max(ins) + max(outs)


def tuning_lines(work: Path, tune: dict | None) -> list[str]:
    """The equal-budget learning-rate search on the dev split (reproduce's `tune` stage, its trials.json),
    trial by trial."""
    if tune is None:
        return []
    lines = ["## Tuning on the dev split", "",
             "Each side gets the same grid of learning rates, epochs and examples per language; each trial is "
             "scored by mean chrF++ over every direction on the same dev segments (never devtest). Full "
             "fine-tuning is scored as itself, the adapters as the pooled recipe's Setting 1 at 1:9. A side "
             "whose best learning rate is at an edge of its grid gets one more trial, one grid step beyond "
             "it (marked *beyond the grid*).", "",
             "Train steps: full fine-tuning's, or the sum over the trial's ten adapters (each 1/10 of the "
             "examples); final loss: the last logged, or its mean over the adapters.", "",
             "| side | learning rate | dev chrF++ | scored as | segments × directions | train steps | final loss |",
             "|---|---:|---:|---|---:|---:|---:|"]
    chosen = tune.get("chosen", {})
    base_cells = [c for c in load_cells(work, "tune/quality") if c["pool"] == "base"]
    base = sum(c["chrf"] for c in base_cells) / len(base_cells) if base_cells else None
    if base is not None:
        lines.append(f"| base (no training) | - | {base:.2f} | Pre-train | {base_cells[0]['n']} × {len(base_cells)} "
                     "| 0 | - |")
    for t in sorted(tune["trials"], key=trial_order):
        mark = (" *(beyond the grid)*" if t.get("beyond_grid") else "") + \
            (" **(chosen)**" if chosen.get(t["side"]) == t["lr"] else "")
        train = t.get("train") or {}
        # Full fine-tuning records its steps; an adapter trial records each adapter's.
        steps = train["steps"] if "steps" in train else sum(a.get("steps", 0) for a in train.values())
        adapter_losses = [a["final_loss"] for a in train.values() if isinstance(a, dict) and a.get("final_loss")]
        loss = train.get("final_loss") or (sum(adapter_losses) / len(adapter_losses) if adapter_losses else None)
        lines.append(f"| {t['side']} | {t['lr']:g}{mark} | {t['dev_chrf']:.2f} | {t['row']} | "
                     f"{t['segments_per_direction']} × {t['directions']} | {steps} | "
                     f"{'-' if loss is None else f'{loss:.3f}'} |")
    if "budget" in tune:
        b = tune["budget"]
        extra = [side for side, n in b["trials"].items() if n > b["grid_trials_per_side"]]
        lines += ["", f"Budget: a grid of {b['grid_trials_per_side']} learning rates for each side"
                      + (f", plus one trial beyond the edge for {' and '.join(extra)}" if extra else "")
                      + f" ({', '.join(f'{n} {side}' for side, n in b['trials'].items())} trials); "
                      f"epochs {b['epochs']}; pairs per direction (full FT) or per adapter "
                      f"{b['pairs_per_direction_or_adapter']}; {b['dev_segments_per_direction']} dev segments × "
                      f"{b['directions']} directions per trial."]
        for side, lr in chosen.items():
            side_lrs = sorted(t["lr"] for t in tune["trials"] if t["side"] == side)
            if len(side_lrs) > 2 and lr in (side_lrs[0], side_lrs[-1]):
                lines.append(f"\nThe {side} side's best ({lr:g}) is still at the edge of what it tried: its "
                             "optimum may lie further out.")
            if base is not None:
                best = max(t["dev_chrf"] for t in tune["trials"] if t["side"] == side)
                lines.append(f"\nThe {side} side's best is {best - base:+.2f} chrF++ against the untrained base "
                             f"on the same dev segments ({best:.2f} vs {base:.2f}).")
    else:
        lines += ["", "The search is still running: the rows above are the trials finished so far."]
    return lines + [""]


@dataclass
class ReportInputs:
    """What a report reads from a run's folder (work folder or evidence), loaded once."""
    work: Path
    settings: dict
    stages: dict
    tune: dict | None
    pool_meta: dict
    chrf: object                 # the sacrebleu CHRF scorer every cell is re-scored with
    domain_cells: dict           # cell folder -> its cells
    rows: dict                   # Table-1 row key -> direction -> cell (in domain)
    labels: dict
    stats: object                # SegmentStats over the in-domain cells (paired bootstrap)
    langs: list
    all_dirs: list
    non_en: list                 # the directions without English
    cols: dict                   # Table-1 column name -> which directions it averages
    order: list                  # the rows, in Table 1's order
    complete: set                # the rows scored on every direction


def load_inputs(work: Path) -> ReportInputs:
    from modmt.benchmarks.quality import chrf_scorer

    layout = RunLayout(work)
    settings = json.loads(layout.settings.read_text())
    langs = settings["langs"]
    chrf = chrf_scorer()
    # Every section reads the cells from here: each folder is read once per report.
    domain_cells = {folder: load_cells(work, folder) for _, folder in DOMAINS}
    rows, labels, stats = collect(domain_cells["quality"], chrf)
    all_dirs = [f"{s}-{t}" for s in langs for t in langs if s != t]
    order = [k for k in ROW_ORDER if k in rows] + sorted(k for k in rows if k not in ROW_ORDER)
    return ReportInputs(work, settings, layout.read(layout.stages, {}), layout.read(layout.trials),
                        layout.read(layout.pool() / "pool.json", {}), chrf, domain_cells, rows, labels, stats, langs,
                        all_dirs, [d for d in all_dirs if ENGLISH not in d.split("-")], columns_of(langs), order,
                        {k for k in order if all(d in rows[k] for d in all_dirs)})


# --- compute -------------------------------------------------------------------------------------------

def table1_means(r: ReportInputs) -> dict:
    """Row -> column -> mean chrF++ over the column's directions (None where a direction is missing)."""
    table = {}
    for key in r.order:
        table[key] = {}
        for name, keep in r.cols.items():
            dirs = [d for d in r.all_dirs if keep(d)]
            have = [d for d in dirs if d in r.rows[key]]
            table[key][name] = mean(r.rows[key][d]["chrf"] for d in dirs) if have and len(have) == len(dirs) else None
    return table


def headline_rows(r: ReportInputs) -> list:
    return [k for k in r.order if k in r.complete and k not in ("base",)]


def gain_ratios(r: ReportInputs) -> dict:
    """Row -> (gain ratio over all directions, over those without English), paired on the common sample;
    empty without the base and full fine-tuning on every direction."""
    ratios = {}
    if not {"base", "full"} <= r.complete:
        return ratios
    for key in headline_rows(r):
        dirs = r.stats.common(["base", "full", key], r.all_dirs)
        if len(dirs) != len(r.all_dirs):
            continue
        ne = [d for d in dirs if d in r.non_en]
        ratios[key] = (r.stats.gain_ratio(key, "base", "full", dirs), r.stats.gain_ratio(key, "base", "full", ne))
    return ratios


def paper_findings(r: ReportInputs, ratios: dict) -> tuple[list, dict | None, dict]:
    """The paper's findings, each (claim, verdict, numbers); the learned weights' mean w_out per direction;
    and the merged rows' gain ratios over all directions (the candidates for our aim)."""
    stats, all_dirs, labels = r.stats, r.all_dirs, r.labels
    findings, learned_w_out, candidates = [], None, {}
    if {"in", "out"} <= r.complete and stats.common(["in", "out"], all_dirs) == all_dirs:
        d = stats.difference("out", "in", all_dirs)
        not_en = [x for x in all_dirs if not x.endswith(f"-{ENGLISH}")]
        d2 = stats.difference("out", "in", not_en)
        verdict = "held" if d.low > 0 else ("not held" if d.high < 0 else "tie")
        findings.append(("LoRA_out > LoRA_in on average", verdict,
                         f"LoRA_out − LoRA_in = {d} chrF++ over all 20 directions; {d2} without →en"))
    merged = [k for k in headline_rows(r) if k.split("+")[0].startswith(("s1-", "s2-", "learned")) and "+" not in k]
    if {"in", "out"} <= r.complete and merged:
        wins, point_wins, checked = [], 0, 0
        for key in merged:
            for name, keep in r.cols.items():
                if name in ("avg", "non-en avg"):
                    continue
                dirs = stats.common(["in", "out", key], [x for x in all_dirs if keep(x)])
                if not dirs:
                    continue
                checked += 1
                a, b = stats.difference(key, "in", dirs), stats.difference(key, "out", dirs)
                point_wins += a.value > 0 and b.value > 0
                if a.low > 0 and b.low > 0:
                    wins.append(f"{row_label(key, labels)} {name} (+{a.value:.2f} over LoRA_in, +{b.value:.2f} "
                                f"over LoRA_out)")
        verdict = "held" if wins else ("tie" if point_wins else "not held")
        findings.append(("Some merged weights beat both single adapters", verdict,
                         f"{point_wins} of {checked} (row, column) cells of the headline merged rows beat both on "
                         f"the point estimate; {len(wins)} with both intervals above zero"
                         + (f": {'; '.join(wins[:4])}" if wins else "")))
    weights_dir = RunLayout(r.work).pool() / "weights"
    if weights_dir.exists() and any(weights_dir.glob("*.json")):
        w = {p.stem: mean(l["w_out"] for l in json.loads(p.read_text())["layers"]) for p in weights_dir.glob("*.json")}
        to_en = {k: v for k, v in w.items() if k.endswith(f"-{ENGLISH}")}
        others = {k: v for k, v in w.items() if not k.endswith(f"-{ENGLISH}")}
        dominant = sum(v > 0.5 for v in others.values())
        en_source = sum(v < 0.5 for v in to_en.values())
        verdict = "held" if others and dominant > len(others) / 2 and (not to_en or en_source > len(to_en) / 2) \
            else "not held"
        findings.append(("Target weights dominate in learned weighting, except for →en", verdict,
                         f"mean w_out > 0.5 in {dominant} of {len(others)} directions not into English "
                         f"(mean {mean(others.values()):.3f}); w_out < 0.5 in {en_source} of {len(to_en)} →en "
                         f"directions (mean {mean(to_en.values()) if to_en else float('nan'):.3f}); one run, no "
                         "interval"))
        learned_w_out = w
    if ratios:
        candidates = {k: v[0] for k, v in ratios.items() if k.split("+")[0].startswith(("s1-", "s2-", "learned"))
                      and v[0] is not None}
        # The paper's claim is about its own recipe (English's adapters on en->en): judged on those rows;
        # the pooled-English rows are reported beside it, and count for our aim.
        paper_rows = {k: v for k, v in candidates.items() if "+" not in k}
        if paper_rows:
            paper_best = max(paper_rows, key=lambda k: paper_rows[k].value)
            g = paper_rows[paper_best]
            # Held only when the interval is tight enough to tell "about half" from none and from all of it.
            if g.low > 0.5:
                verdict = "exceeded"
            elif g.high < 0.5:
                verdict = "not held"
            elif g.low > 0 and g.high < 1:
                verdict = "held"
            else:
                verdict = "inconclusive (the interval also holds 0 or 1)"
            pooled = {k: v for k, v in candidates.items() if "+" in k}
            extra = ""
            if pooled:
                p_best = max(pooled, key=lambda k: pooled[k].value)
                extra = (f"; with English's adapters on pooled pairs instead, {row_label(p_best, labels)}: "
                         f"{pooled[p_best]}")
            findings.append(("Merged adapters reach about 50 % of full fine-tuning's gain", verdict,
                             f"best merged row of the paper's recipe, {row_label(paper_best, labels)}: gain ratio "
                             f"{g} (all 20 directions){extra}"))
    return findings, learned_w_out, candidates


# --- render --------------------------------------------------------------------------------------------

def header_lines(r: ReportInputs) -> list[str]:
    profile, settings = r.settings["profile"], r.settings
    lines = [f"# Table 1 reproduction: profile `{profile['name']}`", "",
             f"Model `{settings['model'] or 'qwen2.5-coder-0.5b-instruct'}`, data `{settings['data'] or 'DDTP'}`, "
             f"languages {', '.join(r.langs)}. {profile['why']}", ""]
    chosen = r.tune.get("chosen") if r.tune else None  # the finished dev search's {"full": lr, "adapters": lr}
    if chosen:  # the profile's own learning rates are its defaults; a tuned run trains at the search's choice
        lines += [f"Learning rates: the dev search's choices below, full fine-tuning {chosen['full']:g} and the "
                  f"adapters {chosen['adapters']:g}, train every row (not the rates the profile's description names).", ""]
    return lines + [f"chrF++ signature `{r.chrf.get_signature()}`; decoding beam {profile['beam']}, at most "
                    f"{profile['max_new_tokens']} new tokens; intervals are 95 % paired bootstrap over segments "
                    f"({r.stats.resamples} resamples, each direction resampled on its own).", ""]


def table1_lines(r: ReportInputs, table: dict) -> list[str]:
    """Table 1 in the paper's layout, plus the two averages and the sample size."""
    names = list(r.cols)
    lines = ["## Table 1", "",
             "Underlined: a merged cell above both LoRA_in and LoRA_out (point estimates, as the paper marks them). "
             "† English's adapters trained on pooled x→en / en→x pairs instead of en→en copies; the directions "
             "without English are the main pool's.", "",
             "| Method | %Params | segments | " + " | ".join(names) + " |",
             "|---|---:|---:|" + "---:|" * len(names)]
    for key in r.order:
        cells = []
        for name in names:
            value = table[key][name]
            text = fmt(value)
            method = key.split("+")[0]
            if method.startswith(("s1-", "s2-", "learned")) and value is not None:
                singles = [table.get(s, {}).get(name) for s in ("in", "out")]
                if all(v is not None and value > v for v in singles):
                    text = f"<u>{text}</u>"
            cells.append(text)
        sizes = sorted({c["n"] for c in r.rows[key].values()})
        ratio = param_ratio(r.pool_meta, key)
        params = "-" if ratio is None else ("100%" if ratio >= 1 else f"{100 * ratio:.2f}%")
        missing = "" if key in r.complete else \
            f" (missing {len([d for d in r.all_dirs if d not in r.rows[key]])} directions)"
        lines.append(f"| {row_label(key, r.labels)}{missing} | {params} | {'/'.join(map(str, sizes))} | "
                     + " | ".join(cells) + " |")
    return lines + [""]


def gain_lines(r: ReportInputs, ratios: dict, full_gain) -> list[str]:
    """Headline comparisons, paired on the common sample."""
    stats, all_dirs = r.stats, r.all_dirs
    lines = ["## Gain over the base, as a share of full fine-tuning's", "",
             "gain ratio = (method − base) / (full FT − base), on the mean chrF++ over the directions; "
             "[95 % interval]. Rows on fewer segments than the base are compared on the directions' common "
             "segments only where the sample sizes match; rows that do not match are left out here.", ""]
    if not {"base", "full"} <= r.complete:
        return lines + [f"Needs the base and full fine-tuning rows on every direction; missing: "
                        f"{', '.join(sorted({'base', 'full'} - r.complete))}.", ""]
    lines += ["| Method | %Params | mean chrF++ (20) | gain ratio, all 20 | − full FT, all 20 | "
              "mean chrF++ (12 non-en) | gain ratio, 12 non-en | − full FT, 12 non-en |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key, (g_all, g_ne) in ratios.items():
        dirs = stats.common(["base", "full", key], all_dirs)
        ne = [d for d in dirs if d in r.non_en]
        p = param_ratio(r.pool_meta, key)
        lines.append(f"| {row_label(key, r.labels)} | {'-' if p is None else f'{100 * p:.2f}%'} | "
                     f"{stats.mean_interval(key, dirs)} | {g_all or 'n/a'} | {stats.difference(key, 'full', dirs)} | "
                     f"{stats.mean_interval(key, ne)} | {g_ne or 'n/a'} | {stats.difference(key, 'full', ne)} |")
    lines.append("")
    lines.append(f"Full fine-tuning gains {full_gain} chrF++ over the base on average"
                 + (" — inside the interval of zero: every gain ratio below is unstable." if not
                    full_gain.excludes_zero() else "."))
    return lines + [""]


def findings_lines(findings: list) -> list[str]:
    lines = ["## The paper's findings, here", ""]
    for claim, verdict, numbers in findings:
        lines.append(f"- **{claim}: {verdict}.** {numbers}.")
    if not findings:
        lines.append("- (no finding can be checked yet: the rows it needs are missing)")
    return lines + [""]


def aim_lines(r: ReportInputs, candidates: dict, full_gain) -> list[str]:
    lines = ["## Our aim", ""]
    if not candidates:
        return lines + ["Not measurable yet (needs the base, full fine-tuning and a merged row on every direction).", ""]
    best = max(candidates, key=lambda k: candidates[k].value)
    g, p = candidates[best], param_ratio(r.pool_meta, best)
    reached = g.value >= AIM_RATIO and (p or 0) <= AIM_PARAMS
    lines.append(f"Merged or learned adapters at ≥ {AIM_RATIO:.0%} of full fine-tuning's gain with ≤ "
                 f"{AIM_PARAMS:.1%} trainable parameters: **{'reached' if reached else 'not reached'}** — best "
                 f"{row_label(best, r.labels)} at {g} of the gain with {100 * (p or 0):.2f}% of the parameters"
                 + ("" if reached else f" ({AIM_RATIO - g.value:+.2f} short of the aim on the point estimate)")
                 + ".")
    if g.value > 1:
        lines.append(f"A gain ratio above 1 means the method beat full fine-tuning, whose own gain over the base "
                     f"is {full_gain} chrF++ at this budget: read it as \"full fine-tuning is weak here\" as "
                     f"much as \"the adapters are strong\"; {row_label(best, r.labels)} − full FT = "
                     f"{r.stats.difference(best, 'full', r.all_dirs)}.")
    return lines + [""]


def stage_lines(stages: dict) -> list[str]:
    lines = ["## Stages", "", "| stage | wall time | attempts |", "|---|---:|---:|"]
    for name, entry in stages.items():
        if name in ("report", "evidence"):  # bookkeeping, and still running while this is written
            continue
        wall = f"{entry['seconds'] / 60:.1f} min" if entry.get("done") else "running or interrupted"
        lines.append(f"| {name} | {wall} | {entry.get('attempts', 1)} |")
    return lines + [""]


def write_report(work: Path) -> str:
    """report.md, report.json, results.json and the plots of a run's folder: its inputs loaded once, every
    figure computed, then rendered."""
    from modmt.benchmarks.plots import plot_heatmaps, plot_learned_weights

    r = load_inputs(work)
    layout = RunLayout(work)
    table = table1_means(r)
    ratios = gain_ratios(r)
    findings, learned_w_out, candidates = paper_findings(r, ratios)
    summary = {"rows": {k: table[k] for k in r.order}}
    if {"base", "full"} <= r.complete:
        summary["gain_ratios"] = {k: {"all": vars(a) if a else None, "non_en": vars(b) if b else None}
                                  for k, (a, b) in ratios.items()}
    if learned_w_out is not None:
        summary["learned_w_out"] = learned_w_out

    # Full fine-tuning's gain over the base (a paired bootstrap), once for the gain table and the aim.
    full_gain = r.stats.difference("full", "base", r.all_dirs) if {"base", "full"} <= r.complete else None
    lines = header_lines(r) + table1_lines(r, table) + gain_lines(r, ratios, full_gain) \
        + findings_lines(findings) + aim_lines(r, candidates, full_gain)
    if {"base", "full"} <= r.complete:
        ood_rows, _, ood_stats = collect(r.domain_cells["quality-ood"], r.chrf)
        best_rows = merged_candidates(ratios)
        aim, summary["aim_by_recipe"] = aim_by_recipe(r.stats, ood_stats, best_rows, r.labels, r.all_dirs, r.non_en)
        lines += aim
        lines += limits_lines(work, r.rows, r.labels, r.stats, r.all_dirs, best_rows)
        lines += out_of_domain_lines(work, ood_rows, ood_stats, r.order, r.labels, r.stats, r.all_dirs)
    lines += off_target_lines(r.rows, r.labels, r.order, r.langs, r.all_dirs)
    lines += tuning_lines(work, r.tune)
    lines += ood_trial_lines(work, r.chrf, r.domain_cells["quality-ood"], r.tune)
    lines += scale_lines(work, r.chrf, r.domain_cells)
    lines += mix_lines(work, r.chrf, r.domain_cells, r.stages)
    lines += stage_lines(r.stages)
    write_json_atomic(layout.results, {"languages": r.langs, "scores": {
        k: {d: c["chrf"] for d, c in r.rows[k].items()} for k in r.order if k in r.complete}})
    written = plot_learned_weights(layout.pool(), layout.plots) + plot_heatmaps(layout.results, layout.plots)
    if written:
        lines += ["## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in written[:3]] + [""]
    write_json_atomic(layout.report_json, {**summary, "findings": [
        {"claim": c, "verdict": v, "numbers": n} for c, v, n in findings], "signature": str(r.chrf.get_signature())})
    layout.report_md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(layout.report_md)


def aim_verdict(ratio) -> str:
    """Whether a gain ratio is at least AIM_RATIO, read from its interval; none when there is no ratio (full
    fine-tuning's own gain over the base is not above zero)."""
    if ratio is None:
        return "no verdict: full fine-tuning does not gain over the base here"
    if ratio.low >= AIM_RATIO:
        return "holds"
    if ratio.high < AIM_RATIO:
        return "does not hold"
    return ("holds on the point estimate; the interval also holds less" if ratio.value >= AIM_RATIO
            else "does not hold on the point estimate; the interval reaches it")


def aim_by_recipe(stats, ood_stats, best_rows: list[str], labels, all_dirs: list[str], non_en: list[str]):
    """Is the best merged row of each recipe (chosen in domain) at >= AIM_RATIO of full fine-tuning's gain,
    in domain and, the same row, out of it? Returns the report lines and their summary."""
    lines = [f"## Merged ≥ {AIM_RATIO:.0%} of full fine-tuning's gain, per recipe and domain", "",
             "Each recipe's best merged row by its in-domain gain ratio (the paper's: English's adapters on en→en "
             "copies; pooled: on x→en / en→x pairs), the same row out of domain; all 20 directions, paired "
             f"[95 % interval]. *holds*: the whole interval of the gain ratio is at or above {AIM_RATIO:.2f}; *does "
             "not hold*: the whole interval is below it. The last column, for reading only, is the same ratio "
             "on the 12 directions without English, where the two recipes share their adapters.", "",
             "| recipe | row | domain | full FT − base | row − base | row − full FT | gain ratio | verdict | gain "
             "ratio, 12 without English |", "|---|---|---|---:|---:|---:|---:|---|---:|"]
    summary = []
    for key in best_rows:
        recipe = "pooled" if "+" in key else "paper's"
        for domain, st in (("in domain", stats), ("out of domain", ood_stats)):
            if st.common(["base", "full", key], all_dirs) != all_dirs:
                lines.append(f"| {recipe} | {row_label(key, labels)} | {domain} | (not scored yet) | - | - | - | - | - |")
                continue
            full_gain, gain = st.difference("full", "base", all_dirs), st.difference(key, "base", all_dirs)
            # beside the ratio, the plain difference: out of domain, where full fine-tuning may lose to the
            # base and the ratio has no meaning, it is what the method costs or saves against the baseline
            against_full = st.difference(key, "full", all_dirs)
            ratio = st.gain_ratio(key, "base", "full", all_dirs, require_gain=True)
            ratio_non_en = st.gain_ratio(key, "base", "full", non_en, require_gain=True)
            verdict = aim_verdict(ratio)
            lines.append(f"| {recipe} | {row_label(key, labels)} | {domain} | {full_gain} | {gain} | {against_full} | "
                         f"{ratio or '-'} | **{verdict}** | {ratio_non_en or '-'} |")
            summary.append({"recipe": recipe, "row": key, "domain": domain, "full_gain": vars(full_gain),
                            "gain": vars(gain), "against_full": vars(against_full),
                            "gain_ratio": vars(ratio) if ratio else None, "verdict": verdict})
    return lines + [""], summary


def update_document(document: Path, evidence: Path) -> None:
    """Replace the block between `<!-- report: EVIDENCE -->` and `<!-- /report: EVIDENCE -->` in a Markdown
    file with the evidence folder's report.md, headings moved two levels down and image paths rebased."""
    import os

    from modmt.runtime.errors import ModmtError

    begin, end = f"<!-- report: {evidence.as_posix()} -->", f"<!-- /report: {evidence.as_posix()} -->"
    text = document.read_text(encoding="utf-8")
    if text.count(begin) != 1 or text.count(end) != 1:
        raise ModmtError(f"{document} needs one '{begin}' line and one '{end}' line around the block to replace")
    report = (evidence / "report.md").read_text(encoding="utf-8")
    # The plots the report shows are copied beside the document (docs/img/<evidence>/), so that a docs
    # site, which sees only its own folder, shows them too.
    images = document.parent / "img" / evidence.name
    for name in re.findall(r"\]\(plots/([^)]+)\)", report):
        images.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(evidence / "plots" / name, images / name)
    prefix = Path(os.path.relpath(images, document.parent)).as_posix()
    body = "\n".join(("##" + line if line.startswith("#") else line).replace("](plots/", f"]({prefix}/")
                     for line in report.splitlines())
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    document.write_text(f"{head}{begin}\n{body}\n{end}{tail}", encoding="utf-8")
