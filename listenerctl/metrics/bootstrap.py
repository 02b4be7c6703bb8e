"""Bootstrap over speakers: confidence intervals of per-speaker metrics and paired model comparisons.

A metric enters as its per-speaker contributions (see `listenerctl.metrics.react.speaker_contributions`),
computed once: a vector v [N] when the metric is the mean over speakers of v, or a matrix S [N, N]
when it compares speakers with each other (FRDvs = Σ_{n≠n'} S[n, n'] / (N(N−1)), S zero on the
diagonal). A bootstrap draw picks N speakers with replacement and is stored as how often each speaker
was picked, counts c [N] (summing to N). The metric of the resampled set is then c·v / N — the mean
recomputed on the resampled speakers, without touching a prediction again. For a matrix it is
cᵀSc / (N² − Σc²): the mean of S over the ordered pairs of picked positions that hold two different
speakers. Pairs of a speaker with its own copy are left out rather than counted as distance 0 (which
recomputing FRDvs on the resampled predictions would do): a new set of speakers never contains one twice,
and counting them would shrink every draw by about (N−1)/N, so the interval would miss the estimate.
A draw that picks one speaker N times has no such pair and is left out. Intervals are percentile
intervals over the draws.
"""

from __future__ import annotations

import numpy as np

from listenerctl.errors import ListenerctlError

DEFAULT_LEVEL = 0.95


def resample_counts(speakers: int, draws: int, seed: int) -> np.ndarray:
    """``draws`` bootstrap resamples of ``speakers`` speakers -> int [draws, speakers] pick counts."""
    if speakers < 1 or draws < 1:
        raise ListenerctlError(f"a bootstrap needs at least one speaker and one draw; got {speakers} and {draws}.")
    picks = np.random.default_rng(seed).integers(0, speakers, size=(draws, speakers))
    counts = np.zeros((draws, speakers), dtype=np.int64)
    np.add.at(counts, (np.arange(draws)[:, None], picks), 1)
    return counts


def statistic(contribution: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The metric of each resampled speaker set: contribution [N] or [N, N], counts [draws, N] -> [draws]
    (NaN for a pairwise metric in a draw of one speaker only; see the module docstring)."""
    contribution = np.asarray(contribution, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    speakers = counts.shape[-1]
    if contribution.shape not in ((speakers,), (speakers, speakers)):
        raise ListenerctlError(f"per-speaker contributions of shape {contribution.shape} do not match "
                               f"{speakers} speakers.")
    if contribution.ndim == 1:
        return counts @ contribution / speakers
    if speakers < 2:
        raise ListenerctlError("a metric comparing speakers needs at least 2 of them.")
    pairs = speakers ** 2 - np.einsum("bn,bn->b", counts, counts)  # ordered pairs of different speakers
    total = np.einsum("bn,nm,bm->b", counts, contribution, counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pairs > 0, total / pairs, np.nan)


def point_estimate(contribution: np.ndarray) -> float:
    """The metric over all speakers (each counted once)."""
    contribution = np.asarray(contribution)
    return float(statistic(contribution, np.ones((1, contribution.shape[0])))[0])


def interval(contribution: np.ndarray, counts: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of the metric at ``level`` (e.g. 0.95) over the draws in ``counts``."""
    values = statistic(contribution, counts)
    if np.isnan(values).all():
        raise ListenerctlError("no bootstrap draw holds two different speakers; an interval needs more speakers.")
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def paired_difference(first: np.ndarray, second: np.ndarray, counts: np.ndarray,
                      level: float = DEFAULT_LEVEL) -> dict[str, float]:
    """Metric of ``first`` minus metric of ``second`` on the same speakers, with its paired interval.

    Both models' contributions are resampled with the same speakers in every draw (the statistic is
    linear in the contributions, so it is that of their difference). Returns difference, low, high.
    """
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if first.shape != second.shape:
        raise ListenerctlError(f"paired comparison needs the same speakers; got contributions of shapes "
                               f"{first.shape} and {second.shape}.")
    low, high = interval(first - second, counts, level)
    return {"difference": point_estimate(first - second), "low": low, "high": high}
