"""Co-speech gesture metrics: Fréchet gesture distance, beat alignment with the speech, diversity.

Motion is [N, T, D] joint angles (e.g. beat141, degrees) at ``fps``; audio is mono at ``sample_rate``.

- FGD: Fréchet distance (`l2l.frechet_distance`) between per-frame motion features, each frame's
  angles next to its velocity (angles per second).
- Beat alignment: audio onsets are peaks of a spectral-flux onset envelope; motion beats are local
  minima of the smoothed joint speed (a gesture's stroke ends, or it pauses); the score is the mean
  over motion beats of exp(−d²/(2σ²)), d the time to the nearest onset, σ = 0.1 s. It lies in
  [0, 1] and is 1 when every motion beat falls on an onset.
- Diversity: mean distance between the K samples generated for the same input.
- Motion energy (mean absolute frame-to-frame change), gesture speed (mean joint speed by forward
  kinematics) and the window-join ratio (velocity jumps at FOPPAS window seams over elsewhere).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

from listenerctl.data.beat import Skeleton, beat141_joint_indices, expand_beat141, forward_kinematics
from listenerctl.errors import ListenerctlError
from listenerctl.metrics import checked
from listenerctl.metrics.l2l import frechet_distance

BEAT_SIGMA_S = 0.1  # tolerance of the beat alignment score
ONSET_WINDOW_S = 0.064  # analysis window of the onset envelope
ONSET_HOP_S = 0.01  # envelope step: 100 values per second
ONSET_SPACING_S = 0.05  # an onset is the envelope maximum within ±50 ms ...
ONSET_CONTEXT_S = 0.1  # ... exceeding the envelope mean within ±100 ms ...
ONSET_DELTA = 0.05  # ... by this much (envelope scaled to a maximum of 1)
SPEED_SMOOTH_S = 0.05  # Gaussian smoothing of the joint speed before finding its minima


def motion_features(motion, fps: float) -> np.ndarray:
    """Per-frame features of motion [N, T, D]: angles of frames 1..T-1 and their velocity
    (x_t − x_{t−1})·fps side by side -> [N·(T−1), 2D]."""
    motion = checked("motion", motion, "[N, T, D]")
    if motion.shape[1] < 2:
        raise ListenerctlError("motion features need at least 2 frames per sequence.")
    velocity = np.diff(motion, axis=1) * fps
    return np.concatenate([motion[:, 1:], velocity], axis=-1).reshape(-1, 2 * motion.shape[-1])


def gesture_fd(pred, gt, fps: float) -> float:
    """FGD: Fréchet distance between `motion_features` of generated and real motion [N, T, D]
    (their N and T may differ; D must match)."""
    return frechet_distance(motion_features(pred, fps), motion_features(gt, fps))


def onset_envelope(audio, sample_rate: int) -> tuple[np.ndarray, float]:
    """Spectral flux of audio [S]: per step, the summed rise of log(1 + 100·|STFT|) over frequency
    (Hann windows of 64 ms centred on each 10 ms step) -> (envelope [F], steps per second)."""
    audio = checked("audio", audio, "[S]")
    window, hop = round(ONSET_WINDOW_S * sample_rate), round(ONSET_HOP_S * sample_rate)
    frames = sliding_window_view(np.pad(audio, window // 2), window)[::hop] * np.hanning(window)
    level = np.log1p(100 * np.abs(np.fft.rfft(frames, axis=1)))
    flux = np.maximum(np.diff(level, axis=0), 0.0).sum(axis=1)
    return np.concatenate([[0.0], flux]), sample_rate / hop


def audio_onsets(audio, sample_rate: int) -> np.ndarray:
    """Onset times in seconds: envelope steps that are the maximum within ±50 ms (first of a
    plateau) and exceed the mean within ±100 ms by 0.05 of the envelope's maximum."""
    envelope, rate = onset_envelope(audio, sample_rate)
    if envelope.max() <= 0:
        return np.zeros(0)
    envelope = envelope / envelope.max()
    spacing, context = round(ONSET_SPACING_S * rate), round(ONSET_CONTEXT_S * rate)
    peak = envelope == ndimage.maximum_filter1d(envelope, 2 * spacing + 1)
    rising = envelope > np.concatenate([[-np.inf], envelope[:-1]])
    strong = envelope > ndimage.uniform_filter1d(envelope, 2 * context + 1) + ONSET_DELTA
    return np.flatnonzero(peak & rising & strong) / rate


def motion_beats(motion, fps: float) -> np.ndarray:
    """Motion beat times in seconds for one sequence [T, D]: local minima (strict on the left) of
    the joint speed ‖x_{t+1} − x_{t−1}‖·fps/2, Gaussian-smoothed with σ = 50 ms."""
    motion = checked("motion", motion, "[T, D]")
    if len(motion) < 5:
        raise ListenerctlError("motion beats need at least 5 frames.")
    speed = np.linalg.norm(motion[2:] - motion[:-2], axis=1) * fps / 2  # frames 1..T-2
    speed = ndimage.gaussian_filter1d(speed, SPEED_SMOOTH_S * fps)
    minima = (speed[1:-1] < speed[:-2]) & (speed[1:-1] <= speed[2:])
    return (np.flatnonzero(minima) + 2) / fps


def beat_alignment(beats_s, onsets_s, sigma: float = BEAT_SIGMA_S) -> float:
    """Mean over motion beats of exp(−d²/(2σ²)), d (s) from each beat to its nearest onset;
    0 when there are no beats or no onsets."""
    beats, onsets = np.asarray(beats_s, dtype=np.float64), np.sort(np.asarray(onsets_s, dtype=np.float64))
    if len(beats) == 0 or len(onsets) == 0:
        return 0.0
    after = np.searchsorted(onsets, beats)  # nearest onset is onsets[after - 1] or onsets[after]
    distance = np.minimum(np.abs(beats - onsets[np.maximum(after - 1, 0)]),
                          np.abs(beats - onsets[np.minimum(after, len(onsets) - 1)]))
    return float(np.mean(np.exp(-distance ** 2 / (2 * sigma ** 2))))


def beat_alignment_score(motion, audio, fps: float, sample_rate: int) -> float:
    """Beat alignment of one motion sequence [T, D] with its speech audio [S] (see module docs)."""
    return beat_alignment(motion_beats(motion, fps), audio_onsets(audio, sample_rate))


def diversity(samples, order: int = 1) -> float:
    """Mean over sample pairs k < k' (within each input n) of the mean over frames of the L1
    (``order`` 1, sum of |·| over channels) or L2 (``order`` 2, Euclidean) distance between their
    frames. samples [K, T, D] or [N, K, T, D] with K >= 2."""
    values = np.asarray(samples)
    values = checked("samples", values[None] if values.ndim == 3 else values, "[N, K, T, D]")
    if values.shape[1] < 2 or order not in (1, 2):
        raise ListenerctlError(f"diversity needs K >= 2 samples and order 1 or 2; got K={values.shape[1]}, "
                               f"order={order}.")
    first, second = np.triu_indices(values.shape[1], k=1)
    distances = [np.linalg.norm(values[:, k] - values[:, m], ord=order, axis=-1).mean()
                 for k, m in zip(first, second)]
    return float(np.mean(distances))


def motion_energy(data: np.ndarray) -> float:
    """Mean absolute frame-to-frame change of motion [K, T, D] (units per frame)."""
    return float(np.abs(np.diff(data, axis=1)).mean()) if data.shape[1] > 1 else 0.0


def gesture_speed(gesture: np.ndarray, skeleton: Skeleton) -> float:
    """Mean speed of the 47 beat141 joints in cm per frame for gestures [K, T, 141] over ``skeleton``
    (forward kinematics; unlike angle changes it is not inflated by Euler angles near gimbal lock)."""
    if gesture.shape[1] < 2:
        return 0.0
    joints = beat141_joint_indices(skeleton)
    speeds = [np.linalg.norm(np.diff(forward_kinematics(skeleton, expand_beat141(skeleton, g))[:, joints], axis=0),
                             axis=-1).mean() for g in gesture]
    return float(np.mean(speeds))


def window_join_ratio(data: np.ndarray, window: int, overlap: int) -> float:
    """FOPPAS seam check for motion [K, T, D] generated with ``window``/``overlap``: the mean absolute
    velocity jump |v_t − v_{t−1}| (v_t = x_t − x_{t−1}) on the frames where a window's overlap begins or
    ends (and the frame after), divided by its mean on every other frame. About 1 means no visible seam."""
    from listenerctl.models.windows import plan_windows  # torch: imported only for this check

    jump = np.abs(np.diff(data, n=2, axis=1)).mean(axis=(0, 2))  # jump[i] sits at frame i + 2
    plan = plan_windows(data.shape[1], window, overlap)
    edges = [e for (start, _), (_, done) in zip(plan[1:], plan) for e in (start, start + 1, done, done + 1)]
    at_join = np.zeros(len(jump), bool)
    at_join[[e - 2 for e in edges if 2 <= e < len(jump) + 2]] = True
    if not at_join.any() or at_join.all():
        raise ValueError("motion has no window joins to measure")
    return float(jump[at_join].mean() / max(jump[~at_join].mean(), 1e-12))
