"""Speaker audio features at the motion frame rate: log-mel, MFCC, energy, pitch (F0 + voicing), voice activity.

Frame i covers the time ``i / fps .. (i + 1) / fps``; every window is centred on the middle of that
interval (at 25 fps: hop 640 samples, centre ``640 i + 320``). Long audio is processed in chunks of
motion frames, so working memory stays constant and only the outputs (~0.7 MB per minute) grow.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torchaudio.functional as AF

from listenerctl.conditioning import AudioFeatures
from listenerctl.media import SAMPLE_RATE

N_FFT = 1024                 # 64 ms Hann analysis window for the mel spectrum
N_MELS = 80
N_MFCC = 13
AUDIO_FEATURE_DIM = N_MELS + 3 * N_MFCC + 4   # `AudioFeatures.matrix()` columns (123): log-mel, MFCC
                                              # + deltas + delta-deltas, energy, log F0, voiced, VAD
LOG_EPS = 1e-6               # mel = ln(power + LOG_EPS)
ENERGY_FLOOR_DB = -100.0     # RMS level of digital silence, dBFS (RMS of a full-scale square wave = 0 dB)

F0_MIN, F0_MAX = 60.0, 400.0
PITCH_HOP_S = 0.010          # pitch frames per motion frame = round(hop / 10 ms): exactly 10 ms at 25 fps
YIN_WINDOW = 400             # 25 ms integration window of the YIN difference function
TAU_MIN = int(SAMPLE_RATE // F0_MAX)             # 40 samples
TAU_MAX = int(np.ceil(SAMPLE_RATE / F0_MIN))     # 267 samples
YIN_DIP = 0.10               # first dip of the normalised difference below this is taken as the period
PERIODICITY_MAX = 0.25       # a pitch frame is periodic when its normalised difference minimum is below this
VOICED_MIN_DB = -60.0        # and its level is above this (dBFS)

VAD_MIN_DB = -60.0           # nothing quieter than this is speech
VAD_GAP_S = 0.20             # hangover: silences shorter than this inside speech stay speech
VAD_MIN_RUN_S = 0.08         # bursts shorter than this (clicks) are dropped


def extract_audio(samples: np.ndarray, fps: float = 25.0, num_frames: int | None = None, *,
                  chunk_frames: int = 250) -> AudioFeatures:
    """Features of 16 kHz mono float32 ``samples`` [N], one row per motion frame at ``fps``.

    T = ``num_frames`` (audio zero-padded or cut to fit) or round(N / 16000 x fps). Returns
    mel [T, 80] (64 ms Hann windows), mfcc [T, 39], energy [T] (RMS of the frame's own 1/fps interval,
    dBFS, -100 for silence), f0 [T] Hz (median of the frame's 10 ms YIN estimates; 0 where unvoiced),
    voiced [T] (most pitch frames periodic and level above -60 dBFS), vad [T] (`voice_activity`);
    float arrays are float32. ``chunk_frames`` motion frames are analysed at a time.
    """
    x = np.asarray(samples, dtype=np.float32).reshape(-1)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    total = int(round(len(x) / SAMPLE_RATE * fps)) if num_frames is None else int(num_frames)
    if total < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    hop = SAMPLE_RATE / fps
    # outputs are allocated once, before any chunk's temporaries, so the heap does not fragment
    mel, mfcc = np.empty((total, N_MELS), np.float32), np.empty((total, N_MFCC), np.float32)
    energy, f0, periodic = np.empty(total, np.float32), np.empty(total, np.float32), np.empty(total, bool)
    for start in range(0, total, chunk_frames):
        stop = min(start + chunk_frames, total)
        for out, part in zip((mel, mfcc, energy, f0, periodic), _analyse_chunk(x, np.arange(start, stop), hop)):
            out[start:stop] = part.numpy()
    voiced = periodic & (energy > VOICED_MIN_DB)
    return AudioFeatures(mel=mel, mfcc=_with_deltas(mfcc), energy=energy,
                         f0=np.where(voiced, f0, 0.0).astype(np.float32), voiced=voiced,
                         vad=voice_activity(energy, fps))


def voice_activity(energy_db: np.ndarray, fps: float) -> np.ndarray:
    """Speech present per frame [T] bool, from frame RMS levels ``energy_db`` [T] (dBFS).

    Rule: the clip's noise floor is the 10th percentile of the levels and its speech level the 95th;
    a frame is active when it is louder than floor + margin, margin = 40 % of (speech - floor) held
    within 6..12 dB, and louder than -60 dBFS. Then hangover smoothing: pauses shorter than 200 ms are
    filled and bursts shorter than 80 ms dropped (`smooth_activity`). A clip of steady level (one long
    pause, or a constant tone) therefore has no activity.
    """
    if len(energy_db) == 0:
        return np.zeros(0, bool)
    floor, peak = np.percentile(energy_db, [10, 95])
    margin = np.clip(0.4 * (peak - floor), 6.0, 12.0)
    active = (energy_db > floor + margin) & (energy_db > VAD_MIN_DB)
    return smooth_activity(active, fps, VAD_GAP_S, VAD_MIN_RUN_S)


def smooth_activity(active: np.ndarray, fps: float, max_gap_s: float, min_run_s: float) -> np.ndarray:
    """Fill inactive gaps shorter than ``max_gap_s`` between active runs, then drop active runs shorter
    than ``min_run_s``. ``active`` [T] bool → [T] bool."""
    starts, ends = bool_runs(active)
    if len(starts) == 0:
        return np.zeros(len(active), bool)
    keep_gap = (starts[1:] - ends[:-1]) >= max_gap_s * fps
    starts = np.concatenate([starts[:1], starts[1:][keep_gap]])
    ends = np.concatenate([ends[:-1][keep_gap], ends[-1:]])
    long_enough = (ends - starts) >= min_run_s * fps
    return runs_to_mask(starts[long_enough], ends[long_enough], len(active))


def bool_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) frame indices of the runs of True in ``mask`` [T]."""
    edges = np.diff(np.concatenate([[0], np.asarray(mask, np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def runs_to_mask(starts: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
    """Inverse of `bool_runs`: [length] bool, True inside each ``starts[j] .. ends[j]``."""
    marks = np.zeros(length + 1, np.int32)
    np.add.at(marks, starts, 1)
    np.add.at(marks, ends, -1)
    return np.cumsum(marks[:-1]) > 0


def _analyse_chunk(x: np.ndarray, frames: np.ndarray, hop: float) -> tuple[torch.Tensor, ...]:
    """mel [n, 80], mfcc [n, 13], energy [n] dBFS, f0 [n] Hz, periodic [n] bool for motion ``frames``."""
    centres = (frames + 0.5) * hop
    window, fbank, dct = _analysis_constants()
    spectrum = torch.fft.rfft(_windows(x, centres, N_FFT) * window).abs().square()
    mel = torch.log(spectrum @ fbank + LOG_EPS)
    span = _windows(x, centres, max(1, int(round(hop))))
    rms = span.square().mean(dim=1).sqrt()
    energy = 20.0 * torch.log10(rms.clamp_min(10 ** (ENERGY_FLOOR_DB / 20)))
    per_frame = max(1, int(round(hop / (PITCH_HOP_S * SAMPLE_RATE))))
    sub_centres = (frames[:, None] + (np.arange(per_frame) + 0.5) / per_frame) * hop
    f0, aperiodicity = yin(_windows(x, sub_centres.reshape(-1), YIN_WINDOW + TAU_MAX + 1, inside=True))
    f0, periodic = f0.view(-1, per_frame), (aperiodicity < PERIODICITY_MAX).view(-1, per_frame)
    frame_f0 = torch.where(periodic, f0, torch.nan).nanmedian(dim=1).values.nan_to_num(0.0)
    return mel, mel @ dct, energy, frame_f0, periodic.float().mean(dim=1) >= 0.5


def yin(segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """YIN pitch (de Cheveigné & Kawahara 2002) of ``segments`` [M, 400 + 267 + 1] at 16 kHz.

    Returns f0 [M] in Hz within 60..400 and aperiodicity [M]: the cumulative-mean-normalised
    difference at the chosen lag (0 = perfectly periodic, about 1 = noise; 1 for silent segments).
    The lag is the first dip below 0.1 (its local minimum), else the global minimum, refined by
    parabolic interpolation.
    """
    seg = segments.float()
    seg = seg - seg.mean(dim=1, keepdim=True)
    head = seg[:, :YIN_WINDOW]
    spec = torch.fft.rfft(seg, n=N_FFT)
    cross = torch.fft.irfft(torch.conj(torch.fft.rfft(head, n=N_FFT)) * spec, n=N_FFT)[:, :TAU_MAX + 2]
    cum = torch.nn.functional.pad(seg.square().cumsum(dim=1), (1, 0))
    lags = torch.arange(TAU_MAX + 2)
    energy_at = cum[:, lags + YIN_WINDOW] - cum[:, lags]
    diff = (energy_at[:, :1] + energy_at - 2.0 * cross).clamp_min(0.0)
    running = diff[:, 1:].cumsum(dim=1)
    silent = running[:, -1:] <= 1e-10 * YIN_WINDOW * (TAU_MAX + 1)
    norm = torch.where(silent, torch.ones_like(running), diff[:, 1:] * lags[1:] / running.clamp_min(1e-20))
    norm = torch.cat([torch.ones_like(norm[:, :1]), norm], dim=1)            # [M, TAU_MAX + 2], lag 0 = 1
    search = norm[:, TAU_MIN:TAU_MAX + 1]
    below = search < YIN_DIP
    first = below.float().argmax(dim=1, keepdim=True)
    after = torch.arange(search.shape[1]) >= first
    dip_run = torch.cumprod((below | ~after).int(), dim=1).bool() & after
    dip = torch.where(dip_run, search, torch.full_like(search, torch.inf)).argmin(dim=1)
    best = torch.where(below.any(dim=1), dip, search.argmin(dim=1)) + TAU_MIN
    rows = torch.arange(len(norm))
    left, mid, right = norm[rows, best - 1], norm[rows, best], norm[rows, best + 1]
    curvature = left - 2.0 * mid + right
    shift = torch.where(curvature > 1e-12, 0.5 * (left - right) / curvature.clamp_min(1e-12), torch.zeros_like(mid))
    f0 = (SAMPLE_RATE / (best + shift.clamp(-0.5, 0.5))).clamp(F0_MIN, F0_MAX)
    return f0, mid


def _windows(x: np.ndarray, centres: np.ndarray, length: int, inside: bool = False) -> torch.Tensor:
    """[len(centres), length] float32 windows of ``x`` centred on sample positions ``centres``
    (zeros outside the signal). ``inside`` slides windows that cross an end of the signal back inside
    it where the signal is long enough (pitch needs whole periods, not zero padding)."""
    starts = np.round(np.asarray(centres) - length / 2).astype(np.int64)
    if inside and len(x) >= length:
        starts = np.clip(starts, 0, len(x) - length)
    index = starts[:, None] + np.arange(length)
    if len(x) == 0:
        return torch.zeros(index.shape, dtype=torch.float32)
    valid = (index >= 0) & (index < len(x))
    return torch.from_numpy(np.where(valid, x[np.clip(index, 0, len(x) - 1)], 0.0).astype(np.float32))


@lru_cache(maxsize=1)
def _analysis_constants() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Periodic Hann window [1024], HTK mel filterbank [513, 80], orthonormal DCT-II [80, 13]."""
    window = torch.hann_window(N_FFT)
    fbank = AF.melscale_fbanks(N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, N_MELS, SAMPLE_RATE)
    return window, fbank, AF.create_dct(N_MFCC, N_MELS, norm="ortho")


def _with_deltas(mfcc: np.ndarray) -> np.ndarray:
    """[T, 13] → [T, 39]: MFCC, deltas and delta-deltas (5-frame regression, edges replicated)."""
    if len(mfcc) == 0:
        return np.zeros((0, 3 * N_MFCC), np.float32)
    coeffs = torch.from_numpy(mfcc).T
    delta = AF.compute_deltas(coeffs, win_length=5)
    return torch.cat([coeffs, delta, AF.compute_deltas(delta, win_length=5)]).T.contiguous().numpy()
