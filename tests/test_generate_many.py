"""Several inputs generated in one batched call (`Generator.generate_many`) give each input exactly what
generating it alone gives, for every learned listener, on the real feature spine's output."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from helpers import ROOT, synthetic_audio
from listenerctl.conditioning import Conditioning
from listenerctl.models import REGISTRY, load_generator
from listenerctl.models.seeding import RowNoise, shared_calls

LISTENERS = [name for name, entry in REGISTRY.items() if entry.learned and entry.task == "listener"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def conds() -> list[Conditioning]:
    """Inputs of different lengths and modalities: the shipped sample video through the real feature spine
    (speaker audio and face), its audio alone cut short, and synthetic speech over several windows."""
    from listenerctl.pipeline import prepare_conditioning

    sample = prepare_conditioning(ROOT / "samples" / "talk.mp4").cond
    assert sample.face is not None and sample.audio is not None
    short = Conditioning(sample.fps, 47, audio=replace(sample.audio, **{
        k: v[:47] for k, v in vars(sample.audio).items() if isinstance(v, np.ndarray)}))
    return [sample, replace(sample, face=None), short, Conditioning(25.0, 410, audio=synthetic_audio(410, seed=3))]


# Largest difference allowed between an input's batched and alone result. lbd shares denoiser calls between inputs'
# chunks (`seeding.shared_calls`) with identical noise, but float32 GEMM kernels pick their blocking by the batch's
# row count, so its sums may round differently (measured up to 4e-7 on arkit58 values in [0, 1] after 50 steps
# when every round's chunks shared one call). sfms, facetok and difflistener share calls only where rows round
# alike (difflistener samples chunks of at most `SOLO_ROWS` rows alone, e.g. the short input here): byte for byte.
TOLERANCE = {"lbd": 1e-5}


@pytest.mark.parametrize("name", LISTENERS)
def test_batched_equals_one_by_one(name, conds):
    generator = load_generator(name)
    seeds = [5, 5, 11, 2]
    alone = [generator.generate(cond, 3, seed) for cond, seed in zip(conds, seeds)]
    together = generator.generate_many(conds, 3, seeds)
    for one, batched in zip(alone, together):
        assert batched.spec == one.spec and batched.fps == one.fps and batched.data.shape == one.data.shape
        np.testing.assert_allclose(batched.data, one.data, rtol=0, atol=TOLERANCE.get(name, 0.0))
    other_seed = generator.generate_many(conds[:1], 3, [6])[0].data
    assert np.abs(other_seed - alone[0].data).max() > 1e-3  # the tolerance is far below a different draw


def test_rules_uses_the_default_loop(conds):
    rules = load_generator("rules")
    for one, batched in zip([rules.generate(c, 2, 1) for c in conds], rules.generate_many(conds, 2, [1] * 4)):
        np.testing.assert_array_equal(batched.data, one.data)
    with pytest.raises(ValueError, match="seeds"):
        rules.generate_many(conds, 2, [1])


def test_row_noise_draws_each_block_from_its_own_generator():
    noise = RowNoise([(torch.Generator().manual_seed(1), 2), (torch.Generator().manual_seed(2), 3)])
    drawn = noise.randn((5, 4))
    torch.testing.assert_close(drawn[:2], torch.randn(2, 4, generator=torch.Generator().manual_seed(1)), rtol=0, atol=0)
    torch.testing.assert_close(drawn[2:], torch.randn(3, 4, generator=torch.Generator().manual_seed(2)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="rows"):
        noise.rand((4, 4))


def test_shared_calls_pack_chunks_in_order_and_keep_small_ones_alone():
    windows = [3, 3, 4, 2, 3, 3]          # × 4 samples: rows 12, 12, 16, 8 (≤ SOLO_ROWS: alone), 12, 12
    calls = shared_calls([(speaker, torch.arange(w)) for speaker, w in enumerate(windows)], num_samples=4,
                         max_windows=6)
    assert [[speaker for speaker, _ in call] for call in calls] == [[0, 1], [2], [3], [4, 5]]
