"""Registry of generators: name → how to build it and, for a learned one, how to train it. Model and
training modules are imported only when an entry is used (`resolve`), so the CLI starts fast."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from listenerctl.errors import ListenerctlError
from listenerctl.models.base import Generator
from listenerctl.paths import SHIPPED_DIR


def resolve(target: str) -> Any:
    """The object a 'module:attribute' string names, importing its module (the registry's one lazy import)."""
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


@dataclass(frozen=True)
class ModelEntry:
    """A registered generator: ``target`` is 'module:Class'; ``task`` is 'listener' or 'cospeech'; a learned
    model's ``trainer`` is 'module:function', its training plan builder (``make_train_plan(data, device,
    seed, [init,] **config_overrides)`` returning a `training.loop.TrainPlan`)."""

    name: str
    target: str
    task: str
    description: str
    trainer: str | None = None

    @property
    def learned(self) -> bool:
        """Whether the model is trained (has a trainer and loads a checkpoint)."""
        return self.trainer is not None

    def default_checkpoint(self) -> Path | None:
        path = SHIPPED_DIR / f"{self.name}.safetensors"
        return path if self.learned else None


REGISTRY: dict[str, ModelEntry] = {e.name: e for e in (
    ModelEntry("rules", "listenerctl.models.rules:RuleListener", "listener",
               "rule-based listener: backchannel nods, smile mimicry, blinks, brow raises, sway"),
    ModelEntry("mime", "listenerctl.models.baselines:MimeListener", "listener",
               "baseline: the speaker's face copied with a 0.5 s lag (needs a face in the input)"),
    ModelEntry("random", "listenerctl.models.baselines:RandomListener", "listener",
               "baseline: smooth random motion, blind to the speaker"),
    ModelEntry("mean", "listenerctl.models.baselines:MeanListener", "listener",
               "baseline: a constant neutral pose"),
    ModelEntry("diffsheg", "listenerctl.models.diffsheg:DiffSheg", "cospeech",
               "DiffSHEG UniEG: speaker face (51 ARKit weights) and upper-body gestures (BEAT) from speech",
               trainer="listenerctl.training.diffsheg:make_train_plan"),
    ModelEntry("difflistener", "listenerctl.models.difflistener:DiffListener", "listener",
               "DiffListener: VQ-VAE motion tokens drawn by mask-and-replace discrete diffusion",
               trainer="listenerctl.training.difflistener:make_train_plan"),
    ModelEntry("lbd", "listenerctl.models.lbd:LBDListener", "listener",
               "Latent Behavior Diffusion: latent diffusion over 2 s windows, speaker-conditioned",
               trainer="listenerctl.training.lbd:make_train_plan"),
    ModelEntry("sfms", "listenerctl.models.sfms:SFMSListener", "listener",
               "Sparse Facial Motion Structure: keyframe tokens predicted from the speaker, frames inpainted",
               trainer="listenerctl.training.sfms:make_train_plan"),
    ModelEntry("facetok", "listenerctl.models.facetok:FacetokListener", "listener",
               "FSQ facial tokens (1000 codes) predicted 32 frames at a time from the speaker",
               trainer="listenerctl.training.facetok:make_train_plan"),
)}


DEFAULT_MODEL = {"listener": "rules", "cospeech": "diffsheg"}  # per task: what `generate` runs unless told
TASK_WORDS = {"listener": "listener", "cospeech": "co-speech"}


def load_generator(name: str, checkpoint: Path | None = None, device: str = "cpu",
                   task: str | None = None) -> Generator:
    """Build the generator registered as ``name``; learned models load ``checkpoint`` (or the default).
    With ``task`` ('listener' or 'cospeech'), a model registered for the other task is one sentence."""
    entry = REGISTRY.get(name)
    if task is not None and (entry is None or entry.task != task):
        fitting = ", ".join(n for n, e in REGISTRY.items() if e.task == task)
        what = f"unknown model {name!r}," if entry is None else f"{name!r} is"
        raise ListenerctlError(f"{what} not a {TASK_WORDS[task]} model; --task {task} takes {fitting}.")
    if entry is None:
        raise ListenerctlError(f"unknown model {name!r}; available: {', '.join(REGISTRY)}.")
    cls = resolve(entry.target)
    if not entry.learned:
        if checkpoint is not None:
            raise ListenerctlError(f"model {name!r} takes no checkpoint.")
        return cls()
    path = checkpoint or entry.default_checkpoint()
    if path is None or not Path(path).exists():
        raise ListenerctlError(f"checkpoint for {name!r} not found at {path}; train one with "
                               f"`listenerctl train {name}` or pass --checkpoint.")
    return cls.from_checkpoint(Path(path), device=device)


def train_plan_builder(name: str) -> Callable[..., Any]:
    """The ``make_train_plan`` of the learned model registered as ``name`` (its entry's ``trainer``); one
    sentence when ``name`` is unknown or not trained."""
    entry = REGISTRY.get(name)
    if entry is None or entry.trainer is None:
        learned = ", ".join(n for n, e in REGISTRY.items() if e.learned) or "none registered"
        raise ListenerctlError(f"{name!r} is not a trainable model; trainable: {learned}.")
    return resolve(entry.trainer)
