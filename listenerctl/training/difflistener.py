"""Training of the difflistener (`models.difflistener`): the two-phase `TrainPlan` (VQ-VAE, then the
token diffusion around the frozen VQ-VAE) and its held-out evaluation (VQ-VAE report, diffusion losses,
REACT metrics with and without the speaker-shuffle control)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from listenerctl.data.corpus import training_data_card
from listenerctl.errors import ListenerctlError
from listenerctl.evaluate import generate_predictions, score
from listenerctl.models.difflistener import FPS, NAME, SPEC, DiffListener, DiffListenerConfig, DiffListenerModel
from listenerctl.training.listener_windows import STATISTICS, WindowSource, feature_statistics, listener_splits
from listenerctl.training.loop import TrainPlan, config_with, load_init, start_model

EVAL_SAMPLES = 10
EVAL_WINDOWS = 256


def held_out_tiles(source: WindowSource, cfg: DiffListenerConfig) -> Tensor:
    """Every held-out reaction cut into whole windows: normalised frames [R · J, w, 83]."""
    return source.tiles(cfg.window).flatten(0, 1)


def make_train_plan(data: Path, device: str = "cpu", seed: int = 0, init: Path | None = None, **config_overrides):
    """The `TrainPlan` for the shared trainer on the corpus at ``data`` (its train split; val is held out).
    A corpus with transcript embeddings sets ``text_dim`` (unless overridden). Held-out REACT metrics
    (K = 10, and with the speaker clips' conditioning rotated by one: the speaker-shuffle control) are
    computed only once the diffusion phase has trained.

    With ``init`` (fine-tuning) the config (``text_dim`` included), weights and normalisation statistics
    come from that checkpoint, and training starts in the diffusion phase (the VQ-VAE stays frozen; the
    learning-rate warmup restarts)."""
    start = None if init is None else load_init(init, NAME, DiffListenerConfig)
    train, val = listener_splits(data, NAME)
    stats = feature_statistics(train) if start is None else start.statistics(STATISTICS)
    source, held_out = (WindowSource.from_corpus(c, stats, device) for c in (train, val))
    text = {} if start is not None else {"text_dim": source.text_dim}
    cfg = config_with(DiffListenerConfig, {**text, **config_overrides}, NAME, start and start.config)
    if cfg.text_dim and (source.text_dim != cfg.text_dim or held_out.text_dim not in (0, cfg.text_dim)):
        raise ListenerctlError(f"the corpus at {data} has {source.text_dim}-channel transcript embeddings in train "
                               f"and {held_out.text_dim} in val; text_dim is {cfg.text_dim}.")
    torch.manual_seed(seed)
    model = start_model(DiffListenerModel, cfg, start)
    if start is None:
        for name, values in stats.items():
            getattr(model, name).copy_(torch.from_numpy(values))
    model.to(device)
    optimizers = [torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
                  for params in (model.vqvae_parameters(), model.diffusion_parameters())]
    phase = {"diffusion": False, "diffusion_trained": False}

    def on_step(step: int) -> None:
        diffusion = step >= cfg.vqvae_steps
        phase["diffusion"] = diffusion
        phase["diffusion_trained"] |= diffusion
        for param in model.vqvae_parameters():       # phase 2 trains around a frozen VQ-VAE
            param.requires_grad_(not diffusion)
        since = step - cfg.vqvae_steps if diffusion else step
        for group in optimizers[int(diffusion)].param_groups:
            group["lr"] = cfg.lr * min(1.0, (since + 1) / cfg.warmup_steps)

    def loss(batch: dict) -> dict:
        return model.diffusion_loss(batch) if phase["diffusion"] else model.vqvae_loss(batch)

    def batches() -> Iterator[dict]:
        rng = np.random.default_rng(seed)
        while True:
            yield source.batch(rng, cfg.batch_size, cfg.window, cfg.face_drop, cfg.audio_drop, cfg.text_drop)

    def evaluate() -> dict:
        metrics = {f"val_{k}": v for k, v in model.vqvae_report(held_out_tiles(held_out, cfg)).items()}
        if not phase["diffusion_trained"]:
            return metrics
        batch = held_out.batch(np.random.default_rng(seed + 1), EVAL_WINDOWS, cfg.window, 0.0, 0.0)
        metrics.update({f"val_{k}": v for k, v in model.diffusion_loss(
            batch, torch.Generator(device).manual_seed(seed + 1)).items() if k != "loss"})
        generator = DiffListener(model)
        conds = [clip.cond for clip in val.clips]
        for label, order in (("", conds), ("_shuffled", conds[1:] + conds[:1])):
            react = score(generate_predictions(generator, val, EVAL_SAMPLES, seed, order), val)
            names = ("FRCorr",) if label else react
            metrics.update({f"val_{name}{label}_k{EVAL_SAMPLES}": react[name] for name in names})
        return metrics

    card = {"model": NAME, "config": asdict(cfg), "spec": SPEC.name, "fps": FPS,
            "training_data": training_data_card(train, val, len(source.reactions))}
    return TrainPlan(model, optimizers, batches(), loss, evaluate, card, on_step,
                     first_step=0 if start is None else cfg.vqvae_steps,
                     init=None if start is None else start.card)
