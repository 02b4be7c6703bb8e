"""Rule-based listener: responds to the speaker's cues, varies across samples, reproducible, any length."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from helpers import shared_file
from listenerctl.conditioning import AudioFeatures, Conditioning, FaceFeatures
from listenerctl.features.audio import bool_runs, extract_audio
from listenerctl.media import load_audio
from listenerctl.models.rules import (CH, DEG, RuleListener, backchannel_cues, jaw_activity, pink_noise,
                                      speaker_cues, value_range)

FPS = 25.0


def synthetic_audio(num_frames: int, seed: int = 0) -> AudioFeatures:
    """Speech turns of 2-5 s with slowly swinging pitch, separated by 0.4-1.5 s pauses; ~70 % of speech voiced."""
    rng = np.random.default_rng(seed)
    vad = np.zeros(num_frames, bool)
    t = int(rng.integers(0, 10))
    while t < num_frames:
        turn = int(rng.uniform(2, 5) * FPS)
        vad[t:t + turn] = True
        t += turn + int(rng.uniform(0.4, 1.5) * FPS)
    voiced = vad & (rng.random(num_frames) < 0.7)
    wave = 30 * np.cos(2 * np.pi * np.arange(num_frames) / (3.1 * FPS))
    f0 = np.where(voiced, 170 + wave + rng.normal(0, 8, num_frames), 0).astype(np.float32)
    energy = np.where(vad, -25.0, -70.0).astype(np.float32)
    return AudioFeatures(mel=np.zeros((num_frames, 80), np.float32), mfcc=np.zeros((num_frames, 39), np.float32),
                         energy=energy, f0=f0, voiced=voiced, vad=vad)


def audio_cond(audio: AudioFeatures) -> Conditioning:
    return Conditioning(FPS, len(audio.vad), audio=audio)


def face_features(arkit: np.ndarray) -> FaceFeatures:
    return FaceFeatures(arkit.astype(np.float32), np.zeros((len(arkit), 25), np.float32), np.ones(len(arkit), bool))


@pytest.fixture(scope="module")
def speech_cond() -> Conditioning:
    """68 s of real speech (BEAT speaker scott)."""
    return audio_cond(extract_audio(load_audio(shared_file("speech/beat_scott_68s.wav"))))


def cue_share(onsets_s: np.ndarray, cues_s: np.ndarray) -> float:
    """Share of nod onsets that follow some cue by 300-700 ms (Ward & Tsukahara's response window)."""
    latency = onsets_s[:, None] - cues_s[None, :]
    return float(np.mean(np.any((latency >= 0.3 - 1e-6) & (latency <= 0.7 + 1e-6), axis=1)))


def test_nods_answer_the_speakers_cues(speech_cond):
    cues = backchannel_cues(speech_cond) / FPS
    onsets = RuleListener().plan(speech_cond, 10, seed=0).nods.onset
    duration = speech_cond.num_frames / FPS
    assert len(cues) > 20 and len(onsets) > 50
    assert cue_share(onsets, cues) > 0.95
    for shift in (2.3, 5.9, 11.1, 17.7, 29.3):          # the same nods, circularly shifted in time
        assert cue_share(np.mod(onsets + shift, duration), cues) < 0.5


def test_a_listener_of_reversed_speech_misses_the_real_cues(speech_cond):
    audio = speech_cond.audio
    reversed_audio = AudioFeatures(*(np.ascontiguousarray(getattr(audio, f.name)[::-1])
                                     for f in dataclasses.fields(audio)))
    onsets = RuleListener().plan(audio_cond(reversed_audio), 10, seed=0).nods.onset
    assert len(onsets) > 50
    assert cue_share(onsets, backchannel_cues(speech_cond) / FPS) < 0.5


def test_low_pitch_and_pause_rules():
    """Ward & Tsukahara: a low-pitch region counts after 700 ms of speech and once it lasts 110 ms."""
    n = 300
    vad = np.ones(n, bool)
    vad[250:275] = False
    f0 = np.where(vad, 200.0, 0.0).astype(np.float32)
    f0[10:21] = 100.0      # too early in the turn
    f0[100:102] = 100.0    # 80 ms: too short
    f0[150:161] = 100.0    # fires once it has lasted 3 frames (120 ms)
    audio = AudioFeatures(np.zeros((n, 80), np.float32), np.zeros((n, 39), np.float32),
                          np.where(vad, -20.0, -80.0).astype(np.float32), f0, vad.copy(), vad)
    cues = speaker_cues(audio_cond(audio))
    assert cues.backchannel.tolist() == [153, 250]
    assert cues.pause_onsets.tolist() == [250]


def test_brow_raises_follow_pitch_accents():
    audio = synthetic_audio(1500)
    f0 = audio.f0.copy()
    peaks = [200, 600, 1000]
    for p in peaks:
        audio.voiced[p:p + 4] = audio.vad[p:p + 4] = True
        f0[p:p + 4] = 330.0
    cond = audio_cond(dataclasses.replace(audio, f0=f0))
    accents = speaker_cues(cond).accents
    assert set(peaks) <= set(accents.tolist())
    brows = RuleListener().plan(cond, 20, seed=3).brows
    assert len(brows.onset) > 0
    latency = brows.onset[:, None] - accents[None, :] / FPS
    assert np.all(np.any((latency >= 0.1) & (latency <= 0.3), axis=1))


def test_fewer_samples_are_the_first_of_more(speech_cond):
    """(Seeds and distinct samples are checked for every model in test_models_registry.py.)"""
    model = RuleListener()
    np.testing.assert_array_equal(model.generate(speech_cond, 3, seed=7).data,
                                  model.generate(speech_cond, 10, seed=7).data[:3])


def test_a_ten_minute_input_is_cheap():
    """(Shapes for any length are checked for every model in test_models_registry.py.)"""
    cond = audio_cond(synthetic_audio(15_000))
    start = time.process_time()
    motion = RuleListener().generate(cond, 10, seed=0)
    assert time.process_time() - start < 5.0
    assert motion.data.shape == (10, 15_000, 58)


def test_values_stay_in_range(speech_cond):
    motion = RuleListener().generate(speech_cond, 10, seed=1).data
    low, high = value_range()
    assert np.all(motion >= low) and np.all(motion <= high)
    assert np.all(motion[..., :52] >= 0) and np.all(motion[..., :52] <= 1)
    assert np.abs(motion[..., 52:55]).max() < 0.35                     # radians, under 20 degrees
    assert np.all(motion[..., CH["tongueOut"]] == 0)


def test_blink_rate_and_closure(speech_cond):
    motion = RuleListener().generate(speech_cond, 10, seed=2).data
    minutes = speech_cond.num_frames / FPS / 60
    for lid in motion[..., CH["eyeBlinkLeft"]]:
        closed = lid > 0.5
        starts, ends = bool_runs(closed)
        assert 10 <= len(starts) / minutes <= 30
        assert (ends - starts).max() <= 0.25 * FPS                       # closed for at most 250 ms


def test_blinks_gather_at_pause_onsets(speech_cond):
    plan = RuleListener().plan(speech_cond, 40, seed=4)
    pauses = plan.cues.pause_onsets / FPS
    after_pause = np.any((plan.blinks.onset[:, None] - pauses[None] >= 0) &
                         (plan.blinks.onset[:, None] - pauses[None] <= 0.3), axis=1)
    chance = len(pauses) * 0.3 / (speech_cond.num_frames / FPS)        # share of time within 0.3 s after a pause
    assert after_pause.mean() > 2 * chance


def test_nods_are_damped_pitch_oscillations_of_4_to_12_degrees(speech_cond):
    model = RuleListener()
    plan = model.plan(speech_cond, 5, seed=5)
    still = dataclasses.replace(plan, noise=np.zeros_like(plan.noise))      # no sway: pitch is the nods alone
    pitch = model.render(still, FPS)[..., CH["headPitch"]] / DEG
    full = model.render(plan, FPS)[..., CH["headPitch"]] / DEG
    nods = plan.nods
    assert np.all((nods.duration >= 0.4) & (nods.duration <= 0.8))
    for k, onset, duration, amplitude in zip(nods.sample, nods.onset, nods.duration, nods.amplitude):
        frames = slice(int(np.ceil(onset * FPS)), int(np.ceil((onset + duration) * FPS)))
        shape = pitch[k, frames]
        assert 4 - 1e-4 <= shape.max() <= 12 + 1e-4
        assert np.isclose(shape.max(), amplitude / DEG, atol=1e-3)
        assert shape.min() < -0.1 * shape.max()                              # rebounds up: it oscillates
        before = full[k, max(frames.start - 1, 0)]
        assert 3 <= full[k, frames].max() - before <= 13


def test_smile_mimicry_follows_the_speaker_with_lag_and_gain():
    n = 1500
    rng = np.random.default_rng(0)
    speaker_smile = np.repeat(rng.choice([0.0, 0.3, 0.8], size=n // 50), 50)
    arkit = np.zeros((n, 58), np.float32)
    arkit[:, CH["mouthSmileLeft"]] = arkit[:, CH["mouthSmileRight"]] = speaker_smile
    cond = Conditioning(FPS, n, face=face_features(arkit))
    model = RuleListener()
    plan = model.plan(cond, 6, seed=0)
    smile = model.render(plan, FPS)[..., CH["mouthSmileLeft"]] - plan.personality.offsets[:, None, CH["mouthSmileLeft"]]
    lags = np.arange(0, 40)
    for k in range(6):
        centred = smile[k] - smile[k].mean()
        corr = [np.dot(centred[lag:], speaker_smile[:n - lag] - speaker_smile.mean()) for lag in lags]
        lag_s = lags[int(np.argmax(corr))] / FPS
        assert abs(lag_s - plan.personality.smile_lag[k]) <= 0.041
        assert 0.4 - 0.041 <= lag_s <= 1.0 + 0.041
        shift = int(np.round(plan.personality.smile_lag[k] * FPS))
        gain = np.polyfit(speaker_smile[:n - shift - 10], smile[k, shift:n - 10], 1)[0]
        assert abs(gain - plan.personality.smile_gain[k]) < 0.05


def test_face_only_conditioning_uses_the_jaw_as_voice_activity():
    n = 1000
    t = np.arange(n) / FPS
    talking = (t % 6) < 4                                                  # 4 s talking, 2 s still
    rng = np.random.default_rng(0)
    arkit = np.zeros((n, 58), np.float32)
    arkit[:, CH["jawOpen"]] = np.where(talking, 0.15 + 0.15 * np.sin(2 * np.pi * 4.3 * t), 0.02)
    arkit[:, CH["jawOpen"]] += rng.normal(0, 0.005, n)
    cond = Conditioning(FPS, n, face=face_features(arkit))
    assert (jaw_activity(arkit, FPS) == talking).mean() > 0.9
    onsets = speaker_cues(cond).pause_onsets / FPS
    expected = np.arange(4.0, n / FPS, 6.0)
    assert len(onsets) == len(expected) and np.abs(onsets - expected).max() < 0.3
    motion = RuleListener().generate(cond, 4, seed=0)
    assert motion.data.shape == (4, n, 58)


def test_jaw_activity_agrees_with_the_audio_on_a_real_talking_face():
    from listenerctl.features.face import extract_face

    video = shared_file("video/talking_face_8s.mp4")
    audio = extract_audio(load_audio(video))
    face = extract_face(video, fps=FPS, num_frames=len(audio.vad))
    assert (jaw_activity(face.arkit, FPS) == audio.vad).mean() > 0.8
    face_only = Conditioning(FPS, len(audio.vad), face=face)
    motion = RuleListener().generate(face_only, 3, seed=0).data
    assert motion.shape == (3, len(audio.vad), 58) and np.isfinite(motion).all()


def test_audio_and_face_together():
    audio = synthetic_audio(500)
    arkit = np.zeros((500, 58), np.float32)
    arkit[200:, CH["mouthSmileLeft"]] = arkit[200:, CH["mouthSmileRight"]] = 0.9
    cond = Conditioning(FPS, 500, audio=audio, face=face_features(arkit))
    both = RuleListener().generate(cond, 3, seed=0).data
    audio_only = RuleListener().generate(audio_cond(audio), 3, seed=0).data
    smile = CH["mouthSmileLeft"]
    assert both[:, 300:, smile].mean() > both[:, :150, smile].mean() + 0.2   # the speaker's smile is mimicked
    np.testing.assert_array_equal(both[..., CH["eyeBlinkLeft"]], audio_only[..., CH["eyeBlinkLeft"]])


def test_pink_noise_has_unit_variance_and_a_1_over_f_spectrum():
    noise = pink_noise(np.random.default_rng(0), 2 ** 16, 4, FPS)
    assert abs(noise.var() - 1) < 0.25
    power = np.mean(np.abs(np.fft.rfft(noise, axis=0)) ** 2, axis=1)
    freq = np.fft.rfftfreq(len(noise), 1 / FPS)
    band = (freq > 0.02) & (freq < 0.3)
    slope = np.polyfit(np.log(freq[band]), np.log(power[band]), 1)[0]
    assert -1.5 < slope < -0.5
