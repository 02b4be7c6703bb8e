"""The shared training loop every learned model uses (``listenerctl train MODEL``).

A model's training module (`training.<model>`) builds a `TrainPlan` (its module, optimisers, an endless
batch iterator, a loss and a held-out evaluation, and the card describing it); `run_training` runs the plan
for ``steps`` steps and writes, beside ``out_stem``:

- ``<stem>.log.csv``   — every loss term averaged over each ``log_every`` steps (plus the gradient norm);
- ``<stem>.loss.png``  — those curves (matplotlib, Agg);
- ``<stem>.state.safetensors`` + ``<stem>.state.json`` — the training state at the last log point
  (model + optimiser states, step, RNG states, wall time), from which an interrupted or extended run
  resumes bit for bit; tensors go through safetensors, everything else through JSON, nothing is pickled;
- ``<stem>.safetensors`` + ``<stem>.json`` — the checkpoint (`checkpoint.save_checkpoint`) with the
  card: the plan's card plus steps, wall time, held-out metrics and how it was trained.

Resuming rebuilds the batch iterator's position by drawing and discarding the batches already used,
then restores the RNG states: a batch iterator that draws from its own seeded generator, or from the
global RNGs one batch at a time, therefore continues exactly where the interrupted run stopped.
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import Tensor

from listenerctl.atomic import atomic_file
from listenerctl.checkpoint import config_from_card, load_checkpoint, load_into, save_checkpoint
from listenerctl.errors import ListenerctlError

PLAN_CARD_FIELDS = ("model", "config", "spec", "fps", "training_data")
GRAD_CLIP_NORM = 1.0


@dataclass
class TrainPlan:
    """Everything `run_training` needs to train one model.

    ``batches`` is endless and seeded; ``loss(batch)`` returns ``{"loss": total, other terms}`` (tensors
    or floats; every term is logged); ``evaluate()`` returns held-out metrics (floats) for the card;
    ``card`` holds model, config, spec, fps and training_data; ``on_step(step)`` runs before each step with the
    schedule's step, ``first_step`` + the run's 0-based step (a fine-tuning run starts at its model's last
    training phase), e.g. to anneal a temperature or switch training phase; ``init`` is the init checkpoint's
    entry (`InitCheckpoint.card`) the checkpoint card records, for a fine-tuning run.
    """

    model: torch.nn.Module
    optimizers: list[torch.optim.Optimizer]
    batches: Iterator[dict]
    loss: Callable[[dict], dict]
    evaluate: Callable[[], dict]
    card: dict
    on_step: Callable[[int], None] | None = None
    first_step: int = 0
    init: dict | None = None


Config = TypeVar("Config")


def config_with(config_class: type[Config], overrides: dict, model: str, base: Config | None = None) -> Config:
    """``config_class`` (or the config ``base``, e.g. a fine-tuning run's init checkpoint's) with the training
    ``overrides`` of ``model`` applied; one sentence naming unknown settings (and the known ones) or the
    class's objection to a value."""
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ListenerctlError(f"unknown {model} setting {', '.join(unknown)}; known: {', '.join(sorted(known))}.")
    try:
        return config_class(**overrides) if base is None else replace(base, **overrides)
    except (TypeError, ValueError) as error:
        raise ListenerctlError(f"invalid {model} settings ({error}).") from None


@dataclass
class InitCheckpoint:
    """The checkpoint a fine-tuning run starts from (``train --init``): its weights and normalisation
    buffers (``state``), its model config (architecture and schedule; ``config``) and what the new card
    records of it (``card``: path, sha256, steps, training data)."""

    state: dict[str, Tensor]
    config: Any
    card: dict

    def statistics(self, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The checkpoint's buffers ``names`` (normalisation statistics) as float32 arrays."""
        missing = [name for name in names if name not in self.state]
        if missing:
            raise ListenerctlError(f"checkpoint {self.card['checkpoint']} lacks the normalisation statistics "
                                   f"{', '.join(missing)}; it was made by another version.")
        return {name: self.state[name].float().numpy() for name in names}


def load_init(path: Path, model: str, config_class: type[Config]) -> InitCheckpoint:
    """The `InitCheckpoint` at ``path`` for ``model``; one sentence when it holds another model, is
    corrupt, or has a config this version cannot build."""
    state, card = load_checkpoint(path, expected_model=model)
    config = config_from_card(card, config_class, path)
    return InitCheckpoint(state, config, {"checkpoint": str(path), "sha256": card["sha256"], "steps": card["steps"],
                                          "training_data": card["training_data"]})


def start_model(model_class: Callable[[Config], torch.nn.Module], config: Config,
                init: InitCheckpoint | None) -> torch.nn.Module:
    """``model_class(config)``, holding ``init``'s weights and buffers when fine-tuning."""
    model = model_class(config)
    if init is not None:
        load_into(model, init.state, source=f"checkpoint {init.card['checkpoint']}")
    return model


def state_paths(out_stem: Path) -> tuple[Path, Path]:
    """(tensors, JSON) paths of the training state kept beside ``out_stem``."""
    out_stem = Path(out_stem)
    return out_stem.with_name(out_stem.name + ".state.safetensors"), out_stem.with_name(out_stem.name + ".state.json")


def log_paths(out_stem: Path) -> tuple[Path, Path]:
    """(CSV log, PNG plot) paths beside ``out_stem``."""
    out_stem = Path(out_stem)
    return out_stem.with_name(out_stem.name + ".log.csv"), out_stem.with_name(out_stem.name + ".loss.png")


# ---------------------------------------------------------------- nested state ↔ (JSON, tensors)

def _flatten(value: Any, prefix: str, tensors: dict[str, Tensor]) -> Any:
    """A JSON-able copy of ``value`` with every tensor moved into ``tensors`` under a key from ``prefix``.

    Dicts become ``{"dict": [[key, value], ...]}`` so integer keys (optimiser parameter ids) survive,
    tuples ``{"tuple": [...]}``, tensors ``{"tensor": key}``.
    """
    if isinstance(value, Tensor):
        tensors[prefix] = value.detach().cpu().contiguous().clone()
        return {"tensor": prefix}
    if isinstance(value, dict):
        return {"dict": [[k, _flatten(v, f"{prefix}.{k}", tensors)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        items = [_flatten(v, f"{prefix}.{i}", tensors) for i, v in enumerate(value)]
        return {"tuple": items} if isinstance(value, tuple) else items
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    return value


def _unflatten(value: Any, tensors: dict[str, Tensor]) -> Any:
    """The inverse of `_flatten`."""
    if isinstance(value, list):
        return [_unflatten(v, tensors) for v in value]
    if isinstance(value, dict):
        if "tensor" in value:
            return tensors[value["tensor"]]
        if "dict" in value:
            return {k: _unflatten(v, tensors) for k, v in value["dict"]}
        if "tuple" in value:
            return tuple(_unflatten(v, tensors) for v in value["tuple"])
        if "float" in value:
            return float(value["float"])
    return value


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "python": random.getstate(),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_state(out_stem: Path, plan: TrainPlan, step: int, wall_time_s: float) -> None:
    """Write the training state after ``step`` steps (atomically: tensors first, then the JSON naming them)."""
    tensors: dict[str, Tensor] = {}
    meta = {
        "model": plan.card["model"], "config": plan.card["config"], "step": step, "wall_time_s": wall_time_s,
        "weights": _flatten(plan.model.state_dict(), "model", tensors),
        "optimizers": [_flatten(opt.state_dict(), f"optim{i}", tensors) for i, opt in enumerate(plan.optimizers)],
        "rng": _flatten(_rng_state(), "rng", tensors),
    }
    tensor_path, json_path = state_paths(out_stem)
    tensor_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(tensor_path) as fh:
        fh.write(save_safetensors(tensors))
    with atomic_file(json_path, "w") as fh:
        json.dump(meta, fh)


def load_state(out_stem: Path, plan: TrainPlan) -> tuple[int, float, dict] | None:
    """Load the saved training state into ``plan`` (model, optimisers); return (step, wall time, RNG
    state), or None when there is no saved state. A state of another model or config is refused."""
    tensor_path, json_path = state_paths(out_stem)
    if not json_path.is_file():
        return None
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
        tensors = load_safetensors(tensor_path.read_bytes())
    except Exception as error:  # JSON, I/O and safetensors errors all mean the same thing to the user
        raise ListenerctlError(f"training state {json_path} cannot be read ({type(error).__name__}); delete "
                               f"it to start afresh.") from None
    if meta.get("model") != plan.card["model"] or meta.get("config") != _json_round_trip(plan.card["config"]):
        raise ListenerctlError(f"training state {json_path} belongs to another model or config; delete it or "
                               f"train without resuming.")
    load_into(plan.model, _unflatten(meta["weights"], tensors), source=f"training state {tensor_path}")
    if len(meta["optimizers"]) != len(plan.optimizers):
        raise ListenerctlError(f"training state {json_path} has {len(meta['optimizers'])} optimiser states, "
                               f"the plan {len(plan.optimizers)}.")
    for opt, saved in zip(plan.optimizers, meta["optimizers"]):
        opt.load_state_dict(_unflatten(saved, tensors))
    return int(meta["step"]), float(meta["wall_time_s"]), _unflatten(meta["rng"], tensors)


def _json_round_trip(value: Any) -> Any:
    return json.loads(json.dumps(value))


# ---------------------------------------------------------------- log

class LossLog:
    """Rows ``{"step", "wall_s", term...}`` of averaged loss terms, rewritten as CSV + PNG at each flush."""

    def __init__(self, out_stem: Path, keep_until: int):
        self.csv_path, self.png_path = log_paths(out_stem)
        self.rows: list[dict[str, float]] = []
        if keep_until > 0 and self.csv_path.is_file():
            with self.csv_path.open(newline="") as fh:
                self.rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)
                             if float(row["step"]) <= keep_until]
        self._sums: dict[str, Tensor | float] = {}
        self._count = 0

    def add(self, terms: dict) -> None:
        """Accumulate one step's terms (tensors stay on their device until the next `row`)."""
        for name, value in terms.items():
            value = value.detach().float() if isinstance(value, Tensor) else float(value)
            self._sums[name] = self._sums.get(name, 0.0) + value
        self._count += 1

    def row(self, step: int, wall_s: float) -> dict[str, float]:
        """Close the current interval: append and return its means."""
        means = {name: float(total) / self._count for name, total in self._sums.items()}
        self.rows.append({"step": float(step), "wall_s": wall_s, **means})
        self._sums, self._count = {}, 0
        return means

    def flush(self) -> None:
        if not self.rows:
            return
        columns = list(dict.fromkeys(k for row in self.rows for k in row))
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.csv_path, "w") as fh:
            writer = csv.DictWriter(fh, columns)
            writer.writeheader()
            writer.writerows({k: f"{v:.6g}" for k, v in row.items()} for row in self.rows)
        self._plot(columns)

    def _plot(self, columns: list[str]) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        terms = [c for c in columns if c not in ("step", "wall_s")]
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for term in terms:
            points = [(r["step"], r[term]) for r in self.rows if term in r and math.isfinite(r[term])]
            if points:
                ax.plot(*zip(*points), label=term, lw=1.5 if term == "loss" else 1.0)
        if all(r[t] > 0 for r in self.rows for t in terms if t in r and math.isfinite(r[t])):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(self.png_path.name.removesuffix(".loss.png"))
        ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_file(self.png_path) as fh:
            fig.savefig(fh, format="png", dpi=100)
        plt.close(fig)


# ---------------------------------------------------------------- loop

def _parameters(optimizers: list[torch.optim.Optimizer]) -> list[Tensor]:
    return [p for opt in optimizers for group in opt.param_groups for p in group["params"]]


def run_training(plan: TrainPlan, steps: int, out_stem: Path, log_every: int = 50, resume: bool = True,
                 device: str = "cpu", amp: bool = False, seed: int = 0) -> dict:
    """Train ``plan`` up to ``steps`` total steps and write the checkpoint ``out_stem``; return its card.

    Each step: ``on_step(step)``, zero every optimiser's gradients, ``loss(next(batches))`` (under bf16
    autocast when ``amp`` and ``device`` is CUDA), backward on ``"loss"``, clip the global gradient norm
    to 1.0, step every optimiser. Every ``log_every`` steps the averaged terms are logged and the
    training state saved; with ``resume`` a saved state continues at its step (a finished run
    re-evaluates and rewrites the checkpoint). Then ``evaluate()`` runs in eval mode without gradients.
    """
    missing = [field for field in PLAN_CARD_FIELDS if field not in plan.card]
    if missing:
        raise ValueError(f"the plan's card lacks {', '.join(missing)}")
    if steps < 0 or log_every < 1:
        raise ValueError(f"need steps >= 0 and log_every >= 1, got {steps} and {log_every}")
    out_stem = Path(out_stem)
    _seed_everything(seed)
    start, wall_before, rng = 0, 0.0, None
    if resume and (saved := load_state(out_stem, plan)) is not None:
        start, wall_before, rng = saved
        if start > steps:
            raise ListenerctlError(f"the training state beside {out_stem} is at step {start}, past the "
                                   f"{steps} steps asked for; ask for more steps or train without resuming.")
        for _ in range(start):
            next(plan.batches)
        _set_rng_state(rng)
    log = LossLog(out_stem, keep_until=start)
    params = _parameters(plan.optimizers)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and str(device).startswith("cuda"))
    plan.model.train()
    began = time.perf_counter()
    for step in range(start, steps):
        if plan.on_step is not None:
            plan.on_step(plan.first_step + step)
        for opt in plan.optimizers:
            opt.zero_grad(set_to_none=True)
        with autocast:
            terms = plan.loss(next(plan.batches))
        terms["loss"].backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP_NORM)
        for opt in plan.optimizers:
            opt.step()
        log.add({**terms, "grad_norm": grad_norm})
        done = step + 1
        if done % log_every == 0 or done == steps:
            wall = wall_before + time.perf_counter() - began
            means = log.row(done, wall)
            if not math.isfinite(means["loss"]):
                raise ListenerctlError(f"training diverged: the loss is {means['loss']} at step {done}.")
            log.flush()
            save_state(out_stem, plan, done, wall)
    wall_time = wall_before + time.perf_counter() - began
    plan.model.eval()
    with torch.no_grad():
        metrics = {name: float(value) for name, value in plan.evaluate().items()}
    last = {k: v for k, v in log.rows[-1].items() if k not in ("step", "wall_s")} if log.rows else {}
    card = {**plan.card, **({} if plan.init is None else {"init": plan.init}),
            "steps": steps, "wall_time_s": round(wall_time, 2), "metrics": metrics,
            "training": {"seed": seed, "device": str(device), "amp": amp, "log_every": log_every,
                         "resumed_from": start, "final_terms": last, "log": log.csv_path.name,
                         "torch": torch.__version__}}
    save_checkpoint(out_stem, plan.model.state_dict(), card)
    return card
