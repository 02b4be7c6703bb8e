"""Reference listeners for comparisons: mime (the speaker, delayed), random (speaker-blind smooth motion)
and mean (one constant pose). All output arkit58 at the conditioning fps."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from listenerctl.conditioning import Conditioning
from listenerctl.errors import ListenerctlError
from listenerctl.models.base import Generator
from listenerctl.models.listener_range import value_range
from listenerctl.motion import Motion, get_spec

MIME_LAG_S = 0.5
WALK_SMOOTHING_S = 0.25      # standard deviation of the Gaussian that smooths the walk's velocity
WALK_TRAVERSE_S = 4.0        # after this long a walk has moved about half its range


class MimeListener(Generator):
    """The speaker's own arkit58 face delayed by 0.5 s (nearest frame); the first 0.5 s hold the speaker's
    first frame. Deterministic: all K samples are identical and the seed is unused."""

    name = "mime"
    spec = "arkit58"
    fps = 25.0

    def generate(self, cond: Conditioning, num_samples: int, seed: int) -> Motion:
        if cond.face is None:
            raise ListenerctlError("the mime baseline copies the speaker's face, but this input has no "
                                   "face features (audio only); use another model such as 'rules'.")
        lag = int(MIME_LAG_S * cond.fps + 0.5)
        frames = np.clip(np.arange(cond.num_frames) - lag, 0, None)
        delayed = np.asarray(cond.face.arkit, np.float32)[frames]
        return Motion(np.repeat(delayed[None], num_samples, axis=0), self.spec, cond.fps)


class RandomListener(Generator):
    """Speaker-blind motion: every arkit58 channel follows its own smooth random walk inside the rule
    listener's value range (`listener_range.value_range`), folded back at the range's ends. Velocities are white
    noise smoothed by a 0.25 s Gaussian; a walk moves about half its range in 4 s. Channels the rules
    never move stay at 0. Sample k depends only on (seed, k)."""

    name = "random"
    spec = "arkit58"
    fps = 25.0

    def generate(self, cond: Conditioning, num_samples: int, seed: int) -> Motion:
        low, high = value_range()
        seeds = np.random.SeedSequence(seed).spawn(num_samples)
        walks = np.stack([_folded_walk(np.random.default_rng(s), cond.num_frames, len(low), cond.fps)
                          for s in seeds])
        return Motion(low + (high - low) * walks, self.spec, cond.fps)


def _folded_walk(rng: np.random.Generator, num_frames: int, num_channels: int, fps: float) -> np.ndarray:
    """[T, C] smooth random walks in [0, 1], reflected at 0 and 1, starting uniformly at random."""
    sigma = WALK_SMOOTHING_S * fps
    velocity = gaussian_filter1d(rng.standard_normal((num_frames, num_channels)), sigma, axis=0, mode="wrap")
    velocity *= np.sqrt(2 * np.sqrt(np.pi) * sigma)                     # unit variance after smoothing
    step = 0.5 / np.sqrt(WALK_TRAVERSE_S * fps * 2 * np.sqrt(np.pi) * sigma)
    walk = rng.uniform(0, 1, num_channels) + step * np.cumsum(velocity, axis=0)
    return 1.0 - np.abs(np.mod(walk, 2.0) - 1.0)


class MeanListener(Generator):
    """One constant pose for every frame and sample: ``mean`` [58] arkit58 if given, else the neutral
    face (all blendshape weights 0, head facing forward at the origin)."""

    name = "mean"
    spec = "arkit58"
    fps = 25.0

    def __init__(self, mean: np.ndarray | None = None):
        dim = get_spec(self.spec).dim
        pose = np.zeros(dim, np.float32) if mean is None else np.asarray(mean, np.float32)
        if pose.shape != (dim,) or not np.all(np.isfinite(pose)):
            raise ListenerctlError(f"the mean pose must be {dim} finite arkit58 values, got shape {pose.shape}.")
        self.mean = pose

    def generate(self, cond: Conditioning, num_samples: int, seed: int) -> Motion:
        data = np.broadcast_to(self.mean, (num_samples, cond.num_frames, len(self.mean)))
        return Motion(np.array(data), self.spec, cond.fps)
