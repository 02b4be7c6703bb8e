"""REACT metrics: known answers, a brute-force DTW reference, invariances and input checks."""

from __future__ import annotations

import numpy as np
import pytest

from listenerctl.errors import ListenerctlError
from listenerctl.metrics import react


def brute_force_dtw(a: np.ndarray, b: np.ndarray) -> float:
    """Textbook O(T·J) DTW with Euclidean local cost, written cell by cell."""
    acc = np.full((len(a) + 1, len(b) + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(len(a)):
        for j in range(len(b)):
            step = min(acc[i, j], acc[i, j + 1], acc[i + 1, j])
            acc[i + 1, j + 1] = np.sqrt(np.sum((a[i] - b[j]) ** 2)) + step
    return float(acc[-1, -1])


def emotion(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Smooth random emotion25-like curves [..., T, 25] in [0, 1]."""
    steps = rng.normal(size=shape + (25,)) * 0.1
    return 1 / (1 + np.exp(-np.cumsum(steps, axis=-2)))


def test_ccc_known_values():
    rng = np.random.default_rng(0)
    series = rng.normal(size=(200, 3))
    series -= series.mean(axis=0)  # zero mean, so the negation differs only in sign
    assert np.allclose(react.ccc(series, series, axis=0), 1.0)
    assert np.allclose(react.ccc(series, -series, axis=0), -1.0)
    assert np.allclose(react.ccc(series, series + 5.0, axis=0), 2 / (2 + 25 / series.var(axis=0)), atol=1e-6)
    constant = np.ones((200, 3))
    assert np.array_equal(react.ccc(constant, series, axis=0), np.zeros(3))


@pytest.mark.parametrize("t, j", [(1, 1), (1, 6), (6, 1), (9, 9), (13, 8), (8, 21), (37, 40), (50, 17)])
def test_dtw_matches_brute_force(t, j):
    rng = np.random.default_rng(t * 100 + j)
    x, y = rng.normal(size=(2, t, 25)), rng.normal(size=(3, j, 25))
    got = react.dtw(x, y, react.DIST_GROUPS)
    want = [[[brute_force_dtw(x[k][:, g], y[m][:, g]) for m in range(3)] for k in range(2)]
            for g in react.DIST_GROUPS]
    assert got.shape == (3, 2, 3)
    assert np.allclose(got, want, rtol=1e-10, atol=1e-9)


def test_dtw_of_a_sequence_with_itself_is_zero_and_symmetric():
    rng = np.random.default_rng(1)
    x = emotion(rng, 2, 120)
    assert np.allclose(react.dtw(x, x, [slice(0, 25)])[0].diagonal(), 0.0, atol=1e-4)
    forward = react.dtw(x[:1], x[1:], react.DIST_GROUPS)
    backward = react.dtw(x[1:], x[:1], react.DIST_GROUPS)
    assert np.allclose(forward, backward)


@pytest.mark.parametrize("count, frames", [(40, 30), (600, 4)])
def test_dtw_handles_many_sequences_split_over_several_cost_blocks(count, frames):
    # 40 sequences: 12 frames per cost block, so 3 blocks for 30 frames, the last one padded;
    # 600 sequences: more than _COLUMNS, one frame per block. 18 rows of x make two strips.
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(1, 18, 25)), rng.normal(size=(count, frames, 25))
    got = react.dtw(x, y, [slice(0, 25)])[0]
    assert np.allclose(got, [[brute_force_dtw(seq, other) for other in y] for seq in x], rtol=1e-10, atol=1e-9)


def test_fr_corr_is_k_for_exact_reactions_and_ignores_sample_order():
    rng = np.random.default_rng(3)
    appropriate = [emotion(rng, 4, 60) for _ in range(3)]
    exact = np.stack([app[[0, 1, 2, 0, 3]] for app in appropriate])  # every sample is an appropriate one
    assert react.fr_corr(exact, appropriate) == pytest.approx(5.0, abs=1e-4)  # 1e-8 in the CCC denominator
    pred = emotion(rng, 3, 5, 60)
    shuffled = pred[:, rng.permutation(5)]
    assert react.fr_corr(shuffled, appropriate) == pytest.approx(react.fr_corr(pred, appropriate))
    assert react.fr_corr(pred, appropriate) < 5.0


def test_fr_dist_is_zero_for_appropriate_reactions_and_positive_otherwise():
    rng = np.random.default_rng(4)
    appropriate = [emotion(rng, 3, 80) for _ in range(2)]
    exact = np.stack([app[[2, 0]] for app in appropriate])
    assert react.fr_dist(exact, appropriate) == pytest.approx(0.0, abs=1e-4)
    moved = exact + 0.1
    assert react.fr_dist(moved, appropriate) > 1.0
    # one clip by hand: sum over samples of the best weighted DTW
    dist = sum(min(sum(w * brute_force_dtw(p[:, g], a[:, g]) for g, w in zip(react.DIST_GROUPS, react.DIST_WEIGHTS))
                   for a in appropriate[0][:, :40]) for p in moved[0, :, :40])
    assert react.fr_dist(moved[:1, :, :40], [appropriate[0][:, :40]], workers=1) == pytest.approx(dist)


def test_diversity_metrics_match_their_pairwise_definitions():
    rng = np.random.default_rng(5)
    pred = emotion(rng, 4, 3, 30)
    n, k, t, d = pred.shape
    div = np.mean([sum(np.sum((c[a] - c[b]) ** 2) for a in range(k) for b in range(k)) / (k * (k - 1) * t * d)
                   for c in pred])
    dvs = sum(np.sum((pred[a, s] - pred[b, s]) ** 2) for s in range(k) for a in range(n) for b in range(n))
    assert react.fr_div(pred) == pytest.approx(div)
    assert react.fr_dvs(pred) == pytest.approx(dvs / (n * (n - 1) * k * t * d))
    assert react.fr_var(pred) == pytest.approx(np.var(pred, axis=2, ddof=1).mean())
    same = np.repeat(pred[:, :1], 3, axis=1)
    assert react.fr_div(same) == pytest.approx(0.0, abs=1e-20)
    assert react.fr_div(pred) > 1e-4


@pytest.mark.parametrize("shift", [0, 7, -12, 49])
def test_tlcc_finds_the_shift_of_a_shifted_copy(shift):
    rng = np.random.default_rng(6)
    long = emotion(rng, 1, 400)[0]
    speaker = long[60:300]
    sample = long[60 - shift:300 - shift]  # sample[t + shift] == speaker[t]
    noisy = sample + rng.normal(scale=0.01, size=sample.shape)
    pred = np.stack([sample, noisy])[None]
    assert react.tlcc_offsets(pred, speaker[None]).tolist() == [[shift, shift]]
    assert react.fr_syn(pred, speaker[None]) == pytest.approx(abs(shift))


def test_tlcc_prefers_no_lag_for_constant_channels():
    speaker = np.zeros((1, 100, 25))
    pred = np.zeros((1, 2, 100, 25))
    assert react.tlcc_offsets(pred, speaker).tolist() == [[0, 0]]


def test_evaluate_react_returns_all_six_metrics():
    rng = np.random.default_rng(7)
    pred, speaker = emotion(rng, 3, 4, 120), emotion(rng, 3, 120)
    appropriate = [emotion(rng, m, 120) for m in (1, 2, 5)]
    scores = react.evaluate_react(pred, speaker, appropriate)
    assert set(scores) == {"FRCorr", "FRDist", "FRDiv", "FRDvs", "FRVar", "FRSyn"}
    assert all(np.isfinite(v) for v in scores.values())
    assert scores["FRDist"] == pytest.approx(react.fr_dist(pred, appropriate, workers=1))


def test_bad_inputs_raise_one_clear_error():
    rng = np.random.default_rng(8)
    pred, speaker = emotion(rng, 2, 3, 60), emotion(rng, 2, 60)
    appropriate = [emotion(rng, 2, 60) for _ in range(2)]
    broken = pred.copy()
    broken[0, 0, :3, 0] = np.nan
    with pytest.raises(ListenerctlError, match="3 NaN"):
        react.evaluate_react(broken, speaker, appropriate)
    with pytest.raises(ListenerctlError, match=r"\[N, K, T, 25\]"):
        react.fr_corr(pred[..., :24], appropriate)
    with pytest.raises(ListenerctlError, match="pred has 2 clips"):
        react.fr_dist(pred, appropriate[:1])
    with pytest.raises(ListenerctlError, match="frames"):
        react.fr_corr(pred, [app[:, :50] for app in appropriate])
    with pytest.raises(ListenerctlError, match="K >= 2"):
        react.fr_div(pred[:, :1])
