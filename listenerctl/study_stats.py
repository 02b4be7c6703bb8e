"""Statistics of a listener study: two-way bootstrap intervals, paired comparisons, preference shares, Holm.

Both designs are reduced to sums per participant × recording cell, and every quantity reported is a ratio of
such sums (a mean rating, a mean paired difference, a preference share). Its 95 % interval comes from a
two-way ("pigeonhole") bootstrap: each replicate draws participants with replacement AND recordings with
replacement, independently, and weights every cell by (times its participant was drawn) × (times its
recording was drawn). This carries both sources of sampling error (other people, other recordings) into the
interval; it slightly overstates the residual variance (Owen 2007), so it errs on the conservative side.

Tests: the two-sided bootstrap p-value is 2 × the smaller share of replicates on either side of the null value
(0 for a difference, 0.5 for a share), with +1 in numerator and denominator; up to one replicate, p < alpha
when the percentile interval excludes the null value. Several comparisons are corrected with Holm's step-down method.
Effect sizes: Cohen's d_z on per-participant mean differences (rating design), Cohen's h of a share against
50 % (two-alternative forced choice).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

ALPHA = 0.05


@dataclass(frozen=True)
class Resamples:
    """Bootstrap multiplicities: ``participants`` [B, P] and ``recordings`` [B, I] draw counts per replicate."""

    participants: np.ndarray
    recordings: np.ndarray

    @classmethod
    def draw(cls, n_participants: int, n_recordings: int, replicates: int, seed: int) -> Resamples:
        rng = np.random.default_rng(seed)
        return cls(rng.multinomial(n_participants, np.full(n_participants, 1 / n_participants), size=replicates),
                   rng.multinomial(n_recordings, np.full(n_recordings, 1 / n_recordings), size=replicates))

    def ratio(self, num: np.ndarray, den: np.ndarray) -> np.ndarray:
        """[B, K] bootstrap replicates of sum(num) / sum(den) for cell sums ``num``, ``den`` [P, I, K]."""
        wp, wi = self.participants.astype(float), self.recordings.astype(float)
        top = np.einsum("bp,pik,bi->bk", wp, num, wi, optimize=True)
        bottom = np.einsum("bp,pik,bi->bk", wp, den, wi, optimize=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            return top / bottom  # NaN where a replicate drew no cell of that quantity


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its percentile interval and the two-sided bootstrap p-value against ``null``."""

    value: float
    low: float
    high: float
    p: float


@dataclass(frozen=True)
class ConditionSummary:
    """Mean rating of one model over all participants and recordings (``mean`` with its 95 % interval)."""

    model: str
    mean: Estimate
    ratings: int


class HolmAdjusted:
    """A comparison with its Holm-adjusted p-value ``p_holm`` (declared by each dataclass, last)."""

    p_holm: float

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA


@dataclass(frozen=True)
class Comparison(HolmAdjusted):
    """Rating design, model ``a`` minus model ``b``: mean paired difference, Cohen's d_z, Holm-adjusted p."""

    a: str
    b: str
    difference: Estimate
    d_z: float
    pairs: int
    p_holm: float


@dataclass(frozen=True)
class Preference(HolmAdjusted):
    """Two-alternative forced choice, ``a`` against ``b``: share of trials where ``a`` was chosen, vs 50 %."""

    a: str
    b: str
    share: Estimate
    cohens_h: float
    trials: int
    p_holm: float


def estimate(value: float, replicates: np.ndarray, null: float | None = None) -> Estimate:
    """Percentile 95 % interval of ``replicates`` [B] (NaN replicates dropped) and the two-sided bootstrap p
    against ``null`` (NaN when there is no null value to test)."""
    reps = replicates[np.isfinite(replicates)]
    if reps.size == 0:  # nothing observed for this quantity
        return Estimate(float(value), float("nan"), float("nan"), float("nan"))
    low, high = np.quantile(reps, [ALPHA / 2, 1 - ALPHA / 2])
    p = float("nan")
    if null is not None:
        tail = min(np.count_nonzero(reps <= null), np.count_nonzero(reps >= null))
        p = min(1.0, 2 * (tail + 1) / (reps.size + 1))
    return Estimate(float(value), float(low), float(high), float(p))


def holm(p: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given (family-wise error rate ≤ alpha)."""
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(len(p))
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def cell_sums(participant: np.ndarray, recording: np.ndarray, column: np.ndarray, values: np.ndarray,
              shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per (participant, recording, column) cell: sum of ``values`` and count of observations, each [P, I, K]."""
    total, count = np.zeros(shape), np.zeros(shape)
    np.add.at(total, (participant, recording, column), values)
    np.add.at(count, (participant, recording, column), 1)
    return total, count


def rating_statistics(participant: np.ndarray, recording: np.ndarray, model: np.ndarray, rating: np.ndarray,
                      models: list[str], resamples: Resamples) -> tuple[list[ConditionSummary], list[Comparison]]:
    """Condition means and all pairwise comparisons from one row per rating.

    ``participant``, ``recording``, ``model`` [n] are integer indices (into ``resamples``' P and I, and
    ``models``), ``rating`` [n] the scores. A condition's mean weighs every rating equally. A comparison pairs
    the two models' mean ratings within each participant × recording cell where both were rated (several
    samples of a model in a cell are averaged first) and averages those differences.
    """
    shape = (resamples.participants.shape[1], resamples.recordings.shape[1], len(models))
    total, count = cell_sums(participant, recording, model, rating.astype(float), shape)
    boots = resamples.ratio(total, count)
    conditions = [ConditionSummary(name, estimate(total[..., m].sum() / count[..., m].sum(), boots[:, m]),
                                   int(count[..., m].sum()))
                  for m, name in enumerate(models)]
    with np.errstate(invalid="ignore", divide="ignore"):
        cell_mean = total / count
    pairs = list(combinations(range(len(models)), 2))
    both = np.stack([(count[..., a] > 0) & (count[..., b] > 0) for a, b in pairs], axis=-1).astype(float)
    diff = np.stack([cell_mean[..., a] - cell_mean[..., b] for a, b in pairs], axis=-1)
    diff = np.where(both > 0, diff, 0.0)
    diff_boots = resamples.ratio(diff, both)
    found = []
    for k, (a, b) in enumerate(pairs):
        value = diff[..., k].sum() / both[..., k].sum()
        cells = both[..., k].sum(1)  # [P] recordings where this participant rated both models
        per_participant = diff[..., k].sum(1)[cells > 0] / cells[cells > 0]
        spread = per_participant.std(ddof=1) if per_participant.size > 1 else np.nan
        d_z = float(per_participant.mean() / spread) if spread > 0 else float("nan")
        found.append((models[a], models[b], estimate(value, diff_boots[:, k], 0.0), d_z, int(both[..., k].sum())))
    adjusted = holm([f[2].p for f in found])
    return conditions, [Comparison(*f, p_holm=p) for f, p in zip(found, adjusted)]


def preference_statistics(participant: np.ndarray, recording: np.ndarray, first: np.ndarray, second: np.ndarray,
                          chose_first: np.ndarray, models: list[str],
                          resamples: Resamples) -> tuple[list[Preference], dict[str, Estimate]]:
    """Preference share per model pair (``a`` before ``b`` in ``models`` order) and each model's overall win share.

    One row per trial: integer indices ``participant``, ``recording``, ``first``/``second`` (the two models
    shown, in any order) and ``chose_first`` [n] bool. Shares weigh every trial equally; their p-values test
    50 %. The win share of a model is the share of its trials in which it was chosen (against any other).
    """
    lo, hi = np.minimum(first, second), np.maximum(first, second)
    a_won = np.where(first == lo, chose_first, ~chose_first).astype(float)
    pairs = list(combinations(range(len(models)), 2))
    pair_index = {pair: k for k, pair in enumerate(pairs)}
    column = np.array([pair_index[int(x), int(y)] for x, y in zip(lo, hi)], dtype=int)
    shape = (resamples.participants.shape[1], resamples.recordings.shape[1], len(pairs))
    wins, trials = cell_sums(participant, recording, column, a_won, shape)
    boots = resamples.ratio(wins, trials)
    found = []
    for k, (a, b) in enumerate(pairs):
        if trials[..., k].sum() == 0:
            continue
        share = wins[..., k].sum() / trials[..., k].sum()
        h = 2 * np.arcsin(np.sqrt(share)) - 2 * np.arcsin(np.sqrt(0.5))
        found.append((models[a], models[b], estimate(share, boots[:, k], 0.5), float(h), int(trials[..., k].sum())))
    adjusted = holm([f[2].p for f in found])
    chosen = np.where(chose_first, first, second)
    shown = np.concatenate([first, second])
    won = np.concatenate([chosen == first, chosen == second]).astype(float)
    model_shape = shape[:2] + (len(models),)
    model_wins, model_trials = cell_sums(np.tile(participant, 2), np.tile(recording, 2), shown, won, model_shape)
    model_boots = resamples.ratio(model_wins, model_trials)
    win_share = {name: estimate(model_wins[..., m].sum() / model_trials[..., m].sum(), model_boots[:, m], 0.5)
                 for m, name in enumerate(models) if model_trials[..., m].sum() > 0}
    return [Preference(*f, p_holm=p) for f, p in zip(found, adjusted)], win_share


def share_statistics(participant: np.ndarray, recording: np.ndarray, hit: np.ndarray,
                     resamples: Resamples) -> Estimate:
    """Share of trials with ``hit`` [n] bool (e.g. the left video chosen), its interval and the test of 50 %."""
    shape = (resamples.participants.shape[1], resamples.recordings.shape[1], 1)
    hits, trials = cell_sums(participant, recording, np.zeros_like(participant), hit.astype(float), shape)
    return estimate(hits.sum() / trials.sum(), resamples.ratio(hits, trials)[:, 0], 0.5)
