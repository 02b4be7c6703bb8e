"""Speaker audio features: frame alignment, pitch, voicing, voice activity, chunking and speed."""

from __future__ import annotations

import shutil
import subprocess
import time

import numpy as np
import pytest
import torch
import torchaudio

from listenerctl.features.audio import (AUDIO_FEATURE_DIM, SAMPLE_RATE, bool_runs, extract_audio, runs_to_mask,
                                        smooth_activity)
from listenerctl.media import load_audio
from helpers import shared_file

RNG = np.random.default_rng(1234)


def harmonic_tone(f0: float, seconds: float, level: float = 0.3) -> np.ndarray:
    """A voice-like tone: five harmonics of ``f0`` with 1/k amplitudes, float32 at 16 kHz."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return sum(level / k * np.sin(2 * np.pi * f0 * k * t + k) for k in range(1, 6)).astype(np.float32)


def espeak(text: str, path) -> np.ndarray:
    """Speech synthesised by espeak-ng, decoded to 16 kHz mono float32."""
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), text], check=True, capture_output=True)
    return load_audio(path)


def test_shapes_dtypes_and_num_frames():
    samples = harmonic_tone(150, 2.0)
    feats = extract_audio(samples)
    assert feats.mel.shape == (50, 80) and feats.mfcc.shape == (50, 39)
    for name in ("mel", "mfcc", "energy", "f0"):
        assert getattr(feats, name).dtype == np.float32, name
    assert feats.voiced.dtype == bool and feats.vad.dtype == bool
    assert feats.energy.shape == feats.f0.shape == feats.vad.shape == (50,)
    padded = extract_audio(samples, num_frames=60)
    assert padded.mel.shape == (60, 80) and np.all(padded.energy[52:] == -100.0) and not padded.voiced[52:].any()
    np.testing.assert_array_equal(extract_audio(samples, num_frames=20).mel, feats.mel[:20])
    assert extract_audio(samples, fps=30.0).mel.shape == (60, 80)
    assert extract_audio(np.zeros(0, np.float32)).mfcc.shape == (0, 39)


def test_the_feature_width_is_the_matrix_width():
    """`AUDIO_FEATURE_DIM`, which the learned listeners size their audio layers by, is what `matrix()` gives."""
    assert extract_audio(harmonic_tone(150, 0.4)).matrix().shape == (10, AUDIO_FEATURE_DIM) == (10, 123)


def test_mel_frames_are_centred_on_motion_frames():
    """Frame i's window is centred at (i + 0.5) x 640 samples: same as torchaudio's MelSpectrogram
    (no centring) on the signal padded by 512 - 320 samples."""
    samples = RNG.normal(0, 0.1, SAMPLE_RATE * 2).astype(np.float32)
    ours = extract_audio(samples).mel
    padded = np.pad(samples, (192, 1024))
    reference = torchaudio.transforms.MelSpectrogram(SAMPLE_RATE, n_fft=1024, hop_length=640, n_mels=80,
                                                     center=False, power=2.0)(torch.from_numpy(padded))
    np.testing.assert_allclose(ours, np.log(reference.T[:50].numpy() + 1e-6), atol=1e-3)


def test_mfcc_deltas_follow_the_coefficients():
    feats = extract_audio(harmonic_tone(120, 1.0) * np.linspace(0, 1, SAMPLE_RATE, dtype=np.float32))
    static, delta = feats.mfcc[:, :13], feats.mfcc[:, 13:26]
    inner = slice(3, -3)
    slope = np.gradient(static, axis=0)[inner]
    assert np.corrcoef(slope[:, 0], delta[inner, 0])[0, 1] > 0.9


def test_chunking_does_not_change_the_features():
    samples = np.concatenate([harmonic_tone(130, 3.0), np.zeros(8000, np.float32), harmonic_tone(210, 3.0)])
    whole, pieces = extract_audio(samples), extract_audio(samples, chunk_frames=37)
    for name in ("mel", "mfcc", "energy", "f0"):
        np.testing.assert_allclose(getattr(pieces, name), getattr(whole, name), rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(pieces.vad, whole.vad)
    np.testing.assert_array_equal(pieces.voiced, whole.voiced)


@pytest.mark.parametrize("f0", [80.0, 150.0, 330.0])
def test_f0_of_a_harmonic_tone(f0):
    feats = extract_audio(harmonic_tone(f0, 2.0))
    assert feats.voiced.mean() > 0.95
    assert np.abs(feats.f0[feats.voiced] - f0).max() < 3.0


def test_f0_at_another_frame_rate():
    feats = extract_audio(harmonic_tone(150.0, 2.0), fps=30.0)
    assert feats.voiced.all() and np.abs(feats.f0 - 150.0).max() < 3.0


def test_white_noise_is_mostly_unvoiced():
    feats = extract_audio(RNG.normal(0, 0.1, SAMPLE_RATE * 4).astype(np.float32))
    assert feats.voiced.mean() < 0.1
    assert np.all(feats.f0[~feats.voiced] == 0)


@pytest.mark.parametrize("level", [0.0, 1e-4])
def test_silence_has_no_voice_activity(level):
    feats = extract_audio(RNG.normal(0, level, SAMPLE_RATE * 3).astype(np.float32))
    assert not feats.vad.any() and not feats.voiced.any()
    assert feats.energy.max() < -70


def test_smooth_activity_fills_short_gaps_and_drops_clicks():
    mask = np.zeros(100, bool)
    mask[10:30] = mask[33:50] = True   # 3-frame gap: filled at 25 fps (< 0.2 s)
    mask[60:70] = True                 # 10-frame gap before it: kept
    mask[90] = True                    # 1-frame click: dropped
    out = smooth_activity(mask, 25.0, 0.2, 0.08)
    starts, ends = bool_runs(out)
    assert starts.tolist() == [10, 60] and ends.tolist() == [50, 70]
    np.testing.assert_array_equal(runs_to_mask(starts, ends, 100), out)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_voice_activity_is_off_in_silences_between_utterances(tmp_path):
    first = espeak("Well, I went to the market yesterday and bought some apples.", tmp_path / "a.wav")
    second = espeak("Then I walked home along the river, and it was lovely.", tmp_path / "b.wav")
    gap = np.zeros(int(1.5 * SAMPLE_RATE), np.float32)
    parts = [first, gap, second, gap, first]
    samples = np.concatenate(parts)
    samples += RNG.normal(0, 3e-4, len(samples)).astype(np.float32)     # a -70 dBFS noise floor
    feats = extract_audio(samples)
    bounds = np.cumsum([0] + [len(p) for p in parts]) / SAMPLE_RATE
    frame_time = (np.arange(len(feats.vad)) + 0.5) / 25.0
    for i in (1, 3):                                                    # the inserted silences
        inside = (frame_time > bounds[i] + 0.1) & (frame_time < bounds[i + 1] - 0.1)
        assert not feats.vad[inside].any()
    for i in (0, 2, 4):                                                 # the utterances
        inside = (frame_time > bounds[i]) & (frame_time < bounds[i + 1])
        assert feats.vad[inside].mean() > 0.6
    assert 70 < np.median(feats.f0[feats.voiced]) < 250


@pytest.mark.parametrize("name", ["beat_scott_68s.wav", "radio_8s.wav"])
def test_real_speech_has_voice_activity_and_pauses(name):
    feats = extract_audio(load_audio(shared_file(f"speech/{name}")))
    assert feats.vad.mean() > 0.5
    starts, ends = bool_runs(~feats.vad)
    assert np.any(ends - starts >= 5)                     # at least one pause of 200 ms or more
    assert 0.3 < feats.voiced.mean() < 0.9
    assert not (feats.voiced & ~feats.vad).mean() > 0.05  # voicing happens while speaking
    assert 80 < np.median(feats.f0[feats.voiced]) < 250


def test_sixty_seconds_are_fast():
    """60 s of speech-like audio (harmonic tones and noise bursts): ~0.3 s of CPU on one thread. CPU time on
    one thread is bounded, not wall time, so a busy shared machine (where torch threads spin) cannot fail it."""
    pieces = [harmonic_tone(100 + 20 * (i % 7), 1.5) if i % 3 else RNG.normal(0, 0.05, 16000).astype(np.float32)
              for i in range(50)]
    samples = np.concatenate(pieces)[: 60 * SAMPLE_RATE]
    extract_audio(samples[:SAMPLE_RATE])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.process_time()
        feats = extract_audio(samples)
        assert time.process_time() - start < 1.5
    finally:
        torch.set_num_threads(threads)
    assert feats.mel.shape == (1500, 80)
