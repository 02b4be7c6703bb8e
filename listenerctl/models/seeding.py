"""Noise for a batch that holds several inputs, each input's rows drawn from that input's own generator.

Generating several inputs in one batched call must give each input exactly what generating it alone
gives: every random draw of the single-input run is made again, from the same generator, in the same
order and of the same shape, and the parts are concatenated along the batch dimension. `RowNoise` holds
one ``torch.Generator`` per input and how many leading rows of the batch that input owns.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


class RowNoise:
    """Generators ``[(generator, rows), ...]``: the batch's first ``rows`` rows draw from the first one, etc."""

    def __init__(self, parts: Sequence[tuple[torch.Generator, int]]):
        if not parts:
            raise ValueError("RowNoise needs at least one (generator, rows) part")
        self.parts = list(parts)
        self.rows = sum(rows for _, rows in self.parts)
        self.device = self.parts[0][0].device

    def randn(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> Tensor:
        """Standard normal ``[*shape]``, ``shape[0]`` = all parts' rows; each part's block from its generator."""
        return self._drawn(torch.randn, shape, dtype)

    def rand(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32) -> Tensor:
        """Uniform [0, 1) ``[*shape]``, split by rows as `randn`."""
        return self._drawn(torch.rand, shape, dtype)

    def randint(self, high: int, shape: tuple[int, ...]) -> Tensor:
        """Integers uniform in 0 … ``high`` − 1 ``[*shape]`` (int64), split by rows as `randn`."""
        return self._drawn(lambda size, **options: torch.randint(high, size, **options), shape, torch.int64)

    def _drawn(self, draw, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        if shape[0] != self.rows:
            raise ValueError(f"noise for {shape[0]} rows asked of generators owning {self.rows}")
        blocks = [draw((rows, *shape[1:]), generator=generator, device=self.device, dtype=dtype)
                  for generator, rows in self.parts if rows]
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks)


# Chunks of at most this many rows (windows × K) are sampled in a call of their own, never shared: on CPU, float32
# matrix products of so few rows (a diffusion-step embedding has one row per batch row) take another kernel than a
# larger batch's and round differently, and a token draw may then flip.
SOLO_ROWS = 10


def shared_calls(chunks: list[tuple[int, Tensor]], num_samples: int,
                 max_windows: int) -> list[list[tuple[int, Tensor]]]:
    """Chunks (input, window indices) grouped in order into network calls of at most ``max_windows`` windows; a
    chunk of at most `SOLO_ROWS` rows (windows × ``num_samples``) gets a call of its own."""
    calls: list[list[tuple[int, Tensor, bool]]] = []
    windows = 0
    for member, chunk in chunks:
        solo = len(chunk) * num_samples <= SOLO_ROWS
        if solo or not calls or windows + len(chunk) > max_windows or calls[-1][-1][2]:
            calls.append([])
            windows = 0
        calls[-1].append((member, chunk, solo))
        windows += len(chunk)
    return [[(member, chunk) for member, chunk, _ in call] for call in calls]


def as_row_noise(generator: torch.Generator | RowNoise, rows: int) -> RowNoise:
    """``generator`` as a `RowNoise` owning all ``rows`` rows (a `RowNoise` is returned as it is)."""
    return generator if isinstance(generator, RowNoise) else RowNoise([(generator, rows)])
