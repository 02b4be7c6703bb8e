"""The interface every listener / co-speech generator implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

from listenerctl.conditioning import Conditioning
from listenerctl.errors import ListenerctlError
from listenerctl.motion import Motion


class Generator(ABC):
    """A motion generator. ``generate`` returns K samples for the whole conditioning length.

    Subclasses set ``name`` (registry key), ``spec`` (output motion spec) and ``fps``.
    """

    name: str
    spec: str = "arkit58"
    fps: float = 25.0

    @abstractmethod
    def generate(self, cond: Conditioning, num_samples: int, seed: int) -> Motion:
        """K = ``num_samples`` motions [K, cond.num_frames, D]; the same seed gives the same output."""

    def check_request(self, cond: Conditioning, num_samples: int) -> None:
        """One sentence when ``cond`` is not at this generator's fps (learned models run at the rate they
        were trained at) or fewer than one sample is asked for."""
        if abs(cond.fps - self.fps) > 1e-6:
            raise ListenerctlError(f"the {self.name} model works at {self.fps:g} fps; the conditioning is at "
                                   f"{cond.fps:g} fps.")
        if num_samples < 1:
            raise ListenerctlError(f"the number of samples must be at least 1, got {num_samples}.")

    def describe(self) -> dict:
        """Facts for manifest.json (checkpoint path, sha256, config) beyond the name."""
        return {}
