"""Sparse Facial Motion Structure (SFMS) listener: listener motion as sparse keyframe tokens, predicted
frame by frame from the speaker and rebuilt by an inpainter (DESIGN §5, row sfms).

Shapes: K samples, T frames, w = ``window`` (48) frames per tokenizer window, k = ``keyframes`` per
window, V = 1 + codebook (257) token classes: 0 = transition frame, 1 + i = keyframe with FSQ code i.
Listener frames are arkit58 normalised per channel with the training set's mean and spread.

- Tokenizer (`sfms_keyframes.KeyframeTokenizer`): Gumbel top-k keyframes (Algorithm 1, straight-through,
  temperature and Gumbel noise annealed, its own optimiser), FSQ codes on keyframes only, transformer inpainter.
- Predictor (`KeyframePredictor`): a transformer over ``context`` (40) past + ``chunk`` (8) future
  frames predicting the next ``chunk`` tokens. Per frame its input is the frame's token ([FUTURE] for
  the future frames) plus the speaker at that frame (audio [123] and face arkit58 + emotion25 [83],
  zeros with learned presence vectors where absent) plus the frame's phase in the tokenizer grid
  (t mod w). Class-balanced cross-entropy (transition frames weighted down to the keyframes' total
  mass; that prior is undone when sampling); neutral-prefix augmentation: the first n frames of a
  training window are replaced by the tokens of the neutral pose with no speaker, as at the start of
  generation.
- Generation: `windows.roll_many` (context 40, chunk 8: one network call per 8 frames), K samples batched,
  sampling with temperature / top-k; then the inpainter rebuilds frames from the tokens in windows of w
  frames overlapping by ``overlap``, cross-faded (`windows.outpaint`).

Training (`training.sfms.make_train_plan`): ``tokenizer_steps`` on the tokenizer's reconstruction loss, then the
tokenizer is frozen, every training reaction is tokenised once, and the predictor learns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from listenerctl.conditioning import Conditioning
from listenerctl.errors import ListenerctlError
from listenerctl.features.audio import AUDIO_FEATURE_DIM
from listenerctl.models.layers import PositionalEncoding, TransformerEncoder
from listenerctl.models.learned import LearnedGenerator
from listenerctl.models.sfms_keyframes import SELECTIONS, KeyframeTokenizer
from listenerctl.models.speaker import speaker_tensors
from listenerctl.models.windows import outpaint, plan_windows, roll_many
from listenerctl.motion import ARKIT58_DIM, ARKIT58_EMOTION25_DIM, BLENDSHAPE_DIM, Motion, get_spec

NAME = "sfms"
SPEC = get_spec("arkit58")
FPS = 25.0
WINDOW_CHUNK = 256                                    # inpainter windows per batched call


@dataclass(frozen=True)
class SFMSConfig:
    """Architecture, sampling and training settings; saved in the checkpoint card and rebuilt from it."""

    window: int = 48              # tokenizer window (w)
    keyframes: int = 7            # keyframes per window (k)
    selection: str = "learned"    # learned | static | dense (the ablation's variants)
    levels: tuple[int, ...] = (4, 4, 4, 4)   # FSQ levels: 256 codes
    width: int = 64               # tokenizer transformer width
    heads: int = 4
    scorer_layers: int = 1
    encoder_layers: int = 2
    inpainter_layers: int = 2
    position_dim: int = 32        # each sinusoidal encoding fed to the inpainter
    predictor_width: int = 64
    predictor_layers: int = 2
    context: int = 40             # past frames seen by the predictor
    chunk: int = 8                # future frames predicted per rolled call
    overlap: int = 8              # frames shared by consecutive inpainter windows at generation
    temperature: float = 1.0      # sampling temperature
    top_k: int = 0                # sample among the top-k token classes (0 = all)
    tokenizer_steps: int = 500    # training phase 1; then phase 2 (predictor)
    batch_size: int = 32
    lr: float = 2e-3
    scorer_lr: float = 1e-3       # the scorer's own optimiser
    warmup_steps: int = 100
    weight_decay: float = 0.01
    tau_start: float = 1.0        # Gumbel top-k temperature, annealed geometrically over phase 1
    tau_end: float = 0.1
    best_of: int = 4              # Gumbel selections compared for the best-of-samples target (0 = off)
    select_weight: float = 0.1    # weight of the best-of-samples target
    neutral_prefix: float = 0.25  # chance of a neutral prefix in a predictor training window
    face_drop: float = 0.5
    audio_drop: float = 0.25

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", tuple(int(n) for n in self.levels))
        if self.selection not in SELECTIONS:
            raise ValueError(f"unknown selection {self.selection!r}; use one of {', '.join(SELECTIONS)}")
        if not 1 <= self.keyframes <= self.window:
            raise ValueError(f"keyframes must be in 1 … {self.window}, got {self.keyframes}")
        if self.context + self.chunk > self.window:
            raise ValueError(f"context + chunk ({self.context + self.chunk}) must fit in the {self.window}-frame "
                             f"window the predictor is trained on")
        if not 0 <= 2 * self.overlap < self.window:
            raise ValueError(f"overlap must be at least 0 and under half the window, got {self.overlap}")
        if self.temperature <= 0 or self.top_k < 0:
            raise ValueError(f"need temperature > 0 and top_k >= 0, got {self.temperature} and {self.top_k}")

    @property
    def vocabulary(self) -> int:
        return 1 + math.prod(self.levels)


class KeyframePredictor(nn.Module):
    """Transformer over a window of ``context`` past and ``chunk`` future frames: the past frames' tokens
    (the future ones replaced by a [FUTURE] token), the speaker at every frame and each frame's phase in
    the tokenizer grid → logits [B, n, V] of every frame's token (the future frames' are used)."""

    def __init__(self, cfg: SFMSConfig):
        super().__init__()
        width = cfg.predictor_width
        self.future_token = cfg.vocabulary
        self.token = nn.Embedding(cfg.vocabulary + 1, width)
        self.phase = nn.Embedding(cfg.window, width)
        self.audio_in = nn.Linear(AUDIO_FEATURE_DIM, width)
        self.face_in = nn.Linear(ARKIT58_EMOTION25_DIM, width)
        self.presence = nn.Parameter(torch.zeros(2, width))
        self.position = PositionalEncoding(width)
        self.body = TransformerEncoder(width, cfg.predictor_layers, cfg.heads, mlp_ratio=2.0)
        self.head = nn.Linear(width, cfg.vocabulary)
        self.window, self.context = cfg.window, cfg.context

    def speaker(self, audio: Tensor, face: Tensor, has_audio: Tensor, has_face: Tensor) -> Tensor:
        """Normalised audio [..., n, 123] and face [..., n, 83], per-frame flags [..., n] → [..., n, width]."""
        a, f = has_audio.to(audio.dtype)[..., None], has_face.to(face.dtype)[..., None]
        return a * (self.audio_in(audio) + self.presence[0]) + f * (self.face_in(face) + self.presence[1])

    def forward(self, past: Tensor, speaker: Tensor, frames: Tensor) -> Tensor:
        """Past tokens [B, context], speaker embeddings [B or 1, n, width] and frame indices [B or 1, n]
        (any integers; t mod w is used) of the n = context + chunk frames → logits [B, n, V]."""
        future = past.new_full((past.shape[0], speaker.shape[1] - past.shape[1]), self.future_token)
        x = self.token(torch.cat([past, future], dim=1)) + speaker + self.phase(frames % self.window)
        return self.head(self.body(self.position(x)))


class SFMS(nn.Module):
    """Tokenizer, predictor, normalisation statistics and the predictor's class weights (buffers)."""

    def __init__(self, cfg: SFMSConfig):
        super().__init__()
        self.config = cfg
        self.tokenizer = KeyframeTokenizer(ARKIT58_DIM, cfg.window, cfg.keyframes, cfg.selection, cfg.levels,
                                           cfg.width, cfg.heads, cfg.scorer_layers, cfg.encoder_layers,
                                           cfg.inpainter_layers, cfg.position_dim)
        self.predictor = KeyframePredictor(cfg)
        for name, size in (("motion", ARKIT58_DIM), ("face", ARKIT58_EMOTION25_DIM), ("audio", AUDIO_FEATURE_DIM)):
            self.register_buffer(f"{name}_mean", torch.zeros(size))
            self.register_buffer(f"{name}_std", torch.ones(size))
        self.register_buffer("class_weight", torch.ones(cfg.vocabulary))
        self.register_buffer("neutral_tokens", torch.zeros(cfg.window, dtype=torch.long))

    @torch.no_grad()
    def fit_token_prior(self, tokens: Tensor) -> None:
        """From training tokens (any shape): class weights that give transition frames the same total
        mass as keyframes, and the neutral pose's tokens by grid phase [w]."""
        keyframe_share = (tokens > 0).float().mean().clamp(1e-3, 1 - 1e-3)
        self.class_weight.fill_(1.0)
        self.class_weight[0] = keyframe_share / (1 - keyframe_share)
        neutral = torch.zeros(1, self.config.window, ARKIT58_DIM, device=tokens.device)
        self.neutral_tokens.copy_(self.tokenizer.tokens(neutral)[0])

    def prediction_loss(self, batch: dict) -> dict:
        """Class-balanced cross-entropy of the ``chunk`` future tokens of windows [B, context + chunk]
        given the past tokens and the speaker over the whole window."""
        tokens, context = batch["tokens"], self.config.context
        speaker = self.predictor.speaker(batch["audio"], batch["face"], batch["has_audio"], batch["has_face"])
        logits = self.predictor(tokens[:, :context], speaker, batch["frames"])[:, context:]
        targets = tokens[:, context:]
        ce = F.cross_entropy(logits.transpose(1, 2), targets, weight=self.class_weight)
        with torch.no_grad():
            predicted = (logits - torch.log(self.class_weight)).argmax(-1)
            accuracy = (predicted == targets).float().mean()
            keyframe_rate = (predicted > 0).float().mean()
        return {"loss": ce, "ce": ce.detach(), "accuracy": accuracy, "predicted_keyframes": keyframe_rate}

    # ---- generation
    def speaker_timeline(self, audio: Tensor | None, face: Tensor | None, frames: int) -> Tensor:
        """Predictor speaker embeddings [frames, width] of raw audio [T, 123] / face [T, 83] (normalised,
        last frame repeated up to ``frames``; absent modalities zero without their presence vector)."""
        device = self.motion_mean.device

        def padded(x: Tensor | None, name: str, dim: int) -> Tensor:
            if x is None:
                return torch.zeros(frames, dim, device=device)
            x = (x.to(device, torch.float32) - getattr(self, f"{name}_mean")) / getattr(self, f"{name}_std")
            return torch.cat([x, x[-1:].expand(frames - len(x), -1)])

        flag = lambda x: torch.full((frames,), x is not None, device=device)  # noqa: E731
        return self.predictor.speaker(padded(audio, "audio", AUDIO_FEATURE_DIM),
                                      padded(face, "face", ARKIT58_EMOTION25_DIM),
                                      flag(audio), flag(face))

    def sample_tokens(self, speaker: Tensor, num_samples: int, generator: torch.Generator, temperature: float,
                      top_k: int) -> Tensor:
        """Tokens [K, T] for speaker embeddings [T, width], rolled ``chunk`` frames at a time from the last
        ``context`` frames (the neutral pose's tokens before frame 0, with no speaker); the chunk's
        frames are drawn together, all K samples in one batch."""
        return self.sample_tokens_many([speaker], num_samples, [generator], temperature, top_k)[0]

    def sample_tokens_many(self, speakers: list[Tensor], num_samples: int, generators: list[torch.Generator],
                           temperature: float, top_k: int) -> list[Tensor]:
        """`sample_tokens` for several speakers [T_i, width] rolled together (`windows.roll_many`): the chunks
        at the same start go through the predictor as one batch; each speaker's tokens are drawn from its
        own generator, as they would be alone."""
        cfg, device = self.config, speakers[0].device
        prior = torch.log(self.class_weight)
        silent = torch.zeros_like(speakers[0][0])
        window = torch.arange(-cfg.context, cfg.chunk, device=device)

        def step(members: list[int], past: Tensor | None, start: int, end: int) -> Tensor:
            frames = start + window
            rows = len(members) * num_samples
            previous = self.neutral_tokens[frames[:cfg.context] % cfg.window].expand(rows, -1).clone()
            if past is not None:
                previous[:, cfg.context - past.shape[1]:] = past[..., 0].long()
            heard = torch.cat([torch.where((frames >= 0)[:, None], speakers[i][frames.clamp(0, len(speakers[i]) - 1)],
                                           silent).expand(num_samples, -1, -1) for i in members])
            logits = self.predictor(previous, heard, frames[None])[:, cfg.context:cfg.context + end - start]
            logits = (logits - prior) / temperature
            if top_k:
                floor = logits.topk(top_k, dim=-1).values[..., -1:]
                logits = logits.masked_fill(logits < floor, float("-inf"))
            probabilities = torch.softmax(logits, dim=-1)
            drawn = torch.cat([torch.multinomial(p.flatten(0, 1), 1, generator=generators[i])
                               for i, p in zip(members, probabilities.split(num_samples))])
            return drawn.view(rows, end - start, 1).float()

        rolled = roll_many(step, [len(speaker) for speaker in speakers], cfg.context, cfg.chunk)
        return [frames[..., 0].long() for frames in rolled]

    def decode_tokens(self, tokens: Tensor) -> Tensor:
        """Tokens [K, T] (T >= w) → arkit58 frames [K, T, 58] in their own units: the inpainter over
        w-frame windows overlapping by ``overlap``, cross-faded."""
        cfg = self.config
        k, total = tokens.shape
        windows = plan_windows(total, cfg.window, cfg.overlap)
        starts = torch.tensor([s for s, _ in windows], device=tokens.device)
        rows = starts[:, None] + torch.arange(cfg.window, device=tokens.device)
        stacked = tokens[:, rows].transpose(0, 1).flatten(0, 1)                      # [W · K, w]
        frames = torch.cat([self.tokenizer.decode_tokens(c) for c in stacked.split(WINDOW_CHUNK)])
        frames = frames.view(len(windows), k, cfg.window, ARKIT58_DIM)
        index = {start: i for i, (start, _) in enumerate(windows)}
        motion = outpaint(lambda start, end, known, mask: frames[index[start]], total, cfg.window, cfg.overlap)
        return motion * self.motion_std + self.motion_mean

    @torch.inference_mode()
    def generate(self, audio: Tensor | None, face: Tensor | None, num_samples: int, generator: torch.Generator,
                 temperature: float, top_k: int) -> Tensor:
        """K listener motions [K, T, 58] for raw speaker audio [T, 123] and/or face [T, 83], any T >= 1
        (shorter than a window: the speaker's last frame is repeated to one window and the output cut)."""
        return self.generate_many([(audio, face)], num_samples, [generator], temperature, top_k)[0]

    @torch.inference_mode()
    def generate_many(self, speakers: list[tuple[Tensor | None, Tensor | None]], num_samples: int,
                      generators: list[torch.Generator], temperature: float, top_k: int) -> list[Tensor]:
        """`generate` for several speakers (audio, face), one generator each, their tokens rolled together."""
        totals = [(audio if audio is not None else face).shape[0] for audio, face in speakers]
        timelines = [self.speaker_timeline(audio, face, max(total, self.config.window))
                     for (audio, face), total in zip(speakers, totals)]
        motions = []
        for tokens, total in zip(self.sample_tokens_many(timelines, num_samples, generators, temperature, top_k),
                                 totals):
            motion = self.decode_tokens(tokens)[:, :total]
            motion[..., :BLENDSHAPE_DIM].clamp_(0.0, 1.0)
            motions.append(motion)
        return motions


class SFMSListener(LearnedGenerator):
    """The registered ``sfms`` generator: a trained `SFMS` plus sampling settings (``temperature`` and
    ``top_k`` default to the checkpoint's config)."""

    name = NAME
    spec = "arkit58"
    fps = FPS
    network = SFMS
    config_class = SFMSConfig

    def configure(self, temperature: float | None = None, top_k: int | None = None) -> None:
        self.temperature = self.config.temperature if temperature is None else float(temperature)
        self.top_k = self.config.top_k if top_k is None else int(top_k)
        if self.temperature <= 0 or not 0 <= self.top_k <= self.config.vocabulary:
            raise ListenerctlError(f"sfms sampling needs temperature > 0 and top_k in 0 … {self.config.vocabulary}, "
                                   f"got {self.temperature} and {self.top_k}.")

    def sampling_settings(self) -> dict:
        return {"temperature": self.temperature, "top_k": self.top_k}

    def generate(self, cond: Conditioning, num_samples: int, seed: int) -> Motion:
        return self.generate_many([cond], num_samples, [seed])[0]

    def generate_many(self, conds: list[Conditioning], num_samples: int, seeds: list[int]) -> list[Motion]:
        self.check_requests(conds, num_samples, seeds)
        motions = self.model.generate_many([speaker_tensors(cond, self.device) for cond in conds], num_samples,
                                           [torch.Generator(self.device).manual_seed(seed) for seed in seeds],
                                           self.temperature, self.top_k)
        return [Motion(motion.cpu().numpy(), self.spec, cond.fps) for motion, cond in zip(motions, conds)]
