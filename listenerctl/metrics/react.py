"""REACT 2023/2024 facial-reaction metrics on emotion25 (15 AUs, valence/arousal, 8 expression probabilities).

Shapes: ``pred`` [N, K, T, 25] holds K generated reactions for each of N speaker clips; ``speaker``
[N, T, 25] the speakers' own emotion; ``appropriate`` a sequence of N arrays [M_i, T, 25], the
reactions judged appropriate for clip i (M_i may differ between clips).

- FRCorr (appropriateness): per clip, sum over K of the best CCC against its appropriate reactions.
- FRDist (appropriateness): per clip, sum over K of the smallest DTW distance to them.
- FRDiv / FRDvs / FRVar (diversity): across the K samples of a clip / across clips / over time.
- FRSyn (synchrony): mean |lag| of the best time-lagged cross-correlation with the speaker.

Reimplemented from the metric definitions; DTW is a dynamic programme compiled with numba (see `dtw`).
FRDist sums Euclidean frame distances along the warping path; REACT's released code (tslearn's
``dtw``) instead takes the square root of the summed squared distances, so FRDist values here are
not on the scale of the challenge leaderboard.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit
from scipy import fft

from listenerctl.errors import ListenerctlError
from listenerctl.metrics import checked

EMOTION_DIM = 25
# FRDist channel groups and weights: DTW(AU 0:15)/15 + DTW(valence, arousal) + DTW(expressions)/8.
DIST_GROUPS = (slice(0, 15), slice(15, 17), slice(17, 25))
DIST_WEIGHTS = np.array([1 / 15, 1.0, 1 / 8])
MAX_LAG = 49  # FRSyn lags in frames (just under 2 s at 25 fps)
CONSTANT_VARIANCE = 1e-12  # per-frame variance below which a TLCC window counts as constant

# DTW cost products: _STRIP cost-matrix rows x (d + 2) x about _COLUMNS (frame, sequence) columns,
# under 2**18 multiply-adds for d < 30: OpenBLAS runs products that small on the calling thread,
# and its threaded path is far slower for such shapes on a small, busy machine.
_STRIP = 16
_COLUMNS = 512


def _workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# --------------------------------------------------------------------------- CCC and FRCorr

def ccc(a: np.ndarray, b: np.ndarray, axis: int = -2) -> np.ndarray:
    """Lin's concordance correlation per channel along ``axis`` (time), broadcasting ``a`` with ``b``.

    CCC = 2ρσ_aσ_b / (σ_a² + σ_b² + (μ_a − μ_b)² + 1e-8) with population moments; ρ of a constant
    series is taken as 0 (so its CCC is 0), and the result is clipped to [-1, 1]. Since
    ρσ_aσ_b is the covariance, the numerator is computed as 2·cov. Returns the broadcast shape
    without ``axis``.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    mean_a, mean_b = a.mean(axis=axis, keepdims=True), b.mean(axis=axis, keepdims=True)
    cov = ((a - mean_a) * (b - mean_b)).mean(axis=axis)
    var_a, var_b = a.var(axis=axis), b.var(axis=axis)
    gap = (np.squeeze(mean_a, axis) - np.squeeze(mean_b, axis)) ** 2
    return np.clip(2 * cov / (var_a + var_b + gap + 1e-8), -1.0, 1.0)


def fr_corr(pred: np.ndarray, appropriate: Sequence[np.ndarray]) -> float:
    """FRCorr: per clip, Σ_k max_m CCC(pred[k], appropriate[m]) (CCC averaged over the 25 channels);
    mean over clips. Higher is better; at most K."""
    pred, appropriate = _check_pred(pred), _check_appropriate(appropriate, pred)
    per_clip = [ccc(p[:, None], app[None]).mean(-1).max(axis=1).sum() for p, app in zip(pred, appropriate)]
    return float(np.mean(per_clip))


# --------------------------------------------------------------------------- DTW and FRDist

def dtw(x: np.ndarray, y: np.ndarray, groups: Sequence[slice]) -> np.ndarray:
    """Multivariate Euclidean DTW between every x[k] and every y[m], separately per channel group.

    x [K, T, D], y [M, J, D]; ``groups`` are channel slices. Returns [len(groups), K, M]: the
    smallest sum, over monotone warping paths from (0, 0) to (T-1, J-1) with steps (1,0), (0,1),
    (1,1), of the Euclidean distances between the paired frames restricted to the group's channels.

    A row-by-row dynamic programme compiled with numba (`_dtw_rows`), all M sequences side by side;
    squared frame distances come from BLAS products. It releases the GIL: threads run in parallel.
    """
    x, y = checked("x", x, "[K, T, D]"), checked("y", y, "[M, J, D]")
    if x.shape[2] != y.shape[2]:
        raise ListenerctlError(f"DTW needs the same channels on both sides; got {x.shape[2]} and {y.shape[2]}.")
    chunk = max(1, _COLUMNS // len(y))  # y frames per BLAS product
    out = np.empty((len(groups), len(x), len(y)))
    for g, group in enumerate(groups):
        rows, cols = _cost_rows(x[:, :, group]), _cost_cols(y[:, :, group], chunk)
        for k, seq_rows in enumerate(rows):
            out[g, k] = _dtw_rows(seq_rows, cols, len(y), y.shape[1])
    return out


def _cost_rows(a: np.ndarray) -> np.ndarray:
    """a [K, T, d] -> [K, T, d + 2] rows (a, |a|², 1)."""
    return np.concatenate([a, np.einsum("ktd,ktd->kt", a, a)[..., None], np.ones(a.shape[:2] + (1,))], axis=2)


def _cost_cols(b: np.ndarray, chunk: int) -> np.ndarray:
    """b [M, J, d] -> [ceil(J / chunk), d + 2, chunk·M] columns (-2b, 1, |b|²) in (frame, sequence)
    order, ``chunk`` frames per block (the last padded with zeros). Row · column = squared distance."""
    count, length, dim = b.shape
    blocks = -(-length // chunk)
    cols = np.zeros((dim + 2, blocks * chunk, count))
    cols[:dim, :length] = -2 * b.transpose(2, 1, 0)
    cols[dim] = 1.0
    cols[dim + 1, :length] = np.einsum("mjd,mjd->jm", b, b)
    return np.ascontiguousarray(cols.reshape(dim + 2, blocks, chunk * count).transpose(1, 0, 2))


def _compiled(function):
    """``function`` compiled by numba, releasing the GIL. The machine code is cached beside this file,
    or in numba's user cache folder where this one is read-only; with neither writable, it is compiled
    once per process (a few seconds)."""
    try:
        return njit(nogil=True, cache=True)(function)
    except RuntimeError:  # numba found no writable cache folder
        return njit(nogil=True)(function)


@_compiled
def _dtw_rows(a, b, count, length):
    """DTW of one x sequence against ``count`` y sequences of ``length`` frames -> [count].

    a [T, w] its `_cost_rows`; b [blocks, w, chunk·count] the y sequences' `_cost_cols`. Row i of
    the accumulated cost D is made from row i-1 for all y sequences at once: D(i, j) = c(i, j) +
    min(D(i-1, j-1), D(i-1, j), D(i, j-1)), c the Euclidean frame distance. ``last`` and ``new``
    hold rows i-1 and i at index j + 1 (index 0 is column -1: infinite, except D(-1, -1) = 0).
    """
    blocks, width = b.shape[0], b.shape[2]
    chunk = width // count
    squared = np.empty((blocks, _STRIP, width))  # squared distances of a strip of rows
    last = np.full((length + 1, count), np.inf)
    new = np.full((length + 1, count), np.inf)
    last[0] = 0.0
    for i0 in range(0, len(a), _STRIP):
        strip = min(_STRIP, len(a) - i0)
        for q in range(blocks):
            np.dot(a[i0:i0 + strip], b[q], squared[q, :strip])
        for r in range(strip):
            new[0] = np.inf
            for j in range(length):
                q, n = j // chunk, j % chunk * count
                for m in range(count):
                    cell = squared[q, r, n + m]
                    step = min(last[j, m], last[j + 1, m], new[j, m])
                    new[j + 1, m] = np.sqrt(cell if cell > 0.0 else 0.0) + step  # rounding can go below 0
            last, new = new, last
    return last[length].copy()


def fr_dist(pred: np.ndarray, appropriate: Sequence[np.ndarray], workers: int | None = None) -> float:
    """FRDist: per clip, Σ_k min_m [DTW(AU)/15 + DTW(VA) + DTW(expr)/8] between pred[k] and
    appropriate[m] (see `dtw`); mean over clips. Lower is better. Clips run on ``workers`` threads
    (default: the CPUs available)."""
    pred, appropriate = _check_pred(pred), _check_appropriate(appropriate, pred)

    def per_clip(i: int) -> float:
        dist = np.einsum("g,gkm->km", DIST_WEIGHTS, dtw(pred[i], appropriate[i], DIST_GROUPS))
        return float(dist.min(axis=1).sum())

    with ThreadPoolExecutor(workers or _workers()) as pool:
        return float(np.mean(list(pool.map(per_clip, range(len(pred))))))


# --------------------------------------------------------------------------- diversity

def fr_div(pred: np.ndarray) -> float:
    """FRDiv: per clip, Σ_{k≠k'} ‖pred[k] − pred[k']‖² / (K(K−1)·T·D); mean over clips.

    Computed through the identity Σ_{k≠k'} (x_k − x_k')² = 2K(K−1)·s², s² the unbiased variance
    over the K samples, i.e. FRDiv = 2 × the mean over clips, frames and channels of that variance.
    """
    pred = _check_pred(pred)
    if pred.shape[1] < 2:
        raise ListenerctlError("FRDiv needs at least 2 samples per clip (K >= 2).")
    return float(2 * pred.var(axis=1, ddof=1).mean())


def fr_dvs(pred: np.ndarray) -> float:
    """FRDvs: Σ_k Σ_{n≠n'} ‖pred[n, k] − pred[n', k]‖² / (N(N−1)·K·T·D), i.e. 2 × the mean
    unbiased variance across clips (same identity as `fr_div`)."""
    pred = _check_pred(pred)
    if pred.shape[0] < 2:
        raise ListenerctlError("FRDvs needs at least 2 clips (N >= 2).")
    return float(2 * pred.var(axis=0, ddof=1).mean())


def fr_var(pred: np.ndarray) -> float:
    """FRVar: unbiased variance over time of every (clip, sample, channel), averaged."""
    pred = _check_pred(pred)
    if pred.shape[2] < 2:
        raise ListenerctlError("FRVar needs at least 2 frames (T >= 2).")
    return float(pred.var(axis=2, ddof=1).mean())


# --------------------------------------------------------------------------- synchrony

def tlcc_offsets(pred: np.ndarray, speaker: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray:
    """Best time-lagged cross-correlation lag of every sample against its speaker -> int [N, K].

    For a lag τ in [-max_lag, max_lag], r(τ) is the mean over the channels of the Pearson correlation
    between speaker[t] and sample[t + τ] over the frames where both exist (T − |τ| of them); a channel
    that is constant over that window contributes 0. The offset is the τ maximising r(τ), ties going
    to the smallest |τ| (then to the negative lag). τ > 0 means the sample follows the speaker.
    """
    pred, speaker = _check_pred(pred), checked("speaker", speaker, "[N, T, 25]", EMOTION_DIM)
    if speaker.shape[:2] != (pred.shape[0], pred.shape[2]):
        raise ListenerctlError(f"speaker has shape {speaker.shape}; it needs [N, T, 25] matching pred "
                               f"{pred.shape}.")
    length = pred.shape[2]
    if not 0 <= max_lag < length - 1:
        raise ListenerctlError(f"TLCC lag {max_lag} needs clips longer than {max_lag + 1} frames; got T={length}.")
    lags = np.arange(-max_lag, max_lag + 1)
    by_size = np.argsort(np.abs(lags) * 2 + (lags > 0), kind="stable")  # 0, -1, 1, -2, 2, ...
    start, stop = np.maximum(0, -lags), length - np.maximum(0, lags)  # speaker frames [start, stop)
    frames = (stop - start)[:, None]
    n_fft = fft.next_fast_len(2 * length)
    offsets = np.empty(pred.shape[:2], dtype=np.int64)
    for i, (samples, spk) in enumerate(zip(pred, speaker)):
        x = spk - spk.mean(axis=0)  # [T, D]
        y = samples - samples.mean(axis=1, keepdims=True)  # [K, T, D]
        cross = fft.irfft(np.conj(fft.rfft(x, n_fft, axis=0)) * fft.rfft(y, n_fft, axis=1), n_fft, axis=1)
        sxy = cross[:, lags % n_fft]  # Σ_t x[t]·y[t+τ] over the overlap -> [K, lags, D]
        sx, sxx = _window_sums(x, start, stop)
        sy, syy = _window_sums(y, start + lags, stop + lags)
        cov = sxy - sx * sy / frames
        var_x, var_y = sxx - sx ** 2 / frames, syy - sy ** 2 / frames
        varying = (var_x > CONSTANT_VARIANCE * frames) & (var_y > CONSTANT_VARIANCE * frames)
        corr = np.where(varying, cov / np.sqrt(np.where(varying, var_x * var_y, 1.0)), 0.0).mean(-1)
        offsets[i] = lags[by_size[np.argmax(corr[:, by_size], axis=1)]]
    return offsets


def _window_sums(z: np.ndarray, start: np.ndarray, stop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sums of z and z² over frames [start, stop) along axis -2 for each window -> [..., windows, D]."""
    zero = np.zeros(z.shape[:-2] + (1, z.shape[-1]))
    total = np.concatenate([zero, np.cumsum(z, axis=-2)], axis=-2)
    squares = np.concatenate([zero, np.cumsum(z * z, axis=-2)], axis=-2)
    return total[..., stop, :] - total[..., start, :], squares[..., stop, :] - squares[..., start, :]


def fr_syn(pred: np.ndarray, speaker: np.ndarray, max_lag: int = MAX_LAG) -> float:
    """FRSyn: mean |offset| (frames) of `tlcc_offsets` over all N·K samples. Lower is more in sync."""
    return float(np.abs(tlcc_offsets(pred, speaker, max_lag)).mean())


# --------------------------------------------------------------------------- all together

def evaluate_react(pred: np.ndarray, speaker: np.ndarray, appropriate: Sequence[np.ndarray],
                   workers: int | None = None) -> dict[str, float]:
    """All six REACT metrics: FRCorr, FRDist, FRDiv, FRDvs, FRVar, FRSyn (see each function)."""
    pred = _check_pred(pred)
    appropriate = _check_appropriate(appropriate, pred)
    return {
        "FRCorr": fr_corr(pred, appropriate),
        "FRDist": fr_dist(pred, appropriate, workers),
        "FRDiv": fr_div(pred),
        "FRDvs": fr_dvs(pred),
        "FRVar": fr_var(pred),
        "FRSyn": fr_syn(pred, speaker),
    }


def _check_pred(pred) -> np.ndarray:
    return checked("pred", pred, "[N, K, T, 25]", EMOTION_DIM)


def _check_appropriate(appropriate: Sequence[np.ndarray], pred: np.ndarray) -> list[np.ndarray]:
    """One [M_i, T, 25] array per clip, T matching ``pred``."""
    if len(appropriate) != len(pred):
        raise ListenerctlError(f"pred has {len(pred)} clips but appropriate reactions are given for "
                               f"{len(appropriate)}.")
    arrays = [checked(f"appropriate[{i}]", app, "[M, T, 25]", EMOTION_DIM) for i, app in enumerate(appropriate)]
    for i, app in enumerate(arrays):
        if app.shape[1] != pred.shape[2]:
            raise ListenerctlError(f"appropriate[{i}] has {app.shape[1]} frames but pred has {pred.shape[2]}.")
    return arrays
