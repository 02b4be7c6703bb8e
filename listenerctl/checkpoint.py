"""Checkpoints: ``NAME.safetensors`` (weights) + ``NAME.json`` (the card saying what the weights are).

The card records the model name, its config, the motion spec and fps it produces, the training data,
steps, wall time, metrics and the sha256 of the weights file. Loading never unpickles: weights are read
with safetensors only, checked against the card's sha256, model name and spec, and every failure
becomes one `ListenerctlError` sentence.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from pathlib import Path
from typing import TypeVar

from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import Tensor, nn

from listenerctl.atomic import atomic_file
from listenerctl.errors import ListenerctlError

CARD_FIELDS = ("model", "config", "spec", "fps", "training_data", "steps", "wall_time_s", "metrics")


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, card) paths for a checkpoint named by its stem, its ``.safetensors`` or its ``.json``."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def save_checkpoint(path_stem: str | Path, state_dict: dict[str, Tensor], card: dict) -> tuple[Path, Path]:
    """Write ``state_dict`` and ``card`` (+ ``sha256``, ``weights``) atomically; return (weights, card) paths.

    ``card`` must hold `CARD_FIELDS`: model (registry name), config (dict), spec, fps, training_data
    (description), steps, wall_time_s, metrics (dict). Tensors are stored contiguous on the CPU.
    """
    missing = [field for field in CARD_FIELDS if field not in card]
    if missing:
        raise ValueError(f"checkpoint card lacks {', '.join(missing)}")
    weights_path, card_path = checkpoint_paths(path_stem)
    blob = save_safetensors({k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()})
    full_card = {**card, "weights": weights_path.name, "sha256": hashlib.sha256(blob).hexdigest()}
    text = json.dumps(full_card, indent=2, sort_keys=True)
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(weights_path) as fh:
        fh.write(blob)
    with atomic_file(card_path, "w") as fh:
        fh.write(text + "\n")
    return weights_path, card_path


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def read_card(path: str | Path) -> dict:
    """The card of the checkpoint at ``path`` (stem, .safetensors or .json), checked for its fields."""
    weights_path, card_path = checkpoint_paths(path)
    if not card_path.is_file():
        raise ListenerctlError(f"checkpoint card {card_path} is missing; a checkpoint needs both "
                               f"{weights_path.name} and {card_path.name}.")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ListenerctlError(f"checkpoint card {card_path} is not readable JSON ({_first_line(error)}).") from None
    missing = [field for field in (*CARD_FIELDS, "sha256") if not isinstance(card, dict) or field not in card]
    if missing:
        raise ListenerctlError(f"checkpoint card {card_path} lacks {', '.join(missing)}.")
    return card


Config = TypeVar("Config")

# Config fields renamed to the one spelling (docs/DESIGN.md §5), per config class: old name → new name.
# `config_from_card` reads a card written with the old names through this table, so older checkpoints load.
RENAMED_CONFIG_FIELDS: dict[str, dict[str, str]] = {
    "FacetokConfig": {
        "tokenizer_dim": "tokenizer_width", "tokenizer_depth": "tokenizer_layers", "emotion_depth": "emotion_layers",
        "dim": "width", "speaker_depth": "speaker_layers", "face_depth": "face_layers",
        "fusion_depth": "fusion_layers", "listener_depth": "listener_layers",
        "tokenizer_batch": "tokenizer_batch_size", "warmup": "warmup_steps",
    },
    "DiffShegConfig": {
        "train_steps": "diffusion_steps", "sampling_steps": "steps",
    },
}


def config_from_card(card: dict, config_class: type[Config], path: str | Path) -> Config:
    """The model config dataclass ``config_class`` built from a card's ``config`` object (JSON lists become
    tuples; a field under an old name in `RENAMED_CONFIG_FIELDS` is read under its new name); one sentence
    when the card has none, names fields this version does not know, or holds values the class rejects."""
    config, model = card.get("config"), card.get("model", "model")
    if not isinstance(config, dict):
        raise ListenerctlError(f"checkpoint {path} has no {model} config in its card.")
    renamed = RENAMED_CONFIG_FIELDS.get(config_class.__name__, {})
    config = {renamed.get(name, name): value for name, value in config.items()}
    unknown = sorted(set(config) - {f.name for f in fields(config_class)})
    if unknown:
        raise ListenerctlError(f"checkpoint {path} has a {model} config with unknown fields {', '.join(unknown)}; "
                               f"it was made by another version.")
    try:
        return config_class(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
    except (TypeError, ValueError) as error:
        raise ListenerctlError(f"checkpoint {path} has an invalid {model} config ({error}).") from None


def load_checkpoint(path: str | Path, expected_model: str | None = None,
                    expected_spec: str | None = None) -> tuple[dict[str, Tensor], dict]:
    """(CPU state dict, card) of the checkpoint at ``path``, after checking sha256, model name and spec."""
    weights_path, _ = checkpoint_paths(path)
    if not weights_path.is_file():
        raise ListenerctlError(f"checkpoint weights {weights_path} not found.")
    card = read_card(path)
    if expected_model is not None and card["model"] != expected_model:
        raise ListenerctlError(f"checkpoint {weights_path} holds model {card['model']!r}, not {expected_model!r}.")
    if expected_spec is not None and card["spec"] != expected_spec:
        raise ListenerctlError(f"checkpoint {weights_path} produces motion spec {card['spec']!r}, "
                               f"not {expected_spec!r}.")
    try:
        blob = weights_path.read_bytes()
    except OSError as error:
        raise ListenerctlError(f"checkpoint weights {weights_path} are unreadable ({_first_line(error)}).") from None
    if hashlib.sha256(blob).hexdigest() != card["sha256"]:
        raise ListenerctlError(f"checkpoint weights {weights_path} are truncated or corrupt: their sha256 "
                               f"does not match the card's.")
    try:
        state_dict = load_safetensors(blob)
    except Exception as error:  # safetensors raises its own error type (and others) on malformed headers
        raise ListenerctlError(f"checkpoint weights {weights_path} are not a valid safetensors file "
                               f"({_first_line(error)}).") from None
    return state_dict, card


def _listed(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def load_into(module: nn.Module, state_dict: dict[str, Tensor], source: str = "the checkpoint") -> None:
    """Load ``state_dict`` into ``module`` strictly, or raise one sentence naming what does not fit."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shape = sorted(f"{k} {list(state_dict[k].shape)} vs {list(expected[k].shape)}"
                         for k in set(expected) & set(state_dict) if state_dict[k].shape != expected[k].shape)
    problems = [f"{len(names)} {label} {_listed(names)}" for label, names in (
        ("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong_shape)) if names]
    if problems:
        raise ListenerctlError(f"{source} does not fit {type(module).__name__}: {'; '.join(problems)}.")
    module.load_state_dict(state_dict, strict=True)
