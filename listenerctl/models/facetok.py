"""facetok: a per-frame FSQ facial tokenizer and an autoregressive listener predictor (DESIGN §5, seed 003).

Three networks, trained in phases by one `TrainPlan` (`training.facetok`; phase boundaries in `FacetokConfig`):

1. **Tokenizer** (steps ``[0, tokenizer_steps)``): a transformer encoder over windows of
   ``token_window`` arkit58 frames gives every frame a 4-D latent, quantised by FSQ with levels
   [8, 5, 5, 5] (1000 codes, one token per frame); a transformer decoder rebuilds the window. Loss:
   squared error averaged within blendshape groups (eyes, brows, mouth, jaw, cheeks/nose, head pose),
   weighted across groups, plus the same on frame-to-frame velocity. Motion is standardised per channel
   with the training set's statistics.
2. **Emotion decoder** (the next ``emotion_steps``, tokenizer frozen): FSQ codes of a window → emotion25.
3. **Predictor** (every later step, tokenizer frozen), autoregressive over patches: a speaker encoder
   (audio features and the speaker's face tokens, each with self-attention, fused by FIBER gated
   cross-attention with a learnable alpha) and a listener decoder that reads a style token, up to
   ``context`` past listener frames and ``patch`` [MASK] slots, cross-attends to the speaker encoding of
   the same frames and predicts the next ``patch`` tokens at once. In training, past tokens are randomly
   replaced by [MASK] (rate up to ``mask_max``) so the decoder must listen to the speaker, a share of the
   batches start at a clip's first frame with a shorter context (as generation does), and the speaker's
   face and audio are randomly dropped (presence flags). The style token is the mean motion of the
   target reaction; it stands for who the listener is (resting smile, squint, brows), which a short
   context cannot hold: without it a sample's resting expression random-walks over a long clip.

Generation rolls patches of ``patch`` frames (`windows.roll`): the speaker encodings of every patch's
window (at most ``context + patch`` frames, shared by the K samples) are computed up front in batches,
then one decoder pass per patch runs over at most ``1 + context + patch`` tokens, and each drawn patch is
decoded once and kept (decoder inputs of the next patches and the output), so the cost per frame is flat
in T. Each sample draws its style from a bank of training reactions' styles kept in the
checkpoint, which gives the K samples different listeners. Tokens are drawn by temperature + top-k
multinomial sampling through the Gumbel-max trick; with ``coupled_sampling`` the frames of a patch share
their Gumbel noise, so each frame's token still follows its own distribution but neighbouring frames
with similar distributions draw consistent tokens (independent draws per frame make the decoded motion
jitter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from listenerctl.conditioning import Conditioning
from listenerctl.features.audio import AUDIO_FEATURE_DIM
from listenerctl.models.layers import PositionalEncoding, TransformerDecoder, TransformerEncoder
from listenerctl.models.learned import LearnedGenerator
from listenerctl.models.quantize import FSQ
from listenerctl.models.seeding import RowNoise, as_row_noise
from listenerctl.models.windows import roll_many
from listenerctl.motion import ARKIT52, ARKIT58_DIM, EMOTION25_DIM, HEAD_POSE, Motion, get_spec

NAME = "facetok"
SPEC = get_spec("arkit58")
NUM_AUS, NUM_VA = 15, 2             # emotion25 = 15 AU occurrences, valence/arousal, 8 expression probabilities
STD_FLOOR = 1e-2                    # channels the data never moves are scaled by this instead of ~0

GROUP_PREFIXES = {"eyes": ("eye",), "brows": ("brow",), "mouth": ("mouth", "tongue"), "jaw": ("jaw",),
                  "cheeks_nose": ("cheek", "nose")}
GROUPS = tuple(GROUP_PREFIXES) + ("head",)


def group_matrix() -> Tensor:
    """[6, 58] rows averaging the arkit58 channels of each blendshape group (order of `GROUPS`)."""
    member = torch.zeros(len(GROUPS), ARKIT58_DIM)
    for g, prefixes in enumerate(GROUP_PREFIXES.values()):
        for c, name in enumerate(ARKIT52):
            member[g, c] = float(name.startswith(prefixes))
    member[-1, len(ARKIT52):len(ARKIT52) + len(HEAD_POSE)] = 1.0
    return member / member.sum(dim=1, keepdim=True)


@dataclass(frozen=True)
class FacetokConfig:
    """Architecture, sampling and training settings (saved in the checkpoint card, rebuilt from it)."""

    levels: tuple[int, ...] = (8, 5, 5, 5)
    token_window: int = 8           # frames per tokenizer window
    tokenizer_width: int = 64
    tokenizer_layers: int = 2
    emotion_layers: int = 1
    width: int = 64                 # predictor width
    heads: int = 4
    speaker_layers: int = 2         # audio self-attention layers
    face_layers: int = 1            # speaker face-token self-attention layers
    fusion_layers: int = 1          # self-attention + gated cross-attention (audio attends to face tokens)
    listener_layers: int = 3
    patch: int = 32                 # frames predicted per rolling step
    context: int = 32               # past listener frames the decoder sees (a multiple of patch)
    start_share: float = 0.1        # share of training batches that start at a clip's first frame
    style_bank: int = 512           # training reactions' mean motions kept for drawing sample styles
    dropout: float = 0.0
    group_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 0.5, 0.5, 2.0)   # per `GROUPS`
    velocity_weight: float = 0.1
    mask_max: float = 0.3
    face_drop: float = 0.5
    audio_drop: float = 0.1
    temperature: float = 0.5
    top_k: int = 10
    coupled_sampling: bool = True
    tokenizer_steps: int = 3200
    emotion_steps: int = 200
    tokenizer_batch_size: int = 8   # windows per step while training the tokenizer and emotion decoder
    batch_size: int = 32            # windows per step while training the predictor
    tokenizer_lr: float = 3e-3
    predictor_lr: float = 5e-4
    warmup_steps: int = 100

    @property
    def window(self) -> int:
        """Frames per predictor training window: past context and one patch."""
        return self.context + self.patch

    def __post_init__(self) -> None:
        if self.context % self.patch:
            raise ValueError(f"facetok's context ({self.context}) must be a multiple of its patch ({self.patch})")
        if self.patch % self.token_window:
            raise ValueError(f"facetok's patch ({self.patch}) must be a multiple of its token window "
                             f"({self.token_window})")



def tile(x: Tensor, window: int) -> tuple[Tensor, int]:
    """``x`` [B, T, C] → ([B·n, window, C] with the last frame repeated to fill the last window, T)."""
    b, t, c = x.shape
    n = -(-t // window)
    if n * window > t:
        x = torch.cat([x, x[:, -1:].expand(b, n * window - t, c)], dim=1)
    return x.reshape(b * n, window, c), t


def untile(x: Tensor, batch: int, frames: int) -> Tensor:
    """Inverse of `_tile`: [B·n, window, C] → [B, frames, C]."""
    return x.reshape(batch, -1, x.shape[-1])[:, :frames]


class WindowTransformer(nn.Module):
    """Linear(in → dim), sinusoidal positions, non-causal transformer, Linear(dim → out), per window."""

    def __init__(self, in_dim: int, out_dim: int, dim: int, depth: int, heads: int, window: int):
        super().__init__()
        self.window = window
        self.inp = nn.Linear(in_dim, dim)
        self.pos = PositionalEncoding(dim)
        self.body = TransformerEncoder(dim, depth, heads)
        self.out = nn.Linear(dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` [B, T, in_dim] (any T, processed in windows) → [B, T, out_dim]."""
        tiles, frames = tile(x, self.window)
        return untile(self.out(self.body(self.pos(self.inp(tiles)))), x.shape[0], frames)


class FaceTokenizer(nn.Module):
    """Standardised arkit58 frames [B, T, 58] ↔ one FSQ token per frame (indices [B, T] in [0, 1000))."""

    def __init__(self, c: FacetokConfig):
        super().__init__()
        self.fsq = FSQ(c.levels)
        self.encoder = WindowTransformer(ARKIT58_DIM, self.fsq.dim, c.tokenizer_width, c.tokenizer_layers, c.heads,
                                         c.token_window)
        self.decoder = WindowTransformer(self.fsq.dim, ARKIT58_DIM, c.tokenizer_width, c.tokenizer_layers, c.heads,
                                         c.token_window)

    @property
    def codebook_size(self) -> int:
        return self.fsq.codebook_size

    def encode(self, motion: Tensor) -> tuple[Tensor, Tensor]:
        """[B, T, 58] → (codes [B, T, 4] on the FSQ grid, indices [B, T])."""
        return self.fsq(self.encoder(motion))

    def decode(self, codes: Tensor) -> Tensor:
        """Codes [B, T, 4] → standardised arkit58 [B, T, 58]."""
        return self.decoder(codes)

    def decode_indices(self, indices: Tensor) -> Tensor:
        return self.decode(self.fsq.indices_to_codes(indices))


class EmotionDecoder(nn.Module):
    """FSQ codes [B, T, 4] → emotion25 [B, T, 25]: AU occurrences by sigmoid, valence/arousal by tanh,
    expression probabilities by softmax."""

    def __init__(self, c: FacetokConfig):
        super().__init__()
        self.net = WindowTransformer(len(c.levels), EMOTION25_DIM, c.tokenizer_width, c.emotion_layers, c.heads,
                                     c.token_window)

    def forward(self, codes: Tensor) -> Tensor:
        raw = self.net(codes)
        aus, va, expr = raw.split([NUM_AUS, NUM_VA, EMOTION25_DIM - NUM_AUS - NUM_VA], dim=-1)
        return torch.cat([torch.sigmoid(aus), torch.tanh(va), torch.softmax(expr, dim=-1)], dim=-1)


class SpeakerEncoder(nn.Module):
    """Speaker audio [B, S, 123] (standardised) and face tokens [B, S] → [B, S, dim].

    Audio frames and face-token embeddings each pass their own self-attention stack; the fusion stack
    then lets the audio stream attend to the face stream through FIBER gated cross-attention
    (tanh(alpha), alpha learnable from 0). An absent modality is a learned embedding (face token
    index ``codebook_size``), so audio only, face only and both are one code path.
    """

    def __init__(self, c: FacetokConfig, codebook_size: int):
        super().__init__()
        self.absent_face = codebook_size
        self.audio_in = nn.Linear(AUDIO_FEATURE_DIM, c.width)
        self.absent_audio = nn.Parameter(torch.zeros(c.width))
        self.face_in = nn.Embedding(codebook_size + 1, c.width)
        self.pos = PositionalEncoding(c.width)
        self.audio_self = TransformerEncoder(c.width, c.speaker_layers, c.heads, dropout=c.dropout)
        self.face_self = TransformerEncoder(c.width, c.face_layers, c.heads, dropout=c.dropout)
        self.fusion = TransformerEncoder(c.width, c.fusion_layers, c.heads, dropout=c.dropout, context_dim=c.width,
                                         gated=True)

    def forward(self, audio: Tensor, audio_present: Tensor, face_tokens: Tensor) -> Tensor:
        """``audio_present`` [B] bool; ``face_tokens`` [B, S] long (``absent_face`` where no face)."""
        a = torch.where(audio_present[:, None, None], self.audio_in(audio), self.absent_audio)
        a = self.audio_self(self.pos(a))
        f = self.face_self(self.pos(self.face_in(face_tokens)))
        return self.fusion(a, context=f)


class ListenerDecoder(nn.Module):
    """Bidirectional decoder over past listener frames and ``patch`` [MASK] slots, cross-attending to the
    speaker encoding of the same frames; predicts the slots' tokens.

    A past frame enters as its FSQ code [4] and the tokenizer's decoding of it [58] (so the decoder reads
    the codebook's structure and the motion instead of learning 1000 arbitrary embeddings); hidden past
    frames and the slots are a learned [MASK] vector. One more token carries the listener's style: the
    mean standardised motion of a whole reaction (in training the target reaction's own; in generation
    one drawn per sample from the bank of training reactions' styles). It keeps a sample's resting
    expression (smile, squint, brows) from drifting as the short context rolls on, and gives the K samples
    the spread of resting expressions that different listeners have. Logits over the 1000 tokens are a
    full linear head plus a factorised one, the sum of one score per FSQ dimension's level, which gives
    the ordinal structure of the grid from the start.
    """

    def __init__(self, c: FacetokConfig, fsq: FSQ):
        super().__init__()
        self.frame_in = nn.Linear(fsq.dim + ARKIT58_DIM, c.width)
        self.mask = nn.Parameter(0.02 * torch.randn(c.width))
        self.style_in = nn.Linear(ARKIT58_DIM, c.width)
        self.pos = PositionalEncoding(c.width)
        self.body = TransformerDecoder(c.width, c.listener_layers, c.heads, context_dim=c.width, dropout=c.dropout,
                                       causal=False)
        self.head = nn.Linear(c.width, fsq.codebook_size)
        self.level_head = nn.Linear(c.width, sum(fsq.levels))
        levels = torch.tensor(fsq.levels)
        basis = torch.cumprod(torch.cat([torch.ones(1, dtype=torch.long), levels[:-1]]), 0)  # FSQ's mixed radix
        offsets = torch.cumsum(levels, 0) - levels
        level_of = (torch.arange(fsq.codebook_size)[:, None] // basis) % levels + offsets     # [V, dims]
        onehot = torch.zeros(sum(fsq.levels), fsq.codebook_size)
        onehot.scatter_(0, level_of.t(), 1.0)
        self.register_buffer("level_onehot", onehot, persistent=False)

    def forward(self, past: Tensor, hidden: Tensor, patch: int, speaker: Tensor, style: Tensor) -> Tensor:
        """``past`` [B, n, 4 + 58] frame features (n may be 0), ``hidden`` [B, n] bool (True = [MASK]),
        ``speaker`` [B or 1, n + patch, dim], ``style`` [B, 58] standardised mean motion of the listener
        → logits [B, patch, V] of the ``patch`` frames after the past ones."""
        frames = torch.where(hidden[..., None], self.mask, self.frame_in(past))
        slots = self.mask.expand(past.shape[0], patch, -1)
        sequence = torch.cat([self.style_in(style)[:, None], self.pos(torch.cat([frames, slots], dim=1))], dim=1)
        h = self.body(sequence, speaker)[:, 1 + past.shape[1]:]
        return self.head(h) + self.level_head(h) @ self.level_onehot


class FacetokModel(nn.Module):
    """The tokenizer, emotion decoder and predictor, with the standardisation statistics as buffers."""

    def __init__(self, config: FacetokConfig):
        super().__init__()
        self.config = config
        self.tokenizer = FaceTokenizer(config)
        size = self.tokenizer.codebook_size
        self.emotion = EmotionDecoder(config)
        self.speaker = SpeakerEncoder(config, size)
        self.listener = ListenerDecoder(config, self.tokenizer.fsq)
        self.register_buffer("motion_mean", torch.zeros(ARKIT58_DIM))
        self.register_buffer("motion_std", torch.ones(ARKIT58_DIM))
        self.register_buffer("audio_mean", torch.zeros(AUDIO_FEATURE_DIM))
        self.register_buffer("audio_std", torch.ones(AUDIO_FEATURE_DIM))
        self.register_buffer("styles", torch.zeros(config.style_bank, ARKIT58_DIM))
        self.register_buffer("group_weights", group_matrix().t() @ torch.tensor(config.group_weights)
                             / sum(config.group_weights), persistent=False)

    def set_statistics(self, motion: Tensor, audio: Tensor, styles: Tensor, generator: torch.Generator) -> None:
        """Standardise with the per-channel mean/std of ``motion`` [N, 58] and ``audio`` [N, 123]; fill the
        style bank with ``style_bank`` rows of ``styles`` [S, 58] (mean motion per training reaction), all of
        them when they fit, drawn at random when there are more."""
        bank = len(self.styles)
        pick = torch.randperm(len(styles), generator=generator)[:bank] if len(styles) >= bank \
            else torch.randint(len(styles), (bank,), generator=generator)
        self.styles.copy_(styles[pick.to(styles.device)])
        self.motion_mean.copy_(motion.mean(0))
        self.motion_std.copy_(motion.std(0).clamp(min=STD_FLOOR))
        self.audio_mean.copy_(audio.mean(0))
        self.audio_std.copy_(audio.std(0).clamp(min=STD_FLOOR))

    def standardise(self, motion: Tensor) -> Tensor:
        return (motion - self.motion_mean) / self.motion_std

    def destandardise(self, motion: Tensor) -> Tensor:
        return motion * self.motion_std + self.motion_mean

    def to_arkit(self, standardised: Tensor) -> Tensor:
        """Standardised motion [B, T, 58] → arkit58 in its own units, blendshape weights clipped to [0, 1]."""
        motion = self.destandardise(standardised)
        motion[..., :len(ARKIT52)].clamp_(0.0, 1.0)
        return motion

    def decode_motion(self, tokens: Tensor) -> Tensor:
        """Tokens [B, T] → arkit58 [B, T, 58] (`to_arkit` of the tokenizer's decoding)."""
        return self.to_arkit(self.tokenizer.decode_indices(tokens))

    def frame_features(self, tokens: Tensor) -> Tensor:
        """Listener tokens [B, n] → decoder inputs [B, n, 4 + 58]: FSQ codes and their standardised decoding."""
        codes = self.tokenizer.fsq.indices_to_codes(tokens)
        if tokens.shape[1] == 0:
            return codes.new_zeros(*tokens.shape, codes.shape[-1] + ARKIT58_DIM)
        return torch.cat([codes, self.tokenizer.decode(codes)], dim=-1)

    def face_tokens(self, face: Tensor, present: Tensor) -> Tensor:
        """Speaker arkit58 [B, T, 58] → tokens [B, T], the absent token where ``present`` [B] is False."""
        absent = torch.full(face.shape[:2], self.speaker.absent_face, dtype=torch.long, device=face.device)
        if not bool(present.any()):
            return absent
        return torch.where(present[:, None], self.tokenizer.encode(self.standardise(face))[1], absent)


# ---------------------------------------------------------------- generation


def sample_top_k(logits: Tensor, temperature: float, top_k: int, generator: torch.Generator | RowNoise,
                 coupled: bool) -> Tensor:
    """Token indices [B, P] from ``logits`` [B, P, V]: each frame draws from softmax(logits / temperature)
    restricted to its ``top_k`` most likely tokens, by the Gumbel-max trick. ``coupled`` shares one Gumbel
    noise vector [V] across the P frames of a row (consistent draws); otherwise every frame draws anew.
    A `RowNoise` draws each input's rows from its own generator."""
    b, p, v = logits.shape
    top, index = logits.topk(min(top_k, v), dim=-1)
    uniform = as_row_noise(generator, b).rand((b, 1 if coupled else p, v))
    gumbel = -torch.log(-torch.log(uniform.clamp(min=1e-12)))
    scores = top / temperature + gumbel.expand(b, p, v).gather(-1, index)
    return index.gather(-1, scores.argmax(dim=-1, keepdim=True))[..., 0]


@torch.no_grad()
def speaker_windows(model: FacetokModel, config: FacetokConfig, audio: Tensor, audio_present: Tensor,
                    face_tokens: Tensor) -> dict[int, Tensor]:
    """The speaker encoding every rolling step reads, computed up front: {patch start: [1, L, dim]} over
    frames ``[max(0, start − context), min(start + patch, T))``. The speaker is known before generation
    starts, so windows of equal length L go through the encoder as one batch (a few large passes
    instead of one small pass per patch). Inputs as for `sample_tokens`."""
    total = audio.shape[1]
    spans = [(start, max(0, start - config.context), min(start + config.patch, total))
             for start in range(0, total, config.patch)]
    encodings: dict[int, Tensor] = {}
    for length in sorted({end - first for _, first, end in spans}):
        group = [(start, first) for start, first, end in spans if end - first == length]
        frames = torch.tensor([first for _, first in group], device=audio.device)[:, None] \
            + torch.arange(length, device=audio.device)
        encoded = model.speaker(audio[0, frames], audio_present.expand(len(group)), face_tokens[0, frames])
        encodings.update({start: encoded[i:i + 1] for i, (start, _) in enumerate(group)})
    return encodings


def sample_tokens(model: FacetokModel, config: FacetokConfig, audio: Tensor, audio_present: Tensor,
                  face_tokens: Tensor, num_samples: int, seed: int) -> tuple[Tensor, Tensor]:
    """K listener token sequences for one speaker: ``audio`` [1, T, 123] standardised, ``audio_present``
    [1] bool, ``face_tokens`` [1, T]; sampling settings from ``config``. Returns (tokens [K, T] long,
    their decoding [K, T, 58] standardised). See `sample_tokens_many`."""
    return sample_tokens_many(model, config, [(audio, audio_present, face_tokens)], num_samples, [seed])[0]


@torch.no_grad()
def sample_tokens_many(model: FacetokModel, config: FacetokConfig, speakers: list[tuple[Tensor, Tensor, Tensor]],
                       num_samples: int, seeds: list[int]) -> list[tuple[Tensor, Tensor]]:
    """`sample_tokens` for several speakers (audio, audio present, face tokens) with one seed each, rolled
    together: the patches at the same start go through the decoder as one batch, each speaker's styles and
    Gumbel noise drawn from its own seeded generator as it would be alone.

    Each patch is decoded once, when it is drawn, and its decoder inputs are kept beside its tokens
    (the cache that keeps the cost per frame flat): patches start at multiples of ``patch``, itself a
    multiple of ``token_window``, so a patch's tokenizer windows are exactly those of the full sequence.
    """
    device = speakers[0][0].device
    generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
    bank = model.styles
    styles = [model.standardise(bank[torch.randint(len(bank), (num_samples,), generator=generator, device=device)])
              for generator in generators]
    code_dim = model.tokenizer.fsq.dim
    speaker_of = [speaker_windows(model, config, *speaker) for speaker in speakers]

    def patch(members: list[int], past: Tensor | None, start: int, end: int) -> Tensor:
        rows = len(members) * num_samples
        past = torch.zeros(rows, 0, 1 + code_dim + ARKIT58_DIM, device=device) if past is None else past
        # batched attention beats broadcasting on CPU
        speaker = torch.cat([speaker_of[i][start].expand(num_samples, -1, -1) for i in members])
        style = torch.cat([styles[i] for i in members])
        hidden = torch.zeros(past.shape[:2], dtype=torch.bool, device=device)
        logits = model.listener(past[..., 1:], hidden, end - start, speaker, style)
        noise = RowNoise([(generators[i], num_samples) for i in members])
        tokens = sample_top_k(logits, config.temperature, config.top_k, noise, config.coupled_sampling)
        # `roll_many` keeps frames [K, T, D]: the token id (exact in float32 below 2**24), then its features
        return torch.cat([tokens[..., None].float(), model.frame_features(tokens)], dim=-1)

    rolled = roll_many(patch, [speaker[0].shape[1] for speaker in speakers], config.context, config.patch)
    return [(frames[..., 0].long(), frames[..., 1 + code_dim:]) for frames in rolled]


class FacetokListener(LearnedGenerator):
    """The facetok listener: K arkit58 samples for any length, rolled patch by patch (module docstring)."""

    name = NAME
    spec = "arkit58"
    fps = 25.0
    network = FacetokModel
    config_class = FacetokConfig

    def sampling_settings(self) -> dict:
        return {"temperature": self.config.temperature, "top_k": self.config.top_k}

    def _speaker_inputs(self, cond: Conditioning) -> tuple[Tensor, Tensor, Tensor]:
        """(audio [1, T, 123] standardised, audio present [1], face tokens [1, T])."""
        m, t = self.model, cond.num_frames
        if cond.audio is not None:
            audio = torch.from_numpy(cond.audio.matrix()).to(self.device)[None]
            audio = (audio - m.audio_mean) / m.audio_std
        else:
            audio = torch.zeros(1, t, AUDIO_FEATURE_DIM, device=self.device)
        has_face = torch.tensor([cond.face is not None], device=self.device)
        face = torch.from_numpy(np.asarray(cond.face.arkit, np.float32)).to(self.device)[None] \
            if cond.face is not None else torch.zeros(1, t, ARKIT58_DIM, device=self.device)
        return audio, torch.tensor([cond.audio is not None], device=self.device), m.face_tokens(face, has_face)

    def generate_tokens(self, cond: Conditioning, num_samples: int, seed: int) -> tuple[Tensor, Tensor]:
        """Listener tokens [K, T] (long) for ``cond`` and their decoding [K, T, 58] (standardised)."""
        return self.generate_tokens_many([cond], num_samples, [seed])[0]

    def generate_tokens_many(self, conds: list[Conditioning], num_samples: int,
                             seeds: list[int]) -> list[tuple[Tensor, Tensor]]:
        """`generate_tokens` for several inputs, rolled together (`sample_tokens_many`)."""
        self.check_requests(conds, num_samples, seeds)
        with torch.inference_mode():
            return sample_tokens_many(self.model, self.config, [self._speaker_inputs(cond) for cond in conds],
                                      num_samples, seeds)

    @torch.no_grad()
    def decode_emotion(self, tokens: Tensor) -> np.ndarray:
        """Tokens [K, T] → emotion25 [K, T, 25] float32 from the emotion decoder."""
        codes = self.model.tokenizer.fsq.indices_to_codes(tokens)
        return self.model.emotion(codes).cpu().numpy().astype(np.float32)

    def _motion(self, standardised: Tensor) -> Motion:
        return Motion(self.model.to_arkit(standardised).cpu().numpy().astype(np.float32), self.spec, self.fps)

    def generate(self, cond: Conditioning, num_samples: int, seed: int) -> Motion:
        return self._motion(self.generate_tokens(cond, num_samples, seed)[1])

    def generate_many(self, conds: list[Conditioning], num_samples: int, seeds: list[int]) -> list[Motion]:
        return [self._motion(standardised) for _, standardised in self.generate_tokens_many(conds, num_samples, seeds)]

    def generate_with_emotion(self, cond: Conditioning, num_samples: int, seed: int) -> tuple[Motion, Motion]:
        """(arkit58 motion, emotion25 from the emotion decoder), both [K, T, D] at 25 fps."""
        tokens, standardised = self.generate_tokens(cond, num_samples, seed)
        return self._motion(standardised), Motion(self.decode_emotion(tokens), "emotion25", self.fps)
