"""REACT metrics: known answers, a brute-force DTW reference, invariances and input checks."""

from __future__ import annotations

import numpy as np
import pytest

from listenerctl.errors import ListenerctlError
from listenerctl.metrics import react


def brute_force_dtw(a: np.ndarray, b: np.ndarray, squared: bool = False) -> float:
    """Textbook O(T·J) DTW written cell by cell: Euclidean local cost, or with ``squared`` the square
    root of the minimal sum of squared Euclidean costs (tslearn's convention)."""
    acc = np.full((len(a) + 1, len(b) + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(len(a)):
        for j in range(len(b)):
            step = min(acc[i, j], acc[i, j + 1], acc[i + 1, j])
            cost = np.sum((a[i] - b[j]) ** 2)
            acc[i + 1, j + 1] = (cost if squared else np.sqrt(cost)) + step
    return float(np.sqrt(acc[-1, -1]) if squared else acc[-1, -1])


def official_fr_dist_loop(pred: np.ndarray, appropriate: list[np.ndarray]) -> float:
    """REACT 2024 FRDist by plain loops: float32 inputs, per speaker the sum over samples of the smallest
    weighted squared-cost DTW to an appropriate reaction, mean over speakers."""
    per_speaker = []
    for samples, reactions in zip(pred, appropriate):
        total = 0.0
        for sample in samples.astype(np.float32).astype(np.float64):
            distances = []
            for reaction in reactions.astype(np.float32).astype(np.float64):
                distances.append(sum(w * brute_force_dtw(sample[:, g], reaction[:, g], squared=True)
                                     for g, w in zip(react.DIST_GROUPS, react.DIST_WEIGHTS)))
            total += min(distances)
        per_speaker.append(total)
    return float(np.mean(per_speaker))


def official_tlcc_loop(sample: np.ndarray, speaker: np.ndarray, max_lag: int = 49) -> int:
    """REACT 2024 TLCC offset of one sample [T, 25] by plain loops: per lag and channel the Pearson r
    of the overlapping frames (NaN if either is constant), float32 mean, numpy's argmax, |lag|."""
    sample = sample.astype(np.float32).astype(np.float64)
    speaker = speaker.astype(np.float32).astype(np.float64)
    means = []
    for lag in range(-max_lag, max_lag + 1):
        if lag > 0:
            a, b = sample[lag:], speaker[:-lag]
        elif lag < 0:
            a, b = sample[:lag], speaker[-lag:]
        else:
            a, b = sample, speaker
        rs = []
        for d in range(a.shape[1]):
            da, db = a[:, d] - a[:, d].mean(), b[:, d] - b[:, d].mean()
            denominator = np.sqrt(np.sum(da * da) * np.sum(db * db))
            rs.append(np.nan if denominator == 0 else float(np.clip(np.sum(da * db) / denominator, -1, 1)))
        means.append(np.mean(np.array(rs, dtype=np.float32), dtype=np.float32))
    return abs(int(np.argmax(np.array(means, dtype=np.float32))) - max_lag)


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


# --------------------------------------------------------------------------- REACT 2024 official definitions

def test_official_dtw_on_a_3x3_case_worked_by_hand():
    # x = (0, 1, 3), y = (1, 2, 3). Squared local costs c(i, j) = (x_i - y_j)^2 and accumulated
    # cost D(i, j) = c(i, j) + min(D(i-1, j-1), D(i-1, j), D(i, j-1)):
    #        c            D
    #     1  4  9      1  5 14
    #     0  1  4      1  2  6
    #     4  1  0      5  2  2
    # official DTW = sqrt(D(2, 2)) = sqrt(2). With Euclidean local cost |x_i - y_j| the same table
    # gives 1 3 6 / 1 2 4 / 3 2 2, i.e. 2 (this project's variant).
    x, y = np.array([[[0.0], [1.0], [3.0]]]), np.array([[[1.0], [2.0], [3.0]]])
    assert react.dtw(x, y, [slice(0, 1)], squared_cost=True)[0, 0, 0] == pytest.approx(np.sqrt(2.0), rel=1e-12)
    assert react.dtw(x, y, [slice(0, 1)])[0, 0, 0] == pytest.approx(2.0, rel=1e-12)


@pytest.mark.parametrize("t, j", [(1, 1), (1, 6), (7, 1), (9, 9), (13, 8), (37, 40)])
def test_official_dtw_matches_the_reference_loop(t, j):
    rng = np.random.default_rng(t * 31 + j)
    x, y = rng.normal(size=(2, t, 25)), rng.normal(size=(3, j, 25))
    got = react.dtw(x, y, react.DIST_GROUPS, squared_cost=True)
    want = [[[brute_force_dtw(x[k][:, g], y[m][:, g], squared=True) for m in range(3)] for k in range(2)]
            for g in react.DIST_GROUPS]
    assert np.allclose(got, want, rtol=1e-10, atol=1e-9)


def test_official_fr_dist_matches_the_reference_loop_and_sums_over_samples():
    rng = np.random.default_rng(11)
    pred = emotion(rng, 3, 2, 40)
    appropriate = [emotion(rng, m, 40) for m in (1, 3, 2)]
    got = react.fr_dist_per_speaker(pred, appropriate, official=True)
    assert got.mean() == pytest.approx(official_fr_dist_loop(pred, appropriate), rel=1e-9)
    # the sum over K: K identical samples score K times one sample
    one = react.fr_dist_per_speaker(pred[:, :1], appropriate, official=True)
    tripled = react.fr_dist_per_speaker(np.repeat(pred[:, :1], 3, axis=1), appropriate, official=True)
    assert np.allclose(tripled, 3 * one, rtol=1e-12) and one.min() > 0.1
    # float32 rounding first: float32 values moved by far less than half a float32 step score the same
    nudged = pred.astype(np.float32).astype(np.float64) + 1e-12
    assert np.array_equal(react.fr_dist_per_speaker(nudged, appropriate, official=True), got)


def test_official_tlcc_matches_the_reference_loop_with_constant_channels():
    rng = np.random.default_rng(12)
    pred, speaker = emotion(rng, 2, 3, 90), emotion(rng, 2, 90)
    pred[0, 1, :, 3] = 0.5  # a channel constant over the whole clip
    pred[1, 0, 70:, :15] = 1.0  # AUs constant at the end: NaN at the lags whose overlap lies there
    pred[1, 2, :, :15] = (pred[1, 2, :, :15] > 0.5)  # 0/1 AU occurrences
    speaker[1, :30, 20] = 0.25
    got = react.tlcc_offsets_official(pred, speaker)
    want = [[official_tlcc_loop(pred[i, k], speaker[i]) for k in range(3)] for i in range(2)]
    assert got.tolist() == want
    assert got[0, 1] == 49


def shifted_pair(rng, shift: int, frames: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """A speaker [T, 25] and a sample following it by ``shift`` frames (sample[t + shift] == speaker[t])."""
    long = emotion(rng, 1, frames + 160)[0]
    return long[60:60 + frames], long[60 - shift:60 + frames - shift]


def test_official_tlcc_lets_a_lag_with_a_constant_window_win():
    rng = np.random.default_rng(13)
    speaker, sample = shifted_pair(rng, 5)
    assert react.tlcc_offsets_official(sample[None, None], speaker[None]).tolist() == [[5]]
    # AU 0 of the sample fires only in its last 10 frames: for every lag <= -10 the sample's overlap
    # (its first T + lag frames) is constant there, r is NaN, and the first NaN (lag -49) wins
    late = sample.copy()
    late[:, 0], late[-10:, 0] = 0.0, 1.0
    assert react.tlcc_offsets_official(late[None, None], speaker[None]).tolist() == [[49]]
    assert react.tlcc_offsets(late[None, None], speaker[None]).tolist() == [[5]]  # the variant: 0 for it
    # fires only in its first 10 frames: lags >= 10 are NaN, the first of them (10) wins
    early = sample.copy()
    early[:, 0], early[:10, 0] = 0.0, 1.0
    assert react.tlcc_offsets_official(early[None, None], speaker[None]).tolist() == [[10]]
    # a still speaker: every lag is NaN, lag -49 wins for every sample
    still = np.full_like(speaker, 0.3)
    assert react.tlcc_offsets_official(np.stack([sample, late])[None], still[None]).tolist() == [[49, 49]]


def test_official_fr_syn_uses_sample_0_and_fr_syn_all_every_sample():
    speakers, pred = [], []
    for seed in (14, 15):  # two speakers, each with a sample following it by 7 frames and one by 3
        speaker, follows_by_7 = shifted_pair(np.random.default_rng(seed), 7)
        _, follows_by_3 = shifted_pair(np.random.default_rng(seed), 3)
        speakers.append(speaker)
        pred.append([follows_by_7, follows_by_3])
    pred, speakers = np.array(pred), np.array(speakers)  # [2, 2, T, 25], [2, T, 25]
    appropriate = list(emotion(np.random.default_rng(16), 2, 1, pred.shape[2]))
    scores = react.evaluate_react_official(pred, speakers, appropriate)
    assert scores["FRSyn"] == 7.0 and scores["FRSyn_all"] == 5.0
    swapped = react.evaluate_react_official(pred[:, ::-1], speakers, appropriate)
    assert swapped["FRSyn"] == 3.0 and swapped["FRSyn_all"] == 5.0


def test_evaluate_react_official_reuses_the_shared_definitions():
    rng = np.random.default_rng(15)
    pred, speaker = emotion(rng, 4, 3, 80), emotion(rng, 4, 80)
    appropriate = [emotion(rng, m, 80) for m in (1, 2, 3, 2)]
    scores = react.evaluate_react_official(pred, speaker, appropriate, workers=1)
    assert set(scores) == {"FRCorr", "FRDist", "FRDiv", "FRDvs", "FRVar", "FRSyn", "FRSyn_all"}
    assert scores["FRCorr"] == pytest.approx(react.fr_corr(pred, appropriate), rel=1e-12)
    assert scores["FRDiv"] == pytest.approx(react.fr_div(pred), rel=1e-12)
    assert scores["FRDvs"] == pytest.approx(react.fr_dvs(pred), rel=1e-9)
    assert scores["FRVar"] == pytest.approx(react.fr_var(pred), rel=1e-12)
    assert scores["FRDist"] == pytest.approx(official_fr_dist_loop(pred, appropriate), rel=1e-9)
    offsets = [[official_tlcc_loop(pred[i, k], speaker[i]) for k in range(3)] for i in range(4)]
    assert scores["FRSyn"] == pytest.approx(np.mean([o[0] for o in offsets]))
    assert scores["FRSyn_all"] == pytest.approx(np.mean(offsets))
    # the project's variant is a different scale: Euclidean local cost sums along the path
    assert react.fr_dist(pred, appropriate, workers=1) > 2 * scores["FRDist"]


def test_per_speaker_contributions_average_to_the_metrics():
    rng = np.random.default_rng(16)
    pred, speaker = emotion(rng, 5, 3, 60), emotion(rng, 5, 60)
    appropriate = [emotion(rng, 2, 60) for _ in range(5)]
    parts = react.speaker_contributions(pred, speaker, appropriate, "listenerctl", workers=1)
    assert set(parts) == {"FRCorr", "FRDist", "FRDiv", "FRDvs", "FRVar", "FRSyn"}
    whole = react.evaluate_react(pred, speaker, appropriate, workers=1)
    for name, terms in parts.items():
        value = terms.sum() / (5 * 4) if name == "FRDvs" else terms.mean()
        assert value == pytest.approx(whole[name], rel=1e-9), name
    pairs = parts["FRDvs"]
    assert pairs.shape == (5, 5) and np.allclose(pairs, pairs.T) and not pairs.diagonal().any()
    k, t, d = pred.shape[1:]
    assert pairs[1, 3] == pytest.approx(np.sum((pred[1] - pred[3]) ** 2) / (k * t * d), rel=1e-9)
    with pytest.raises(ListenerctlError, match="unknown metric protocol"):
        react.speaker_contributions(pred, speaker, appropriate, "react2023")
