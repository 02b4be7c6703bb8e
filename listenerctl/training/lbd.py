"""Training of the lbd listener (`models.lbd`): the two-phase `TrainPlan` and its held-out evaluation.

Phase 1 (the first ``autoencoder_steps``) trains Er / Dr on reconstruction; phase 2 freezes them, fits
the training reactions' style prior and trains the denoiser and the speaker branch (see `models.lbd`).
Held out: reconstruction and epsilon MSE on val windows, and REACT metrics of K = `EVAL_SAMPLES`
generated reactions per val clip."""

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
from listenerctl.models.lbd import FPS, NAME, SPEC, LatentBehaviorDiffusion, LBDConfig, LBDListener
from listenerctl.training.listener_windows import STATISTICS, WindowSource, feature_statistics, listener_splits
from listenerctl.training.loop import TrainPlan, config_with, load_init, start_model

EVAL_SAMPLES = 10
EVAL_WINDOWS = 256


def make_train_plan(data: Path, device: str = "cpu", seed: int = 0, init: Path | None = None, **config_overrides):
    """The `TrainPlan` for the shared trainer on the corpus at ``data`` (its train split; val is held out).

    With ``init`` (fine-tuning) the config, weights and normalisation statistics come from that checkpoint,
    and training starts in the diffusion phase (Er / Dr stay frozen; the learning-rate warmup restarts)."""
    start = None if init is None else load_init(init, NAME, LBDConfig)
    cfg = config_with(LBDConfig, config_overrides, NAME, start and start.config)
    train, val = listener_splits(data, NAME)
    torch.manual_seed(seed)
    model = start_model(LatentBehaviorDiffusion, cfg, start)
    stats = feature_statistics(train) if start is None else start.statistics(STATISTICS)
    if start is None:
        for name, values in stats.items():
            getattr(model, name).copy_(torch.from_numpy(values))
    model.to(device)
    source, held_out = (WindowSource.from_corpus(c, stats, device) for c in (train, val))
    optimizers = [torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
                  for params in (model.autoencoder_parameters(), model.diffusion_parameters())]
    phase = {"diffusion": False}

    def on_step(step: int) -> None:
        diffusion = step >= cfg.autoencoder_steps
        phase["diffusion"] = diffusion
        for param in model.autoencoder_parameters():   # phase 2 trains around a frozen Er / Dr
            param.requires_grad_(not diffusion)
        since = step - cfg.autoencoder_steps if diffusion else step
        for group in optimizers[int(diffusion)].param_groups:
            group["lr"] = cfg.lr * min(1.0, (since + 1) / cfg.warmup_steps)

    styles: dict[str, Tensor] = {}  # phase 2: each training reaction's style, from the frozen Er

    def loss(batch: dict) -> dict:
        if not phase["diffusion"]:
            return model.reconstruction_loss(batch)
        if "train" not in styles:
            styles["train"] = model.reaction_styles(source.tiles(cfg.window))
            model.fit_style_prior(styles["train"])
        return model.diffusion_loss({**batch, "style": styles["train"][batch["reaction"]]})

    def batches() -> Iterator[dict]:
        rng = np.random.default_rng(seed)
        while True:
            yield source.batch(rng, cfg.batch_size, cfg.window, cfg.face_drop, cfg.audio_drop)

    def evaluate() -> dict:
        batch = held_out.batch(np.random.default_rng(seed + 1), EVAL_WINDOWS, cfg.window, 0.0, 0.0)
        recon = model.decoder(model.encoder(model.encoder.embed_motion(batch["listener"])))
        noise = torch.Generator(device).manual_seed(seed + 1)
        batch["style"] = model.reaction_styles(held_out.tiles(cfg.window))[batch["reaction"]]
        generator = LBDListener(model)
        react = score(generate_predictions(generator, val, EVAL_SAMPLES, seed), val)
        return {"val_recon_mse": F.mse_loss(recon, batch["listener"]),
                "val_eps_mse": model.diffusion_loss(batch, noise)["eps"],
                **{f"val_{name}_k{EVAL_SAMPLES}": value for name, value in react.items()}}

    card = {"model": NAME, "config": asdict(cfg), "spec": SPEC.name, "fps": FPS,
            "training_data": training_data_card(train, val, len(source.reactions))}
    return TrainPlan(model, optimizers, batches(), loss, evaluate, card, on_step,
                     first_step=0 if start is None else cfg.autoencoder_steps,
                     init=None if start is None else start.card)
