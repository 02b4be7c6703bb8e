"""Learning2Listen and gesture metrics: known answers on constructed data, one real-speech check."""

from __future__ import annotations

import numpy as np
import pytest

from listenerctl.errors import ListenerctlError
from listenerctl.metrics import gesture, l2l
from helpers import shared_file


def test_frechet_distance_is_zero_for_itself_and_grows_with_a_mean_shift():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(3000, 6)) @ rng.normal(size=(6, 6))
    assert l2l.frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)
    distances = [l2l.frechet_distance(features + shift, features) for shift in (0.5, 1.0, 2.0)]
    # same covariance: the distance is exactly the squared mean shift, 6·shift²
    assert distances == pytest.approx([6 * 0.25, 6 * 1.0, 6 * 4.0])
    wider = l2l.frechet_distance(features * 2, features)
    assert wider > 1.0


def test_frechet_distance_handles_a_constant_channel():
    rng = np.random.default_rng(1)
    features = np.concatenate([rng.normal(size=(500, 3)), np.zeros((500, 1))], axis=1)
    assert l2l.frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)


def test_l2_variance_and_paired_fd():
    rng = np.random.default_rng(2)
    gt, speaker = rng.normal(size=(4, 50, 5)), rng.normal(size=(4, 50, 3))
    assert l2l.l2(gt + 0.5, gt) == pytest.approx(0.25)
    assert l2l.variance(np.stack([np.full((50, 5), 1.0), np.full((50, 5), 3.0)])) == pytest.approx(1.0)
    assert l2l.paired_fd(gt, gt, speaker) == pytest.approx(0.0, abs=1e-8)
    # right listener frames with the wrong speaker frames: the pairing is broken although FD is 0
    shuffled = gt[::-1]
    assert l2l.fd(shuffled, gt) == pytest.approx(0.0, abs=1e-8)
    assert l2l.paired_fd(shuffled, gt, speaker) > 0.01


def test_kmeans_finds_separated_clusters_deterministically():
    rng = np.random.default_rng(3)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    points = np.concatenate([c + rng.normal(scale=0.1, size=(100, 2)) for c in centres])
    found = l2l.kmeans(points, 3, seed=0)
    assert np.allclose(np.sort(found, axis=0), np.sort(centres, axis=0), atol=0.05)
    assert np.array_equal(found, l2l.kmeans(points, 3, seed=0))


def test_shannon_index_counts_the_clusters_predictions_use():
    rng = np.random.default_rng(4)
    centres = rng.normal(scale=20, size=(8, 4))
    gt = (centres[rng.integers(8, size=(10, 40))] + rng.normal(scale=0.1, size=(10, 40, 4)))
    assert l2l.shannon_index(gt, gt, clusters=8) == pytest.approx(3.0, abs=0.1)  # 8 balanced clusters
    stuck = np.broadcast_to(gt[:1, :1], gt.shape)  # one pose repeated
    assert l2l.shannon_index(stuck, gt, clusters=8) == pytest.approx(0.0)
    two = centres[rng.integers(2, size=(10, 40))]
    assert l2l.shannon_index(two, gt, clusters=8) == pytest.approx(1.0, abs=0.1)


def test_residual_pearson():
    rng = np.random.default_rng(5)
    speaker = rng.normal(size=(6, 80, 4))
    gt = 0.8 * speaker + 0.6 * rng.normal(size=speaker.shape)
    assert l2l.residual_pearson(gt, gt, speaker) == 0.0
    unrelated = rng.normal(size=speaker.shape)
    # gt correlates ~0.8 with its speaker, an unrelated listener ~0: the residual is ~0.8
    assert l2l.residual_pearson(unrelated, gt, speaker) == pytest.approx(0.8, abs=0.05)
    # per-sequence offsets do not count as correlation
    offset = unrelated + speaker.mean(axis=1, keepdims=True) * 50
    assert l2l.residual_pearson(offset, gt, speaker) == pytest.approx(0.8, abs=0.05)


def test_evaluate_l2l_and_input_checks():
    rng = np.random.default_rng(6)
    pred, gt, speaker = rng.normal(size=(3, 3, 60, 5))
    scores = l2l.evaluate_l2l(pred, gt, speaker)
    assert set(scores) == {"L2", "FD", "P-FD", "variance", "SI", "rPCC"}
    assert all(np.isfinite(v) for v in scores.values())
    pred[1, :2] = np.nan  # two frames of five channels
    with pytest.raises(ListenerctlError, match="10 NaN"):
        l2l.fd(pred, gt)
    with pytest.raises(ListenerctlError, match="same shape"):
        l2l.l2(gt[:, :50], gt)


def clicks(rng: np.random.Generator, times: np.ndarray, seconds: float, rate: int = 16_000) -> np.ndarray:
    """Quiet noise with a 10 ms noise burst at each of ``times``."""
    audio = 0.002 * rng.normal(size=int(seconds * rate))
    for t in times:
        start = int(t * rate)
        audio[start:start + rate // 100] += 0.5 * rng.normal(size=rate // 100)
    return audio


def pausing_motion(times: np.ndarray, seconds: float, fps: float, joints: int = 6) -> np.ndarray:
    """Joint angles moving steadily except for a pause (speed minimum) at each of ``times``."""
    t = np.arange(int(seconds * fps)) / fps
    speed = 1 - 0.9 * np.clip(np.exp(-(t[:, None] - times[None]) ** 2 / (2 * 0.12 ** 2)).sum(1), 0, 1)
    return np.cumsum(speed)[:, None] * np.linspace(1, 2, joints) / fps


def test_onsets_found_at_clicks():
    rng = np.random.default_rng(7)
    times = np.array([0.5, 1.3, 2.0, 3.1, 3.6, 4.4])
    onsets = gesture.audio_onsets(clicks(rng, times, 5.0), 16_000)
    assert len(onsets) == len(times)
    assert np.abs(onsets - times).max() < 0.03


def test_beat_alignment_is_high_for_beats_on_onsets_and_low_for_random_ones():
    rng = np.random.default_rng(8)
    times = np.array([0.6, 1.5, 2.2, 3.3, 4.0, 5.1, 5.9, 6.8])
    audio, fps = clicks(rng, times, 7.5), 15.0
    beats = gesture.motion_beats(pausing_motion(times, 7.5, fps), fps)
    assert np.abs(beats[:, None] - times[None]).min(axis=1).max() <= 1 / fps + 1e-9  # one frame
    aligned = gesture.beat_alignment_score(pausing_motion(times, 7.5, fps), audio, fps, 16_000)
    random = [gesture.beat_alignment_score(pausing_motion(np.sort(rng.uniform(0.3, 7.2, 8)), 7.5, fps),
                                           audio, fps, 16_000) for _ in range(5)]
    assert aligned > 0.85
    assert max(random) < aligned - 0.3
    assert gesture.beat_alignment([1.0, 2.0], [1.0, 2.1]) == pytest.approx((1 + np.exp(-0.5)) / 2)
    assert gesture.beat_alignment([], [1.0]) == 0.0


def test_onsets_on_real_speech_come_at_a_syllable_like_rate():
    from listenerctl.media import load_audio

    audio = load_audio(shared_file("speech/beat_scott_68s.wav"))
    onsets = gesture.audio_onsets(audio, 16_000)
    rate = len(onsets) / (len(audio) / 16_000)
    assert 1.5 < rate < 8.0
    assert np.all(np.diff(onsets) >= 0.05)


def test_gesture_fd_and_diversity():
    rng = np.random.default_rng(9)
    motion = np.cumsum(rng.normal(size=(4, 200, 9)), axis=1)
    assert gesture.gesture_fd(motion, motion, fps=15) == pytest.approx(0.0, abs=1e-6)
    assert gesture.gesture_fd(motion + 5.0, motion, fps=15) == pytest.approx(9 * 25.0, rel=1e-6)
    assert gesture.motion_features(motion, 15).shape == (4 * 199, 18)
    samples = np.stack([motion[0], motion[0] + 2.0, motion[0] + 4.0])  # pairwise gaps 2, 4, 2 per channel
    assert gesture.diversity(samples, order=1) == pytest.approx(9 * 8 / 3)
    assert gesture.diversity(samples, order=2) == pytest.approx(3 * 8 / 3)
    assert gesture.diversity(np.stack([motion[:2]] * 2, axis=1), order=2) == 0.0  # [N=2, K=2] copies
    with pytest.raises(ListenerctlError, match="K >= 2"):
        gesture.diversity(motion[:1][None])
