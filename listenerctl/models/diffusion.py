"""Gaussian diffusion shared by the diffusion models: noise schedules, training targets and samplers.

The samplers are separate from the network (diffusers style): ``set_timesteps(n)`` picks n of the
``num_train_steps`` training steps, then ``step(model_output, t, sample)`` moves ``sample`` from noise
level ``t`` to the next one. `sample` runs that loop for any ``model_fn(x, t) -> output`` and can pin
known frames (inpainting / outpainting windows). The network predicts either the noise ``epsilon``
or the clean sample ``x0`` (``prediction``); samplers convert between the two.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from listenerctl.models.seeding import RowNoise, as_row_noise

PREDICTIONS = ("epsilon", "x0")


def make_betas(kind: str, num_steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """Per-step noise variances ``[num_steps]`` float64.

    ``linear``: evenly spaced from ``beta_start`` to ``beta_end`` (Ho et al. 2020, for 1000 steps).
    ``cosine``: from ᾱ(t) = cos²((t/T + s)/(1 + s) · π/2), s = 0.008, β clipped at 0.999 (Nichol & Dhariwal 2021).
    """
    if kind == "linear":
        return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
    if kind == "cosine":
        s = 0.008
        steps = torch.arange(num_steps + 1, dtype=torch.float64) / num_steps
        alpha_bar = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    raise ValueError(f"unknown noise schedule {kind!r}; use 'linear' or 'cosine'")


class NoiseSchedule:
    """Forward process q(x_t | x0) = N(√ᾱ_t x0, (1 − ᾱ_t) I) over ``num_steps`` steps t = 0 … T−1."""

    def __init__(self, kind: str = "linear", num_steps: int = 1000, prediction: str = "epsilon"):
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r}; use one of {PREDICTIONS}")
        self.kind = kind
        self.num_steps = num_steps
        self.prediction = prediction
        self.betas = make_betas(kind, num_steps)
        self.alphas_cumprod = torch.cumprod(1 - self.betas, dim=0)

    def alpha_bar(self, t: int) -> float:
        """ᾱ_t as a float; t = −1 means the clean sample (ᾱ = 1)."""
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def _coefficients(self, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        """√ᾱ_t and √(1 − ᾱ_t) for per-item steps ``t`` ``[B]``, shaped to broadcast over ``like`` ``[B, ...]``."""
        ab = self.alphas_cumprod.to(like.device)[t].to(like.dtype).view(-1, *([1] * (like.ndim - 1)))
        return ab.sqrt(), (1 - ab).sqrt()

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """Noised ``x_t = √ᾱ_t x0 + √(1 − ᾱ_t) noise``; ``x0``/``noise`` ``[B, ...]``, ``t`` ``[B]`` long."""
        a, s = self._coefficients(t, x0)
        return a * x0 + s * noise

    def training_example(self, x0: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """One DDPM training draw for clean ``x0`` ``[B, ...]``: (x_t, t ``[B]``, target).

        t is uniform over the training steps, the noise standard normal; the target is that noise
        (``prediction="epsilon"``) or ``x0`` itself (``"x0"``). Train with MSE(model(x_t, t), target).
        """
        t = torch.randint(self.num_steps, (x0.shape[0],), generator=generator, device=x0.device)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        target = noise if self.prediction == "epsilon" else x0
        return self.q_sample(x0, t, noise), t, target

    def split_prediction(self, model_output: Tensor, t: int, sample: Tensor) -> tuple[Tensor, Tensor]:
        """(predicted x0, predicted epsilon) at step ``t`` from the network output for ``sample`` = x_t."""
        ab = self.alpha_bar(t)
        a, s = math.sqrt(ab), math.sqrt(1 - ab)
        if self.prediction == "epsilon":
            return (sample - s * model_output) / a, model_output
        return model_output, (sample - a * model_output) / s


class Sampler:
    """Common part of the samplers: the chosen timesteps and, for each, the next (lower) noise level."""

    def __init__(self, schedule: NoiseSchedule):
        self.schedule = schedule
        self.timesteps: list[int] = []
        self._next: dict[int, int] = {}

    def set_timesteps(self, n: int) -> None:
        """Use ``n`` steps, evenly spaced and ending at the last training step ("trailing" spacing).

        Timesteps descend from T−1, so sampling starts from (nearly) pure noise; the step after the
        last one is t = −1, the clean sample.
        """
        total = self.schedule.num_steps
        if not 1 <= n <= total:
            raise ValueError(f"number of sampling steps must be in 1 … {total}, got {n}")
        self.timesteps = [round((i + 1) * total / n) - 1 for i in reversed(range(n))]
        self._next = dict(zip(self.timesteps, self.timesteps[1:] + [-1]))

    def next_timestep(self, t: int) -> int:
        return self._next[int(t)]


class DDIMSampler(Sampler):
    """DDIM (Song et al. 2021). ``eta = 0`` is deterministic; ``eta = 1`` matches DDPM's ancestral noise."""

    def __init__(self, schedule: NoiseSchedule, eta: float = 0.0):
        super().__init__(schedule)
        self.eta = eta

    def step(self, model_output: Tensor, t: int, sample: Tensor,
             generator: torch.Generator | RowNoise | None = None) -> Tensor:
        """x_t ``[B, ...]`` → x at the next chosen timestep (noise from ``generator`` when eta > 0)."""
        t_next = self.next_timestep(t)
        x0, eps = self.schedule.split_prediction(model_output, t, sample)
        ab, ab_next = self.schedule.alpha_bar(t), self.schedule.alpha_bar(t_next)
        sigma = self.eta * math.sqrt((1 - ab_next) / (1 - ab) * (1 - ab / ab_next))
        direction = math.sqrt(max(1 - ab_next - sigma ** 2, 0.0)) * eps
        prev = math.sqrt(ab_next) * x0 + direction
        if sigma > 0:
            noise = (torch.randn(sample.shape, device=sample.device, dtype=sample.dtype) if generator is None
                     else as_row_noise(generator, sample.shape[0]).randn(sample.shape, sample.dtype))
            prev = prev + sigma * noise
        return prev


# Adams–Bashforth weights on the epsilon history, newest first, for orders 1–4.
ADAMS_BASHFORTH = {
    1: (1.0,),
    2: (3 / 2, -1 / 2),
    3: (23 / 12, -16 / 12, 5 / 12),
    4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
}


class PLMSSampler(Sampler):
    """Pseudo linear multistep (PNDM's PLMS, Liu et al. 2022), one network call per step.

    The epsilon used at each step is the Adams–Bashforth combination of the current and up to
    ``order − 1`` previous epsilon predictions; it is then applied with the DDIM transfer
    x_next = √ᾱ' x̂0 + √(1 − ᾱ') ε̂ (algebraically PNDM's transfer φ). Warm-up: the first steps,
    before enough history exists, use the highest order available (1, 2, 3, …) instead of PNDM's
    pseudo Runge–Kutta steps, so every step costs one evaluation. Order 1 equals deterministic DDIM.
    """

    def __init__(self, schedule: NoiseSchedule, order: int = 4):
        super().__init__(schedule)
        if order not in ADAMS_BASHFORTH:
            raise ValueError(f"PLMS order must be 1–4, got {order}")
        self.order = order
        self._history: list[Tensor] = []

    def set_timesteps(self, n: int) -> None:
        super().set_timesteps(n)
        self._history = []

    def step(self, model_output: Tensor, t: int, sample: Tensor,
             generator: torch.Generator | RowNoise | None = None) -> Tensor:
        """x_t ``[B, ...]`` → x at the next chosen timestep (``generator`` unused: PLMS is deterministic)."""
        _, eps = self.schedule.split_prediction(model_output, t, sample)
        self._history = [eps, *self._history[: self.order - 1]]
        weights = ADAMS_BASHFORTH[len(self._history)]
        eps_ab = sum(w * e for w, e in zip(weights, self._history))
        ab, ab_next = self.schedule.alpha_bar(t), self.schedule.alpha_bar(self.next_timestep(t))
        x0 = (sample - math.sqrt(1 - ab) * eps_ab) / math.sqrt(ab)
        return math.sqrt(ab_next) * x0 + math.sqrt(1 - ab_next) * eps_ab


def sample(model_fn: Callable[[Tensor, Tensor], Tensor], shape: tuple[int, ...], sampler: Sampler, steps: int,
           generator: torch.Generator | RowNoise, inpaint: tuple[Tensor, Tensor] | None = None,
           dtype: torch.dtype = torch.float32) -> Tensor:
    """Draw samples ``[*shape]`` (on ``generator``'s device) by running ``sampler`` for ``steps`` steps.
    A `RowNoise` ``generator`` draws each input's rows of every noise tensor from that input's generator
    (several inputs in one batch, each getting what it would alone).

    ``model_fn(x, t)`` gets x_t ``shape`` and ``t`` ``[shape[0]]`` long and returns the network output
    (epsilon or x0, as the sampler's schedule says). ``inpaint = (known, mask)``, broadcastable to
    ``shape`` (mask bool, True = known): before every network call the known entries are replaced by
    ``known`` re-noised to the current level t with fresh noise, and at the end by ``known`` itself.
    """
    noise_of = as_row_noise(generator, shape[0])
    device = noise_of.device
    sampler.set_timesteps(steps)
    x = noise_of.randn(shape, dtype)
    if inpaint is not None:
        known, mask = (v.to(device) for v in inpaint)
        known = known.to(dtype).expand(shape)
    for t in sampler.timesteps:
        t_batch = torch.full((shape[0],), t, dtype=torch.long, device=device)
        if inpaint is not None:
            x = torch.where(mask, sampler.schedule.q_sample(known, t_batch, noise_of.randn(shape, dtype)), x)
        x = sampler.step(model_fn(x, t_batch), t, x, noise_of)
    return x if inpaint is None else torch.where(mask, known, x)
