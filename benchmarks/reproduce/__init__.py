"""`modmt-bench reproduce`: the paper's Table 1 as one resumable experiment, from corpus to report.

A package of one concern per module:
  profiles   the budgets (`paper`, `cpu`, `tiny`): pairs, epochs, learning rates, samples
  stages     stages.json: which stage finished, so a killed run resumes
  training   the adapter pools (the paper's English recipe and the pooled one), full FT, learned weights
  tuning     the equal-budget learning-rate search on the dev split
  scoring    QualityRun and every scoring stage, in domain and out of it
  run        reproduce(): the stages in order (its docstring lists them)
The run's files are named in benchmarks/run_layout.py; its evidence is benchmarks/evidence.py; its
report benchmarks/report.py.
"""
from modmt.benchmarks.reproduce.profiles import LANGS, MIX_SHARE, PROFILES, RATIOS, SCALES, Profile
from modmt.benchmarks.reproduce.run import reproduce
from modmt.benchmarks.reproduce.scoring import QualityRun, ood_trial_order
from modmt.benchmarks.reproduce.tuning import step_beyond_edge

__all__ = ["LANGS", "MIX_SHARE", "PROFILES", "RATIOS", "SCALES", "Profile", "QualityRun", "ood_trial_order",
           "reproduce", "step_beyond_edge"]
