"""Arbitrary-length generation from fixed-size windows (DESIGN §5), shared by every model.

`outpaint` is DiffSHEG's FOPPAS (fast outpainting-based partial autoregressive sampling): each window
is generated with its first frames pinned to the previous window's tail, then cross-faded into it. diffsheg
samples window by window through it; lbd and sfms generate all their windows first (in batches) and use it
only to join them, so they hold every window's frames, K × windows × window × D, besides the output.
Autoregressive models `roll` a bounded context of past frames: the work per call and the state kept between
calls grow with the context, and only the output ``[K, T, D]`` grows with T.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

WINDOW_ORDERS = ("parallel", "sequential")  # how a diffusion model with overlapping windows samples them

# generate_window(start, end, known, mask) -> [K, end - start, D]; known/mask are None for the first window.
WindowFn = Callable[[int, int, Tensor | None, Tensor | None], Tensor]
# step(past, start, end) -> [K, end - start, D]; past holds up to `context` frames before `start`.
StepFn = Callable[[Tensor | None, int, int], Tensor]
# step(members, past, start, end) -> [len(members) · K, end - start, D] for several sequences at once (`roll_many`).
ManyStepFn = Callable[[list[int], Tensor | None, int, int], Tensor]


def plan_windows(total: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Windows ``(start, end)`` covering frames ``[0, total)``, consecutive ones sharing ``overlap`` frames.

    Windows start every ``window − overlap`` frames and all have length ``window``; the last one is
    shifted back to end exactly at ``total`` (so it may overlap its predecessor by more than
    ``overlap``, and nothing is padded). A ``total`` shorter than ``window`` gives one window
    ``(0, total)``.
    """
    if total < 1 or window < 1:
        raise ValueError(f"need total >= 1 and window >= 1 frames, got total={total}, window={window}")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in 0 … window−1 = {window - 1}, got {overlap}")
    if total <= window:
        return [(0, total)]
    stride = window - overlap
    starts = list(range(0, total - window, stride)) + [total - window]
    return [(s, s + window) for s in starts]


def crossfade_weights(n: int) -> Tensor:
    """Linear ramp ``[n]`` strictly inside (0, 1): weight of the new window on each overlap frame."""
    return torch.arange(1, n + 1, dtype=torch.float32) / (n + 1)


def outpaint(generate_window: WindowFn, total: int, window: int, overlap: int) -> Tensor:
    """Generate ``[K, total, D]`` window by window with `plan_windows`.

    ``generate_window(start, end, known, mask)`` returns frames ``[K, end − start, D]``. For every
    window after the first, ``known`` ``[K, end − start, D]`` holds the already generated frames of its
    overlap with the previous window (zeros after them) and ``mask`` ``[1, end − start, 1]`` bool marks
    them; a diffusion model pins them (`diffusion.sample`'s ``inpaint``). The overlap is then
    cross-faded linearly from the previous window's frames to the new ones.
    """
    out: Tensor | None = None
    done = 0  # frames [0, done) are generated
    for start, end in plan_windows(total, window, overlap):
        shared = done - start
        if out is None:
            out = _first_window(generate_window, start, end, total)
        else:
            known = torch.zeros_like(out[:, start:end])
            known[:, :shared] = out[:, start:done]
            mask = torch.zeros(1, end - start, 1, dtype=torch.bool, device=out.device)
            mask[:, :shared] = True
            frames = _checked(generate_window(start, end, known, mask), out.shape[0], end - start, out.shape[2])
            ramp = crossfade_weights(shared).to(out.device, out.dtype)[None, :, None]
            out[:, start:done] = torch.lerp(out[:, start:done], frames[:, :shared], ramp)
            out[:, done:end] = frames[:, shared:]
        done = end
    return out


def _first_window(generate_window: WindowFn, start: int, end: int, total: int) -> Tensor:
    frames = generate_window(start, end, None, None)
    k, _, d = frames.shape
    out = frames.new_empty(k, total, d)
    out[:, start:end] = _checked(frames, k, end - start, d)
    return out


def _checked(frames: Tensor, k: int, length: int, dim: int) -> Tensor:
    if tuple(frames.shape) != (k, length, dim):
        raise ValueError(f"window function returned shape {tuple(frames.shape)}, expected {(k, length, dim)}")
    return frames


def roll(step: StepFn, total: int, context: int, chunk: int) -> Tensor:
    """Generate ``[K, total, D]`` autoregressively, ``chunk`` frames per call, with a rolling context.

    ``step(past, start, end)`` gets ``past`` = the last ``min(start, context)`` generated frames
    ``[K, ≤ context, D]`` (``None`` on the first call, when nothing exists yet to fix K and D) and
    returns frames ``[K, end − start, D]``; ``end − start`` is ``chunk`` except for a shorter last call.
    """
    return roll_many(lambda members, past, start, end: step(past, start, end), [total], context, chunk)[0]


def roll_many(step: ManyStepFn, totals: list[int], context: int, chunk: int) -> list[Tensor]:
    """`roll` for several sequences at once (of ``totals`` frames each), stepped together: at each chunk start,
    the sequences still running whose chunk has the same length form one call.

    ``step(members, past, start, end)`` gets ``members`` (indices into ``totals``) and ``past`` = their last
    ``min(start, context)`` frames concatenated along the batch dimension ``[len(members) · K, ≤ context, D]``
    (``None`` at start 0), and returns ``[len(members) · K, end − start, D]`` in the same order. Returns each
    sequence's frames ``[K, total_i, D]``.
    """
    if not totals or min(totals) < 1 or chunk < 1 or context < 0:
        raise ValueError(f"need totals >= 1, chunk >= 1, context >= 0; got {totals}, {chunk}, {context}")
    outs: list[Tensor | None] = [None] * len(totals)
    for start in range(0, max(totals), chunk):
        by_end: dict[int, list[int]] = {}
        for i, total in enumerate(totals):
            if total > start:
                by_end.setdefault(min(start + chunk, total), []).append(i)
        for end, members in by_end.items():
            past = None if start == 0 else torch.cat([outs[i][:, max(0, start - context):start] for i in members])
            frames = step(members, past, start, end)
            k = frames.shape[0] // len(members)
            for i, block in zip(members, frames.split(k)):
                if outs[i] is None:
                    outs[i] = block.new_empty(k, totals[i], block.shape[2])
                outs[i][:, start:end] = _checked(block, k, end - start, outs[i].shape[2])
    return outs
