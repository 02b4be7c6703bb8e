"""Training of the sfms listener (`models.sfms`): phase 1 trains the keyframe tokenizer (Gumbel top-k
temperature and noise annealed, `temperature_at`), phase 2 tokenises every training reaction once and
trains the predictor on windows of those token timelines (`token_batch`); held out: reconstruction MSE,
prediction losses and REACT metrics of generated reactions."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from listenerctl.data.corpus import training_data_card
from listenerctl.evaluate import generate_predictions, score
from listenerctl.models.sfms import FPS, NAME, SFMS, SPEC, WINDOW_CHUNK, SFMSConfig, SFMSListener
from listenerctl.motion import ARKIT58_DIM
from listenerctl.training.listener_windows import WindowSource, feature_statistics, listener_splits
from listenerctl.training.loop import TrainPlan, config_with, load_init, start_model

EVAL_SAMPLES = 10
EVAL_WINDOWS = 512


def tokenise_reactions(model: SFMS, source: WindowSource, window: int) -> Tensor:
    """Every reaction of ``source`` as frame tokens [R, J · w] (J whole windows from its start)."""
    tiles = source.tiles(window)[..., :ARKIT58_DIM]
    with torch.no_grad():
        tokens = torch.cat([model.tokenizer.tokens(c) for c in tiles.flatten(0, 1).split(WINDOW_CHUNK * 4)])
    return tokens.view(tiles.shape[0], -1)


def token_batch(source: WindowSource, tokens: Tensor, neutral: Tensor, rng: np.random.Generator, size: int,
                cfg: SFMSConfig) -> dict:
    """``size`` random ``context + chunk``-frame predictor windows of the token timelines ``tokens``
    [R, L] with their speaker features (random face / audio drops, as `WindowSource.batch`): tokens
    [B, n], frames [B, n] (index in the reaction), audio [B, n, 123], face [B, n, 83], per-frame flags
    has_audio / has_face [B, n]. With chance ``neutral_prefix`` the first 1 … context frames are a neutral
    prefix: the neutral pose's tokens (``neutral`` [w], by grid phase) and no speaker."""
    n = cfg.context + cfg.chunk
    device = tokens.device
    reaction = rng.integers(0, len(tokens), size)
    _, speaker_row, _, has_audio, has_face = source.reactions[reaction].T
    start = rng.integers(0, tokens.shape[1] - n + 1, size)
    frames = start[:, None] + np.arange(n)
    prefix_length = np.where(rng.random(size) < cfg.neutral_prefix, rng.integers(1, cfg.context + 1, size), 0)
    prefix = np.arange(n)[None] < prefix_length[:, None]
    keep_face = has_face.astype(bool) & (rng.random(size) >= cfg.face_drop)
    keep_audio = has_audio.astype(bool) & ~(keep_face & (rng.random(size) < cfg.audio_drop))
    frames_t = torch.from_numpy(frames).to(device)
    prefix_t = torch.from_numpy(prefix).to(device)
    window_tokens = tokens[torch.from_numpy(reaction).to(device)[:, None], frames_t]
    window_tokens = torch.where(prefix_t, neutral[frames_t % cfg.window], window_tokens)
    rows = torch.from_numpy(speaker_row[:, None] + frames).to(device)
    flag = lambda keep: torch.from_numpy(keep[:, None] & ~prefix).to(device)  # noqa: E731
    return {"tokens": window_tokens, "frames": frames_t, "audio": source.audio[rows], "face": source.face[rows],
            "has_audio": flag(keep_audio), "has_face": flag(keep_face)}


def temperature_at(cfg: SFMSConfig, step: int) -> tuple[float, float]:
    """Gumbel top-k (temperature, noise scale) at training ``step``: the temperature geometric from
    tau_start to tau_end and the noise scale linear from 1 to 0 over phase 1."""
    progress = min(1.0, step / max(1, cfg.tokenizer_steps - 1))
    return cfg.tau_start * (cfg.tau_end / cfg.tau_start) ** progress, 1.0 - progress


def make_train_plan(data: Path, device: str = "cpu", seed: int = 0, init: Path | None = None, **config_overrides):
    """The `TrainPlan` for the shared trainer on the corpus at ``data`` (its train split; val is held out).

    Three optimisers: the scorer's and the rest of the tokenizer's (phase 1), the predictor's (phase 2).
    With ``init`` (fine-tuning) the config, weights and normalisation statistics come from that checkpoint,
    and training starts in phase 2 (the tokenizer stays frozen; the learning-rate warmup restarts)."""
    start = None if init is None else load_init(init, NAME, SFMSConfig)
    cfg = config_with(SFMSConfig, config_overrides, NAME, start and start.config)
    train, val = listener_splits(data, NAME)
    torch.manual_seed(seed)
    model = start_model(SFMS, cfg, start)
    if start is None:
        stats = feature_statistics(train)
        model.motion_mean.copy_(torch.from_numpy(stats["motion_mean"][:ARKIT58_DIM]))
        model.motion_std.copy_(torch.from_numpy(stats["motion_std"][:ARKIT58_DIM]))
        model.face_mean.copy_(torch.from_numpy(stats["motion_mean"]))
        model.face_std.copy_(torch.from_numpy(stats["motion_std"]))
        model.audio_mean.copy_(torch.from_numpy(stats["audio_mean"]))
        model.audio_std.copy_(torch.from_numpy(stats["audio_std"]))
    else:   # the face buffers hold the 83-channel listener statistics the windows are normalised with
        stats = {"motion_mean": model.face_mean.numpy(), "motion_std": model.face_std.numpy(),
                 "audio_mean": model.audio_mean.numpy(), "audio_std": model.audio_std.numpy()}
    model.to(device)
    source, held_out = (WindowSource.from_corpus(c, stats, device) for c in (train, val))
    optimizers = [torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay) for params, lr in (
        (model.tokenizer.scorer_parameters(), cfg.scorer_lr), (model.tokenizer.coder_parameters(), cfg.lr),
        (list(model.predictor.parameters()), cfg.lr))]
    phase = {"predictor": False, "temperature": cfg.tau_start, "noise": 1.0}

    def on_step(step: int) -> None:
        predictor = step >= cfg.tokenizer_steps
        phase["predictor"] = predictor
        phase["temperature"], phase["noise"] = temperature_at(cfg, step)
        for param in model.tokenizer.parameters():
            param.requires_grad_(not predictor)
        since = step - cfg.tokenizer_steps if predictor else step
        for opt, base in zip(optimizers, (cfg.scorer_lr, cfg.lr, cfg.lr)):
            for group in opt.param_groups:
                group["lr"] = base * min(1.0, (since + 1) / cfg.warmup_steps)

    timeline: dict[str, Tensor] = {}

    def loss(batch: dict) -> dict:
        if not phase["predictor"]:
            terms = model.tokenizer.loss(batch["listener"][..., :ARKIT58_DIM], phase["temperature"], cfg.best_of,
                                         cfg.select_weight, phase["noise"])
            return {**terms, "tau": phase["temperature"], "noise": phase["noise"]}
        if "train" not in timeline:
            timeline["train"] = tokenise_reactions(model, source, cfg.window)
            model.fit_token_prior(timeline["train"])
        rng = np.random.default_rng(batch["seed"])
        return model.prediction_loss(token_batch(source, timeline["train"], model.neutral_tokens, rng,
                                                 cfg.batch_size, cfg))

    def batches() -> Iterator[dict]:
        """Tokenizer windows, and the seed of the step's predictor windows (drawn in `loss` once the
        token timelines exist), so that a resumed run replays both."""
        window_rng = np.random.default_rng(seed)
        while True:
            batch = source.batch(window_rng, cfg.batch_size, cfg.window, cfg.face_drop, cfg.audio_drop)
            yield {**batch, "seed": int(window_rng.integers(2**62))}

    def evaluate() -> dict:
        listener = held_out.batch(np.random.default_rng(seed + 1), EVAL_WINDOWS, cfg.window, 0.0, 0.0)["listener"]
        listener = listener[..., :ARKIT58_DIM]
        metrics = {"val_recon_mse": F.mse_loss(model.tokenizer.reconstruct(listener), listener)}
        if phase["predictor"]:
            val_tokens = tokenise_reactions(model, held_out, cfg.window)
            batch = token_batch(held_out, val_tokens, model.neutral_tokens, np.random.default_rng(seed + 1),
                                EVAL_WINDOWS, cfg)
            metrics.update({f"val_{k}": v for k, v in model.prediction_loss(batch).items() if k != "loss"})
            generator = SFMSListener(model)
            react = score(generate_predictions(generator, val, EVAL_SAMPLES, seed), val)
            metrics.update({f"val_{name}_k{EVAL_SAMPLES}": value for name, value in react.items()})
        return metrics

    card = {"model": NAME, "config": asdict(cfg), "spec": SPEC.name, "fps": FPS,
            "training_data": training_data_card(train, val, len(source.reactions))}
    return TrainPlan(model, optimizers, batches(), loss, evaluate, card, on_step,
                     first_step=0 if start is None else cfg.tokenizer_steps,
                     init=None if start is None else start.card)
