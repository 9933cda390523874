"""The equal-budget learning-rate search on the dev split, and the untrained base scored on its sample."""

import logging

import time
from dataclasses import replace

from pathlib import Path

from modmt.benchmarks.reproduce.profiles import Profile
from modmt.benchmarks.reproduce.scoring import TRIAL_ROWS, QualityRun, mean_chrf
from modmt.benchmarks.reproduce.training import directions_of, train_adapters, train_full_model
from modmt.benchmarks.run_layout import RunLayout
from modmt.benchmarks.table1 import Method
from modmt.runtime.atomic import write_json_atomic


log = logging.getLogger(__name__)

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
    trained = RunLayout(work).trial(side, lr)
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
        trained = layout.trial(side, lr)
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
