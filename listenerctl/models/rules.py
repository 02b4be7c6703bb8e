"""Rule-based listener (DESIGN §7): backchannel nods, smile mimicry, blinks, brow raises, sway, gaze drift.

Speaker cues are measured once per conditioning and shared by all samples; each of the K samples
draws a personality from a prior (its own random stream, so sample k is the same whatever K) and
reacts to the cues through it. Planning loops over the K samples (each vectorised over time);
rendering turns the event lists and 1/f noise into [K, T, 58] at once. Cost and memory are linear
in T. Output: arkit58 at the conditioning fps; blendshapes in [0, 1]; head pitch/yaw/roll in radians
(pitch > 0 tips the head down, as in `renderers.face_rig`); head translation in cm.

Behaviours: nods (a damped pitch oscillation of 4-12 deg over 0.4-0.8 s, with a slight inner-brow raise
and eye squint); smile = the speaker's smile lagged 0.4-1.0 s and scaled 0.3-0.9 when the face is
known, else warmth growing with sustained speech; blinks (log-normal intervals, mean 3-4 s, 150-250 ms
closures, pulled towards speaker pause onsets); brow raises on pitch accents; head sway, translation
drift and gaze drift from 1/f noise, the eyes counter-rotating 70 % of the head turn (they stay on
the speaker); per-sample resting expression offsets.

Cues (`speaker_cues`):
- speech: the audio VAD; without audio, the speaker's jaw activity: jawOpen's standard deviation over
  0.4 s above 0.02 (a still face's MediaPipe jitter stays under ~0.012; a talking jaw oscillates at the
  syllable rate, 0.07 median on the test video), pauses under 0.3 s filled, bursts under 0.2 s dropped.
- backchannel cues (Ward & Tsukahara 2000): a region of voiced F0 below the speaker's 26th percentile
  that has lasted 110 ms, starting after >= 700 ms of continuous speech; or a pause onset ending
  >= 700 ms of speech. Each sample nods 300-700 ms after a cue with its nod propensity, never within
  its refractory time (>= 800 ms) of its previous nod.
- pitch accents: starts of voiced regions >= 80 ms with F0 above 1.3 x the speaker's median (audio only).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

import numpy as np
from scipy.ndimage import gaussian_filter1d, uniform_filter1d
from scipy.signal import lfilter

from listenerctl.conditioning import Conditioning
from listenerctl.features.audio import bool_runs, smooth_activity
from listenerctl.models.base import Generator
from listenerctl.models.listener_range import CH, DEG, value_range
from listenerctl.motion import Motion, get_spec

SPEC = get_spec("arkit58")

NOD_AMPLITUDE_DEG = (4.0, 12.0)
NOD_DURATION_S = (0.4, 0.8)
NOD_DELAY_S = (0.3, 0.7)
MIN_SPEECH_BEFORE_CUE_S = 0.7
LOW_PITCH_PERCENTILE = 26.0
LOW_PITCH_MIN_S = 0.11
ACCENT_RATIO = 1.3
ACCENT_MIN_S = 0.08
BLINK_DURATION_S = (0.15, 0.25)
MIN_BLINK_GAP_S = 0.3
BROW_REFRACTORY_S = 2.0
JAW_SPREAD_SPEAKING = 0.02
EYE_LOOK_RAD = (28.0 * DEG, 22.0 * DEG)   # face rig: eyeLookIn/Out and eyeLookUp/Down at weight 1

# Resting expression: each sample holds U(0, max) of these.
OFFSET_MAX = {"browInnerUp": 0.15, "browDownLeft": 0.1, "browDownRight": 0.1, "eyeSquintLeft": 0.2,
              "eyeSquintRight": 0.2, "eyeWideLeft": 0.1, "eyeWideRight": 0.1, "mouthSmileLeft": 0.15,
              "mouthSmileRight": 0.15, "mouthClose": 0.08, "mouthPressLeft": 0.12, "mouthPressRight": 0.12,
              "mouthFrownLeft": 0.08, "mouthFrownRight": 0.08, "jawOpen": 0.04}


@dataclass(frozen=True)
class SpeakerCues:
    """What the rules react to, at the conditioning fps. speech [T] bool; backchannel and accents:
    sorted frame indices; pause_onsets: first frames of pauses; smile [T] speaker smile in [0, 1] (face
    only) or None; activity [T] slow speech-activity envelope in [0, 1]."""

    speech: np.ndarray
    pause_onsets: np.ndarray
    backchannel: np.ndarray
    accents: np.ndarray
    smile: np.ndarray | None
    activity: np.ndarray


def speaker_cues(cond: Conditioning) -> SpeakerCues:
    """Measure the speaker cues of ``cond`` (see the module docstring for the rules)."""
    fps, audio, face = cond.fps, cond.audio, cond.face
    speech = np.asarray(audio.vad, bool) if audio is not None else jaw_activity(face.arkit, fps)
    starts, ends = bool_runs(speech)
    long_turn = (ends - starts >= MIN_SPEECH_BEFORE_CUE_S * fps) & (ends < len(speech))
    pause_onsets = ends[long_turn]
    cues = [pause_onsets]
    accents = np.zeros(0, np.int64)
    if audio is not None:
        cues.append(_low_pitch_cues(audio.f0, np.asarray(audio.voiced, bool), speech, fps))
        accents = _pitch_accents(audio.f0, np.asarray(audio.voiced, bool), fps)
    smile = None
    if face is not None:
        mouth_smile = face.arkit[:, [CH["mouthSmileLeft"], CH["mouthSmileRight"]]].mean(axis=1)
        smile = np.clip(gaussian_filter1d(mouth_smile.astype(np.float64), 0.12 * fps, mode="nearest"), 0, 1)
    activity = _leaky(speech.astype(np.float64)[None], 2.0 * fps)[0]
    return SpeakerCues(speech, pause_onsets, np.unique(np.concatenate(cues)), accents, smile, activity)


def backchannel_cues(cond: Conditioning) -> np.ndarray:
    """Sorted frame indices where Ward & Tsukahara's rule (or a pause onset) invites a backchannel."""
    return speaker_cues(cond).backchannel


def jaw_activity(arkit: np.ndarray, fps: float) -> np.ndarray:
    """Face-only voice-activity proxy [T] bool from the speaker's arkit58 [T, 58] (module docstring)."""
    jaw = arkit[:, CH["jawOpen"]].astype(np.float64)
    if len(jaw) == 0:
        return np.zeros(0, bool)
    width = max(1, int(round(0.4 * fps)))
    mean = uniform_filter1d(jaw, width, mode="nearest")
    spread = np.sqrt(np.clip(uniform_filter1d(jaw ** 2, width, mode="nearest") - mean ** 2, 0, None))
    return smooth_activity(spread > JAW_SPREAD_SPEAKING, fps, 0.3, 0.2)


def _low_pitch_cues(f0: np.ndarray, voiced: np.ndarray, speech: np.ndarray, fps: float) -> np.ndarray:
    """Frames where a low-pitch region (voiced F0 < 26th percentile) has lasted 110 ms, the region
    having begun after >= 700 ms of continuous speech."""
    if voiced.sum() < fps:          # under a second of voicing: no reliable percentile
        return np.zeros(0, np.int64)
    low = voiced & (f0 < np.percentile(f0[voiced], LOW_PITCH_PERCENTILE))
    starts, ends = bool_runs(low)
    need = int(np.ceil(LOW_PITCH_MIN_S * fps))
    frames = np.arange(len(speech))
    turn_start = np.maximum.accumulate(np.where(speech & ~np.r_[False, speech[:-1]], frames, 0))
    speaking_for = np.where(speech, frames - turn_start, 0)
    ok = (ends - starts >= need) & (speaking_for[starts] >= MIN_SPEECH_BEFORE_CUE_S * fps)
    return np.minimum(starts[ok] + need, len(speech) - 1)


def _pitch_accents(f0: np.ndarray, voiced: np.ndarray, fps: float) -> np.ndarray:
    """Start frames of voiced regions >= 80 ms whose F0 exceeds 1.3 x the speaker's median F0."""
    if not voiced.any():
        return np.zeros(0, np.int64)
    starts, ends = bool_runs(voiced & (f0 > ACCENT_RATIO * np.median(f0[voiced])))
    return starts[ends - starts >= ACCENT_MIN_S * fps]


@dataclass(frozen=True)
class Personality:
    """Per-sample traits [K] (seconds, radians, blendshape weights) and resting offsets [K, 58]."""

    nod_propensity: np.ndarray
    nod_amplitude: np.ndarray
    nod_duration: np.ndarray
    nod_delay: np.ndarray
    refractory: np.ndarray
    nod_brow: np.ndarray
    nod_squint: np.ndarray
    smile_gain: np.ndarray
    smile_lag: np.ndarray
    warmth: np.ndarray
    blink_interval: np.ndarray
    blink_spread: np.ndarray
    pause_blink: np.ndarray
    brow_propensity: np.ndarray
    brow_amplitude: np.ndarray
    sway: np.ndarray
    drift: np.ndarray
    gaze: np.ndarray
    offsets: np.ndarray

    @classmethod
    def draw(cls, rngs: list[np.random.Generator]) -> "Personality":
        """One personality per generator; every trait is uniform within the range written here."""
        offset_idx = [CH[n] for n in OFFSET_MAX]
        rows = []
        for rng in rngs:
            u = rng.uniform
            offsets = np.zeros(SPEC.dim)
            offsets[offset_idx] = u(0.0, list(OFFSET_MAX.values()))
            rows.append(dict(
                nod_propensity=u(0.25, 0.7), nod_amplitude=u(*NOD_AMPLITUDE_DEG) * DEG,
                nod_duration=u(*NOD_DURATION_S), nod_delay=u(0.35, 0.65), refractory=u(0.8, 1.6),
                nod_brow=u(0.03, 0.1), nod_squint=u(0.05, 0.2), smile_gain=u(0.3, 0.9),
                smile_lag=u(0.4, 1.0), warmth=u(0.05, 0.25), blink_interval=u(3.0, 4.0),
                blink_spread=u(0.4, 0.7), pause_blink=u(0.3, 0.7), brow_propensity=u(0.1, 0.4),
                brow_amplitude=u(0.2, 0.5), sway=u(0.8, 2.5) * DEG, drift=u(0.1, 0.4), gaze=u(0.05, 0.2),
                offsets=offsets))
        return cls(**{f.name: np.array([r[f.name] for r in rows]) for f in fields(cls)})


@dataclass(frozen=True)
class Events:
    """Timed actions of all samples: sample index, onset (s), duration (s), amplitude, each [E]."""

    sample: np.ndarray
    onset: np.ndarray
    duration: np.ndarray
    amplitude: np.ndarray

    @classmethod
    def join(cls, per_sample: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> "Events":
        """From one (onset, duration, amplitude) triple per sample."""
        sample = np.concatenate([np.full(len(o), k) for k, (o, _, _) in enumerate(per_sample)]).astype(np.int64)
        return cls(sample, *(np.concatenate([np.asarray(t[i], np.float64) for t in per_sample]) for i in range(3)))

    def of(self, k: int) -> "Events":
        """The events of sample ``k``."""
        keep = self.sample == k
        return Events(*(getattr(self, f.name)[keep] for f in fields(self)))


@dataclass(frozen=True)
class ListenerPlan:
    """Everything `RuleListener` decided before rendering: cues, personalities, nods (amplitude in
    radians), blinks and brow raises (amplitude as blendshape weight), and unit 1/f noise [K, T, 8]
    for head rotation (3), translation (3) and gaze (2)."""

    cues: SpeakerCues
    personality: Personality
    nods: Events
    blinks: Events
    brows: Events
    noise: np.ndarray


class RuleListener(Generator):
    """The rule-based listener of DESIGN §7 (see the module docstring)."""

    name = "rules"
    spec = "arkit58"
    fps = 25.0

    def plan(self, cond: Conditioning, num_samples: int, seed: int) -> ListenerPlan:
        """Cues, K personalities and each sample's events; sample k depends only on (seed, k)."""
        if num_samples < 1:
            raise ValueError(f"num_samples must be at least 1, got {num_samples}")
        cues = speaker_cues(cond)
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(num_samples)]
        traits = Personality.draw(rngs)
        fps, duration = cond.fps, cond.num_frames / cond.fps
        nods, blinks, brows, noise = [], [], [], []
        for k, rng in enumerate(rngs):
            nods.append(_plan_nods(rng, cues.backchannel / fps, traits, k))
            blinks.append(_plan_blinks(rng, duration, cues.pause_onsets / fps, traits, k))
            brows.append(_plan_brows(rng, cues.accents / fps, traits, k))
            noise.append(pink_noise(rng, cond.num_frames, 8, fps))
        return ListenerPlan(cues, traits, Events.join(nods), Events.join(blinks), Events.join(brows),
                            np.stack(noise).astype(np.float32))

    def generate(self, cond: Conditioning, num_samples: int, seed: int) -> Motion:
        return Motion(self.render(self.plan(cond, num_samples, seed), cond.fps), self.spec, cond.fps)

    def render(self, plan: ListenerPlan, fps: float) -> np.ndarray:
        """[K, T, 58] float32 motion from ``plan`` at ``fps``."""
        p, cues, noise = plan.personality, plan.cues, plan.noise
        k_count, t_count = noise.shape[:2]
        out = np.repeat(p.offsets[:, None, :].astype(np.float32), t_count, axis=1)

        nod = render_events(plan.nods, k_count, t_count, fps, _nod_wave)
        pitch = p.sway[:, None] * 0.6 * noise[..., 0] + nod
        yaw = p.sway[:, None] * noise[..., 1]
        out[..., CH["headPitch"]] += pitch
        out[..., CH["headYaw"]] += yaw
        out[..., CH["headRoll"]] += p.sway[:, None] * 0.4 * noise[..., 2]
        for i, name in enumerate(("headTx", "headTy", "headTz")):
            out[..., CH[name]] += p.drift[:, None] * noise[..., 3 + i]

        nod_bump = render_events(plan.nods, k_count, t_count, fps, _bump, unit=True)
        out[..., CH["browInnerUp"]] += p.nod_brow[:, None] * nod_bump
        brow = render_events(plan.brows, k_count, t_count, fps, _bump)
        out[..., CH["browInnerUp"]] += brow
        blink = render_events(plan.blinks, k_count, t_count, fps, _blink_wave)
        smile = self._smile(cues, p, fps)
        for side in ("Left", "Right"):
            out[..., CH[f"browOuterUp{side}"]] += 0.8 * brow
            out[..., CH[f"eyeWide{side}"]] += 0.3 * brow
            out[..., CH[f"eyeSquint{side}"]] += p.nod_squint[:, None] * nod_bump + 0.3 * smile
            out[..., CH[f"eyeBlink{side}"]] += blink
            out[..., CH[f"mouthSmile{side}"]] += smile
            out[..., CH[f"cheekSquint{side}"]] += 0.5 * smile
            out[..., CH[f"mouthDimple{side}"]] += 0.2 * smile
        # gaze drifts (1/f) while the eyes counter-rotate 70 % of the head's turn, staying on the speaker
        gaze_x = p.gaze[:, None] * noise[..., 6] - 0.7 * yaw / EYE_LOOK_RAD[0]      # > 0: subject's left
        gaze_y = p.gaze[:, None] * noise[..., 7] + 0.7 * pitch / EYE_LOOK_RAD[1]    # > 0: up
        for name, value in (("eyeLookOutLeft", gaze_x), ("eyeLookInRight", gaze_x), ("eyeLookInLeft", -gaze_x),
                            ("eyeLookOutRight", -gaze_x), ("eyeLookUpLeft", gaze_y), ("eyeLookUpRight", gaze_y),
                            ("eyeLookDownLeft", -gaze_y), ("eyeLookDownRight", -gaze_y)):
            out[..., CH[name]] += np.clip(value, 0.0, None)
        low, high = value_range()
        return np.clip(out, low, high, out=out)

    @staticmethod
    def _smile(cues: SpeakerCues, p: Personality, fps: float) -> np.ndarray:
        """[K, T] smile added to the resting one: the speaker's smile, lagged and scaled, when the face is
        known; otherwise warmth that grows with the speaker's sustained speech activity."""
        if cues.smile is None:
            return p.warmth[:, None] * cues.activity[None]
        frames = np.arange(len(cues.smile))
        lagged = cues.smile[np.clip(frames[None] - np.round(p.smile_lag * fps)[:, None].astype(int), 0, None)]
        return p.smile_gain[:, None] * lagged


def _plan_nods(rng: np.random.Generator, cue_times: np.ndarray, p: Personality, k: int) -> tuple:
    """(onset, duration, amplitude) of one sample's nods answering ``cue_times`` (s)."""
    n = len(cue_times)
    respond = rng.random(n) < p.nod_propensity[k]
    onset = cue_times + np.clip(p.nod_delay[k] + rng.uniform(-0.1, 0.1, n), *NOD_DELAY_S)
    duration = np.clip(p.nod_duration[k] + rng.uniform(-0.08, 0.08, n), *NOD_DURATION_S)
    amplitude = np.clip(p.nod_amplitude[k] * rng.uniform(0.85, 1.15, n), *(np.array(NOD_AMPLITUDE_DEG) * DEG))
    keep = _refractory(onset, respond, p.refractory[k])
    return onset[keep], duration[keep], amplitude[keep]


def _plan_blinks(rng: np.random.Generator, duration_s: float, pause_times: np.ndarray,
                 p: Personality, k: int) -> tuple:
    """(onset, duration, amplitude) of one sample's blinks over ``duration_s`` seconds: a renewal process
    with log-normal intervals (mean ``blink_interval``); with probability ``pause_blink`` the next blink
    after a speaker pause onset is pulled to 50-250 ms after it."""
    mean, spread = p.blink_interval[k], p.blink_spread[k]
    count = int(duration_s / mean * 1.5) + 8

    def intervals() -> np.ndarray:
        return np.maximum(rng.lognormal(np.log(mean) - spread ** 2 / 2, spread, count), MIN_BLINK_GAP_S)

    times = np.cumsum(intervals())
    times -= rng.uniform(0.0, times[0])                # random phase: the first blink within the first interval
    while times[-1] < duration_s:                      # rare: a run of long intervals
        times = np.concatenate([times, times[-1] + np.cumsum(intervals())])
    nxt = np.searchsorted(times, pause_times)
    pull = (nxt < len(times)) & (rng.random(len(pause_times)) < p.pause_blink[k])
    pull &= times[np.minimum(nxt, len(times) - 1)] - pause_times < 2.0
    times[nxt[pull]] = pause_times[pull] + rng.uniform(0.05, 0.25, pull.sum())
    times = np.sort(times[(times >= 0) & (times < duration_s)])
    times = times[np.diff(times, prepend=-np.inf) >= MIN_BLINK_GAP_S]
    return times, rng.uniform(*BLINK_DURATION_S, len(times)), rng.uniform(0.85, 1.0, len(times))


def _plan_brows(rng: np.random.Generator, accent_times: np.ndarray, p: Personality, k: int) -> tuple:
    """(onset, duration, amplitude) of one sample's brow raises on pitch accents (s)."""
    n = len(accent_times)
    respond = rng.random(n) < p.brow_propensity[k]
    onset = accent_times + rng.uniform(0.1, 0.3, n)
    duration = rng.uniform(0.5, 1.0, n)
    amplitude = p.brow_amplitude[k] * rng.uniform(0.8, 1.2, n)
    keep = _refractory(onset, respond, BROW_REFRACTORY_S)
    return onset[keep], duration[keep], amplitude[keep]


def _refractory(onset: np.ndarray, wanted: np.ndarray, gap: float) -> np.ndarray:
    """Indices of the ``wanted`` onsets kept in time order, each >= ``gap`` s after the last kept one."""
    order = np.flatnonzero(wanted)[np.argsort(onset[wanted], kind="stable")]
    kept, last = [], -np.inf
    for i, t in zip(order, onset[order]):
        if t - last >= gap:
            kept.append(i)
            last = t
    return np.array(kept, np.int64)


def render_events(events: Events, num_samples: int, num_frames: int, fps: float,
                  wave: Callable[[np.ndarray], np.ndarray], unit: bool = False) -> np.ndarray:
    """Sum of ``wave(u)`` kernels ([K, T] float64), u = (time - onset) / duration in [0, 1]. Each
    event's sampled peak is scaled to its amplitude (to 1 when ``unit``), so frame sampling never
    shrinks a short blink or nod."""
    if len(events.onset) == 0 or num_frames == 0:
        return np.zeros((num_samples, num_frames))
    span = int(np.ceil(events.duration.max() * fps)) + 2
    frames = np.ceil(events.onset * fps).astype(np.int64)[:, None] + np.arange(span)
    u = (frames / fps - events.onset[:, None]) / events.duration[:, None]
    values = np.where((u >= 0) & (u <= 1), wave(np.clip(u, 0, 1)), 0.0)
    peak = np.abs(values).max(axis=1, keepdims=True)
    values = values / np.where(peak > 0, peak, 1.0) * (1.0 if unit else events.amplitude[:, None])
    inside = (frames >= 0) & (frames < num_frames)
    flat = (events.sample[:, None] * num_frames + frames)[inside]
    return np.bincount(flat, values[inside], minlength=num_samples * num_frames).reshape(num_samples, num_frames)


def _nod_wave(u: np.ndarray) -> np.ndarray:
    """Damped pitch oscillation: down, smaller rebound up, settle (1.5 cycles), zero at both ends."""
    return np.sin(3 * np.pi * u) * np.exp(-3 * u) * (1 - u)


def _blink_wave(u: np.ndarray) -> np.ndarray:
    """Lid closure: fast close over the first 35 %, slower reopening."""
    return np.where(u < 0.35, np.sin(0.5 * np.pi * u / 0.35) ** 2, np.cos(0.5 * np.pi * (u - 0.35) / 0.65) ** 2)


def _bump(u: np.ndarray) -> np.ndarray:
    """Smooth rise and fall (raised cosine)."""
    return np.sin(np.pi * u) ** 2


def _leaky(x: np.ndarray, frames: float) -> np.ndarray:
    """First-order low-pass along the last axis with time constant ``frames``, starting at rest."""
    a = np.exp(-1.0 / max(frames, 1e-6))
    return lfilter([1 - a], [1, -a], x, axis=-1)


def pink_noise(rng: np.random.Generator, num_frames: int, num_channels: int, fps: float,
               time_constants_s: tuple[float, ...] = (0.4, 1.6, 6.4, 25.6)) -> np.ndarray:
    """Approximately 1/f noise [T, C] with unit variance: the sum of stationary AR(1) processes with
    time constants spaced by octave pairs (equal power per band is the 1/f spectrum). Linear in T."""
    total = np.zeros((num_frames, num_channels))
    for tau in time_constants_s:
        a = np.exp(-1.0 / (tau * fps))
        start = a * rng.standard_normal((1, num_channels))         # stationary initial state
        white = rng.standard_normal((num_frames, num_channels))
        total += lfilter([np.sqrt(1 - a * a)], [1, -a], white, axis=0, zi=start)[0]
    return total / np.sqrt(len(time_constants_s))
