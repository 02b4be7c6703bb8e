"""The interface every listener / co-speech generator implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace

from listenerctl.conditioning import Conditioning
from listenerctl.errors import ListenerctlError
from listenerctl.motion import Motion


class Generator(ABC):
    """A motion generator. ``generate`` returns K samples for the whole conditioning length.

    Subclasses set ``name`` (registry key), ``spec`` (output motion spec) and ``fps``; ``text_dim`` is the
    size of the transcript embeddings the generator takes (0: it takes none).
    """

    name: str
    spec: str = "arkit58"
    fps: float = 25.0
    text_dim: int = 0

    @abstractmethod
    def generate(self, cond: Conditioning, num_samples: int, seed: int) -> Motion:
        """K = ``num_samples`` motions [K, cond.num_frames, D]; the same seed gives the same output."""

    def generate_many(self, conds: list[Conditioning], num_samples: int, seeds: list[int]) -> list[Motion]:
        """`generate` for several inputs, ``conds[i]`` with ``seeds[i]``; each result is what `generate` gives
        for that input alone. This default runs them one by one; lbd, sfms, facetok and difflistener override it to
        batch them into shared network calls (each input's noise still drawn from its own seeded generator)."""
        self.check_requests(conds, num_samples, seeds)
        return [self.generate(cond, num_samples, seed) for cond, seed in zip(conds, seeds)]

    def check_requests(self, conds: list[Conditioning], num_samples: int, seeds: list[int]) -> None:
        """`check_request` for each of a `generate_many` call's inputs, which needs one seed per input."""
        if len(conds) != len(seeds):
            raise ValueError(f"{len(conds)} conditionings but {len(seeds)} seeds")
        for cond in conds:
            self.check_request(cond, num_samples)

    def check_request(self, cond: Conditioning, num_samples: int) -> None:
        """One sentence when ``cond`` is not at this generator's fps (learned models run at the rate they
        were trained at), carries transcript embeddings it cannot take, or fewer than one sample is asked for."""
        if abs(cond.fps - self.fps) > 1e-6:
            raise ListenerctlError(f"the {self.name} model works at {self.fps:g} fps; the conditioning is at "
                                   f"{cond.fps:g} fps.")
        if cond.text is not None:
            self.check_text_dim(cond.text.dim)
        if num_samples < 1:
            raise ListenerctlError(f"the number of samples must be at least 1, got {num_samples}.")

    def usable(self, cond: Conditioning) -> Conditioning:
        """``cond`` without its transcript embeddings when this generator takes none (for scoring models on a
        corpus with transcripts; a user's explicit transcript is refused instead, by `check_request`)."""
        return cond if self.text_dim or cond.text is None else replace(cond, text=None)

    def check_text_dim(self, dim: int | None = None) -> None:
        """One sentence unless this generator takes transcript embeddings (of ``dim`` channels, when given)."""
        if not self.text_dim:
            raise ListenerctlError(f"the {self.name} model does not take transcripts; only a difflistener checkpoint "
                                   "trained with transcript embeddings does.")
        if dim is not None and dim != self.text_dim:
            raise ListenerctlError(f"the transcript embeddings have {dim} channels; this {self.name} checkpoint was "
                                   f"trained on a text encoder with {self.text_dim}.")

    def describe(self) -> dict:
        """Facts for manifest.json (checkpoint path, sha256, config) beyond the name."""
        return {}
