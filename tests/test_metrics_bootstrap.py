"""Bootstrap over speakers: resampled statistics equal the metrics recomputed on resampled clips, intervals
cover the estimate, are seeded and narrow with more speakers; paired differences."""

from __future__ import annotations

import numpy as np
import pytest

from listenerctl.errors import ListenerctlError
from listenerctl.metrics import bootstrap, react


def emotion(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Smooth random emotion25-like curves [..., T, 25] in [0, 1]."""
    return 1 / (1 + np.exp(-np.cumsum(rng.normal(size=shape + (25,)) * 0.1, axis=-2)))


def test_counts_are_seeded_resamples_of_every_size():
    counts = bootstrap.resample_counts(7, 500, seed=3)
    assert counts.shape == (500, 7) and (counts.sum(axis=1) == 7).all()
    assert np.array_equal(counts, bootstrap.resample_counts(7, 500, seed=3))
    assert not np.array_equal(counts, bootstrap.resample_counts(7, 500, seed=4))
    assert abs(counts.mean() - 1.0) < 1e-12 and 0.5 < counts.var() < 1.2  # multinomial: variance 1 - 1/7
    with pytest.raises(ListenerctlError, match="at least one speaker"):
        bootstrap.resample_counts(0, 10, seed=0)


def test_resampled_statistics_equal_the_metrics_recomputed_on_the_resampled_clips():
    rng = np.random.default_rng(0)
    pred = emotion(rng, 6, 3, 40)
    appropriate = [emotion(rng, 2, 40) for _ in range(6)]
    corr = react.fr_corr_per_speaker(pred, appropriate)
    pairs = react.fr_dvs_pairwise(pred)
    counts = bootstrap.resample_counts(6, 20, seed=1)
    corr_draws, dvs_draws = bootstrap.statistic(corr, counts), bootstrap.statistic(pairs, counts)
    k, t, d = pred.shape[1:]
    for row, corr_draw, dvs_draw in zip(counts, corr_draws, dvs_draws):
        picked = np.repeat(np.arange(6), row)
        assert corr_draw == pytest.approx(react.fr_corr(pred[picked], [appropriate[i] for i in picked]))
        # FRDvs over the ordered pairs of picked positions holding different speakers
        distances = [np.sum((pred[a] - pred[b]) ** 2) / (k * t * d) for a in picked for b in picked if a != b]
        assert dvs_draw == pytest.approx(np.mean(distances), rel=1e-9)
    assert bootstrap.point_estimate(pairs) == pytest.approx(react.fr_dvs(pred), rel=1e-9)


@pytest.mark.parametrize("pairwise", [False, True])
def test_intervals_cover_the_estimate_are_seeded_and_narrow_with_more_speakers(pairwise):
    rng = np.random.default_rng(2)

    def contribution(speakers: int) -> np.ndarray:
        if pairwise:
            points = rng.normal(size=(speakers, 4))
            return ((points[:, None] - points[None]) ** 2).sum(-1)
        return rng.gamma(2.0, size=speakers)

    widths = []
    for speakers in (10, 40, 160):
        terms = contribution(speakers)
        counts = bootstrap.resample_counts(speakers, 2000, seed=5)
        low, high = bootstrap.interval(terms, counts)
        assert low < bootstrap.point_estimate(terms) < high
        assert (low, high) == bootstrap.interval(terms, bootstrap.resample_counts(speakers, 2000, seed=5))
        widths.append(high - low)
    assert widths[0] > 1.5 * widths[1] > 2.25 * widths[2]  # about 1/sqrt(N): halves for 4x the speakers


def test_interval_has_the_nominal_coverage_of_a_known_mean():
    rng = np.random.default_rng(3)
    covered = 0
    for trial in range(200):
        terms = rng.normal(1.0, 1.0, size=40)
        low, high = bootstrap.interval(terms, bootstrap.resample_counts(40, 500, seed=trial))
        covered += low <= 1.0 <= high
    assert 0.88 <= covered / 200 <= 0.99  # percentile intervals run a little narrow at N = 40


def test_paired_difference_of_a_model_with_itself_is_exactly_zero_and_a_shift_is_found():
    rng = np.random.default_rng(4)
    terms, pairs = rng.gamma(2.0, size=12), np.abs(rng.normal(size=(12, 12)))
    pairs = pairs + pairs.T
    np.fill_diagonal(pairs, 0.0)
    counts = bootstrap.resample_counts(12, 1000, seed=0)
    for same in (terms, pairs):
        assert bootstrap.paired_difference(same, same.copy(), counts) == {"difference": 0.0, "low": 0.0, "high": 0.0}
    # a model better by 0.5 on every speaker plus noise: the paired interval is narrow around 0.5 and
    # excludes 0, while the unpaired intervals of the two models overlap
    better = terms + 0.5 + rng.normal(scale=0.05, size=12)
    diff = bootstrap.paired_difference(better, terms, counts)
    assert 0.4 < diff["low"] < diff["difference"] < diff["high"] < 0.6
    assert bootstrap.interval(better, counts)[0] < bootstrap.interval(terms, counts)[1]
    with pytest.raises(ListenerctlError, match="same speakers"):
        bootstrap.paired_difference(terms, terms[:-1], counts)


def test_pairwise_statistic_needs_two_different_speakers():
    pairs = np.array([[0.0, 1.0], [1.0, 0.0]])
    counts = np.array([[2, 0], [1, 1], [0, 2]])
    assert np.isnan(bootstrap.statistic(pairs, counts)).tolist() == [True, False, True]
    assert bootstrap.interval(pairs, counts) == (1.0, 1.0)
    with pytest.raises(ListenerctlError, match="two different speakers"):
        bootstrap.interval(pairs, counts[[0, 2]])
