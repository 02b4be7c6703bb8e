"""Latent Behavior Diffusion (LBD) listener: a context-aware autoencoder over 50-frame windows and a
conditional latent diffusion model in its latent space (DESIGN §5, row lbd).

Shapes: B windows in a batch, w = ``window`` frames (50 at 25 fps), n = w / ``stride`` latent tokens,
c = ``latent_dim`` channels per token. Listener behaviour is arkit58 + emotion25 = 83 features per frame,
normalised per channel with the training set's mean and standard deviation.

- Encoder Er (2 transformer layers, 4 heads): frames [B, w, 83], grouped ``stride`` frames per token, →
  latent [B, n, c]. The latent stays time-aligned so consecutive windows can share (pin) overlap tokens.
- Decoder Dr: latent [B, n, c] → frames [B, w, 83], arkit58 and emotion25 together. The paper's second
  decoder Df (a VQ branch to 3DMM coefficients for its renderer) is folded into Dr: arkit58 is already
  the renderer's input, so Dr's arkit58 half plays that role and no codebook is needed.
- The speaker window goes through the same Er: its audio features [w, 123] by a small MLP and its face
  (arkit58 + emotion25) by the listener's own input projection, both into Er's input space; absent
  modalities are zero with a learned presence vector. The result is the semantic code z_sem [B, n, c].
- Denoiser: a 10-layer MLP on the flattened latent window with its input (z_t, z_sem, listener style,
  diffusion-step embedding) concatenated at every layer; it predicts the noise epsilon as a correction to
  the linear estimate √(1 − ᾱ_t) z_t. Sampling: PLMS (order 4) with 50 steps by default, or DDIM.
- Listener style (added to the paper): a reaction's mean latent [c], given to the denoiser in training;
  at generation each of the K samples draws one style from a Gaussian fitted to the training reactions
  and keeps it for its whole length, so a sample keeps one resting expression across windows as a
  person does (without it, every window redrew it and the smile level wandered every 1.6 s).
- Any length T: windows starting every ``window − overlap`` frames. Their latents are sampled in two
  batched passes (`sample_latents`): even windows freely, then odd windows with the tokens shared with
  both neighbours pinned at every step; all windows are decoded and cross-faded (`windows.outpaint`).
  Network calls take at most `WINDOW_CHUNK` windows × K samples, so memory is bounded apart from the
  output itself.

Training (`training.lbd.make_train_plan`, shared trainer) has two phases switched by ``on_step``: the first
``autoencoder_steps`` train Er/Dr on reconstruction (MSE on the normalised features) while tracking the
latent's per-channel mean and spread; afterwards Er/Dr are frozen, the training reactions' styles and
their Gaussian are computed, and the denoiser and the speaker branch (audio MLP, presence vectors) learn
the epsilon MSE, the speaker window still passing through Er's frozen weights. The speaker's face is
dropped at random so that audio-only, face-only and audio+face conditioning all work.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from listenerctl.conditioning import Conditioning
from listenerctl.errors import ListenerctlError
from listenerctl.features.audio import AUDIO_FEATURE_DIM
from listenerctl.models.diffusion import DDIMSampler, NoiseSchedule, PLMSSampler, Sampler, sample
from listenerctl.models.seeding import RowNoise, shared_calls
from listenerctl.models.layers import PositionalEncoding, TimestepEmbedding, TransformerEncoder
from listenerctl.models.learned import LearnedGenerator
from listenerctl.models.speaker import speaker_tensors
from listenerctl.models.windows import WINDOW_ORDERS, outpaint, plan_windows
from listenerctl.motion import ARKIT58_DIM, ARKIT58_EMOTION25_DIM, BLENDSHAPE_DIM, Motion, get_spec

NAME = "lbd"
SPEC = get_spec("arkit58")
FPS = 25.0
SAMPLERS = ("plms", "ddim")
WINDOW_CHUNK = 64                                     # windows per batched network call (bounds memory)
FRAME_KERNEL = 5                                      # frames seen by Dr's last (frame-rate) layer


@dataclass(frozen=True)
class LBDConfig:
    """Architecture, sampler and training settings; saved in the checkpoint card and rebuilt from it."""

    window: int = 50              # frames per window (w)
    stride: int = 5               # frames per latent token
    overlap: int = 10             # frames shared by consecutive windows (a multiple of stride)
    latent_dim: int = 8           # channels per latent token (c)
    width: int = 96               # Er / Dr transformer width
    frame_width: int = 64         # Dr's per-frame features before its last layer
    heads: int = 4
    encoder_layers: int = 2
    decoder_layers: int = 2
    denoiser_layers: int = 10
    denoiser_width: int = 128
    time_dim: int = 64            # diffusion-step embedding size
    schedule: str = "linear"
    diffusion_steps: int = 1000   # steps of the training noise schedule
    sampler: str = "plms"
    steps: int = 50               # sampling steps
    autoencoder_steps: int = 1200  # training phase 1 (reconstruction); then phase 2 (diffusion)
    batch_size: int = 64
    noise_repeats: int = 16       # noise draws per latent window in phase 2
    lr: float = 1e-3
    warmup_steps: int = 100       # linear learning-rate warm-up at the start of each phase
    weight_decay: float = 0.01
    face_drop: float = 0.5        # chance of hiding a present speaker face in a training window
    audio_drop: float = 0.25      # chance of hiding the audio when the face is kept
    latent_momentum: float = 0.02  # EMA rate of the latent statistics in phase 1

    def __post_init__(self) -> None:
        if self.window % self.stride or self.overlap % self.stride:
            raise ValueError(f"window ({self.window}) and overlap ({self.overlap}) must be multiples of the "
                             f"stride ({self.stride})")
        if not 0 <= 2 * self.overlap < self.window:
            raise ValueError(f"overlap must be at least 0 and under half the window ({self.window} frames), "
                             f"got {self.overlap}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; use one of {', '.join(SAMPLERS)}")

    @property
    def tokens(self) -> int:
        """Latent tokens per window (n)."""
        return self.window // self.stride


class BehaviourEncoder(nn.Module):
    """Er: frames → latent. A window's frames are grouped ``stride`` at a time into n tokens of Er's input
    space [B, n, width]; a transformer over the n tokens, then a linear map, gives the latent [B, n, c].
    Listener (or speaker-face) frames enter through `embed_motion`, speaker audio through `embed_speaker`."""

    def __init__(self, cfg: LBDConfig):
        super().__init__()
        self.stride = cfg.stride
        self.motion_in = nn.Linear(cfg.stride * ARKIT58_EMOTION25_DIM, cfg.width)
        self.audio_in = nn.Sequential(nn.Linear(cfg.stride * AUDIO_FEATURE_DIM, cfg.width), nn.GELU(),
                                      nn.Linear(cfg.width, cfg.width))
        self.presence = nn.Parameter(torch.zeros(2, cfg.width))  # added where speaker audio / face is present
        self.position = PositionalEncoding(cfg.width)
        self.body = TransformerEncoder(cfg.width, cfg.encoder_layers, cfg.heads, mlp_ratio=2.0)
        self.to_latent = nn.Linear(cfg.width, cfg.latent_dim)

    def speaker_parameters(self) -> list[nn.Parameter]:
        """The speaker branch, trained in phase 2 while the rest of Er stays frozen."""
        return [*self.audio_in.parameters(), self.presence]

    def _grouped(self, frames: Tensor) -> Tensor:
        b, w, d = frames.shape
        return frames.reshape(b, w // self.stride, self.stride * d)

    def embed_motion(self, motion: Tensor) -> Tensor:
        """Normalised arkit58 + emotion25 frames [B, w, 83] → tokens [B, n, width]."""
        return self.motion_in(self._grouped(motion))

    def embed_speaker(self, audio: Tensor, face: Tensor, has_audio: Tensor, has_face: Tensor) -> Tensor:
        """Normalised audio [B, w, 123] and face [B, w, 83] (zeros where absent), flags [B] → [B, n, width]."""
        a, f = has_audio.to(audio.dtype)[:, None, None], has_face.to(face.dtype)[:, None, None]
        return (a * (self.audio_in(self._grouped(audio)) + self.presence[0])
                + f * (self.embed_motion(face) + self.presence[1]))

    def forward(self, tokens: Tensor) -> Tensor:
        """[B, n, width] → [B, n, c]."""
        return self.to_latent(self.body(self.position(tokens)))


class BehaviourDecoder(nn.Module):
    """Dr: latent [B, n, c] → normalised arkit58 + emotion25 frames [B, n · stride, 83]: a transformer over
    the n tokens, each token mapped linearly to ``stride`` frames of ``frame_width`` features, then a
    convolution over frames (kernel `FRAME_KERNEL`, edges replicated) that joins neighbouring tokens
    smoothly (without it every token boundary is a step)."""

    def __init__(self, cfg: LBDConfig):
        super().__init__()
        self.frame_width = cfg.frame_width
        self.from_latent = nn.Linear(cfg.latent_dim, cfg.width)
        self.position = PositionalEncoding(cfg.width)
        self.body = TransformerEncoder(cfg.width, cfg.decoder_layers, cfg.heads, mlp_ratio=2.0)
        self.to_frames = nn.Linear(cfg.width, cfg.stride * cfg.frame_width)
        self.to_motion = nn.Conv1d(cfg.frame_width, ARKIT58_EMOTION25_DIM, FRAME_KERNEL, padding=FRAME_KERNEL // 2,
                                   padding_mode="replicate")

    def forward(self, latent: Tensor) -> Tensor:
        frames = self.to_frames(self.body(self.position(self.from_latent(latent))))
        frames = F.gelu(frames.reshape(latent.shape[0], -1, self.frame_width))
        return self.to_motion(frames.transpose(1, 2)).transpose(1, 2)


class SkipMLPDenoiser(nn.Module):
    """Epsilon network: ``depth`` layers, layer i computing h_i = h_{i−1} + SiLU(W_i [LN(h_{i−1}), x]) with
    the input x = [z_t, cond, step embedding] concatenated at every layer (h_0 = SiLU(W_0 x)), then a
    zero-initialised linear output. Each W_i [h, x] is computed as W_i^h h + W_i^x x, and the input's share
    W_i^x x of all layers as three matrix products (z_t, cond, step), so that a sampler computes the cond
    and step shares once per window and per step (`condition`), not once per network call."""

    def __init__(self, latent_size: int, cond_size: int, width: int, depth: int, time_dim: int):
        super().__init__()
        self.depth = depth
        self.time = TimestepEmbedding(time_dim)
        self.latent_in = nn.Linear(latent_size, depth * width)
        self.cond_in = nn.Linear(cond_size, depth * width, bias=False)
        self.time_in = nn.Linear(time_dim, depth * width, bias=False)
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(depth - 1))
        self.hidden = nn.ModuleList(nn.Linear(width, width, bias=False) for _ in range(depth - 1))
        self.out = nn.Linear(width, latent_size)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def condition(self, cond: Tensor | None = None, t: Tensor | None = None) -> Tensor:
        """The input share [B, depth · width] of ``cond`` [B, C], of steps ``t`` [B], or of both."""
        shares = []
        if cond is not None:
            shares.append(self.cond_in(cond))
        if t is not None:
            shares.append(self.time_in(self.time(t)))
        return sum(shares)

    def forward(self, z_t: Tensor, condition: Tensor) -> Tensor:
        """z_t [B, L] and `condition` [B, depth · width] → predicted noise [B, L]."""
        skips = (self.latent_in(z_t) + condition).chunk(self.depth, dim=-1)
        h = F.silu(skips[0])
        for norm, layer, skip in zip(self.norms, self.hidden, skips[1:]):
            h = h + F.silu(layer(norm(h)) + skip)
        return self.out(h)


class LatentBehaviorDiffusion(nn.Module):
    """Er, Dr, the denoiser and the normalisation statistics (buffers, saved with the weights)."""

    def __init__(self, cfg: LBDConfig):
        super().__init__()
        self.config = cfg
        latent_size = cfg.tokens * cfg.latent_dim
        self.encoder = BehaviourEncoder(cfg)
        self.decoder = BehaviourDecoder(cfg)
        self.denoiser = SkipMLPDenoiser(latent_size, latent_size + cfg.latent_dim, cfg.denoiser_width,
                                        cfg.denoiser_layers, cfg.time_dim)
        self.schedule = NoiseSchedule(cfg.schedule, cfg.diffusion_steps, prediction="epsilon")
        for name, size in (("motion", ARKIT58_EMOTION25_DIM), ("audio", AUDIO_FEATURE_DIM), ("latent", cfg.latent_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(size))
            self.register_buffer(f"{name}_std", torch.ones(size))
        self.register_buffer("style_mean", torch.zeros(cfg.latent_dim))
        self.register_buffer("style_scale", torch.eye(cfg.latent_dim))

    def autoencoder_parameters(self) -> list[nn.Parameter]:
        speaker = {id(p) for p in self.encoder.speaker_parameters()}
        return [p for p in [*self.encoder.parameters(), *self.decoder.parameters()] if id(p) not in speaker]

    def diffusion_parameters(self) -> list[nn.Parameter]:
        return [*self.denoiser.parameters(), *self.encoder.speaker_parameters()]

    # ---- normalisation
    def normalise_motion(self, motion: Tensor) -> Tensor:
        return (motion - self.motion_mean) / self.motion_std

    def normalise_audio(self, audio: Tensor) -> Tensor:
        return (audio - self.audio_mean) / self.audio_std

    def encode_listener(self, motion: Tensor) -> Tensor:
        """Normalised listener frames [B, w, 83] → normalised latent [B, n, c] (the diffusion's space)."""
        return (self.encoder(self.encoder.embed_motion(motion)) - self.latent_mean) / self.latent_std

    def decode(self, latent: Tensor) -> Tensor:
        """Normalised latent [B, n, c] → arkit58 + emotion25 frames [B, w, 83] in their own units."""
        frames = self.decoder(latent * self.latent_std + self.latent_mean)
        return frames * self.motion_std + self.motion_mean

    def semantic_code(self, audio: Tensor, face: Tensor, has_audio: Tensor, has_face: Tensor) -> Tensor:
        """z_sem [B, n · c] of normalised speaker windows (see `BehaviourEncoder.embed_speaker`)."""
        return self.encoder(self.encoder.embed_speaker(audio, face, has_audio, has_face)).flatten(1)

    def predict_noise(self, z_t: Tensor, t: Tensor, condition: Tensor) -> Tensor:
        """Epsilon [B, L] for noised latents z_t [B, L] at steps ``t`` [B]: the Gaussian-optimal linear
        estimate √(1 − ᾱ_t) z_t (exact for unit-variance latents) plus the denoiser's correction, so that the
        network need not learn the near-identity map of high noise levels."""
        scale = (1 - self.schedule.alphas_cumprod.to(z_t.device)[t]).sqrt().to(z_t.dtype)[:, None]
        return scale * z_t + self.denoiser(z_t, condition)

    # ---- training losses
    def reconstruction_loss(self, batch: dict) -> dict:
        """Phase 1: MSE of Dr(Er(x)) on normalised frames; updates the latent statistics (EMA)."""
        latent = self.encoder(self.encoder.embed_motion(batch["listener"]))
        recon = self.decoder(latent)
        with torch.no_grad():
            flat = latent.detach().reshape(-1, latent.shape[-1])
            rate = self.config.latent_momentum
            self.latent_mean.lerp_(flat.mean(dim=0), rate)
            self.latent_std.lerp_(flat.std(dim=0).clamp_min(1e-4), rate)
        mse = F.mse_loss(recon, batch["listener"])
        return {"loss": mse, "recon": mse.detach()}

    @torch.no_grad()
    def reaction_styles(self, tiles: Tensor) -> Tensor:
        """Styles [R, c] of R listener reactions given as J whole windows each, ``tiles`` [R, J, w, 83]
        (normalised frames): each reaction's mean normalised latent."""
        latents = torch.cat([self.encode_listener(chunk) for chunk in tiles.flatten(0, 1).split(WINDOW_CHUNK * 4)])
        return latents.view(*tiles.shape[:2], -1, latents.shape[-1]).mean(dim=(1, 2))

    @torch.no_grad()
    def fit_style_prior(self, styles: Tensor) -> None:
        """Fit the Gaussian that generation draws styles from to ``styles`` [R, c]: ``style_mean`` and
        ``style_scale``, the Cholesky factor of the covariance (plus 1e-4 on the diagonal)."""
        eye = torch.eye(styles.shape[1], device=styles.device)
        covariance = torch.cov(styles.T).reshape(eye.shape) if len(styles) > 1 else torch.zeros_like(eye)
        self.style_mean.copy_(styles.mean(dim=0))
        self.style_scale.copy_(torch.linalg.cholesky(covariance + 1e-4 * eye))

    def draw_styles(self, num_samples: int, generator: torch.Generator) -> Tensor:
        """K listener styles [K, c] from the fitted Gaussian."""
        noise = torch.randn(num_samples, len(self.style_mean), generator=generator, device=self.style_mean.device)
        return self.style_mean + noise @ self.style_scale.T

    def diffusion_loss(self, batch: dict, generator: torch.Generator | None = None) -> dict:
        """Phase 2: epsilon MSE on the frozen Er's listener latents, conditioned on z_sem and the
        reaction's style ``batch["style"]`` [B, c] (noise and steps from ``generator``, else the global RNG)."""
        with torch.no_grad():
            z0 = self.encode_listener(batch["listener"]).flatten(1)
        z_sem = self.semantic_code(batch["audio"], batch["face"], batch["has_audio"], batch["has_face"])
        cond = torch.cat([z_sem, batch["style"]], dim=-1)
        repeats = self.config.noise_repeats
        z0, cond = z0.repeat(repeats, 1), cond.repeat(repeats, 1)
        z_t, t, noise = self.schedule.training_example(z0, generator)
        mse = F.mse_loss(self.predict_noise(z_t, t, self.denoiser.condition(cond, t)), noise)
        return {"loss": mse, "eps": mse.detach()}

    # ---- generation
    def make_sampler(self, name: str) -> Sampler:
        if name not in SAMPLERS:
            raise ListenerctlError(f"unknown sampler {name!r} for lbd; use one of {', '.join(SAMPLERS)}.")
        return PLMSSampler(self.schedule, order=4) if name == "plms" else DDIMSampler(self.schedule)

    @torch.no_grad()
    def generate(self, audio: Tensor | None, face: Tensor | None, num_samples: int, generator: torch.Generator,
                 steps: int, sampler: str, windows: str = "parallel") -> Tensor:
        """K = ``num_samples`` listener motions [K, T, 83] (own units) for raw speaker features, audio
        [T, 123] and/or face [T, 83] on the model's device, any T >= 1.

        The speaker features are padded (last frame repeated) to a whole number of windows that start
        every ``window − overlap`` frames; each window's z_sem comes from Er, its latent from
        `sample_latents` (``windows`` says in which order), its frames from Dr, and the decoded windows
        are cross-faded over their overlaps (`windows.outpaint`).
        """
        return self.generate_many([(audio, face)], num_samples, [generator], steps, sampler, windows)[0]

    @torch.no_grad()
    def generate_many(self, speakers: list[tuple[Tensor | None, Tensor | None]], num_samples: int,
                      generators: list[torch.Generator], steps: int, sampler: str,
                      windows: str = "parallel") -> list[Tensor]:
        """`generate` for several speakers (audio, face) at once, each with its own generator: their windows
        are sampled in shared denoiser batches, and each result equals what `generate` gives it alone."""
        cfg = self.config
        hop = cfg.window - cfg.overlap
        totals, plans, codes = [], [], []
        for audio, face in speakers:
            total = (audio if audio is not None else face).shape[0]
            frames = cfg.window + math.ceil(max(total - cfg.window, 0) / hop) * hop
            audio_n, face_n, has_audio, has_face = self._padded_speaker(audio, face, frames)
            plan = plan_windows(frames, cfg.window, cfg.overlap)
            rows = torch.tensor([start for start, _ in plan], device=audio_n.device)[:, None] + torch.arange(
                cfg.window, device=audio_n.device)
            codes.append(torch.cat([self.semantic_code(audio_n[r], face_n[r], has_audio.expand(len(r)),
                                                       has_face.expand(len(r))) for r in rows.split(WINDOW_CHUNK)]))
            totals.append(total)
            plans.append(plan)
        styles = [self.draw_styles(num_samples, generator) for generator in generators]
        motions = []
        for total, plan, latents in zip(totals, plans, self.sample_latents(codes, styles, generators, steps,
                                                                          sampler, windows)):
            decoded = torch.cat([self.decode(z.flatten(0, 1)) for z in latents.split(WINDOW_CHUNK)])
            decoded = decoded.view(len(plan), num_samples, cfg.window, ARKIT58_EMOTION25_DIM)
            index = {start: i for i, (start, _) in enumerate(plan)}
            motion = outpaint(lambda start, end, known, mask: decoded[index[start]], plan[-1][1], cfg.window,
                              cfg.overlap)[:, :total]
            motion[..., :BLENDSHAPE_DIM].clamp_(0.0, 1.0)
            motions.append(motion)
        return motions

    def sample_latents(self, codes: list[Tensor], styles: list[Tensor], generators: list[torch.Generator],
                       steps: int, sampler: str, windows: str = "parallel") -> list[Tensor]:
        """For each input i, normalised latents [W_i, K, n, c] of its W_i consecutive windows (overlapping
        by ``overlap / stride`` tokens) from their z_sem ``codes[i]`` [W_i, n · c] and its K samples'
        ``styles[i]`` [K, c], with noise from ``generators[i]``; all K samples of many windows (of all
        inputs) in one batch: in each pass, round j holds every input's j-th chunk of `WINDOW_CHUNK` windows,
        and a round's chunks share calls as `seeding.shared_calls` groups them.

        ``windows="parallel"``: two passes, the even windows, which do not overlap each other, sampled
        freely, then the odd windows with the tokens they share with their neighbours pinned to the
        neighbours' values at every step (`diffusion.sample` inpainting), so every overlap holds one
        latent seen by both windows. ``"sequential"``: one window after another, each with its overlap
        with the previous window pinned (outpainting, as FOPPAS does with frames).
        """
        if windows not in WINDOW_ORDERS:
            raise ListenerctlError(f"unknown window order {windows!r} for lbd; use one of {', '.join(WINDOW_ORDERS)}.")
        cfg, k = self.config, len(styles[0])
        n, c, shift = cfg.tokens, cfg.latent_dim, (cfg.window - cfg.overlap) // cfg.stride
        device = codes[0].device
        rows = [torch.arange(len(code), device=device)[:, None] * shift + torch.arange(n, device=device)
                for code in codes]
        timelines = [code.new_zeros(k, (len(code) - 1) * shift + n, c) for code in codes]
        covered = [torch.zeros(t.shape[1], dtype=torch.bool, device=device) for t in timelines]
        chosen = self.make_sampler(sampler)
        chosen.set_timesteps(steps)
        step_share = dict(zip(chosen.timesteps, self.denoiser.condition(
            t=torch.tensor(chosen.timesteps, device=device))))
        longest = max(len(code) for code in codes)
        passes = [[torch.arange(parity, len(code), 2, device=device) for code in codes] for parity in (0, 1)] \
            if windows == "parallel" else [[torch.arange(i, min(i + 1, len(code)), device=device) for code in codes]
                                           for i in range(longest)]
        for members in passes:
            chunks = [[(i, chunk) for chunk in m.split(WINDOW_CHUNK) if len(chunk)] for i, m in enumerate(members)]
            for round_chunks in itertools.zip_longest(*chunks):
                for part in shared_calls([c for c in round_chunks if c is not None], k, WINDOW_CHUNK):
                    cond = torch.cat([torch.cat([codes[i][chunk].repeat_interleave(k, dim=0),
                                                 styles[i].repeat(len(chunk), 1)], dim=-1) for i, chunk in part])
                    cond_share = self.denoiser.condition(cond)

                    def predict_noise(z_t: Tensor, t: Tensor) -> Tensor:
                        return self.predict_noise(z_t.flatten(1), t, cond_share + step_share[int(t[0])]).view_as(z_t)

                    pinned = None
                    if covered[part[0][0]][rows[part[0][0]][part[0][1]]].any():
                        pinned = tuple(torch.cat(v) for v in zip(*[
                            (timelines[i][:, rows[i][chunk]].transpose(0, 1).flatten(0, 1),
                             covered[i][rows[i][chunk]].repeat_interleave(k, dim=0)[..., None]) for i, chunk in part]))
                    noise = RowNoise([(generators[i], len(chunk) * k) for i, chunk in part])
                    drawn = sample(predict_noise, (noise.rows, n, c), chosen, steps, noise, inpaint=pinned)
                    for (i, chunk), block in zip(part, drawn.split([len(chunk) * k for _, chunk in part])):
                        timelines[i][:, rows[i][chunk]] = block.view(len(chunk), k, n, c).transpose(0, 1)
            for i, member in enumerate(members):
                covered[i][rows[i][member].flatten()] = True
        return [timeline[:, r].transpose(0, 1) for timeline, r in zip(timelines, rows)]

    def _padded_speaker(self, audio: Tensor | None, face: Tensor | None, frames: int) -> tuple[Tensor, ...]:
        """Normalised audio [frames, 123] and face [frames, 83] (zeros where absent, last frame repeated
        up to ``frames``) and the presence flags [1]."""
        device = self.motion_mean.device

        def padded(x: Tensor | None, dim: int, normalise) -> Tensor:
            if x is None:
                return torch.zeros(frames, dim, device=device)
            x = normalise(x.to(device, torch.float32))
            return torch.cat([x, x[-1:].expand(frames - len(x), -1)])

        flag = lambda x: torch.tensor([x is not None], device=device)  # noqa: E731
        return (padded(audio, AUDIO_FEATURE_DIM, self.normalise_audio),
                padded(face, ARKIT58_EMOTION25_DIM, self.normalise_motion),
                flag(audio), flag(face))


class LBDListener(LearnedGenerator):
    """The registered ``lbd`` generator: a trained `LatentBehaviorDiffusion` plus sampling settings
    (``steps`` and ``sampler`` default to the checkpoint's config)."""

    name = NAME
    spec = "arkit58"
    fps = FPS
    network = LatentBehaviorDiffusion
    config_class = LBDConfig

    def configure(self, steps: int | None = None, sampler: str | None = None, windows: str = "parallel") -> None:
        """``windows``: 'parallel' (the default) or 'sequential', see `LatentBehaviorDiffusion.sample_latents`."""
        if windows not in WINDOW_ORDERS:
            raise ListenerctlError(f"unknown window order {windows!r} for lbd; use one of {', '.join(WINDOW_ORDERS)}.")
        self.windows = windows
        self.steps = self.config.steps if steps is None else int(steps)
        self.sampler = self.config.sampler if sampler is None else sampler
        self.model.make_sampler(self.sampler)
        if not 1 <= self.steps <= self.config.diffusion_steps:
            raise ListenerctlError(f"lbd sampling steps must be in 1 … {self.config.diffusion_steps}, "
                                   f"got {self.steps}.")

    def sampling_settings(self) -> dict:
        return {"sampling_steps": self.steps, "sampler": self.sampler, "windows": self.windows}

    def generate(self, cond: Conditioning, num_samples: int, seed: int) -> Motion:
        return self.generate_many([cond], num_samples, [seed])[0]

    def generate_many(self, conds: list[Conditioning], num_samples: int, seeds: list[int]) -> list[Motion]:
        self.check_requests(conds, num_samples, seeds)
        with torch.inference_mode():
            motions = self.model.generate_many([speaker_tensors(cond, self.device) for cond in conds], num_samples,
                                               [torch.Generator(self.device).manual_seed(seed) for seed in seeds],
                                               self.steps, self.sampler, self.windows)
        return [Motion(motion[..., :ARKIT58_DIM].cpu().numpy(), self.spec, cond.fps)
                for motion, cond in zip(motions, conds)]
