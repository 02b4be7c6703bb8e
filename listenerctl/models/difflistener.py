"""DiffListener: a VQ-VAE over listener motion and a discrete (VQ-) diffusion over its tokens, conditioned
on a speaker fusion network (DESIGN §5, row difflistener).

Shapes: B windows in a batch, w = ``window`` frames (128 at 25 fps), n = w / ``downsample`` tokens (16),
V = ``codebook`` codes (256) plus one [MASK] state with index V. Listener motion is arkit58 + emotion25
= 83 features per frame, normalised per channel with the training set's statistics
(`training.listener_windows.feature_statistics`).

- VQ-VAE: strided Conv1d encoder (log2(downsample) stride-2 stages) → latent [B, n, code_dim] → EMA vector
  quantizer (`quantize.VectorQuantizer`: k-means init, dead-code restart) → upsampling Conv1d decoder →
  [B, w, 83]. Loss: commitment + smooth-L1 reconstruction + ``velocity_weight`` · smooth-L1 of the frame
  differences (the velocity loss).
- Discrete diffusion (Gu et al. 2022, VQ-Diffusion): mask-and-replace transitions, per step a token keeps
  its value with probability α_t + β_t, becomes each other code with β_t and becomes [MASK] with γ_t
  ([MASK] is absorbing). As in the paper, the cumulative γ̄_t rises linearly to 0.9 and V·β̄_t to 0.1 over
  ``diffusion_steps`` (so ᾱ_t = 1 − t / T, and x_T is 90 % [MASK], 10 % uniform codes). q(x_t | x_0), the
  step transitions and the posterior q(x_s | x_t, x_0) are computed in closed form from (ᾱ, β̄, γ̄) — never
  as V×V matrices — for any s < t, so sampling may skip steps over the same schedule (`MaskReplaceProcess`).
- Denoiser: a transformer over the n tokens (diffusion step through adaptive LayerNorm) that cross-attends
  to the speaker context and predicts x_0 logits [B, n, V]. Training: the VLB term KL(q(x_{t−1}|x_t, x_0)
  ‖ p_θ(x_{t−1}|x_t)) (−log p_θ(x_0|x_1) at t = 1) plus ``aux_weight`` · cross-entropy on x_0.
- Speaker fusion (`SpeakerFusion`): per ``downsample``-frame group, three streams — MFCC with the prosody
  columns (energy, log F0, voicing, voice activity; the teacher listens to pitch, which MFCC alone blurs),
  the speaker's arkit58 face, its facial differential (frame-to-frame deltas) and, in a checkpoint trained
  with them (``text_dim`` > 0), transcript embeddings from a local text encoder (`features.text`; the
  group's mean) — absent modalities are a learned absence vector; the audio stream cross-attends to the
  other streams and they to it (cross-modal attention), the sum passes a transformer layer → context
  [B, n, width].
- Any length T: windows of n tokens starting every n − ``overlap_tokens`` tokens. All windows' tokens are
  sampled in two batched passes: even windows freely, then odd windows with the tokens they share with
  both neighbours pinned (token-level outpainting: at every step the pinned tokens are re-drawn from
  q(x_s | x_0 = pinned)). The whole token timeline is then decoded at once (in chunks with a halo wider
  than the decoder's reach), so a window join is as smooth as any other token boundary.
  Several inputs (`DiffListenerModel.generate_many`) share the denoiser calls, each drawing its noise from
  its own generator (`seeding.RowNoise`), so each gets exactly what it gets alone.

Training (`training.difflistener.make_train_plan`, shared trainer): the first ``vqvae_steps`` train the VQ-VAE; then it is
frozen and the fusion network and denoiser learn the diffusion loss on its tokens. The speaker's face is
dropped at random so that audio-only, face-only and audio+face conditioning all work, and so is the
transcript, so that a text-trained checkpoint also works without one. A corpus with transcript embeddings
(`listenerctl data synth --text-encoder`) gives ``text_dim`` its embedding size; the shipped demo is trained without.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from listenerctl.conditioning import Conditioning
from listenerctl.errors import ListenerctlError
from listenerctl.features.audio import AUDIO_FEATURE_DIM, N_MELS
from listenerctl.models.layers import (CrossAttentionLayer, PositionalEncoding, TimestepEmbedding, TransformerDecoder,
                                       TransformerEncoder)
from listenerctl.models.learned import LearnedGenerator
from listenerctl.models.quantize import VectorQuantizer
from listenerctl.models.seeding import RowNoise, as_row_noise, shared_calls
from listenerctl.models.speaker import speaker_tensors
from listenerctl.motion import ARKIT58_DIM, ARKIT58_EMOTION25_DIM, BLENDSHAPE_DIM, Motion, get_spec

NAME = "difflistener"
SPEC = get_spec("arkit58")
FPS = 25.0
AUDIO_COLUMNS = slice(N_MELS, AUDIO_FEATURE_DIM)      # MFCC (39) + energy, log F0, voiced, VAD
WINDOW_CHUNK = 64                                     # windows per batched denoiser call (bounds memory)
DECODE_CHUNK = 256                                    # tokens per decoder call
DECODE_HALO = 4                                       # extra tokens each side of a decoder chunk (> its reach)
GAMMA_BAR_END, REPLACE_END = 0.9, 0.1                 # VQ-Diffusion: masked / replaced shares at t = T


@dataclass(frozen=True)
class DiffListenerConfig:
    """Architecture, sampler and training settings; saved in the checkpoint card and rebuilt from it."""

    window: int = 128             # frames per generated window (w)
    downsample: int = 8           # frames per token (a power of 2)
    overlap_tokens: int = 2       # tokens shared by consecutive windows
    codebook: int = 256           # VQ codes (V)
    code_dim: int = 32
    vq_width: int = 64            # VQ-VAE convolution channels
    width: int = 64               # fusion and denoiser width
    heads: int = 4
    fusion_layers: int = 1
    denoiser_layers: int = 3
    time_dim: int = 64            # diffusion-step embedding size
    diffusion_steps: int = 100    # steps of the transition schedule
    steps: int = 100              # sampling steps (skip-step when fewer)
    aux_weight: float = 1.0       # weight of the auxiliary x_0 cross-entropy
    velocity_weight: float = 1.0  # weight of the VQ-VAE velocity loss (0 switches it off)
    commitment_weight: float = 0.25
    dead_after: int = 50          # steps unused before a code is restarted
    vqvae_steps: int = 1000       # training phase 1 (VQ-VAE); then phase 2 (diffusion)
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 100       # linear learning-rate warm-up at the start of each phase
    weight_decay: float = 0.01
    face_drop: float = 0.5        # chance of hiding a present speaker face in a training window
    audio_drop: float = 0.25      # chance of hiding the audio when the face is kept
    text_dim: int = 0             # transcript embedding channels (0: no transcript stream)
    text_drop: float = 0.3        # chance of hiding a present transcript in a training window

    def __post_init__(self) -> None:
        if self.downsample < 2 or self.downsample & (self.downsample - 1):
            raise ValueError(f"downsample must be a power of 2 from 2 up, got {self.downsample}")
        if self.window % self.downsample:
            raise ValueError(f"window ({self.window}) must be a multiple of downsample ({self.downsample})")
        if not 0 <= 2 * self.overlap_tokens < self.tokens:
            raise ValueError(f"overlap_tokens must be at least 0 and under half the {self.tokens} tokens of a "
                             f"window, got {self.overlap_tokens}")
        if not 1 <= self.steps <= self.diffusion_steps:
            raise ValueError(f"steps must be in 1 … {self.diffusion_steps}, got {self.steps}")

    @property
    def tokens(self) -> int:
        """Tokens per window (n)."""
        return self.window // self.downsample


# ---------------------------------------------------------------- VQ-VAE

class ResidualConv(nn.Module):
    """x + Conv1x1(GELU(Conv3(GELU(x)))) over [B, C, L] (edges replicated)."""

    def __init__(self, width: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=1, padding_mode="replicate")
        self.mix = nn.Conv1d(width, width, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mix(F.gelu(self.conv(F.gelu(x))))


class MotionEncoder(nn.Module):
    """Normalised frames [B, w, 83] → latents [B, w / downsample, code_dim] by stride-2 convolutions."""

    def __init__(self, cfg: DiffListenerConfig):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(ARKIT58_EMOTION25_DIM, cfg.vq_width, 3, padding=1,
                                             padding_mode="replicate")]
        for _ in range(int(math.log2(cfg.downsample))):
            layers += [nn.GELU(), nn.Conv1d(cfg.vq_width, cfg.vq_width, 4, stride=2, padding=1),
                       ResidualConv(cfg.vq_width)]
        layers += [nn.GELU(), nn.Conv1d(cfg.vq_width, cfg.code_dim, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, motion: Tensor) -> Tensor:
        return self.net(motion.transpose(1, 2)).transpose(1, 2)


class MotionDecoder(nn.Module):
    """Codes [B, n, code_dim] → normalised frames [B, n · downsample, 83]: per stage a residual convolution,
    nearest-neighbour upsampling by 2 and a 3-tap convolution that smooths the repeated frames."""

    def __init__(self, cfg: DiffListenerConfig):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(cfg.code_dim, cfg.vq_width, 3, padding=1, padding_mode="replicate")]
        for _ in range(int(math.log2(cfg.downsample))):
            layers += [ResidualConv(cfg.vq_width), nn.Upsample(scale_factor=2, mode="nearest"),
                       nn.Conv1d(cfg.vq_width, cfg.vq_width, 3, padding=1, padding_mode="replicate")]
        layers += [nn.GELU(), nn.Conv1d(cfg.vq_width, ARKIT58_EMOTION25_DIM, 3, padding=1, padding_mode="replicate")]
        self.net = nn.Sequential(*layers)

    def forward(self, codes: Tensor) -> Tensor:
        return self.net(codes.transpose(1, 2)).transpose(1, 2)


def velocity(x: Tensor) -> Tensor:
    """Frame-to-frame differences [B, w − 1, D] of [B, w, D]."""
    return x[:, 1:] - x[:, :-1]


def mean_abs_acceleration(x: Tensor) -> float:
    """Mean |x_{t+1} − 2 x_t + x_{t−1}| over every frame and channel of [B, w, D] (units of x per frame²)."""
    return float(velocity(velocity(x)).abs().mean())


# ---------------------------------------------------------------- discrete diffusion

class MaskReplaceProcess:
    """VQ-Diffusion's mask-and-replace forward process over V codes plus [MASK] (index V), t = 0 … T.

    Cumulative parameters per step t: ᾱ_t (token kept), γ̄_t (token masked), β̄_t = (1 − ᾱ_t − γ̄_t) / V
    (token replaced by each code, itself included), with ᾱ_0 = 1, γ̄_0 = 0. The transition from step s to
    t > s is again mask-and-replace with α = ᾱ_t / ᾱ_s, γ = 1 − (1 − γ̄_t) / (1 − γ̄_s) and
    β = (1 − α − γ) / V; for s = t − 1 these are the per-step α_t, β_t, γ_t.
    """

    def __init__(self, codebook: int, steps: int):
        self.codebook = codebook
        self.steps = steps
        ramp = torch.arange(steps + 1, dtype=torch.float64) / steps
        self.gamma_bar = (ramp * GAMMA_BAR_END).float()
        self.beta_bar = (ramp * REPLACE_END / codebook).float()
        self.alpha_bar = (1 - ramp * (GAMMA_BAR_END + REPLACE_END)).float()

    def _at(self, table: Tensor, t: Tensor) -> Tensor:
        return table.to(t.device)[t][:, None]              # [B, 1], broadcasts over the n tokens

    def noise(self, x0: Tensor, t: Tensor, generator: torch.Generator | RowNoise | None = None) -> Tensor:
        """A draw of x_t ~ q(x_t | x_0) for tokens ``x0`` [B, n] long at steps ``t`` [B] long (noise from
        ``generator``, a `RowNoise` for several inputs' rows, else the global RNG)."""
        alpha_bar, gamma_bar = self._at(self.alpha_bar, t), self._at(self.gamma_bar, t)
        if generator is None:
            u = torch.rand(x0.shape, device=x0.device)
            replaced = torch.randint(self.codebook, x0.shape, device=x0.device)
        else:
            rows = as_row_noise(generator, len(x0))
            u, replaced = rows.rand(x0.shape), rows.randint(self.codebook, x0.shape)
        x_t = torch.where(u < gamma_bar + alpha_bar, x0, replaced)
        return x_t.masked_fill(u < gamma_bar, self.codebook)

    def posterior_weights(self, p0: Tensor, x_t: Tensor, t: Tensor, s: Tensor) -> Tensor:
        """Unnormalised p(x_s | x_t) = Σ_{x_0} q(x_s | x_t, x_0) p0(x_0) [B, n, V + 1] for s < t, from the
        x_0 distribution ``p0`` [B, n, V] (rows summing to 1; one-hot gives the true q(x_s | x_t, x_0)).

        By Bayes, p(x_s = j | x_t) ∝ q(x_t | x_s = j) Σ_{x_0} q(x_s = j | x_0) p0(x_0) / q(x_t | x_0):
        for x_t = [MASK] that is γ (ᾱ_s p0(j) + β̄_s) for codes j and γ̄_s for [MASK]; for x_t = k it is
        (β + α [j = k]) (ᾱ_s r(j) + β̄_s Σ r) with r = p0 / (β̄_t + ᾱ_t [x_0 = k]), and 0 for [MASK]. Both are
        a per-row scale and offset of p0 with entry k corrected, so the cost is one pass over p0.
        """
        v = self.codebook
        alpha_bar_t, gamma_bar_t, beta_bar_t = (self._at(x, t)[..., None] for x in
                                                (self.alpha_bar, self.gamma_bar, self.beta_bar))
        alpha_bar_s, gamma_bar_s, beta_bar_s = (self._at(x, s)[..., None] for x in
                                                (self.alpha_bar, self.gamma_bar, self.beta_bar))
        alpha = alpha_bar_t / alpha_bar_s
        gamma = 1 - (1 - gamma_bar_t) / (1 - gamma_bar_s)
        beta = (1 - alpha - gamma) / v
        masked = (x_t == v)[..., None]                                    # [B, n, 1]
        k = x_t.clamp(max=v - 1)[..., None]
        p0_k = p0.gather(-1, k)
        r_k = p0_k / (beta_bar_t + alpha_bar_t)
        r_sum = (1 - p0_k) / beta_bar_t + r_k
        scale = torch.where(masked, gamma * alpha_bar_s, beta * alpha_bar_s / beta_bar_t)
        offset = torch.where(masked, gamma * beta_bar_s, beta * beta_bar_s * r_sum)
        codes = torch.addcmul(offset, scale, p0)
        at_k = torch.where(masked, codes.gather(-1, k), (beta + alpha) * (alpha_bar_s * r_k + beta_bar_s * r_sum))
        codes = codes.scatter(-1, k, at_k)
        return torch.cat([codes, torch.where(masked, gamma_bar_s, torch.zeros_like(gamma_bar_s))], dim=-1)

    def posterior(self, p0: Tensor, x_t: Tensor, t: Tensor, s: Tensor) -> Tensor:
        """`posterior_weights` normalised: p(x_s | x_t) [B, n, V + 1]."""
        weights = self.posterior_weights(p0, x_t, t, s)
        return weights / weights.sum(-1, keepdim=True)

    def timesteps(self, count: int) -> list[tuple[int, int]]:
        """``count`` (t, s) jumps from T down to 0 over the same schedule (count = T: every step)."""
        ticks = np.unique(np.round(np.linspace(0, self.steps, count + 1)).astype(int))[::-1]
        return list(zip(ticks[:-1].tolist(), ticks[1:].tolist()))


def draw(weights: Tensor, generator: torch.Generator | RowNoise) -> Tensor:
    """One category per row of ``weights`` [B, ..., C] (non-negative, any positive sum), with probability
    proportional to the weight, by inverting the cumulative sum with one uniform number per row (cheaper
    than `torch.multinomial` or Gumbel noise over every category); a `RowNoise` draws each input's rows."""
    cumulative = weights.cumsum(-1)
    u = as_row_noise(generator, len(weights)).rand((*weights.shape[:-1], 1)) * cumulative[..., -1:]
    return torch.searchsorted(cumulative, u, right=True).squeeze(-1).clamp_(max=weights.shape[-1] - 1)


# ---------------------------------------------------------------- speaker fusion and denoiser

class SpeakerFusion(nn.Module):
    """Speaker window → context [B, n, width], one position per token.

    Inputs (normalised, zeros where absent): audio [B, w, 43] (MFCC + prosody), face [B, w, 58] and its
    frame-to-frame deltas [B, w, 58]; flags has_audio / has_face [B]; with ``text_dim`` > 0 also
    transcript embeddings text [B, w, E] (zeros between units) and has_text [B]. Each stream groups
    ``downsample`` frames per position (text: the mean of the layer-normalised frame embeddings, so a
    group half in silence counts half); the audio stream cross-attends to the
    face, delta (and text) streams and they to it.
    """

    def __init__(self, cfg: DiffListenerConfig):
        super().__init__()
        self.group = cfg.downsample
        audio_dim = AUDIO_COLUMNS.stop - AUDIO_COLUMNS.start
        self.audio_in = nn.Linear(cfg.downsample * audio_dim, cfg.width)
        self.face_in = nn.Linear(cfg.downsample * ARKIT58_DIM, cfg.width)
        self.delta_in = nn.Linear(cfg.downsample * ARKIT58_DIM, cfg.width)
        self.text_in = nn.Linear(cfg.text_dim, cfg.width) if cfg.text_dim else None
        self.absent = nn.Parameter(torch.zeros(4 if cfg.text_dim else 3, cfg.width))  # audio, face, delta, text
        self.position = PositionalEncoding(cfg.width)
        self.audio_from_face = CrossAttentionLayer(cfg.width, cfg.width, cfg.heads)
        self.face_from_audio = CrossAttentionLayer(cfg.width, cfg.width, cfg.heads)
        self.mix = TransformerEncoder(cfg.width, cfg.fusion_layers, cfg.heads, mlp_ratio=2.0)

    def _stream(self, embedded: Tensor, present: Tensor, absent: Tensor) -> Tensor:
        """Positions [B, n, width] with ``absent`` where the ``present`` [B] flag is off."""
        keep = present.to(embedded.dtype)[:, None, None]
        return self.position(keep * embedded + (1 - keep) * absent)

    def _grouped(self, frames: Tensor) -> Tensor:
        """[B, w, d] → [B, n, downsample · d]: the frames of each token side by side."""
        b, w, d = frames.shape
        return frames.reshape(b, w // self.group, self.group * d)

    def forward(self, audio: Tensor, face: Tensor, has_audio: Tensor, has_face: Tensor,
                text: Tensor | None = None, has_text: Tensor | None = None) -> Tensor:
        delta = torch.cat([torch.zeros_like(face[:, :1]), velocity(face)], dim=1)
        inputs = [(self.audio_in(self._grouped(audio)), has_audio), (self.face_in(self._grouped(face)), has_face),
                  (self.delta_in(self._grouped(delta)), has_face)]
        if self.text_in is not None:      # each frame's embedding scaled to unit spread (silent frames stay 0)
            b, w, e = text.shape
            frames = F.layer_norm(text, (e,)).reshape(b, w // self.group, self.group, e)
            inputs.append((self.text_in(frames.mean(2)), has_text))
        streams = [self._stream(x, flag, self.absent[i]) for i, (x, flag) in enumerate(inputs)]
        sound, others = streams[0], torch.cat(streams[1:], dim=1)
        fused = self.audio_from_face(sound, others)
        for part in self.face_from_audio(others, sound).chunk(len(streams) - 1, dim=1):
            fused = fused + part
        return self.mix(fused)


class TokenDenoiser(nn.Module):
    """x_t tokens [B, n] (V = [MASK]), steps t [B] and context [B, n, width] → x_0 logits [B, n, V]."""

    def __init__(self, cfg: DiffListenerConfig):
        super().__init__()
        self.embed = nn.Embedding(cfg.codebook + 1, cfg.width)
        self.position = PositionalEncoding(cfg.width)
        self.time = TimestepEmbedding(cfg.time_dim)
        self.body = TransformerDecoder(cfg.width, cfg.denoiser_layers, cfg.heads, context_dim=cfg.width,
                                       mlp_ratio=2.0, causal=False, cond_dim=cfg.time_dim)
        self.out = nn.Linear(cfg.width, cfg.codebook)

    def forward(self, x_t: Tensor, t: Tensor, context: Tensor) -> Tensor:
        return self.out(self.body(self.position(self.embed(x_t)), context, cond=self.time(t)))


class DiffListenerModel(nn.Module):
    """VQ-VAE, fusion network, denoiser and the normalisation statistics (buffers, saved with the weights)."""

    def __init__(self, cfg: DiffListenerConfig):
        super().__init__()
        self.config = cfg
        self.encoder = MotionEncoder(cfg)
        self.quantizer = VectorQuantizer(cfg.codebook, cfg.code_dim, commitment_weight=cfg.commitment_weight,
                                         dead_after=cfg.dead_after)
        self.decoder = MotionDecoder(cfg)
        self.fusion = SpeakerFusion(cfg)
        self.denoiser = TokenDenoiser(cfg)
        self.process = MaskReplaceProcess(cfg.codebook, cfg.diffusion_steps)
        for name, size in (("motion", ARKIT58_EMOTION25_DIM), ("audio", AUDIO_FEATURE_DIM)):
            self.register_buffer(f"{name}_mean", torch.zeros(size))
            self.register_buffer(f"{name}_std", torch.ones(size))

    def vqvae_parameters(self) -> list[nn.Parameter]:
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def diffusion_parameters(self) -> list[nn.Parameter]:
        return [*self.fusion.parameters(), *self.denoiser.parameters()]

    # ---- VQ-VAE
    def vqvae_loss(self, batch: dict) -> dict:
        """Phase 1 on normalised listener frames [B, w, 83]: smooth-L1 reconstruction + velocity + commitment
        (the quantizer's EMA codebook update happens in its forward)."""
        target = batch["listener"]
        quantized, indices, commitment = self.quantizer(self.encoder(target))
        recon = self.decoder(quantized)
        reconstruction = F.smooth_l1_loss(recon, target)
        vel = F.smooth_l1_loss(velocity(recon), velocity(target))
        loss = reconstruction + self.config.velocity_weight * vel + commitment
        return {"loss": loss, "recon": reconstruction.detach(), "velocity": vel.detach(),
                "commitment": commitment.detach(), "usage": self.quantizer.usage(indices)}

    def tokenize(self, motion: Tensor) -> Tensor:
        """Normalised frames [B, w, 83] → tokens [B, w / downsample] (nearest code, codebook unchanged)."""
        latent = self.encoder(motion)
        return self.quantizer.nearest(latent.reshape(-1, latent.shape[-1])).view(latent.shape[:2])

    def decode_tokens(self, tokens: Tensor) -> Tensor:
        """Tokens [B, N] → normalised frames [B, N · downsample, 83], decoded `DECODE_CHUNK` tokens at a time
        with `DECODE_HALO` tokens of context each side (the same frames as one call over all N tokens)."""
        n, ds = tokens.shape[1], self.config.downsample
        parts = []
        for start in range(0, n, DECODE_CHUNK):
            lo, hi = max(0, start - DECODE_HALO), min(n, start + DECODE_CHUNK + DECODE_HALO)
            frames = self.decoder(self.quantizer.indices_to_codes(tokens[:, lo:hi]))
            keep = min(start + DECODE_CHUNK, n) - start
            parts.append(frames[:, (start - lo) * ds:(start - lo + keep) * ds])
        return torch.cat(parts, dim=1)

    @torch.no_grad()
    def vqvae_report(self, tiles: Tensor) -> dict[str, float]:
        """Held-out VQ-VAE quality on normalised windows ``tiles`` [N, w, 83]: reconstruction MSE (normalised
        units) and of its frame-to-frame differences, code usage (share of the V codes used) and perplexity,
        and the mean absolute acceleration of the decoded and the true arkit58 motion (own units per frame²)."""
        tokens = torch.cat([self.tokenize(chunk) for chunk in tiles.split(256)])
        recon = torch.cat([self.decode_tokens(chunk) for chunk in tokens.split(256)])
        counts = torch.bincount(tokens.flatten(), minlength=self.config.codebook).double()
        share = counts / counts.sum()
        entropy = -(share[share > 0] * share[share > 0].log()).sum()
        own_units = lambda x: (x * self.motion_std + self.motion_mean)[..., :ARKIT58_DIM]  # noqa: E731
        return {"recon_mse": float(F.mse_loss(recon, tiles)),
                "velocity_mse": float(F.mse_loss(velocity(recon), velocity(tiles))),
                "code_usage": self.quantizer.usage(tokens),
                "perplexity": float(entropy.exp()), "accel_decoded": mean_abs_acceleration(own_units(recon)),
                "accel_true": mean_abs_acceleration(own_units(tiles))}

    # ---- diffusion
    def context(self, audio: Tensor, face: Tensor, has_audio: Tensor, has_face: Tensor,
                text: Tensor | None = None, has_text: Tensor | None = None) -> Tensor:
        """Speaker context [B, n, width] from normalised audio [B, w, 123] and face [B, w, 83] windows and,
        for a model with a transcript stream, text embeddings [B, w, E] (None: no transcript)."""
        if self.config.text_dim and text is None:
            text = audio.new_zeros(*audio.shape[:2], self.config.text_dim)
            has_text = torch.zeros_like(has_audio)
        return self.fusion(audio[..., AUDIO_COLUMNS], face[..., :ARKIT58_DIM], has_audio, has_face, text, has_text)

    def diffusion_loss(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        """Phase 2: VLB term + ``aux_weight`` · x_0 cross-entropy on the frozen VQ-VAE's tokens of the
        listener windows, at steps t uniform in 1 … T (from ``generator``, else the global RNG)."""
        with torch.no_grad():
            x0 = self.tokenize(batch["listener"])
        context = self.context(batch["audio"], batch["face"], batch["has_audio"], batch["has_face"],
                               batch.get("text"), batch.get("has_text"))
        t = torch.randint(1, self.process.steps + 1, (len(x0),), generator=generator, device=x0.device)
        x_t = self.process.noise(x0, t, generator)
        logits = self.denoiser(x_t, t, context)
        p0 = logits.float().softmax(-1)
        model = self.process.posterior(p0, x_t, t, t - 1)
        true = self.process.posterior(F.one_hot(x0, self.config.codebook).float(), x_t, t, t - 1)
        tiny = torch.finfo(model.dtype).tiny
        kl = (true * (true.clamp_min(tiny).log() - model.clamp_min(tiny).log())).sum(-1).mean()
        ce = F.cross_entropy(logits.flatten(0, 1).float(), x0.flatten())
        return {"loss": kl + self.config.aux_weight * ce, "vlb": kl.detach(), "x0_ce": ce.detach()}

    @torch.no_grad()
    def sample_tokens(self, context: Tensor, generator: torch.Generator | RowNoise, steps: int,
                      pinned: Tensor | None = None, known: Tensor | None = None) -> Tensor:
        """Tokens [B, n] for contexts [B, n, width] by ``steps`` reverse jumps from x_T ~ q(x_T); where
        ``pinned`` [B, n] bool is True, x_s is re-drawn from q(x_s | x_0 = ``known``) after every jump, so
        those positions end exactly at ``known`` [B, n]. A `RowNoise` ``generator`` draws each input's rows."""
        b, n = context.shape[:2]
        device = context.device
        x = self.process.noise(torch.zeros(b, n, dtype=torch.long, device=device),
                               torch.full((b,), self.process.steps, device=device), generator)
        for t, s in self.process.timesteps(steps):
            t_batch = torch.full((b,), t, device=device)
            s_batch = torch.full((b,), s, device=device)
            if pinned is not None:
                x = torch.where(pinned, self.process.noise(known, t_batch, generator), x)
            p0 = self.denoiser(x, t_batch, context).float().softmax(-1)
            x = draw(self.process.posterior_weights(p0, x, t_batch, s_batch), generator)
        return torch.where(pinned, known, x) if pinned is not None else x

    @torch.inference_mode()
    def generate_many(self, speakers: list[tuple[Tensor | None, Tensor | None, tuple[Tensor, Tensor] | None]],
                      num_samples: int, generators: list[torch.Generator], steps: int) -> list[Tensor]:
        """K = ``num_samples`` listener motions [K, T_i, 83] (own units) per speaker (audio [T_i, 123] and/or
        face [T_i, 83] on the model's device, any T_i >= 1, and optionally transcript embeddings text =
        (table [U + 1, E] ending in a zero row, rows [T_i] long into it)), speaker i's noise from
        ``generators[i]``: contexts per window (`speaker_contexts`), tokens of all speakers' windows sampled
        together (`sample_timelines`), each timeline decoded in one pass. Each motion is what the speaker
        alone gives with its generator."""
        contexts = [self.speaker_contexts(*speaker) for speaker in speakers]
        timelines = self.sample_timelines(contexts, num_samples, generators, steps)
        motions = []
        for tokens, (audio, face, _) in zip(timelines, speakers):
            total = (audio if audio is not None else face).shape[0]
            motion = self.decode_tokens(tokens)[:, :total] * self.motion_std + self.motion_mean
            motion[..., :BLENDSHAPE_DIM].clamp_(0.0, 1.0)
            motions.append(motion)
        return motions

    def speaker_contexts(self, audio: Tensor | None, face: Tensor | None,
                         text: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Contexts [W, n, width] of the W windows covering raw speaker audio [T, 123] and/or face [T, 83]
        (and transcript ``text`` as in `generate_many`): speaker padded (last frame repeated; no words) to
        whole windows, `WINDOW_CHUNK` windows per fusion call."""
        cfg = self.config
        total = (audio if audio is not None else face).shape[0]
        n, shift = cfg.tokens, cfg.tokens - cfg.overlap_tokens
        count = 1 + math.ceil(max(math.ceil(total / cfg.downsample) - n, 0) / shift)
        frames = (n + (count - 1) * shift) * cfg.downsample
        audio_n, face_n, has_audio, has_face = self._padded_speaker(audio, face, frames)
        starts = torch.arange(count, device=audio_n.device) * shift * cfg.downsample
        rows = starts[:, None] + torch.arange(cfg.window, device=audio_n.device)
        if text is not None:
            table, text_rows = text[0].to(audio_n.device, torch.float32), text[1].to(audio_n.device)
            text_rows = torch.cat([text_rows, text_rows.new_full((frames - total,), len(table) - 1)])
        return torch.cat([self.context(audio_n[r], face_n[r], has_audio.expand(len(r)), has_face.expand(len(r)),
                                       None if text is None else table[text_rows[r]],
                                       None if text is None else torch.ones_like(has_audio).expand(len(r)))
                          for r in rows.split(WINDOW_CHUNK)])

    def sample_timelines(self, contexts: list[Tensor], num_samples: int, generators: list[torch.Generator],
                         steps: int) -> list[Tensor]:
        """Tokens [K, N_i] of each speaker's W_i consecutive windows (N_i = n + (W_i − 1)(n − overlap_tokens))
        from their contexts [W_i, n, width], all K samples of many windows per denoiser call: even windows
        first, then odd windows with the tokens shared with their (already sampled) neighbours pinned.

        Alone, a speaker's windows of one parity are sampled `WINDOW_CHUNK` at a time, each chunk drawing
        its noise in turn. Several speakers go in rounds, round j holding each speaker's j-th chunk of the
        parity, and a round's chunks share denoiser calls (up to `WINDOW_CHUNK` windows, `RowNoise` drawing
        each chunk's rows from its speaker's generator): every generator sees the draws of its speaker
        alone, in the same order and shapes, so each timeline is the one sampled alone."""
        cfg, k = self.config, num_samples
        n, shift = cfg.tokens, cfg.tokens - cfg.overlap_tokens
        device = contexts[0].device
        rows = [torch.arange(len(c), device=device)[:, None] * shift + torch.arange(n, device=device)
                for c in contexts]
        timelines = [torch.zeros(k, (len(c) - 1) * shift + n, dtype=torch.long, device=device) for c in contexts]
        covered = [torch.zeros(t.shape[1], dtype=torch.bool, device=device) for t in timelines]
        for parity in (0, 1):
            chunks = [[(i, chunk) for chunk in torch.arange(parity, len(c), 2, device=device).split(WINDOW_CHUNK)
                       if len(chunk)] for i, c in enumerate(contexts)]
            for round_chunks in itertools.zip_longest(*chunks):
                for call in shared_calls([c for c in round_chunks if c is not None], k, WINDOW_CHUNK):
                    window_rows = [rows[i][chunk] for i, chunk in call]
                    context = torch.cat([contexts[i][chunk].repeat_interleave(k, dim=0) for i, chunk in call])
                    known = torch.cat([timelines[i][:, r].transpose(0, 1).flatten(0, 1)          # [len(chunk)·K, n]
                                       for (i, _), r in zip(call, window_rows)])
                    pinned = torch.cat([covered[i][r].repeat_interleave(k, dim=0)
                                        for (i, _), r in zip(call, window_rows)])
                    noise = RowNoise([(generators[i], len(chunk) * k) for i, chunk in call])
                    drawn = self.sample_tokens(context, noise, steps, pinned if parity else None, known)
                    for (i, chunk), r, part in zip(call, window_rows, drawn.split([len(c) * k for _, c in call])):
                        timelines[i][:, r] = part.view(len(chunk), k, n).transpose(0, 1)
            for i, r in enumerate(rows):
                covered[i][r[parity::2].flatten()] = True
        return timelines

    def _padded_speaker(self, audio: Tensor | None, face: Tensor | None, frames: int) -> tuple[Tensor, ...]:
        """Normalised audio [frames, 123] and face [frames, 83] (zeros where absent, last frame repeated
        up to ``frames``) and the presence flags [1]."""
        device = self.motion_mean.device

        def padded(x: Tensor | None, dim: int, mean: Tensor, std: Tensor) -> Tensor:
            if x is None:
                return torch.zeros(frames, dim, device=device)
            x = (x.to(device, torch.float32) - mean) / std
            return torch.cat([x, x[-1:].expand(frames - len(x), -1)])

        flag = lambda x: torch.tensor([x is not None], device=device)  # noqa: E731
        return (padded(audio, AUDIO_FEATURE_DIM, self.audio_mean, self.audio_std),
                padded(face, ARKIT58_EMOTION25_DIM, self.motion_mean, self.motion_std), flag(audio), flag(face))


class DiffListener(LearnedGenerator):
    """The registered ``difflistener`` generator: a trained `DiffListenerModel`; ``steps`` (reverse jumps
    over the 100-step schedule) defaults to the checkpoint's config."""

    name = NAME
    spec = "arkit58"
    fps = FPS
    network = DiffListenerModel
    config_class = DiffListenerConfig

    def configure(self, steps: int | None = None) -> None:
        self.steps = self.config.steps if steps is None else int(steps)
        if not 1 <= self.steps <= self.config.diffusion_steps:
            raise ListenerctlError(f"difflistener sampling steps must be in 1 … {self.config.diffusion_steps}, "
                                   f"got {self.steps}.")

    def sampling_settings(self) -> dict:
        return {"sampling_steps": self.steps}

    @property
    def text_dim(self) -> int:
        return self.config.text_dim

    def generate(self, cond: Conditioning, num_samples: int, seed: int) -> Motion:
        return self.generate_many([cond], num_samples, [seed])[0]

    def generate_many(self, conds: list[Conditioning], num_samples: int, seeds: list[int]) -> list[Motion]:
        """Inputs sampled together (`DiffListenerModel.generate_many`), each from its own seeded generator."""
        self.check_requests(conds, num_samples, seeds)
        speakers = [(*speaker_tensors(cond, self.device), None if cond.text is None else
                     (torch.from_numpy(cond.text.table()), torch.from_numpy(cond.text.rows()))) for cond in conds]
        motions = self.model.generate_many(speakers, num_samples,
                                           [torch.Generator(self.device).manual_seed(seed) for seed in seeds],
                                           self.steps)
        return [Motion(motion[..., :ARKIT58_DIM].cpu().numpy(), self.spec, cond.fps)
                for motion, cond in zip(motions, conds)]
