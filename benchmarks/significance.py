"""Paired bootstrap over segments for chrF++: intervals of scores, differences and gain ratios.

chrF++ is a corpus statistic (character and word n-gram counts summed over segments, then one
F-score), so a resample sums the per-segment statistics of the drawn segments and scores the sum,
as sacrebleu's own paired bootstrap does. Every method is resampled with the same segment indices
(paired), and each direction is resampled independently; an average over directions is the mean of
the per-direction resampled scores. A comparison whose 95 % interval contains 0 is a tie.
"""
from dataclasses import dataclass

import numpy as np


@dataclass
class Interval:
    value: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def __str__(self) -> str:
        return f"{self.value:.2f} [{self.low:.2f}, {self.high:.2f}]"


class SegmentStats:
    """Per-segment chrF++ statistics of every (method, direction), and their bootstrap replicates."""

    def __init__(self, chrf, resamples: int = 1000, seed: int = 0):
        self.chrf, self.resamples, self.seed = chrf, resamples, seed
        self.stats: dict[tuple[str, str], np.ndarray] = {}   # (method, direction) -> (segments, statistics)
        self._indices: dict[tuple[str, int], np.ndarray] = {}
        self._replicates: dict[tuple[str, str], np.ndarray] = {}

    def add(self, method: str, direction: str, hypotheses: list[str], references: list[str]) -> None:
        stats = self.chrf._extract_corpus_statistics(hypotheses, [references])
        self.stats[(method, direction)] = np.asarray(stats, dtype=np.int64)

    def score(self, method: str, direction: str) -> float:
        return self.chrf._compute_score_from_stats(self.stats[(method, direction)].sum(0).tolist()).score

    def indices(self, direction: str, n: int) -> np.ndarray:
        """The same resampled segment indices for every method of a direction (what makes it paired)."""
        key = (direction, n)
        if key not in self._indices:
            seed = self.seed + sum(direction.encode())  # fixed per direction, independent across directions
            self._indices[key] = np.random.default_rng(seed).integers(0, n, size=(self.resamples, n))
        return self._indices[key]

    def replicates(self, method: str, direction: str) -> np.ndarray:
        """chrF++ of each bootstrap resample of this (method, direction)."""
        key = (method, direction)
        if key not in self._replicates:
            stats = self.stats[key]
            sums = stats[self.indices(direction, len(stats))].sum(axis=1)  # (resamples, statistics)
            compute = self.chrf._compute_score_from_stats
            self._replicates[key] = np.array([compute(row.tolist()).score for row in sums])
        return self._replicates[key]

    def common(self, methods: list[str], directions: list[str]) -> list[str]:
        """The directions every method has, with the same number of segments (a paired comparison needs both)."""
        keep = []
        for d in directions:
            sizes = {len(self.stats[(m, d)]) for m in methods if (m, d) in self.stats}
            if len(sizes) == 1 and all((m, d) in self.stats for m in methods):
                keep.append(d)
        return keep

    def mean_interval(self, method: str, directions: list[str]) -> Interval:
        value = float(np.mean([self.score(method, d) for d in directions]))
        reps = np.mean([self.replicates(method, d) for d in directions], axis=0)
        return _interval(value, reps)

    def difference(self, a: str, b: str, directions: list[str]) -> Interval:
        """Mean chrF++ of a minus that of b over `directions`, paired."""
        value = float(np.mean([self.score(a, d) - self.score(b, d) for d in directions]))
        reps = np.mean([self.replicates(a, d) - self.replicates(b, d) for d in directions], axis=0)
        return _interval(value, reps)

    def gain_ratio(self, method: str, base: str, full: str, directions: list[str],
                   require_gain: bool = False) -> Interval | None:
        """(method - base) / (full - base) on the mean over `directions`: the share of full fine-tuning's gain.
        None where full FT gains nothing; with require_gain, also where that gain's interval is not above
        zero: there is then no gain to take a share of (a verdict needs one), and the ratio's interval runs
        through infinity (the plain difference to full FT says it instead)."""
        def mean(m):
            return np.mean([self.score(m, d) for d in directions])

        def mean_reps(m):
            return np.mean([self.replicates(m, d) for d in directions], axis=0)

        if require_gain and self.difference(full, base, directions).low <= 0:
            return None
        gain = mean(full) - mean(base)
        if abs(gain) < 1e-9:
            return None
        value = float((mean(method) - mean(base)) / gain)
        full_gain = mean_reps(full) - mean_reps(base)
        with np.errstate(divide="ignore", invalid="ignore"):
            reps = (mean_reps(method) - mean_reps(base)) / full_gain
        reps = reps[np.isfinite(reps)]
        return _interval(value, reps)


def _interval(value: float, replicates: np.ndarray) -> Interval:
    low, high = np.percentile(replicates, [2.5, 97.5]) if len(replicates) else (float("nan"), float("nan"))
    return Interval(value, float(low), float(high))
