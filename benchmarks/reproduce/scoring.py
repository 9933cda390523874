"""QualityRun and the scoring stages: every (direction, method) cell decoded, scored and cached, in domain and out of it."""
import json

import time

from pathlib import Path

from tqdm import tqdm

from modmt.benchmarks.off_target import off_target_shares
from modmt.benchmarks.reproduce.profiles import MIX_SHARE, Profile, RATIOS, SCALES
from modmt.benchmarks.reproduce.training import directions_of
from modmt.benchmarks.run_layout import RunLayout
from modmt.benchmarks.table1 import Method, table1_methods
from modmt.runtime.atomic import write_json_atomic
from modmt.runtime.errors import ModmtError
from modmt.runtime.languages import ENGLISH


# The row each side of the learning-rate search is scored as: full fine-tuning as itself, the adapters as
# the pooled recipe's Setting 1 at 1:9 (the row the project recommends).
TRIAL_ROWS = {"full": Method("full", "Full-parameter fine-tuning", "full"),
              "adapters": Method("s1-1:9", "Setting 1 (1:9)", "1:9", 1)}


class QualityRun:
    """chrF++ cells, cached as JSON with hypotheses and references (what the bootstrap resamples)."""

    def __init__(self, work: Path, corpus, profile: Profile, provider: str, split: str = "devtest",
                 folder: str = "quality", prepare=None):
        from modmt.benchmarks.quality import chrf_scorer

        self.work, self.corpus, self.profile, self.provider, self.split = work, corpus, profile, provider, split
        self.folder = folder  # "quality-ood" keeps another corpus' cells apart (same exports)
        # prepare(pool_key, method): makes sure the models a cell about to be decoded reads are on this
        # machine (a run resumed from evidence retrains them only when a missing cell needs them).
        self.prepare = prepare
        self.chrf = chrf_scorer()
        self.table = corpus.multiway(split, corpus.languages())
        self.runners = {}

    def cell_path(self, pool_key: str, n: int, src: str, tgt: str, method: str) -> Path:
        return (self.work / self.folder / pool_key / f"{self.split}-n{n}-beam{self.profile.beam}" / f"{src}-{tgt}"
                / f"{method}.json")

    def size(self, n: int | None) -> int:
        total = len(next(iter(self.table.values())))
        return total if n is None else min(n, total)

    def runner(self, pool_key: str, pool_dir: Path, full_dir: Path | None):
        from modmt.benchmarks.quality import OnnxMethods
        from modmt.train.pool import Pool

        if pool_key not in self.runners:
            self.runners[pool_key] = OnnxMethods(Pool(pool_dir), self.onnx_dir(pool_key), self.provider,
                                                 full_dir=full_dir)
        return self.runners[pool_key]

    def onnx_dir(self, pool_key: str) -> Path:
        return RunLayout(self.work).exports() / pool_key

    def release(self, pool_key: str) -> None:
        """Delete a pool's model-sized base exports once its cells are cached: nothing reads them again,
        and a run with a dozen tuning trials would otherwise fill the disk."""
        from modmt.benchmarks.quality import OnnxMethods

        self.runners.pop(pool_key, None)
        OnnxMethods.remove_base_exports(self.onnx_dir(pool_key))

    def cell(self, pool_key: str, pool_dir: Path, method: Method, src: str, tgt: str, n: int | None,
             full_dir: Path | None = None) -> dict:
        n = self.size(n)
        path = self.cell_path(pool_key, n, src, tgt, method.key)
        if path.exists():
            return json.loads(path.read_text())
        if self.prepare is not None:
            self.prepare(pool_key, method)
        sources, references = self.table[src][:n], self.table[tgt][:n]
        started = time.perf_counter()
        p = self.profile
        hyps = self.runner(pool_key, pool_dir, full_dir).translate(src, tgt, method, sources, p.beam,
                                                                  p.max_new_tokens, p.batch)
        record = {"pool": pool_key, "src": src, "tgt": tgt, "method": method.key, "label": method.label, "n": n,
                  "chrf": self.chrf.corpus_score(hyps, [references]).score,
                  "off_target_shares": off_target_shares(hyps, references, src, tgt, list(self.table), sources),
                  "seconds": round(time.perf_counter() - started, 2), "hypotheses": hyps, "references": references}
        write_json_atomic(path, record)
        return record


def mean_chrf(cells: list[dict]) -> float:
    return sum(c["chrf"] for c in cells) / len(cells)


def best_ratios(q: QualityRun, langs, pools: dict) -> dict[int, str]:
    """The best ratio of each setting on the main pool's other_segments sample (it becomes a headline row)."""
    methods = {m.key: m for m in table1_methods(RATIOS, full=False, learned=False)}
    n = q.profile.other_segments
    return {setting: max(RATIOS, key=lambda r: mean_chrf([q.cell("main", pools["main"], methods[f"s{setting}-{r}"],
                                                                s, t, n) for s, t in directions_of(langs)]))
            for setting in (1, 2)}


def run_quality_stage(q: QualityRun, langs, pools: dict, full_dir: Path | None, learned: bool) -> dict:
    """The evaluation plan: headline rows first (so a partial run already answers the main question)."""
    p = q.profile
    directions = directions_of(langs)
    methods = {m.key: m for m in table1_methods(RATIOS, full=full_dir is not None, learned=learned)}
    todo = [("main", k, p.headline_segments) for k in ("base", "in", "out")]
    if full_dir is not None:
        todo.append(("main", "full", p.headline_segments))
    if learned:
        todo.append(("main", "learned", p.headline_segments))
    # 1:9 first on the headline sample (the paper's best ratio, and the best of the smoke-scale run),
    # so that a run cut short still compares both settings with full fine-tuning.
    todo += [("main", f"s{s}-1:9", p.headline_segments) for s in (1, 2)]
    todo += [("main", f"s{s}-{r}", p.other_segments) for s in (1, 2) for r in RATIOS]
    with tqdm(total=len(todo) * len(directions), desc="chrF++ (single adapters, full FT, learned, ratios)") as bar:
        for pool_key, key, n in todo:
            for src, tgt in directions:
                q.cell(pool_key, pools[pool_key], methods[key], src, tgt, n, full_dir)
                bar.update(1)
    best = best_ratios(q, langs, pools)
    headline = [("main", f"s{s}-{best[s]}") for s in (1, 2) if best[s] != "1:9"]
    # The pooled recipe gets the same rows as the paper's (on the directions with English; the others
    # use the main pool's adapters): single adapters, learned weights, the best ratios on the headline
    # sample, every other ratio on the smaller one.
    en_directions = [d for d in directions if ENGLISH in d]
    pooled = []
    if "pooled" in pools:
        # the merged rows first: the 70 % verdict needs them, the single adapters only the table
        pooled_headline = [f"s{s}-{best[s]}" for s in (1, 2)] + (["learned"] if learned else []) + ["in", "out"]
        pooled = [(k, p.headline_segments) for k in pooled_headline]
        pooled += [(f"s{s}-{r}", p.other_segments) for s in (1, 2) for r in RATIOS if r != best[s]]
    total = len(headline) * len(directions) + len(pooled) * len(en_directions)
    with tqdm(total=total, desc="chrF++ (best ratios, pooled English)") as bar:
        for pool_key, key in headline:
            for src, tgt in directions:
                q.cell(pool_key, pools[pool_key], methods[key], src, tgt, p.headline_segments, full_dir)
                bar.update(1)
        for key, n in pooled:
            for src, tgt in en_directions:
                q.cell("pooled", pools["pooled"], methods[key], src, tgt, n)
                bar.update(1)
    return {"best_ratio": {f"setting {s}": r for s, r in best.items()}}


def run_ood_stage(in_domain: QualityRun, ood: QualityRun, langs, pools: dict, full_dir: Path | None) -> dict:
    """The headline rows (base, full FT, single adapters, learned, each setting's best ratio; the pooled
    recipe's on the directions with English) on the out-of-domain corpus, on the headline sample."""
    p = ood.profile
    directions = directions_of(langs)
    methods = {m.key: m for m in table1_methods(RATIOS, full=full_dir is not None, learned=True)}
    best = best_ratios(in_domain, langs, pools)
    # The rows the 70 % verdict needs first (base, full FT, the merged rows of both recipes), so that a run
    # cut short already answers it out of domain; the single adapters last.
    merged = ["learned", f"s1-{best[1]}", f"s2-{best[2]}"]
    rows = [("main", k) for k in ["base", "full"] + merged if k in methods]
    rows += [("pooled", k) for k in merged if "pooled" in pools]
    rows += [(pool_key, k) for pool_key in ("main", "pooled") for k in ("in", "out")
             if pool_key == "main" or "pooled" in pools]
    plan = [(pool_key, key, src, tgt) for pool_key, key in rows for src, tgt in directions
            if pool_key == "main" or ENGLISH in (src, tgt)]
    with tqdm(plan, desc="chrF++ out of domain (headline rows)") as bar:
        for pool_key, key, src, tgt in bar:
            ood.cell(pool_key, pools[pool_key], methods[key], src, tgt, p.headline_segments, full_dir)
    return {"rows": sorted({f"{k}+pooled-en" if pk == "pooled" else k for pk, k in rows}), "cells": len(plan)}


def score_in_both_runs(in_domain: QualityRun, ood: QualityRun, pool_key: str, pool_dir: Path, methods, langs,
                       label: str) -> int:
    """Each method of one pool on the directions with English and the headline sample, in domain and then
    out of it (one loaded base at a time; the exports stay for the second run). Returns the cells."""
    plan = [(method, src, tgt) for method in methods for src, tgt in directions_of(langs) if ENGLISH in (src, tgt)]
    for run in (in_domain, ood):
        with tqdm(plan, desc=f"{label} ({run.folder})") as bar:
            for method, src, tgt in bar:
                run.cell(pool_key, pool_dir, method, src, tgt, run.profile.headline_segments)
        run.runners.clear()
    return 2 * len(plan)


def run_scale_stage(main: QualityRun, in_domain: QualityRun, ood: QualityRun, langs, pools: dict) -> dict:
    """The pooled recipe's best Setting-1 row with its merge weights summing to S < 1 (`--w IN:OUT@S`, dW
    S times as strong), in domain and out of it, on the directions with English and the headline sample:
    does a weaker merge keep more of the base model's general ability, and what does it cost in domain?
    No training: the same adapters, exported with other weights."""
    ratio = best_ratios(main, langs, pools)[1]
    methods = [Method(f"s1-{ratio}@{scale:g}", f"Setting 1 ({ratio}) at {scale:g}", f"{ratio}@{scale:g}", 1)
               for scale in SCALES]
    cells = score_in_both_runs(in_domain, ood, "pooled", pools["pooled"], methods, langs, "chrF++ of weaker merges")
    return {"ratio": ratio, "scales": list(SCALES), "cells": cells}


def run_mix_stage(main: QualityRun, in_domain: QualityRun, ood: QualityRun, langs, pools: dict) -> dict:
    """The pooled recipe trained again with MIX_SHARE of every adapter's pairs from the out-of-domain
    corpus' train split (general-domain text; never its dev or devtest messages), scored as the scale
    stage's row (the best Setting-1 ratio) in domain and out of it, on the directions with English:
    does mixing general-domain pairs into training keep more of the base model's general ability?"""
    ratio = best_ratios(main, langs, pools)[1]
    method = Method(f"s1-{ratio}", f"Setting 1 ({ratio})", ratio, 1)
    cells = score_in_both_runs(in_domain, ood, "pool-mixed", pools["pool-mixed"], [method], langs,
                               "chrF++ of the mixed-domain pool")
    ood.release("pool-mixed")  # the two runs share the pool's exports: delete the base once both are done
    return {"ratio": ratio, "share": MIX_SHARE, "cells": cells}


def score_trial_out_of_domain(ood: QualityRun, trained: Path, side: str, langs) -> int:
    """One tuning trial's row (as scored on dev) on the out-of-domain corpus, over the directions with
    English on the headline sample; its model-sized export is deleted afterwards. Returns the cells."""
    directions = [d for d in directions_of(langs) if ENGLISH in d]
    for src, tgt in directions:
        ood.cell(f"tune-{trained.name}", trained, TRIAL_ROWS[side], src, tgt, ood.profile.headline_segments,
                 trained if side == "full" else None)
    ood.release(f"tune-{trained.name}")
    return len(directions)


def ood_trial_order(trials: list[dict], work: Path) -> list[dict]:
    """Cheapest first: the trials whose model is still on this machine (only cells to decode), then full
    fine-tuning's (one model to train per trial), then the adapters' (ten per trial), so that a session
    cut short has scored the most rows."""
    return sorted(trials, key=lambda t: (not RunLayout(work).trial(t["side"], t["lr"]).exists(), t["side"] != "full"))


def run_ood_trials_stage(ood: QualityRun, work: Path, langs) -> dict:
    """Every tuning trial's row out of domain: what each learning rate costs the model's general ability,
    beside its in-domain dev score. The trials are the learning-rate sweep the issue asks to try; no
    training where the tune stage scored them already (it does with --ood, while the model is there)."""
    trials = ood_trial_order(json.loads(RunLayout(work).trials.read_text())["trials"], work)
    cells = 0
    with tqdm(trials, desc="chrF++ out of domain (tuning trials)") as bar:
        for t in bar:
            cells += score_trial_out_of_domain(ood, RunLayout(work).trial(t["side"], t["lr"]), t["side"], langs)
    return {"trials": len(trials), "cells": cells}


def has_train_split(corpus, langs) -> bool:
    try:
        return all(corpus.pairs(code) for code in langs if code != ENGLISH)
    except ModmtError:
        return False
