"""`modmt-bench reproduce`: the paper's Table 1 as one resumable experiment, from corpus to report.

Stages, each cached in --workdir and skipped once finished (a killed run continues with the same
command and recomputes nothing it finished):

  tune         equal-budget learning-rate search on the dev split: the same grid size for full
               fine-tuning and for the adapters, each trial scored on a fixed dev sample, one more trial
               beyond a grid's edge where a side's best lies on it; the choices train the stages below
               (full FT reuses its chosen trial's model)
  adapters     LoRA_in/LoRA_out for every language (the paper's recipe: English's pair on en->en)
  tune-base    (after tune) the untrained base on the search's dev sample: the trials' reference
  pooled-en    English's two adapters again with the pooled recipe (x->en / en->x), in a second pool
               that shares the other languages' adapters
  full         the full fine-tuning baseline on every l->en and en->l pair
  weights      per-layer weight learning for every direction (section 3.4)
  pooled-weights  weight learning for the pooled pool's directions with English (the others share
               the main pool's adapters), so both recipes have the same rows
  quality      chrF++ of every (direction, method), headline rows on more segments than the others
  ood-quality  (with --ood) the headline rows again on a corpus from another domain
  scale        (with --ood) the pooled recipe's best Setting-1 row with merge weights summing to 0.75 and
               0.5 (--w IN:OUT@S), in domain and out of it: a weaker merge's cost and what it keeps
  mix          (with --ood that has a train split) the pooled recipe trained again with a quarter of every
               adapter's pairs from that split, scored like `scale`: what mixing general-domain text keeps
  ood-trials   (with --ood) every tuning trial's row out of domain: the learning rate's cost to general
               ability, beside its in-domain dev score (last of the three remedies: it may retrain
               models the tune stage deleted, the costliest)
  evidence     the run's small files and every cell, enriched with provenance, into --evidence
  report       Table 1, gain ratios and paired-bootstrap intervals, findings, plots -> report.md,
               written from the evidence folder alone

With --evidence pointing at the committed evidence of the same run, a new machine resumes from it:
recorded trials and cells are kept, learned weights restored, and a model is retrained only when a cell
still to decode needs it, and must then match the fingerprints the evidence recorded.
A profile fixes the budget: `paper` (the paper's settings as far as the data allows; for a GPU),
`cpu` (what a 2-core machine finishes in one working session) and `tiny` (the test kit).
"""
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, replace
from itertools import permutations
from pathlib import Path

from tqdm import tqdm

from modmt.benchmarks.evidence import trial_dir
from modmt.benchmarks.run_layout import RunLayout
from modmt.benchmarks.table1 import Method, table1_methods
from modmt.runtime.atomic import write_json_atomic
from modmt.runtime.errors import ModmtError
from modmt.runtime.languages import ENGLISH

log = logging.getLogger(__name__)

LANGS = ["en", "fr", "de", "ja", "zh"]
RATIOS = ("1:9", "3:7", "7:3", "9:1")
SCALES = (0.5, 0.75)  # merge weights summing to less than 1 (--w IN:OUT@S), in and out of domain
MIX_SHARE = 0.25  # of each adapter's pairs, from the out-of-domain corpus' train split (the `mix` stage)


@dataclass(frozen=True)
class Profile:
    name: str
    why: str
    adapter_pairs: int | None      # training pairs per adapter
    adapter_epochs: float
    adapter_lr: float
    full_pairs: int | None         # training pairs per direction (8 directions) for full fine-tuning
    full_epochs: float
    full_lr: float
    weight_pairs: int | None       # pairs per direction for weight learning
    weight_epochs: float
    weight_lr: float
    headline_segments: int | None  # devtest segments for base, full FT, LoRA_in/out, best ratios, learned
    other_segments: int | None     # devtest segments for the other ratio rows
    beam: int
    max_new_tokens: int
    batch: int = 8
    # The tuning search (dev split, not devtest): trials per side and the dev segments per direction
    # that score them. Both sides get the same number of trials, epochs and examples per language.
    full_lr_trials: tuple = ()
    adapter_lr_trials: tuple = ()
    tune_segments: int | None = None


PROFILES = {
    "paper": Profile(
        "paper", "The paper's settings as far as DDTP allows: up to 1,000 pairs per adapter (en-zh has 415), "
        "2 epochs, lr 2e-5 for full fine-tuning (2e-4 for LoRA, whose paper value 2e-5 barely moves rank-8 "
        "adapters in 250 steps), beam 5, the whole devtest split. Meant for a GPU.",
        1000, 2, 2e-4, 1000, 2, 2e-5, 200, 2, 0.05, None, None, 5, 128),
    "cpu": Profile(
        "cpu", "Sized so that every stage finishes within one 3-hour working session on 2 CPU cores "
        "(about 2 h measured, see the stage times): 96 pairs per adapter for 1 epoch at lr 1e-3 (12 steps; "
        "smaller learning rates did not move rank-8 adapters in so few steps), the same 96 pairs per "
        "direction for full fine-tuning (lr 5e-5: the paper's 2e-5 is for 2,000 steps, not 96), greedy "
        "decoding (3x cheaper than beam 5 on this CPU, which buys 3x the segments and so tighter intervals; "
        "all rows decode alike, so the comparisons stay fair), 50 devtest segments per direction for the "
        "headline rows and 12 for the other ratio rows (enough to pick the best ratio of each setting, which "
        "is then evaluated on 50).",
        96, 1, 1e-3, 96, 1, 5e-5, 24, 1, 0.1, 50, 12, 1, 64,
        full_lr_trials=(2e-5, 5e-5, 1e-4), adapter_lr_trials=(3e-4, 1e-3, 3e-3), tune_segments=24),
    "tiny": Profile(
        "tiny", "The built-in tiny model and toy corpus (tests): the numbers mean nothing.",
        8, 2, 1e-2, 8, 1, 1e-3, 4, 1, 0.1, 4, 3, 1, 8,
        full_lr_trials=(1e-3, 1e-2), adapter_lr_trials=(1e-2, 3e-2), tune_segments=3),
}


class Stages:
    """stages.json in the work folder: which stage finished, and its wall time."""

    def __init__(self, work: Path):
        self.path = RunLayout(work).stages
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {}

    def run(self, name: str, fn, *args, always: bool = False):
        entry = self.data.get(name, {})
        if entry.get("done") and not always:
            log.info(f"==> {name}: done ({entry['seconds'] / 60:.1f} min), skipped")
            return entry.get("result")
        log.info(f"==> {name}")
        attempts = entry.get("attempts", 0) + 1  # more than 1: the stage was resumed after a kill
        self.data[name] = {"done": False, "attempts": attempts, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        write_json_atomic(self.path, self.data)
        started = time.perf_counter()
        result = fn(*args)
        self.data[name] = {"done": True, "attempts": attempts, "seconds": round(time.perf_counter() - started, 1),
                           "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "result": result}
        write_json_atomic(self.path, self.data)
        return result


def directions_of(langs: list[str]) -> list[tuple[str, str]]:
    return list(permutations(langs, 2))


def train_adapters(model_dir, corpus, registry, langs, pool_dir, profile: Profile, english="copy", mix=None):
    from modmt.train.adapters import LoraSettings, train_pool
    from modmt.train.trainer import TrainSettings

    settings = TrainSettings(epochs=profile.adapter_epochs, learning_rate=profile.adapter_lr, batch_size=8,
                             max_pairs=profile.adapter_pairs, seed=0, save_steps=25)
    from modmt.train.pool import Pool

    train_pool(model_dir, corpus, registry, langs, pool_dir, LoraSettings(), settings, resume=True, english=english,
               mix=mix)
    # Every adapter of the pool, also those an earlier (killed) attempt finished: pool.json has them all.
    return {key: {"pairs": i["pairs"], "steps": i["steps"], "final_loss": i["final_loss"], "seconds": i["seconds"]}
            for key, i in Pool(pool_dir).read()["adapters"].items()}


def pooled_english_pool(main: Path, pooled: Path, recipe: str = "pooled") -> None:
    """A second pool that shares every non-English adapter of `main` and will hold `recipe` English ones."""
    from modmt.train.pool import Pool

    meta = Pool(main).read()
    target = Pool(pooled)
    if target.exists():
        return
    for key in meta["adapters"]:
        role, lang = key.split("/")
        if lang != ENGLISH and not (pooled / role / lang).exists():
            shutil.copytree(main / role / lang, pooled / role / lang)
    adapters = {k: v for k, v in meta["adapters"].items() if not k.endswith(f"/{ENGLISH}")}
    write_json_atomic(target.meta_path, {**meta, "english_adapters": recipe, "adapters": adapters,
                                         "languages": sorted({k.split("/")[1] for k in adapters})})


# What a tuning trial is scored as: full fine-tuning as itself, the adapters as the pooled recipe's
# Setting 1 at 1:9 (the row the project recommends).
TRIAL_ROWS = {"full": Method("full", "Full-parameter fine-tuning", "full"),
              "adapters": Method("s1-1:9", "Setting 1 (1:9)", "1:9", 1)}


def step_beyond_edge(grid, scores: dict) -> float | None:
    """The learning rate one grid step past the edge of `grid` where the best score lies (None when the
    best is inside it): a best at the edge means the search did not bracket the optimum."""
    grid = sorted(grid)
    best = max(grid, key=lambda lr: scores[lr])
    if len(grid) < 2 or grid[0] < best < grid[-1]:
        return None
    beyond = best * grid[0] / grid[1] if best == grid[0] else best * grid[-1] / grid[-2]
    return float(f"{beyond:.2g}")  # 8e-06, not 7.999999999999999e-06


def train_trial(model_dir, corpus, registry, langs, work: Path, profile: Profile, side: str, lr: float) -> dict:
    """Train one tuning trial (resumable): full fine-tuning into tune/full-lr<lr>, or the pooled recipe's
    adapters into the pool tune/adapters-lr<lr>."""
    trained = trial_dir(work, side, lr)
    if side == "full":
        return train_full_model(model_dir, corpus, registry, langs, trained, replace(profile, full_lr=lr))
    return train_adapters(model_dir, corpus, registry, langs, trained, replace(profile, adapter_lr=lr),
                          english="pooled")


def tune_learning_rates(model_dir, corpus, registry, langs, work: Path, profile: Profile, provider: str,
                        after_training=None, after_scoring=None) -> dict:
    """The equal-budget search: each learning rate of each side trained with the profile's pairs and
    epochs, scored by mean chrF++ over every direction on the first `tune_segments` dev segments
    (dev, never devtest). Full fine-tuning is scored as itself; the adapters as the pooled recipe's
    Setting 1 at 1:9 (the row the project recommends). A side whose best is at the edge of its grid
    gets one more trial, one grid step beyond it (once: the budget stays bounded and is reported).
    Each trial is resumable on its own; a trial already recorded with all its cells (also one restored
    from evidence, whose model is not on this machine) is not trained again. after_training() runs once
    a trial's model is trained, before its cells are scored; after_scoring(folder, side) once they are,
    while the model is still there (to score it elsewhere without training it again on a new machine)."""
    layout = RunLayout(work)
    tune = layout.tune
    dev = QualityRun(tune, corpus, profile, provider, split="dev")
    directions = directions_of(langs)
    grids = {"full": profile.full_lr_trials, "adapters": profile.adapter_lr_trials}
    recorded = {(t["side"], t["lr"]): t for t in
                layout.read(layout.trials, {"trials": []})["trials"]}
    trials = []

    def run_trial(side: str, lr: float, beyond_grid: bool = False) -> None:
        trained = trial_dir(work, side, lr)
        method = TRIAL_ROWS[side]
        n = dev.size(profile.tune_segments)
        if (side, lr) in recorded and all(dev.cell_path(trained.name, n, src, tgt, method.key).exists()
                                          for src, tgt in directions):
            trials.append(recorded[(side, lr)])
            log.info(f"tune {side} lr {lr:g}: recorded, dev chrF++ {trials[-1]['dev_chrf']:.2f}")
            return
        started = time.perf_counter()
        info = train_trial(model_dir, corpus, registry, langs, work, profile, side, lr)
        if after_training is not None:
            after_training()
        full_dir = trained if side == "full" else None  # the trial's folder is the fine-tuned model, or the pool
        cells = [dev.cell(trained.name, trained, method, src, tgt, profile.tune_segments, full_dir)
                 for src, tgt in directions]
        dev.release(trained.name)  # every cell is cached now
        if after_scoring is not None:
            after_scoring(trained, side)
        trials.append({"side": side, "lr": lr, "row": method.label, "dev_chrf": round(mean_chrf(cells), 4),
                       "segments_per_direction": cells[0]["n"], "directions": len(cells), "train": info,
                       "seconds": round(time.perf_counter() - started, 1), "beyond_grid": beyond_grid})
        done = {(t["side"], t["lr"]) for t in trials}  # progress a reader can look at, recorded trials kept
        write_json_atomic(layout.trials, {"trials": trials + [t for k, t in recorded.items() if k not in done]})
        log.info(f"tune {side} lr {lr:g}: dev chrF++ {trials[-1]['dev_chrf']:.2f}")

    for side, grid in grids.items():
        for lr in grid:
            run_trial(side, lr)
    for side, grid in grids.items():
        beyond = step_beyond_edge(grid, {t["lr"]: t["dev_chrf"] for t in trials if t["side"] == side})
        if beyond is not None:
            run_trial(side, beyond, beyond_grid=True)
    chosen = {side: max((t for t in trials if t["side"] == side), key=lambda t: t["dev_chrf"])["lr"]
              for side in grids}
    budget = {"grid_trials_per_side": len(profile.full_lr_trials),
              "trials": {side: sum(t["side"] == side for t in trials) for side in grids},
              "epochs": {"full": profile.full_epochs, "adapters": profile.adapter_epochs},
              "pairs_per_direction_or_adapter": {"full": profile.full_pairs, "adapters": profile.adapter_pairs},
              "dev_segments_per_direction": dev.size(profile.tune_segments), "directions": len(directions)}
    result = {"trials": trials, "chosen": chosen, "budget": budget}
    write_json_atomic(layout.trials, result)
    return result


def score_base_on_dev(work: Path, corpus, profile: Profile, provider: str, langs, pool_dir: Path,
                      prepare=None) -> dict:
    """The untrained base on the tuning search's dev segments: the reference that says whether a trial's
    learning rate improves on not training at all (full fine-tuning's best lies at its lowest rate)."""
    dev = QualityRun(RunLayout(work).tune, corpus, profile, provider, split="dev", prepare=prepare)
    base = Method("base", "Pre-train", "base")
    cells = [dev.cell("base", pool_dir, base, src, tgt, profile.tune_segments) for src, tgt in directions_of(langs)]
    dev.release("base")
    return {"dev_chrf": round(mean_chrf(cells), 4), "segments_per_direction": cells[0]["n"], "directions": len(cells)}


def train_full_model(model_dir, corpus, registry, langs, out: Path, profile: Profile):
    from modmt.train.full import train_full
    from modmt.train.trainer import TrainSettings

    if (out / "modmt-full.json").exists():  # finished in an earlier run whose stage record was lost
        info = json.loads((out / "modmt-full.json").read_text())
    else:
        settings = TrainSettings(epochs=profile.full_epochs, learning_rate=profile.full_lr, batch_size=8,
                                 max_pairs=profile.full_pairs, seed=0, save_steps=25)
        info = train_full(model_dir, corpus, registry, langs, out, settings, resume=True)
    return {"steps": info["steps"], "final_loss": info["final_loss"], "examples": info["examples"]}


def learn_all_weights(model_dir, pool_dir: Path, corpus, registry, langs, profile: Profile, only_english=False):
    from modmt.train.pool import Pool
    from modmt.train.trainer import TrainSettings
    from modmt.train.weight_learning import learn_weights

    pool = Pool(pool_dir)
    settings = TrainSettings(epochs=profile.weight_epochs, learning_rate=profile.weight_lr, batch_size=8,
                             max_pairs=profile.weight_pairs, seed=0)
    done = {}
    for src, tgt in directions_of(langs):
        if only_english and ENGLISH not in (src, tgt):
            continue
        if not pool.weights_file(src, tgt).exists():  # one direction at a time: a kill loses at most one
            learn_weights(model_dir, pool, corpus, registry, src, tgt, settings)
        layers = json.loads(pool.weights_file(src, tgt).read_text())["layers"]
        done[f"{src}-{tgt}"] = sum(layer["w_out"] for layer in layers) / len(layers)
    return done


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
    return sorted(trials, key=lambda t: (not trial_dir(work, t["side"], t["lr"]).exists(), t["side"] != "full"))


def run_ood_trials_stage(ood: QualityRun, work: Path, langs) -> dict:
    """Every tuning trial's row out of domain: what each learning rate costs the model's general ability,
    beside its in-domain dev score. The trials are the learning-rate sweep the issue asks to try; no
    training where the tune stage scored them already (it does with --ood, while the model is there)."""
    trials = ood_trial_order(json.loads(RunLayout(work).trials.read_text())["trials"], work)
    cells = 0
    with tqdm(trials, desc="chrF++ out of domain (tuning trials)") as bar:
        for t in bar:
            cells += score_trial_out_of_domain(ood, trial_dir(work, t["side"], t["lr"]), t["side"], langs)
    return {"trials": len(trials), "cells": cells}


def has_train_split(corpus, langs) -> bool:
    try:
        return all(corpus.pairs(code) for code in langs if code != ENGLISH)
    except ModmtError:
        return False


def reproduce(model: str | None, data: Path | None, profile_name: str, work: Path, provider: str = "auto",
              langs: list[str] | None = None, stop_after: str | None = None, ood: Path | None = None,
              evidence: Path | None = None) -> Path:
    from modmt.runtime.languages import load_registry
    from modmt.train.corpus import open_corpus
    from modmt.train.models import DEFAULT_MODEL, fetch_model, resolve_model

    if profile_name not in PROFILES:
        raise ModmtError(f"--profile is one of {', '.join(PROFILES)}, got {profile_name!r}")
    profile = PROFILES[profile_name]
    work.mkdir(parents=True, exist_ok=True)
    layout = RunLayout(work)
    settings_file = layout.settings
    settings = json.loads(json.dumps({"model": model, "data": str(data) if data else None,
                                      "profile": asdict(profile), "langs": langs or LANGS}))
    if evidence is not None and RunLayout(evidence).settings.exists():
        # The committed evidence of this run outlives the machine that ran it: resume from it.
        from modmt.benchmarks.evidence import restore_evidence

        if json.loads(RunLayout(evidence).settings.read_text()) != settings:
            raise ModmtError(f"{evidence} holds the evidence of a run with other settings; use a new --evidence "
                             "or the same --model, --data and --profile")
        restored = restore_evidence(evidence, work)
        if restored:
            log.info(f"restored {restored} files of the run from {evidence}")
    if settings_file.exists():
        recorded = json.loads(settings_file.read_text())
        if recorded != settings:
            raise ModmtError(f"{work} holds a run with other settings ({settings_file}); use a new --workdir "
                             "or the same --model, --data and --profile")
    else:
        write_json_atomic(settings_file, settings)
    # Evaluation-only inputs are recorded beside the settings, not compared: adding a test set to a
    # finished run scores it without retraining anything.
    write_json_atomic(layout.evaluation, {"ood": str(ood) if ood else None})
    stages = Stages(work)
    registry = load_registry()
    langs = langs or LANGS

    def corpus_stage():
        if data is not None:
            return str(data)
        from modmt.train.ddtp import build_corpus, fetch_translation_lists
        from modmt.train.models import modmt_home

        languages = registry.parse_list(",".join(langs))
        build_corpus(fetch_translation_lists(modmt_home() / "ddtp", languages), languages, layout.corpus, force=True)
        return str(layout.corpus)

    corpus_dir = Path(stages.run("corpus", corpus_stage))
    corpus = open_corpus(corpus_dir, registry)
    model_dir = resolve_model(model) if model else fetch_model(DEFAULT_MODEL)
    ood_corpus = open_corpus(ood, registry) if ood is not None else None
    pools = {"main": layout.pool("main"), "pooled": layout.pool("pooled"), "pool-mixed": layout.pool("mixed")}
    full_dir = layout.full

    if profile.full_lr_trials and len(profile.full_lr_trials) != len(profile.adapter_lr_trials):
        raise ModmtError("a profile's tuning search gives both sides the same number of trials")

    def check_against_evidence():
        """A model just trained (or found) must be the one the evidence scored, where it scored it."""
        if evidence is not None and RunLayout(evidence).settings.exists():
            from modmt.benchmarks.evidence import models_differing_from_evidence

            differing, retrained = models_differing_from_evidence(work, evidence)
            if retrained:  # an unchosen trial, retrained for its out-of-domain row (see the function)
                log.info(f"retrained, not bit-identical to the model its dev cells were scored with: "
                           f"{'; '.join(retrained)}; the report marks its row")
            if differing:
                raise ModmtError(f"a retrained model is not the one {evidence} scored ({'; '.join(differing)}): "
                                 "training did not reproduce on this machine; resume where the run started, "
                                 "or start a new --workdir and --evidence")

    tuned = bool(profile.full_lr_trials)
    if tuned:
        # The search's choices train everything below; full FT and the pooled pool are their trials.
        def tune_stage():
            out_of_domain = (QualityRun(work, ood_corpus, profile, provider, folder="quality-ood-trials")
                             if ood_corpus is not None else None)

            def score_elsewhere(trained: Path, side: str):  # each trial out of domain, while its model is here
                if out_of_domain is not None:
                    score_trial_out_of_domain(out_of_domain, trained, side, langs)
            return tune_learning_rates(model_dir, corpus, registry, langs, work, profile, provider,
                                       after_training=check_against_evidence, after_scoring=score_elsewhere)

        search = stages.run("tune", tune_stage)
        profile = replace(profile, full_lr=search["chosen"]["full"], adapter_lr=search["chosen"]["adapters"])
        full_dir = trial_dir(work, "full", profile.full_lr)
        pools["pooled"] = trial_dir(work, "adapters", profile.adapter_lr)

    # The models the stages read, each built (or found: training resumes and skips what exists) when
    # first needed, then checked against the fingerprints the evidence recorded for the cells it
    # decoded: on a new machine a model is retrained, and a retrained model that differs is an error,
    # never a table that mixes two trainings.
    def build_main():
        if tuned:  # the non-English adapters are the chosen trial's; English's copy pair is new
            need("pooled")
            pooled_english_pool(pools["pooled"], pools["main"], recipe="copy")
        return train_adapters(model_dir, corpus, registry, langs, pools["main"], profile)

    def build_pooled():
        if tuned:
            return train_trial(model_dir, corpus, registry, langs, work, profile, "adapters", profile.adapter_lr)
        need("main")
        pooled_english_pool(pools["main"], pools["pooled"])
        return train_adapters(model_dir, corpus, registry, langs, pools["pooled"], profile, english="pooled")

    def build_full():
        if tuned:
            return train_trial(model_dir, corpus, registry, langs, work, profile, "full", profile.full_lr)
        return train_full_model(model_dir, corpus, registry, langs, full_dir, profile)

    def build_mixed():  # the pooled recipe, a share of every adapter's pairs from the general-domain corpus
        return train_adapters(model_dir, corpus, registry, langs, pools["pool-mixed"], profile, english="pooled",
                              mix=(ood_corpus, MIX_SHARE))

    builders = {"main": build_main, "pooled": build_pooled, "full": build_full, "pool-mixed": build_mixed}
    built = {}

    def need(product: str):
        """product: "main", "pooled", "full" or a tuning trial's folder name ("full-lr2e-05")."""
        if product not in built:
            if product in builders:
                built[product] = builders[product]()
            else:
                side, lr = product.rsplit("-lr", 1)
                built[product] = train_trial(model_dir, corpus, registry, langs, work, profile, side, float(lr))
            check_against_evidence()
        return built[product]

    def prepare(pool_key: str, method: Method) -> None:  # a cell is about to be decoded
        if method.key == "full":
            need(pool_key.removeprefix("tune-") if pool_key.startswith("tune-") else "full")
        elif method.key != "base":
            need(pool_key.removeprefix("tune-") if pool_key.startswith("tune-") else pool_key)

    def quality_run(corpus_, folder="quality"):
        return QualityRun(work, corpus_, profile, provider, folder=folder, prepare=prepare)

    def pooled_stage():
        info = need("pooled")
        return "the chosen tuning trial's pool" if tuned else info

    def weights_stage(pool: str):
        need(pool)  # the adapters whose weights are learned (restored weights skip the learning)
        return learn_all_weights(model_dir, pools[pool], corpus, registry, langs, profile,
                                 only_english=pool == "pooled")

    plan = [
        ("adapters", lambda: need("main")),
        # only the base model is read; the main pool names it
        *([("tune-base", lambda: score_base_on_dev(work, corpus, profile, provider, langs, pools["main"], prepare))]
          if tuned else []),
        ("pooled-en", pooled_stage),
        ("full", lambda: need("full")),
        ("weights", lambda: weights_stage("main")),
        ("pooled-weights", lambda: weights_stage("pooled")),
        ("quality", lambda: run_quality_stage(quality_run(corpus), langs, pools, full_dir, learned=True)),
    ]
    if ood_corpus is not None:
        plan.append(("ood-quality", lambda: run_ood_stage(quality_run(corpus), quality_run(ood_corpus, "quality-ood"),
                                                          langs, pools, full_dir)))
        plan.append(("scale", lambda: run_scale_stage(quality_run(corpus), quality_run(corpus, "quality-scale"),
                                                      quality_run(ood_corpus, "quality-ood-scale"), langs, pools)))
        if has_train_split(ood_corpus, langs):
            plan.append(("mix", lambda: run_mix_stage(quality_run(corpus), quality_run(corpus, "quality-mix"),
                                                      quality_run(ood_corpus, "quality-ood-mix"), langs, pools)))
        else:
            log.info(f"{ood}: no train split for every language, so no `mix` stage (rebuild it with "
                       "`modmt data gettext` to get one)")
        if tuned:  # last: where the tune stage deleted a trial's model, this retrains it
            plan.append(("ood-trials", lambda: run_ood_trials_stage(quality_run(ood_corpus, "quality-ood-trials"),
                                                                    work, langs)))
    for name, fn in plan:
        if stop_after in ("corpus", "tune"):
            break
        stages.run(name, fn)
        if name == stop_after:
            break
    from modmt.benchmarks.evidence import write_run_evidence
    from modmt.benchmarks.report import write_report

    evidence = evidence or layout.evidence
    stages.run("evidence", lambda: str(write_run_evidence(work, evidence)), always=True)
    return write_report(evidence)
