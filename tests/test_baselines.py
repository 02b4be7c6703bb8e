"""Baseline listeners: mime (delayed speaker), random (smooth, speaker-blind), mean (constant)."""

from __future__ import annotations

import numpy as np
import pytest

from listenerctl.conditioning import AudioFeatures, Conditioning, FaceFeatures
from listenerctl.errors import ListenerctlError
from listenerctl.models.baselines import MeanListener, MimeListener, RandomListener
from listenerctl.models.listener_range import value_range

FPS = 25.0


def audio_features(n: int, seed: int = 0) -> AudioFeatures:
    rng = np.random.default_rng(seed)
    vad = rng.random(n) < 0.6
    return AudioFeatures(rng.normal(size=(n, 80)).astype(np.float32), np.zeros((n, 39), np.float32),
                         np.where(vad, -20.0, -70.0).astype(np.float32),
                         np.where(vad, 150.0, 0.0).astype(np.float32), vad.copy(), vad)


def face_features(n: int) -> FaceFeatures:
    arkit = np.random.default_rng(1).uniform(0, 1, (n, 58)).astype(np.float32)
    return FaceFeatures(arkit, np.zeros((n, 25), np.float32), np.ones(n, bool))


def test_mime_copies_the_speaker_half_a_second_later():
    face = face_features(100)
    motion = MimeListener().generate(Conditioning(FPS, 100, face=face), 3, seed=0).data
    assert motion.shape == (3, 100, 58)
    np.testing.assert_array_equal(motion[:, 13:], np.broadcast_to(face.arkit[:87], (3, 87, 58)))
    np.testing.assert_array_equal(motion[:, :13], np.broadcast_to(face.arkit[0], (3, 13, 58)))


def test_mime_needs_a_face():
    with pytest.raises(ListenerctlError, match="no face"):
        MimeListener().generate(Conditioning(FPS, 50, audio=audio_features(50)), 2, seed=0)


def test_random_walks_are_smooth_in_range_diverse_and_blind():
    low, high = value_range()
    model = RandomListener()
    motion = model.generate(Conditioning(FPS, 1500, audio=audio_features(1500)), 6, seed=3).data
    assert motion.shape == (6, 1500, 58)
    assert np.all(motion >= low - 1e-6) and np.all(motion <= high + 1e-6)
    moving = high > low
    assert np.all(motion[..., ~moving] == 0)
    span = (high - low)[moving]
    steps = np.abs(np.diff(motion[..., moving], axis=1)) / span
    assert steps.max() < 0.1                                            # no jumps between frames
    coverage = (motion[..., moving].max(axis=1) - motion[..., moving].min(axis=1)) / span
    assert np.median(coverage) > 0.5                                    # a minute explores the range
    flat = motion.reshape(6, -1)
    assert np.min([np.abs(flat[i] - flat[j]).mean() for i in range(6) for j in range(i)]) > 0.01
    other_speaker = Conditioning(FPS, 1500, audio=audio_features(1500, seed=9))
    np.testing.assert_array_equal(model.generate(other_speaker, 6, seed=3).data, motion)
    np.testing.assert_array_equal(model.generate(other_speaker, 2, seed=3).data, motion[:2])


def test_mean_is_constant():
    cond = Conditioning(FPS, 40, audio=audio_features(40))
    neutral = MeanListener().generate(cond, 2, seed=0).data
    assert neutral.shape == (2, 40, 58) and not neutral.any()
    pose = np.linspace(0, 0.5, 58)
    np.testing.assert_allclose(MeanListener(pose).generate(cond, 3, seed=5).data, np.broadcast_to(pose, (3, 40, 58)))
    with pytest.raises(ListenerctlError, match="58"):
        MeanListener(np.zeros(52))

