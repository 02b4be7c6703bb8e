"""The common wrapper of learned generators: a trained network, the checkpoint it came from, and sampling
settings that default to the network's config.

A subclass declares ``name``, ``spec`` and ``fps`` (as every `Generator`), ``network`` (the nn.Module class,
built from one config and holding it as ``.config``) and ``config_class`` (that config dataclass); when it has
sampling settings it overrides `configure` (take and check them) and `sampling_settings` (what `describe`
reports). Everything else — loading, checking and describing the checkpoint — happens here once.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from listenerctl.checkpoint import config_from_card, load_checkpoint, load_into
from listenerctl.models.base import Generator


class LearnedGenerator(Generator):
    """A trained ``network`` in eval mode on ``device`` (None: where it already is), the ``card`` of its
    checkpoint (empty for a network fresh from training) and the checkpoint ``path``; ``sampling`` keyword
    arguments override the config's sampling settings (`configure`)."""

    network: ClassVar[type[nn.Module]]
    config_class: ClassVar[type]

    def __init__(self, model: nn.Module, card: dict | None = None, device: str | torch.device | None = None,
                 path: Path | None = None, **sampling: Any):
        self.model = (model if device is None else model.to(device)).eval()
        self.device = torch.device(device) if device is not None else next(model.buffers()).device
        self.card = card or {}
        self.path = path
        self.configure(**sampling)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu", **sampling: Any) -> "LearnedGenerator":
        """Load ``path`` (stem, .safetensors or .json), checked to hold this model and spec; ``sampling``
        overrides the config's sampling settings (`configure`)."""
        state, card = load_checkpoint(path, expected_model=cls.name, expected_spec=cls.spec)
        model = cls.network(config_from_card(card, cls.config_class, path))
        load_into(model, state, source=f"checkpoint {path}")
        return cls(model, card, device, Path(path), **sampling)

    @property
    def config(self) -> Any:
        """The network's config (a ``config_class`` instance)."""
        return self.model.config

    def configure(self) -> None:
        """Take and check sampling overrides (keyword arguments; None: the config's value). None here."""

    def sampling_settings(self) -> dict:
        """The sampling settings in use, for `describe` (none here)."""
        return {}

    def describe(self) -> dict:
        """Checkpoint path and sha256 (None for a network fresh from training), config and sampling settings."""
        return {"checkpoint": str(self.path) if self.path else None, "sha256": self.card.get("sha256"),
                "config": asdict(self.config), **self.sampling_settings()}
