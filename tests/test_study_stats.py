"""Study statistics on simulated studies with known truth: intervals cover it, null effects stay at the nominal rate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from listenerctl.study_stats import (Resamples, estimate, holm, preference_statistics, rating_statistics,
                                     share_statistics)

# latent rating = 4 + model effect + participant + recording + participant×model + recording×model + noise,
# rounded and clipped to 1..7 (standard deviations below)
SD = {"participant": 0.8, "recording": 0.5, "participant_model": 0.3, "recording_model": 0.3, "noise": 1.0}
STUDIES = 200
# one-sided binomial slack: P(false positives > 0.05 + 0.037) < 1 % for 200 studies at a true rate of 5 %
FP_LIMIT = 0.05 + 2.33 * np.sqrt(0.05 * 0.95 / STUDIES)


def simulate_ratings(rng, participants, recordings, effects):
    """One rating per participant × recording × model: index arrays and ratings [P·I·M]."""
    m = len(effects)
    latent = (4 + np.asarray(effects)[None, None, :] + rng.normal(0, SD["participant"], (participants, 1, 1))
              + rng.normal(0, SD["recording"], (1, recordings, 1))
              + rng.normal(0, SD["participant_model"], (participants, 1, m))
              + rng.normal(0, SD["recording_model"], (1, recordings, m))
              + rng.normal(0, SD["noise"], (participants, recordings, m)))
    p, i, k = np.meshgrid(np.arange(participants), np.arange(recordings), np.arange(m), indexing="ij")
    return p.ravel(), i.ravel(), k.ravel(), np.clip(np.rint(latent), 1, 7).ravel()


def expected_rating(effect):
    """Population mean rating of a model: E[clip(round(N(4 + effect, total sd)), 1, 7)]."""
    sd = np.sqrt(sum(v ** 2 for v in SD.values()))
    k = np.arange(1, 8)
    upper, lower = np.r_[k[:-1] + 0.5, np.inf], np.r_[-np.inf, k[1:] - 0.5]
    return float((k * (norm.cdf((upper - 4 - effect) / sd) - norm.cdf((lower - 4 - effect) / sd))).sum())


def simulate_choices(rng, participants, recordings, preference, repeats=2):
    """2afc between models 0 and 1: P(choose 0) = logistic(logit(preference) + participant + recording)."""
    logit = (np.log(preference / (1 - preference)) + rng.normal(0, 0.6, (participants, 1, 1))
             + rng.normal(0, 0.4, (1, recordings, 1)))
    chose_0 = rng.random((participants, recordings, repeats)) < 1 / (1 + np.exp(-logit))
    p, i, _ = np.meshgrid(np.arange(participants), np.arange(recordings), np.arange(repeats), indexing="ij")
    left_is_0 = (p + i + _) % 2 == 0
    first = np.where(left_is_0, 0, 1).ravel()
    chose_first = np.where(left_is_0, chose_0, ~chose_0).ravel()
    return p.ravel(), i.ravel(), first, 1 - first, chose_first


def test_known_rating_difference_is_recovered_and_covered():
    true = expected_rating(0.5) - expected_rating(0.0)
    covered, detected = 0, 0
    for seed in range(STUDIES):
        p, i, m, r = simulate_ratings(np.random.default_rng(seed), 24, 8, [0.5, 0.0])
        conditions, (comparison,) = rating_statistics(p, i, m, r, ["good", "plain"],
                                                      Resamples.draw(24, 8, 1000, seed))
        d = comparison.difference
        assert d.value == pytest.approx(r[m == 0].mean() - r[m == 1].mean())  # complete design: difference of means
        covered += d.low <= true <= d.high
        detected += comparison.significant
        assert (comparison.a, comparison.b) == ("good", "plain")
        assert d.value > 0 and comparison.d_z > 0 or not comparison.significant  # never significant the wrong way
    assert covered / STUDIES >= 0.93  # nominal 95 %; the two-way bootstrap errs on the wide side
    assert detected / STUDIES >= 0.4  # and still finds a half-point effect in a 24 × 8 study often


def test_null_rating_effect_is_not_called_significant_above_the_nominal_rate():
    false_single, false_family = 0, 0
    for seed in range(STUDIES):
        p, i, m, r = simulate_ratings(np.random.default_rng(10_000 + seed), 24, 8, [0.0, 0.0, 0.0])
        _, comparisons = rating_statistics(p, i, m, r, ["a", "b", "c"], Resamples.draw(24, 8, 1000, seed))
        false_single += comparisons[0].difference.p < 0.05
        false_family += any(c.significant for c in comparisons)  # Holm over the 3 pairs
    assert false_single / STUDIES <= FP_LIMIT
    assert false_family / STUDIES <= FP_LIMIT


def test_known_preference_is_recovered_and_null_preference_stays_nominal():
    true_share, covered, false = 0.7, 0, 0
    # population share under the logistic model: average of logistic over the random effects
    z = np.random.default_rng(0).normal(0, np.sqrt(0.6 ** 2 + 0.4 ** 2), 400_000)
    population = float(np.mean(1 / (1 + np.exp(-(np.log(true_share / (1 - true_share)) + z)))))
    for seed in range(STUDIES):
        rng = np.random.default_rng(20_000 + seed)
        (pref,), wins = preference_statistics(*simulate_choices(rng, 20, 6, true_share), ["a", "b"],
                                              Resamples.draw(20, 6, 1000, seed))
        covered += pref.share.low <= population <= pref.share.high
        assert wins["a"].value == pytest.approx(pref.share.value)
        assert wins["b"].value == pytest.approx(1 - pref.share.value)
        (null,), _ = preference_statistics(*simulate_choices(rng, 20, 6, 0.5), ["a", "b"],
                                           Resamples.draw(20, 6, 1000, seed))
        false += null.significant
    assert covered / STUDIES >= 0.93
    assert false / STUDIES <= FP_LIMIT


def test_pair_order_and_orientation_do_not_matter():
    rng = np.random.default_rng(3)
    p, i, first, second, chose_first = simulate_choices(rng, 10, 5, 0.65)
    res = Resamples.draw(10, 5, 500, 1)
    (a,), _ = preference_statistics(p, i, first, second, chose_first, ["x", "y"], res)
    (b,), _ = preference_statistics(p, i, second, first, ~chose_first, ["x", "y"], res)  # sides swapped
    assert a == b
    assert a.share.value == pytest.approx(np.mean(np.where(chose_first, first, second) == 0))
    left = share_statistics(p, i, chose_first, res)
    assert left.value == pytest.approx(chose_first.mean())


def test_estimate_p_agrees_with_interval_and_holm_by_hand():
    reps = np.linspace(-1, 3, 1001)  # 251 of 1001 replicates at or below 0 (-1, -0.996, ..., 0)
    e = estimate(1.0, reps, 0.0)
    assert e.p == pytest.approx(2 * (251 + 1) / (1001 + 1))
    assert e.low <= 0 <= e.high and e.p > 0.05
    shifted = estimate(1.0, reps + 1.2, 0.0)
    assert shifted.low > 0 and shifted.p < 0.05
    assert np.isnan(estimate(1.0, reps).p)
    # Holm: sorted 0.01, 0.02, 0.04 → 3·0.01, max(0.03, 2·0.02), max(0.04, 1·0.04)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_missing_cells_pair_only_where_both_models_were_rated():
    # participant 0 rated model 0 on recording 0 only: no pair there; the difference comes from the other cells
    p = np.array([0, 1, 1, 2, 2])
    i = np.array([0, 0, 0, 0, 0])
    m = np.array([0, 0, 1, 0, 1])
    r = np.array([7.0, 5, 3, 6, 5])
    conditions, (comparison,) = rating_statistics(p, i, m, r, ["a", "b"], Resamples.draw(3, 1, 200, 0))
    assert comparison.difference.value == pytest.approx(((5 - 3) + (6 - 5)) / 2) and comparison.pairs == 2
    assert conditions[0].mean.value == pytest.approx(6.0) and conditions[0].ratings == 3
    assert comparison.d_z == pytest.approx(1.5 / np.std([2, 1], ddof=1))
