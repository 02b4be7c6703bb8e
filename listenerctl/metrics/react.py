"""REACT 2023/2024 facial-reaction metrics on emotion25 (15 AUs, valence/arousal, 8 expression probabilities).

Shapes: ``pred`` [N, K, T, 25] holds K generated reactions for each of N speaker clips; ``speaker``
[N, T, 25] the speakers' own emotion; ``appropriate`` a sequence of N arrays [M_i, T, 25], the
reactions judged appropriate for clip i (M_i may differ between clips).

- FRCorr (appropriateness): per clip, sum over K of the best CCC against its appropriate reactions.
- FRDist (appropriateness): per clip, sum over K of the smallest DTW distance to them.
- FRDiv / FRDvs / FRVar (diversity): across the K samples of a clip / across clips / over time.
- FRSyn (synchrony): mean |lag| of the best time-lagged cross-correlation with the speaker.

Two protocols (`protocols.PROTOCOLS`): ``react2024``, the official REACT 2024 evaluation with its quirks
(`evaluate_react_official`, which lists them), and ``listenerctl``, the project's own variants
(`evaluate_react`): FRDist there sums Euclidean frame distances along the warping path (several times
the official scale) and FRSyn averages all K samples, a constant channel counting as uncorrelated.
FRCorr, FRDiv, FRDvs and FRVar are the same in both. Reimplemented from the metric definitions; DTW
is a dynamic programme compiled with numba (see `dtw`).

Every metric is also available per speaker (`speaker_contributions`): a vector [N] whose mean is
the metric, or for FRDvs (which compares speakers) an [N, N] matrix — what the bootstrap in
`listenerctl.metrics.bootstrap` resamples.
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
from listenerctl.metrics.protocols import check_protocol
from listenerctl.motion import EMOTION25_DIM

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
    return float(fr_corr_per_speaker(pred, appropriate).mean())


def fr_corr_per_speaker(pred: np.ndarray, appropriate: Sequence[np.ndarray]) -> np.ndarray:
    """FRCorr of each clip on its own -> [N] (see `fr_corr`)."""
    pred, appropriate = _check_pred(pred), _check_appropriate(appropriate, pred)
    return np.array([ccc(p[:, None], app[None]).mean(-1).max(axis=1).sum() for p, app in zip(pred, appropriate)])


# --------------------------------------------------------------------------- DTW and FRDist

def dtw(x: np.ndarray, y: np.ndarray, groups: Sequence[slice], squared_cost: bool = False) -> np.ndarray:
    """Multivariate DTW between every x[k] and every y[m], separately per channel group.

    x [K, T, D], y [M, J, D]; ``groups`` are channel slices. Returns [len(groups), K, M]: over
    monotone warping paths from (0, 0) to (T-1, J-1) with steps (1,0), (0,1), (1,1), the smallest sum
    of the Euclidean distances between the paired frames restricted to the group's channels; with
    ``squared_cost`` the square root of the smallest sum of squared Euclidean distances instead
    (tslearn's ``dtw``, which the official REACT code calls).

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
            out[g, k] = _dtw_rows(seq_rows, cols, len(y), y.shape[1], squared_cost)
    return np.sqrt(out) if squared_cost else out


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
def _dtw_rows(a, b, count, length, squared_cost):
    """DTW of one x sequence against ``count`` y sequences of ``length`` frames -> [count].

    a [T, w] its `_cost_rows`; b [blocks, w, chunk·count] the y sequences' `_cost_cols`. Row i of
    the accumulated cost D is made from row i-1 for all y sequences at once: D(i, j) = c(i, j) +
    min(D(i-1, j-1), D(i-1, j), D(i, j-1)), c the Euclidean frame distance, or its square with
    ``squared_cost`` (the caller then takes the square root of the result). ``last`` and ``new``
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
                    cell = cell if cell > 0.0 else 0.0  # rounding can go below 0
                    step = min(last[j, m], last[j + 1, m], new[j, m])
                    new[j + 1, m] = (cell if squared_cost else np.sqrt(cell)) + step
            last, new = new, last
    return last[length].copy()


def fr_dist(pred: np.ndarray, appropriate: Sequence[np.ndarray], workers: int | None = None) -> float:
    """FRDist: per clip, Σ_k min_m [DTW(AU)/15 + DTW(VA) + DTW(expr)/8] between pred[k] and
    appropriate[m] (see `dtw`, Euclidean local cost: this project's variant); mean over clips. Lower is
    better. Clips run on ``workers`` threads (default: the CPUs available)."""
    return float(fr_dist_per_speaker(pred, appropriate, workers).mean())


def fr_dist_per_speaker(pred: np.ndarray, appropriate: Sequence[np.ndarray], workers: int | None = None,
                        official: bool = False) -> np.ndarray:
    """FRDist of each clip on its own -> [N] (see `fr_dist`). ``official``: the REACT 2024 definition
    instead — inputs rounded to float32 first, then DTW with squared local cost and the square root of
    the total (tslearn's ``dtw``), per channel group."""
    pred, appropriate = _check_pred(pred), _check_appropriate(appropriate, pred)
    if official:
        pred = pred.astype(np.float32).astype(np.float64)
        appropriate = [app.astype(np.float32).astype(np.float64) for app in appropriate]

    def per_clip(i: int) -> float:
        groups = dtw(pred[i], appropriate[i], DIST_GROUPS, squared_cost=official)
        return float(np.einsum("g,gkm->km", DIST_WEIGHTS, groups).min(axis=1).sum())

    with ThreadPoolExecutor(workers or _workers()) as pool:
        return np.array(list(pool.map(per_clip, range(len(pred)))))


# --------------------------------------------------------------------------- diversity

def fr_div(pred: np.ndarray) -> float:
    """FRDiv: per clip, Σ_{k≠k'} ‖pred[k] − pred[k']‖² / (K(K−1)·T·D); mean over clips.

    Computed through the identity Σ_{k≠k'} (x_k − x_k')² = 2K(K−1)·s², s² the unbiased variance
    over the K samples, i.e. FRDiv = 2 × the mean over clips, frames and channels of that variance.
    """
    return float(fr_div_per_speaker(pred).mean())


def fr_div_per_speaker(pred: np.ndarray) -> np.ndarray:
    """FRDiv of each clip on its own -> [N] (see `fr_div`)."""
    pred = _check_pred(pred)
    if pred.shape[1] < 2:
        raise ListenerctlError("FRDiv needs at least 2 samples per clip (K >= 2).")
    return 2 * pred.var(axis=1, ddof=1).mean(axis=(1, 2))


def fr_dvs(pred: np.ndarray) -> float:
    """FRDvs: Σ_k Σ_{n≠n'} ‖pred[n, k] − pred[n', k]‖² / (N(N−1)·K·T·D), i.e. 2 × the mean
    unbiased variance across clips (same identity as `fr_div`)."""
    pred = _check_pred(pred)
    if pred.shape[0] < 2:
        raise ListenerctlError("FRDvs needs at least 2 clips (N >= 2).")
    return float(2 * pred.var(axis=0, ddof=1).mean())


def fr_dvs_pairwise(pred: np.ndarray) -> np.ndarray:
    """FRDvs's terms by pair of clips -> [N, N]: Σ_k ‖pred[n, k] − pred[n', k]‖² / (K·T·D), zero on the
    diagonal. FRDvs = Σ of the matrix / (N(N−1)); the bootstrap recomputes it for a resampled set of
    clips from this matrix (see `listenerctl.metrics.bootstrap`). From Gram matrices of the centred
    predictions (|a|² + |b|² − 2a·b per sample index k)."""
    pred = _check_pred(pred)
    if pred.shape[0] < 2:
        raise ListenerctlError("FRDvs needs at least 2 clips (N >= 2).")
    n, k = pred.shape[:2]
    flat = pred.reshape(n, k, -1)
    flat = flat - flat.mean(axis=0)
    gram = np.einsum("nkf,mkf->nm", flat, flat)
    norms = np.einsum("nkf,nkf->n", flat, flat)
    pairs = np.maximum(norms[:, None] + norms[None] - 2 * gram, 0.0)
    np.fill_diagonal(pairs, 0.0)
    return pairs / flat.shape[1] / flat.shape[2]


def fr_var(pred: np.ndarray) -> float:
    """FRVar: unbiased variance over time of every (clip, sample, channel), averaged."""
    return float(fr_var_per_speaker(pred).mean())


def fr_var_per_speaker(pred: np.ndarray) -> np.ndarray:
    """FRVar of each clip on its own -> [N] (see `fr_var`; every clip has the same K·D terms)."""
    pred = _check_pred(pred)
    if pred.shape[2] < 2:
        raise ListenerctlError("FRVar needs at least 2 frames (T >= 2).")
    return pred.var(axis=2, ddof=1).mean(axis=(1, 2))


# --------------------------------------------------------------------------- synchrony

def tlcc_offsets(pred: np.ndarray, speaker: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray:
    """Best time-lagged cross-correlation lag of every sample against its speaker -> int [N, K].

    For a lag τ in [-max_lag, max_lag], r(τ) is the mean over the channels of the Pearson correlation
    between speaker[t] and sample[t + τ] over the frames where both exist (T − |τ| of them); a channel
    that is constant over that window contributes 0. The offset is the τ maximising r(τ), ties going
    to the smallest |τ| (then to the negative lag). τ > 0 means the sample follows the speaker.
    (This project's variant; `tlcc_offsets_official` is REACT 2024's.)
    """
    pred, speaker, lags = _check_tlcc(pred, speaker, max_lag)
    by_size = np.argsort(np.abs(lags) * 2 + (lags > 0), kind="stable")  # 0, -1, 1, -2, 2, ...
    frames = (pred.shape[2] - np.abs(lags))[:, None]
    offsets = np.empty(pred.shape[:2], dtype=np.int64)
    for i, (samples, spk) in enumerate(zip(pred, speaker)):
        cov, var_x, var_y = _lagged_moments(samples, spk, lags)
        varying = (var_x > CONSTANT_VARIANCE * frames) & (var_y > CONSTANT_VARIANCE * frames)
        corr = np.where(varying, cov / np.sqrt(np.where(varying, var_x * var_y, 1.0)), 0.0).mean(-1)
        offsets[i] = lags[by_size[np.argmax(corr[:, by_size], axis=1)]]
    return offsets


def tlcc_offsets_official(pred: np.ndarray, speaker: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray:
    """REACT 2024's TLCC offset of every sample against its speaker -> int [N, K], as |lag|.

    Inputs are rounded to float32. For τ = -max_lag … max_lag in that order, r(τ) is the Pearson
    correlation per channel of speaker[t] and sample[t + τ] over the overlap (computed in float64,
    clipped to [-1, 1]), NaN where either side is constant over it; the mean over the 25 channels is
    taken in float32, so one NaN channel makes r(τ) NaN. The offset is |τ| at numpy's argmax of r:
    the first maximum, except that the first NaN beats every number — a channel constant over a
    window makes that lag win, and a channel constant over the whole clip (a still speaker) makes
    lag -max_lag win. Float32 inputs make a constant window's float64 mean exact, so "constant" here
    (all values equal) is exactly when the official ``np.corrcoef`` returns NaN. The official code
    averages the 25 channels with torch, whose float32 summation order may differ from numpy's in the
    last bit; only lags whose means tie to within one float32 step could be ordered differently.
    """
    pred, speaker, lags = _check_tlcc(pred, speaker, max_lag)
    pred, speaker = pred.astype(np.float32).astype(np.float64), speaker.astype(np.float32).astype(np.float64)
    length = pred.shape[2]
    start, stop = np.maximum(0, -lags), length - np.maximum(0, lags)  # speaker frames [start, stop)
    offsets = np.empty(pred.shape[:2], dtype=np.int64)
    for i, (samples, spk) in enumerate(zip(pred, speaker)):
        cov, var_x, var_y = _lagged_moments(samples, spk, lags)
        constant = _constant_windows(spk, start, stop) | _constant_windows(samples, start + lags, stop + lags)
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = np.clip(cov / np.sqrt(var_x * var_y), -1.0, 1.0)
        corr = np.where(constant, np.nan, corr).astype(np.float32).mean(axis=-1, dtype=np.float32)
        offsets[i] = np.abs(lags[np.argmax(corr, axis=1)])
    return offsets


def _check_tlcc(pred, speaker, max_lag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked pred [N, K, T, 25], speaker [N, T, 25] and the lags -max_lag … max_lag."""
    pred, speaker = _check_pred(pred), checked("speaker", speaker, "[N, T, 25]", EMOTION25_DIM)
    if speaker.shape[:2] != (pred.shape[0], pred.shape[2]):
        raise ListenerctlError(f"speaker has shape {speaker.shape}; it needs [N, T, 25] matching pred "
                               f"{pred.shape}.")
    if not 0 <= max_lag < pred.shape[2] - 1:
        raise ListenerctlError(f"TLCC lag {max_lag} needs clips longer than {max_lag + 1} frames; "
                               f"got T={pred.shape[2]}.")
    return pred, speaker, np.arange(-max_lag, max_lag + 1)


def _lagged_moments(samples: np.ndarray, spk: np.ndarray, lags: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Co-moment and moments of speaker[t] (x) and sample[t + τ] (y) over each lag's overlap.

    samples [K, T, D], spk [T, D] -> Σ(x−x̄)(y−ȳ), Σ(x−x̄)², Σ(y−ȳ)², each [K, lags, D], the means
    taken over the overlap. Cross sums by FFT on globally centred series, window sums by cumulative
    sums (`_window_sums`).
    """
    length = spk.shape[0]
    start, stop = np.maximum(0, -lags), length - np.maximum(0, lags)  # speaker frames [start, stop)
    frames = (stop - start)[:, None]
    n_fft = fft.next_fast_len(2 * length)
    x = spk - spk.mean(axis=0)  # [T, D]
    y = samples - samples.mean(axis=1, keepdims=True)  # [K, T, D]
    cross = fft.irfft(np.conj(fft.rfft(x, n_fft, axis=0)) * fft.rfft(y, n_fft, axis=1), n_fft, axis=1)
    sxy = cross[:, lags % n_fft]  # Σ_t x[t]·y[t+τ] over the overlap -> [K, lags, D]
    sx, sxx = _window_sums(x, start, stop)
    sy, syy = _window_sums(y, start + lags, stop + lags)
    return sxy - sx * sy / frames, sxx - sx ** 2 / frames, syy - sy ** 2 / frames


def _constant_windows(z: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Whether z [..., T, D] holds one value over frames [start, stop) of each window -> bool [..., windows, D]."""
    changes = np.concatenate([np.zeros(z.shape[:-2] + (1, z.shape[-1]), dtype=np.int64),
                              np.cumsum(z[..., 1:, :] != z[..., :-1, :], axis=-2)], axis=-2)
    return changes[..., stop - 1, :] == changes[..., start, :]


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
    """All six REACT metrics by this project's variants (protocol ``listenerctl``): FRCorr, FRDist
    (Euclidean local cost), FRDiv, FRDvs, FRVar, FRSyn (all K samples; see each function)."""
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


def evaluate_react_official(pred: np.ndarray, speaker_emotion: np.ndarray, appropriate: Sequence[np.ndarray],
                            workers: int | None = None) -> dict[str, float]:
    """The REACT 2024 metrics as the official evaluation computes them (protocol ``react2024``).

    pred [N, K, T, 25], speaker_emotion [N, T, 25], appropriate N arrays [M_n, T, 25] (emotion25).
    Returns FRCorr, FRDist, FRDiv, FRDvs, FRVar, FRSyn and FRSyn_all. Quirks of the official code
    reproduced here:

    - FRDist is per speaker the SUM over its K samples (not the mean) of the smallest distance to
      any appropriate reaction, then the mean over speakers — so it grows with K, like FRCorr.
    - FRDist's distance is DTW(AU 0–14)/15 + DTW(valence, arousal)/1 + DTW(expressions 17–24)/8 with
      tslearn's DTW: squared Euclidean local cost, the square root of the minimal accumulated cost,
      no window — on inputs rounded to float32 first (`fr_dist_per_speaker` with ``official``).
    - FRSyn uses sample 0 of each speaker only: the official multiprocessing path returns from
      inside its loop over samples after the first one. FRSyn_all is the same over all K samples
      (what its single-process path computes).
    - TLCC lags run -49 … +49 frames against the speaker's emotion, Pearson r per channel in float64
      of float32 inputs, mean over the 25 channels in float32, offset = |lag| at numpy's argmax:
      first maximum wins, and a NaN mean (a channel constant over the overlap, e.g. an AU that
      never fires, or a still speaker) beats every number, so such a lag wins (a channel constant
      over the whole clip gives offset 49). See `tlcc_offsets_official`.
    - The official code pairs speakers with predictions (and neighbour-matrix rows with predictions)
      through ``zip``, silently dropping the tail of the longer list; here unequal N is an error
      instead, so no speaker is dropped without a word. A speaker needs at least one appropriate
      reaction here (the official code adds 0 for a speaker without one).
    - FRCorr, FRDiv, FRDvs and FRVar are already the official definitions (`fr_corr`, `fr_div`,
      `fr_dvs`, `fr_var`).

    Values are the means of `speaker_contributions` (FRDvs from its pairwise matrix).
    """
    from listenerctl.metrics.bootstrap import point_estimate

    contributions = speaker_contributions(pred, speaker_emotion, appropriate, "react2024", workers)
    return {name: point_estimate(terms) for name, terms in contributions.items()}


def speaker_contributions(pred: np.ndarray, speaker: np.ndarray, appropriate: Sequence[np.ndarray],
                          protocol: str = "react2024", workers: int | None = None) -> dict[str, np.ndarray]:
    """Each metric of ``protocol`` (see `protocols.PROTOCOLS`) by speaker clip, computed once for the bootstrap.

    Returns name -> [N] values whose mean is the metric (FRCorr, FRDist, FRDiv, FRVar, FRSyn,
    FRSyn_all), or for FRDvs, which compares clips with each other, the [N, N] matrix of
    `fr_dvs_pairwise` (FRDvs = its sum / (N(N−1))). ``react2024`` gives the official definitions
    (see `evaluate_react_official`), ``listenerctl`` this project's variants (no FRSyn_all: its FRSyn
    already covers every sample).
    """
    check_protocol(protocol)
    pred = _check_pred(pred)
    appropriate = _check_appropriate(appropriate, pred)
    official = protocol == "react2024"
    contributions = {
        "FRCorr": fr_corr_per_speaker(pred, appropriate),
        "FRDist": fr_dist_per_speaker(pred, appropriate, workers, official=official),
        "FRDiv": fr_div_per_speaker(pred),
        "FRDvs": fr_dvs_pairwise(pred),
        "FRVar": fr_var_per_speaker(pred),
    }
    if official:
        offsets = tlcc_offsets_official(pred, speaker)
        contributions["FRSyn"] = offsets[:, 0].astype(np.float64)
        contributions["FRSyn_all"] = offsets.mean(axis=1)
    else:
        contributions["FRSyn"] = np.abs(tlcc_offsets(pred, speaker)).mean(axis=1)
    return contributions


def _check_pred(pred) -> np.ndarray:
    return checked("pred", pred, "[N, K, T, 25]", EMOTION25_DIM)


def _check_appropriate(appropriate: Sequence[np.ndarray], pred: np.ndarray) -> list[np.ndarray]:
    """One [M_i, T, 25] array per clip, T matching ``pred``."""
    if len(appropriate) != len(pred):
        raise ListenerctlError(f"pred has {len(pred)} clips but appropriate reactions are given for "
                               f"{len(appropriate)}.")
    arrays = [checked(f"appropriate[{i}]", app, "[M, T, 25]", EMOTION25_DIM) for i, app in enumerate(appropriate)]
    for i, app in enumerate(arrays):
        if app.shape[1] != pred.shape[2]:
            raise ListenerctlError(f"appropriate[{i}] has {app.shape[1]} frames but pred has {pred.shape[2]}.")
    return arrays
