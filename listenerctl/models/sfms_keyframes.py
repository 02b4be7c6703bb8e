"""SFMS keyframe tokenizer (DESIGN §5, row sfms): a window of listener frames → k keyframes, each one FSQ
code, → all frames again.

Shapes: B windows, w frames per window (48 at 25 fps), k keyframes per window, D = 58 normalised arkit58
channels, c = len(levels) FSQ channels (levels [4, 4, 4, 4] give 256 codes).

- `KeyframeScorer`: Conv1d over frames, then a transformer → one score per frame [B, w].
- `gumbel_top_k`: the paper's Algorithm 1 — Gumbel-perturbed scores, k rounds of a softmax, each round
  taking the mass p and suppressing it for the next (s ← s + log(1 − p)), summed into a relaxed k-hot;
  the forward pass uses the hard top-k of the perturbed scores and the backward pass the relaxed
  k-hot's gradient (straight-through).
- Keyframe codes: a transformer encoder over the whole window that also sees the selection (per frame
  the mask and the offset to the nearest keyframe, so that a keyframe's code can summarise the frames it
  stands for), FSQ per frame; only the codes of the selected frames reach the inpainter.
- `Inpainter`: a transformer that rebuilds every frame of the window from the keyframe codes; per frame
  it is given the codes of the keyframes before and after it and the concatenated sinusoidal encodings of
  its absolute position and of its offsets to those two keyframes.
- Selection modes for the reconstruction ablation: ``learned`` (the scorer), ``static`` (k uniformly
  spaced frames) and ``dense`` (every frame a keyframe: per-frame FSQ).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from listenerctl.models.layers import PositionalEncoding, TransformerEncoder, sinusoidal_encoding
from listenerctl.models.quantize import FSQ

SELECTIONS = ("learned", "static", "dense")
NO_KEYFRAME_OFFSET = 64       # offset fed to the inpainter for frames of a window without keyframes
POSITION_PERIOD = 200.0       # longest period of the position / offset encodings, in frames
SCORER_KERNEL = 5


def gumbel_noise(shape: tuple[int, ...], generator: torch.Generator | None = None, device=None) -> Tensor:
    """Standard Gumbel samples −log(−log U) of ``shape``."""
    uniform = torch.rand(shape, generator=generator, device=device).clamp(1e-9, 1 - 1e-9)
    return -torch.log(-torch.log(uniform))


def relaxed_k_hot(scores: Tensor, k: int, temperature: float) -> Tensor:
    """Algorithm 1's relaxed k-hot [B, w] of (already perturbed) ``scores`` [B, w]: k rounds of
    p = softmax(s / τ), k-hot += p, s ← s + log(1 − p). Each entry lies in [0, 1] and rows sum to k."""
    khot = torch.zeros_like(scores)
    s = scores
    for _ in range(k):
        p = torch.softmax(s / temperature, dim=-1)
        khot = khot + p
        s = s + torch.log1p(-p.clamp(max=1 - 1e-6))
    return khot


def hard_k_hot(scores: Tensor, k: int) -> Tensor:
    """1.0 at the k highest ``scores`` of each row [B, w], else 0.0."""
    return torch.zeros_like(scores).scatter_(-1, scores.topk(k, dim=-1).indices, 1.0)


def gumbel_top_k(scores: Tensor, k: int, temperature: float, noise: float = 1.0,
                 generator: torch.Generator | None = None) -> Tensor:
    """Straight-through keyframe mask [B, w]: exactly k ones forward (top-k of the scores perturbed by
    ``noise`` × Gumbel noise; 0 = the plain scores), the gradient of `relaxed_k_hot` backward."""
    perturbed = scores + noise * gumbel_noise(scores.shape, generator, scores.device) if noise else scores
    hard = hard_k_hot(perturbed.detach(), k)
    if not scores.requires_grad:
        return hard
    soft = relaxed_k_hot(perturbed, k, temperature)
    return hard + (soft - soft.detach())


def uniform_k_hot(window: int, k: int) -> Tensor:
    """The static selection [w]: k frames at the centres of k equal segments of the window."""
    positions = ((torch.arange(k) + 0.5) * window / k).long().clamp(max=window - 1)
    return torch.zeros(window).index_fill_(0, positions, 1.0)


def neighbour_keyframes(mask: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each frame's previous keyframe (at or before it) and next keyframe (at or after it) in ``mask``
    [B, w] (> 0.5): their indices [B, w] and the offsets t − previous, next − t [B, w] (frames). A frame
    with keyframes on one side only takes that side's keyframe for both; in windows without keyframes the
    indices are 0 and the offsets `NO_KEYFRAME_OFFSET`."""
    w = mask.shape[-1]
    frames = torch.arange(w, device=mask.device).expand_as(mask)
    is_key = mask > 0.5
    previous = torch.where(is_key, frames, -1).cummax(dim=-1).values
    following = torch.where(is_key, frames, w).flip(-1).cummin(dim=-1).values.flip(-1)
    previous, following = (torch.where(previous < 0, following, previous),
                           torch.where(following >= w, previous, following))
    empty = ~is_key.any(dim=-1, keepdim=True)
    previous, following = previous.masked_fill(empty, 0), following.masked_fill(empty, 0)
    before = (frames - previous).masked_fill(empty, NO_KEYFRAME_OFFSET)
    after = (following - frames).masked_fill(empty, NO_KEYFRAME_OFFSET)
    return previous, following, before, after


def nearest_keyframe_offset(mask: Tensor) -> Tensor:
    """Signed offset t − nearest keyframe [B, w] (frames) of each frame (``mask`` [B, w] > 0.5), from
    `neighbour_keyframes`; `NO_KEYFRAME_OFFSET` in windows without keyframes. Ties go to the earlier
    keyframe."""
    _, _, before, after = neighbour_keyframes(mask)
    return torch.where(before <= after, before, -after)


class KeyframeScorer(nn.Module):
    """Frames [B, w, D] → keyframe scores [B, w]: Conv1d (kernel 5), GELU, a transformer, a linear map."""

    def __init__(self, dim: int, width: int, layers: int, heads: int):
        super().__init__()
        self.conv = nn.Conv1d(dim, width, SCORER_KERNEL, padding=SCORER_KERNEL // 2, padding_mode="replicate")
        self.position = PositionalEncoding(width, POSITION_PERIOD)
        self.body = TransformerEncoder(width, layers, heads, mlp_ratio=2.0)
        self.out = nn.Linear(width, 1)

    def forward(self, frames: Tensor) -> Tensor:
        x = F.gelu(self.conv(frames.transpose(1, 2))).transpose(1, 2)
        return self.out(self.body(self.position(x))).squeeze(-1)


class Inpainter(nn.Module):
    """Keyframe mask [B, w] (straight-through values) and codes [B, w, c] → frames [B, w, D].

    Per frame the input is [mask · code, mask, sin(absolute position)] and, for its previous and its next
    keyframe (`neighbour_keyframes`), [that keyframe's mask · code, sin(offset to it)] (each encoding
    ``position_dim`` wide), mapped linearly into a transformer over the window: every frame starts from the
    two keyframes it lies between, wherever the scorer put them."""

    def __init__(self, code_dim: int, dim: int, width: int, layers: int, heads: int, position_dim: int):
        super().__init__()
        self.position_dim = position_dim
        self.inp = nn.Linear(3 * code_dim + 1 + 3 * position_dim, width)
        self.body = TransformerEncoder(width, layers, heads, mlp_ratio=2.0)
        self.out = nn.Linear(width, dim)

    def forward(self, mask: Tensor, codes: Tensor) -> Tensor:
        frames = torch.arange(mask.shape[-1], device=mask.device).expand_as(mask)
        encode = lambda p: sinusoidal_encoding(p, self.position_dim, POSITION_PERIOD)  # noqa: E731
        kept = codes * mask[..., None]
        previous, following, before, after = neighbour_keyframes(mask.detach())
        gather = lambda index: kept.gather(1, index[..., None].expand_as(kept))  # noqa: E731
        x = torch.cat([kept, mask[..., None], encode(frames), gather(previous), encode(before), gather(following),
                       encode(after)], dim=-1)
        return self.out(self.body(self.inp(x)))


class KeyframeTokenizer(nn.Module):
    """Scorer, keyframe encoder + FSQ and inpainter over ``window``-frame windows of D channels."""

    def __init__(self, dim: int, window: int, keyframes: int, selection: str, levels: tuple[int, ...],
                 width: int, heads: int, scorer_layers: int, encoder_layers: int, inpainter_layers: int,
                 position_dim: int):
        super().__init__()
        if selection not in SELECTIONS:
            raise ValueError(f"unknown keyframe selection {selection!r}; use one of {', '.join(SELECTIONS)}")
        if not 1 <= keyframes <= window:
            raise ValueError(f"keyframes per window must be in 1 … {window}, got {keyframes}")
        self.window, self.selection = window, selection
        self.keyframes = window if selection == "dense" else keyframes
        self.scorer = KeyframeScorer(dim, width, scorer_layers, heads)
        self.encoder_in = nn.Linear(dim + 1 + position_dim, width)
        self.encoder_position = PositionalEncoding(width, POSITION_PERIOD)
        self.encoder = TransformerEncoder(width, encoder_layers, heads, mlp_ratio=2.0)
        self.to_code = nn.Linear(width, len(levels))
        self.fsq = FSQ(levels)
        self.inpainter = Inpainter(len(levels), dim, width, inpainter_layers, heads, position_dim)
        self.register_buffer("static_mask", uniform_k_hot(window, self.keyframes), persistent=False)

    def scorer_parameters(self) -> list[nn.Parameter]:
        return list(self.scorer.parameters())

    def coder_parameters(self) -> list[nn.Parameter]:
        scorer = {id(p) for p in self.scorer_parameters()}
        return [p for p in self.parameters() if id(p) not in scorer]

    def encode(self, frames: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Frames [B, w, D] and their keyframe mask [B, w] → FSQ codes [B, w, c] (straight-through) and
        indices [B, w] of every frame."""
        offset = sinusoidal_encoding(nearest_keyframe_offset(mask.detach()), self.inpainter.position_dim,
                                     POSITION_PERIOD)
        x = self.encoder_in(torch.cat([frames, mask[..., None], offset], dim=-1))
        return self.fsq(self.to_code(self.encoder(self.encoder_position(x))))

    def select(self, frames: Tensor) -> Tensor:
        """Deterministic keyframe mask [B, w] (k ones per row) for frames [B, w, D]: the top-k scores when
        ``learned``."""
        if self.selection != "learned":
            return self.static_mask.expand(frames.shape[0], -1)
        return hard_k_hot(self.scorer(frames).detach(), self.keyframes)

    def reconstruct(self, frames: Tensor, mask: Tensor | None = None) -> Tensor:
        """Frames [B, w, D] → their rebuild [B, w, D] through the keyframes of ``mask`` [B, w] (straight-through
        values), by default the deterministic ones of `select`."""
        mask = self.select(frames) if mask is None else mask
        return self.inpainter(mask, self.encode(frames, mask)[0])

    def tokens(self, frames: Tensor) -> Tensor:
        """Frames [B, w, D] → per-frame tokens [B, w] long: 0 for transition frames, 1 + code index at
        keyframes."""
        mask = self.select(frames)
        _, indices = self.encode(frames, mask)
        return torch.where(mask > 0.5, indices + 1, torch.zeros_like(indices))

    def decode_tokens(self, tokens: Tensor) -> Tensor:
        """Tokens [B, w] (any number of keyframes) → frames [B, w, D]."""
        mask = (tokens > 0).float()
        codes = self.fsq.indices_to_codes((tokens - 1).clamp(min=0))
        return self.inpainter(mask, codes)

    def loss(self, frames: Tensor, temperature: float, best_of: int, select_weight: float,
             noise: float = 1.0) -> dict:
        """Reconstruction MSE of frames [B, w, D] through keyframes selected by `gumbel_top_k` (relaxation
        ``temperature``, Gumbel ``noise`` scale; annealed together so that training ends on the
        deterministic selection used afterwards), plus, for learned selection with ``best_of`` > 0, the
        best-of-samples target: among ``best_of`` Gumbel selections (unit noise) and the static one, the
        selection that rebuilds each window best (no gradient) is a k-hot target for the scorer's
        softmax, weighted by ``select_weight``."""
        if self.selection != "learned":
            mse = F.mse_loss(self.reconstruct(frames), frames)
            return {"loss": mse, "recon": mse.detach()}
        scores = self.scorer(frames)
        mask = gumbel_top_k(scores, self.keyframes, temperature, noise)
        mse = F.mse_loss(self.reconstruct(frames, mask), frames)
        terms = {"loss": mse, "recon": mse.detach()}
        if best_of > 0:
            target = self._best_selection(frames, scores.detach(), best_of)
            select = -(target * torch.log_softmax(scores, dim=-1)).sum(dim=-1).mean() / self.keyframes
            terms["loss"] = mse + select_weight * select
            terms["select"] = select.detach()
        return terms

    @torch.no_grad()
    def _best_selection(self, frames: Tensor, scores: Tensor, samples: int) -> Tensor:
        b, w, _ = frames.shape
        perturbed = scores + gumbel_noise((samples, b, w), device=scores.device)
        candidates = torch.cat([hard_k_hot(perturbed, self.keyframes), self.static_mask.expand(1, b, w)])
        masks, repeated = candidates.flatten(0, 1), frames.repeat(samples + 1, 1, 1)
        rebuilt = self.reconstruct(repeated, masks)
        error = (rebuilt.view(samples + 1, b, w, -1) - frames).pow(2).mean(dim=(2, 3))   # [S + 1, B]
        return candidates[error.argmin(dim=0), torch.arange(b, device=frames.device)]
