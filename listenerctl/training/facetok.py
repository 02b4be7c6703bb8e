"""Training of the facetok listener (`models.facetok`): the corpus as tensors (`CorpusTensors`), the
phased batches and losses (tokenizer, emotion decoder, predictor; `PhasedTraining`), the held-out
metrics (tokenizer reconstruction and code usage, patch prediction, REACT metrics of generated
reactions) and the `TrainPlan`."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from itertools import count
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from listenerctl.data.corpus import Corpus, load_corpus, read_card
from listenerctl.emotion import emotion_from_arkit
from listenerctl.errors import ListenerctlError
from listenerctl.metrics.react import fr_corr, fr_dist, fr_div
from listenerctl.features.audio import AUDIO_FEATURE_DIM
from listenerctl.models.facetok import (GROUPS, NAME, FacetokConfig, FacetokModel, group_matrix, sample_tokens,
                                        tile)
from listenerctl.motion import ARKIT58_DIM
from listenerctl.training.loop import InitCheckpoint, TrainPlan, config_with, load_init, start_model

@dataclass
class CorpusTensors:
    """A corpus split as tensors: audio [N, T, 123] raw, audio present [N], face [N, T, 58], face present
    [N], reactions [N, M, T, 58], reaction emotion [N, M, T, 25] (N speaker clips of T frames)."""

    audio: Tensor
    audio_present: Tensor
    face: Tensor
    face_present: Tensor
    reactions: Tensor
    emotion: Tensor

    @classmethod
    def of(cls, corpus: Corpus, device: str) -> "CorpusTensors":
        frames = min(c.cond.num_frames for c in corpus.clips)
        reactions = min(len(c.reactions) for c in corpus.clips)

        def stack(arrays):
            return torch.from_numpy(np.stack([np.asarray(a[..., :frames, :], np.float32) for a in arrays])).to(device)

        clips = corpus.clips
        return cls(
            audio=stack([c.cond.audio.matrix() if c.cond.audio is not None else np.zeros((frames, AUDIO_FEATURE_DIM))
                         for c in clips]),
            audio_present=torch.tensor([c.cond.audio is not None for c in clips], device=device),
            face=stack([c.cond.face.arkit if c.cond.face is not None else np.zeros((frames, ARKIT58_DIM))
                        for c in clips]),
            face_present=torch.tensor([c.cond.face is not None for c in clips], device=device),
            reactions=stack([c.reactions[:reactions] for c in clips]),
            emotion=stack([c.reaction_emotion[:reactions] for c in clips]))

    @property
    def frames(self) -> int:
        return self.audio.shape[1]


def phase_of(step: int, config: FacetokConfig) -> str:
    """'tokenizer', 'emotion' or 'predictor': the training phase of ``step`` (0-based)."""
    if step < config.tokenizer_steps:
        return "tokenizer"
    return "emotion" if step < config.tokenizer_steps + config.emotion_steps else "predictor"


def training_batches(data: CorpusTensors, config: FacetokConfig, seed: int, first_step: int = 0) -> Iterator[dict]:
    """Endless batches of ``config.window``-frame windows from random clips, reactions and offsets;
    batch n (training step ``first_step + n``) has ``tokenizer_batch_size`` windows in the tokenizer and emotion
    phases, ``batch_size`` after.

    Each batch: audio [B, L, 123], audio_present [B], face [B, L, 58], face_present [B] (after random
    drops), listener [B, L, 58], emotion [B, L, 25] (raw units), token_mask [B, L] (past-token masking),
    context (int): how many past frames before the final patch the predictor sees this batch, and style
    [B, 58] the mean raw motion of the whole reaction. A ``start_share`` of the batches begin at frame 0
    as generation does, with a shorter context (a multiple of the patch; the window's frames before the
    clip repeat frame 0 and are never used).
    """
    c, device = config, data.audio.device
    gen = torch.Generator().manual_seed(seed)
    n, m = data.reactions.shape[:2]
    steps = torch.arange(c.window)
    shorter = torch.arange(0, c.context, c.patch)
    styles = data.reactions.mean(dim=2)                                  # [N, M, 58]
    for step in count(first_step):
        size = c.batch_size if phase_of(step, c) == "predictor" else c.tokenizer_batch_size
        context = c.context
        clip = torch.randint(n, (size,), generator=gen)
        reaction = torch.randint(m, (size,), generator=gen)
        start = torch.randint(data.frames - c.window + 1, (size,), generator=gen)
        if torch.rand(1, generator=gen).item() < c.start_share:
            context = int(shorter[torch.randint(len(shorter), (1,), generator=gen)])
            start = torch.full((size,), context - c.context)
        keep_audio = torch.rand(size, generator=gen) >= c.audio_drop
        keep_face = torch.rand(size, generator=gen) >= c.face_drop
        rate = torch.rand(size, 1, generator=gen) * c.mask_max
        token_mask = torch.rand(size, c.window, generator=gen) < rate
        frames = (start[:, None] + steps).clamp(min=0).to(device)
        clip, reaction = clip.to(device), reaction.to(device)
        yield {
            "audio": data.audio[clip[:, None], frames],
            "audio_present": data.audio_present[clip] & keep_audio.to(device),
            "face": data.face[clip[:, None], frames],
            "face_present": data.face_present[clip] & keep_face.to(device),
            "listener": data.reactions[clip[:, None], reaction[:, None], frames],
            "emotion": data.emotion[clip[:, None], reaction[:, None], frames],
            "token_mask": token_mask.to(device),
            "context": context,
            "style": styles[clip, reaction],
        }


def _window_velocity(x: Tensor, window: int) -> Tensor:
    """Frame-to-frame differences inside each tokenizer window: [B, T, C] → [B·n, window − 1, C]."""
    return tile(x, window)[0].diff(dim=1)


def tokenizer_loss(model: FacetokModel, batch: dict) -> dict:
    """Group-weighted squared error of standardised positions and velocities, plus per-group terms."""
    c = model.config
    target = model.standardise(batch["listener"])
    codes, _ = model.tokenizer.encode(target)
    recon = model.tokenizer.decode(codes)
    err = (recon - target).pow(2).mean(dim=(0, 1))
    vel_err = (_window_velocity(recon, c.token_window) - _window_velocity(target, c.token_window)
               ).pow(2).mean(dim=(0, 1))
    weights = model.group_weights
    terms = {"loss": err @ weights + c.velocity_weight * (vel_err @ weights), "recon": err @ weights}
    groups = group_matrix().to(err.device) @ err.detach()
    terms.update({f"recon_{g}": groups[i] for i, g in enumerate(GROUPS)})
    return terms


def emotion_loss(model: FacetokModel, batch: dict) -> dict:
    with torch.no_grad():
        codes, _ = model.tokenizer.encode(model.standardise(batch["listener"]))
    mse = (model.emotion(codes) - batch["emotion"]).pow(2).mean()
    return {"loss": mse, "emotion_mse": mse}


def predictor_logits(model: FacetokModel, batch: dict, masked: bool) -> tuple[Tensor, Tensor]:
    """(logits [B, P, V], target tokens [B, P]) of a batch's final patch, predicted from its last
    ``batch["context"]`` past frames; ``masked`` hides past tokens where the batch's token_mask says."""
    c = model.config
    first = c.context - batch["context"]
    with torch.no_grad():
        tokens = model.tokenizer.encode(model.standardise(batch["listener"][:, first:]))[1]
        face_tokens = model.face_tokens(batch["face"][:, first:], batch["face_present"])
        past = model.frame_features(tokens[:, :-c.patch])
    hidden = batch["token_mask"][:, first:c.context] if masked else torch.zeros(past.shape[:2], dtype=torch.bool,
                                                                                  device=past.device)
    audio = (batch["audio"][:, first:] - model.audio_mean) / model.audio_std
    speaker = model.speaker(audio, batch["audio_present"], face_tokens)
    logits = model.listener(past, hidden, c.patch, speaker, model.standardise(batch["style"]))
    return logits, tokens[:, -c.patch:]


def predictor_loss(model: FacetokModel, batch: dict) -> dict:
    logits, targets = predictor_logits(model, batch, masked=True)
    ce = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    accuracy = (logits.argmax(-1) == targets).float().mean()
    alpha = model.speaker.fusion.blocks[0].cross.alpha
    return {"loss": ce, "patch_ce": ce, "patch_accuracy": accuracy, "fiber_gate": torch.tanh(alpha).detach()}


class PhasedTraining:
    """Which phase a step belongs to (`phase_of`), the loss of that phase and its learning-rate warmup."""

    def __init__(self, model: FacetokModel, optimizers: list[torch.optim.Optimizer]):
        self.model = model
        self.optimizers = dict(zip(("tokenizer", "emotion", "predictor"), optimizers))
        c = model.config
        self.starts = {"tokenizer": 0, "emotion": c.tokenizer_steps, "predictor": c.tokenizer_steps + c.emotion_steps}
        self.phase = "tokenizer"

    def on_step(self, step: int) -> None:
        """Set the phase of ``step`` and its optimiser's learning rate: linear warmup, then a cosine decay
        to zero over the fixed-length tokenizer and emotion phases; constant through the predictor phase."""
        c = self.model.config
        self.phase = phase_of(step, c)
        done = step - self.starts[self.phase]
        scale = min(1.0, (done + 1) / c.warmup_steps)
        if self.phase != "predictor":
            length = c.tokenizer_steps if self.phase == "tokenizer" else c.emotion_steps
            scale *= 0.5 * (1.0 + math.cos(math.pi * done / length))
        for group in self.optimizers[self.phase].param_groups:
            group["lr"] = group["initial_lr"] * scale

    def loss(self, batch: dict) -> dict:
        return {"tokenizer": tokenizer_loss, "emotion": emotion_loss, "predictor": predictor_loss}[self.phase](
            self.model, batch)


@torch.no_grad()
def tokenizer_metrics(model: FacetokModel, held_out: CorpusTensors, train: CorpusTensors) -> dict:
    """Held-out arkit58 reconstruction MSE against the training mean pose's, code usage and perplexity (train
    and held-out tokens together), and the emotion decoder's MSE against the training mean emotion's."""
    reactions = held_out.reactions.flatten(0, 1)                                   # [N·M, T, 58]
    codes, indices = model.tokenizer.encode(model.standardise(reactions))
    mse = (model.decode_motion(indices) - reactions).pow(2).mean().item()
    baseline = (reactions - train.reactions.flatten(0, 2).mean(0)).pow(2).mean().item()
    train_indices = model.tokenizer.encode(model.standardise(train.reactions.flatten(0, 1)))[1]
    usage = torch.bincount(torch.cat([train_indices.flatten(), indices.flatten()]),
                           minlength=model.tokenizer.codebook_size).float()
    probs = usage[usage > 0] / usage.sum()
    emotion_target = held_out.emotion.flatten(0, 1)
    return {
        "tokenizer_mse": mse, "mean_pose_mse": baseline, "mean_pose_over_tokenizer_mse": baseline / max(mse, 1e-12),
        "code_usage": (usage > 0).float().mean().item(), "code_perplexity": (-(probs * probs.log()).sum()).exp().item(),
        "emotion_decoder_mse": (model.emotion(codes) - emotion_target).pow(2).mean().item(),
        "mean_emotion_mse": (emotion_target - train.emotion.flatten(0, 2).mean(0)).pow(2).mean().item(),
    }


@torch.no_grad()
def predictor_metrics(model: FacetokModel, held_out: CorpusTensors) -> dict:
    """Cross-entropy and accuracy of every held-out patch after a full context (no masking)."""
    c = model.config
    ce, correct, scored = 0.0, 0.0, 0
    m = held_out.reactions.shape[1]
    for first in range(0, held_out.frames - c.window + 1, c.patch):
        last = first + c.window
        batch = {"audio": held_out.audio[:, first:last].repeat_interleave(m, 0),
                 "audio_present": held_out.audio_present.repeat_interleave(m, 0),
                 "face": held_out.face[:, first:last].repeat_interleave(m, 0),
                 "face_present": held_out.face_present.repeat_interleave(m, 0),
                 "listener": held_out.reactions[:, :, first:last].flatten(0, 1), "context": c.context,
                 "style": held_out.reactions.mean(dim=2).flatten(0, 1)}
        logits, targets = predictor_logits(model, batch, masked=False)
        ce += F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum").item()
        correct += (logits.argmax(-1) == targets).sum().item()
        scored += targets.numel()
    return {"patch_ce": ce / max(scored, 1), "patch_accuracy": correct / max(scored, 1),
            "fiber_gate": torch.tanh(model.speaker.fusion.blocks[0].cross.alpha).item()}


@torch.no_grad()
def reaction_metrics(model: FacetokModel, held_out: CorpusTensors, samples: int = 10, seed: int = 0) -> dict:
    """REACT FRCorr, FRDist, FRDiv of ``samples`` generated reactions per held-out speaker clip (emotion25 by
    `emotion_from_arkit`, against the clip's appropriate reactions), and FRCorr with the speakers rotated by
    one clip (generated reactions scored against another clip's), which a speaker-blind model would match."""
    preds = []
    for i in range(len(held_out.audio)):
        audio = ((held_out.audio[i] - model.audio_mean) / model.audio_std)[None]
        faces = model.face_tokens(held_out.face[i][None], held_out.face_present[i][None])
        standardised = sample_tokens(model, model.config, audio, held_out.audio_present[i][None], faces, samples,
                                     seed + i)[1]
        preds.append(emotion_from_arkit(model.to_arkit(standardised).cpu().numpy()))
    pred = np.stack(preds)
    appropriate = list(held_out.emotion.cpu().numpy())
    metrics = {"FRCorr": fr_corr(pred, appropriate), "FRDist": fr_dist(pred, appropriate), "FRDiv": fr_div(pred)}
    if len(pred) > 1:
        metrics["FRCorr_rotated_speakers"] = fr_corr(np.roll(pred, 1, axis=0), appropriate)
    return metrics


def evaluate(model: FacetokModel, held_out: CorpusTensors, train: CorpusTensors) -> dict:
    """All held-out metrics for the card (`tokenizer_metrics`, `predictor_metrics`, `reaction_metrics`)."""
    was_training = model.training
    model.eval()
    metrics = {**tokenizer_metrics(model, held_out, train), **predictor_metrics(model, held_out),
               **reaction_metrics(model, held_out)}
    model.train(was_training)
    return metrics


def _describe_data(data: Path, train: Corpus, held_out: Corpus) -> str:
    card = read_card(data) or {}
    teacher = card.get("teacher", "recorded listeners")
    return (f"{data} (spec {train.spec}, listener reactions from {teacher}, "
            f"{train.clips[0].reactions.shape[0]} per speaker clip): train split {len(train.clips)} speaker "
            f"clips / {train.seconds:.0f} s; held-out metrics on the {held_out.split} split "
            f"({len(held_out.clips)} clips / {held_out.seconds:.0f} s)")


def make_train_plan(data: Path, device: str = "cpu", seed: int = 0, init: Path | None = None,
                    **config_overrides) -> TrainPlan:
    """Plan facetok's phased training on the corpus at ``data`` (train split; val split for metrics).
    With ``init`` (fine-tuning) the config, weights, standardisation statistics and style bank come from
    that checkpoint, and training starts in the predictor phase (tokenizer and emotion decoder stay as
    they are; the learning-rate warmup restarts)."""
    data = Path(data)
    start = None if init is None else load_init(init, NAME, FacetokConfig)
    config = config_with(FacetokConfig, config_overrides, NAME, start and start.config)
    train_corpus, val_corpus = load_corpus(data, "train"), load_corpus(data, "val")
    if train_corpus.spec != "arkit58":
        raise ListenerctlError(f"facetok trains on arkit58 reactions; {data} holds {train_corpus.spec}.")
    return plan_training(CorpusTensors.of(train_corpus, device), CorpusTensors.of(val_corpus, device), config,
                         seed, _describe_data(data, train_corpus, val_corpus), start)


def plan_training(train: CorpusTensors, held_out: CorpusTensors, config: FacetokConfig, seed: int,
                  description: str, init: InitCheckpoint | None = None) -> TrainPlan:
    """The `TrainPlan` for ``train`` (standardisation statistics, batches) and ``held_out`` (metrics),
    fine-tuning from ``init`` when given (see `make_train_plan`)."""
    if train.frames < config.window:
        raise ListenerctlError(f"the training clips have {train.frames} frames, fewer than one facetok training "
                               f"window ({config.window}).")
    device = train.audio.device
    torch.manual_seed(seed)
    model = start_model(FacetokModel, config, init).to(device)
    first_step = 0 if init is None else config.tokenizer_steps + config.emotion_steps
    if init is None:
        model.set_statistics(train.reactions.flatten(0, 2), train.audio[train.audio_present].flatten(0, 1)
                         if bool(train.audio_present.any()) else torch.zeros(2, AUDIO_FEATURE_DIM, device=device),
                         train.reactions.mean(dim=2).flatten(0, 1), torch.Generator().manual_seed(seed))
    optimizers = [torch.optim.AdamW(part.parameters(), lr=lr, weight_decay=0.01)
                  for part, lr in ((model.tokenizer, config.tokenizer_lr), (model.emotion, config.tokenizer_lr),
                                   (nn.ModuleList([model.speaker, model.listener]), config.predictor_lr))]
    for opt in optimizers:
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"]
    phases = PhasedTraining(model, optimizers)
    card = {"model": NAME, "config": json.loads(json.dumps(asdict(config))), "spec": "arkit58", "fps": 25.0,
            "training_data": description}
    return TrainPlan(model, optimizers, training_batches(train, config, seed, first_step), phases.loss,
                     lambda: evaluate(model, held_out, train), card, phases.on_step, first_step,
                     None if init is None else init.card)
