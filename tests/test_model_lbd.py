"""The lbd listener (Latent Behavior Diffusion): any length, K distinct samples, reproducible seeds,
speaker-driven output, window stitching, two-phase training with the shared trainer, and checkpoint errors."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from helpers import ROOT, shared_file, synthetic_audio, synthetic_face
from listenerctl.checkpoint import load_checkpoint
from listenerctl.conditioning import Conditioning
from listenerctl.errors import ListenerctlError
from listenerctl.features.audio import extract_audio
from listenerctl.media import load_audio
from listenerctl.models import load_generator
from listenerctl.models.lbd import LBDConfig, LBDListener
from listenerctl.training.lbd import make_train_plan
from listenerctl.motion import get_spec

SHIPPED = ROOT / "checkpoints" / "lbd.safetensors"
FPS = 25.0
SPEC = get_spec("arkit58")


@pytest.fixture(scope="module")
def shipped() -> LBDListener:
    generator = load_generator("lbd")
    assert isinstance(generator, LBDListener)
    return generator


def test_shipped_checkpoint_card_records_both_phases(shipped):
    """(What every card records is checked for every model in test_models_registry.py.)"""
    _, card = load_checkpoint(SHIPPED, expected_model="lbd")
    assert card["steps"] > card["config"]["autoencoder_steps"] > 0
    assert card["training_data"]["teacher"] == "rules"
    assert {"val_FRCorr_k10", "val_FRDist_k10", "val_FRDiv_k10", "val_recon_mse"} <= set(card["metrics"])
    facts = shipped.describe()
    assert facts["sampling_steps"] == 50 and facts["sampler"] == "plms"


def test_long_output_is_continuous_across_tokens_and_windows(shipped):
    """Frame-to-frame steps where one latent token or one window hands over to the next stay close to the
    mean step: no jumps at the 5-frame token grid, and at most a mild seam where a window's pinned
    overlap meets its sampled tokens (measured 1.4–1.5x the mean step; a decoder without its
    frame-rate layer gave 2.4x at every token boundary)."""
    motion = shipped.generate(Conditioning(FPS, 750, audio=synthetic_audio(750)), 6, seed=2).data
    steps = np.abs(np.diff(motion, axis=1)).mean(axis=(0, 2))            # [T - 1], step t → t + 1
    token_ends = np.arange(4, 749, 5)
    window_ends = np.arange(49, 749, 40)
    assert steps[token_ends].mean() < 1.5 * steps.mean()
    assert steps[window_ends].mean() < 1.75 * steps.mean()


def test_listener_warms_to_speech(shipped):
    """Against the same seeds, a real speaker makes the listener smile more than silence does, as the
    rules teacher does (its warmth grows with the speaker's speech activity)."""
    samples = load_audio(shared_file("speech/beat_scott_68s.wav"))[: 16000 * 24]
    speech = Conditioning(FPS, 600, audio=extract_audio(samples, FPS, 600))
    silence = Conditioning(FPS, 600, audio=extract_audio(np.zeros_like(samples), FPS, 600))
    talk, quiet = (shipped.generate(c, 10, seed=11).data for c in (speech, silence))
    smile = [SPEC.index("mouthSmileLeft"), SPEC.index("mouthSmileRight")]
    assert talk[..., smile].mean() > quiet[..., smile].mean() + 0.02


def test_face_only_and_audio_face_conditioning(shipped):
    frames = 120
    face_only = shipped.generate(Conditioning(FPS, frames, face=synthetic_face(frames)), 2, seed=0).data
    both = shipped.generate(Conditioning(FPS, frames, audio=synthetic_audio(frames), face=synthetic_face(frames)),
                            2, seed=0).data
    audio_only = shipped.generate(Conditioning(FPS, frames, audio=synthetic_audio(frames)), 2, seed=0).data
    assert face_only.shape == both.shape == (2, frames, 58)
    assert np.isfinite(face_only).all() and np.isfinite(both).all()
    assert not np.allclose(both, audio_only)


@pytest.mark.parametrize("windows", ["parallel", "sequential"])
def test_overlapping_windows_share_their_latents(shipped, windows):
    """Parallel: odd windows are pinned to both neighbours; sequential: each window to the one before. Either
    way the tokens two windows share are identical."""
    model = shipped.model
    cfg = model.config
    codes = torch.randn(7, cfg.tokens * cfg.latent_dim, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        [latents] = model.sample_latents([codes], [model.draw_styles(3, generator)], [generator], 10, "plms",
                                         windows)
    shared = cfg.overlap // cfg.stride
    assert latents.shape == (7, 3, cfg.tokens, cfg.latent_dim)
    torch.testing.assert_close(latents[:-1, :, -shared:], latents[1:, :, :shared], rtol=0, atol=0)


def test_sequential_windows_option(shipped):
    cond = Conditioning(FPS, 300, audio=synthetic_audio(300))
    sequential = LBDListener.from_checkpoint(SHIPPED, windows="sequential")
    assert sequential.describe()["windows"] == "sequential"
    motion = sequential.generate(cond, 2, seed=4).data
    assert motion.shape == (2, 300, 58) and np.isfinite(motion).all()
    np.testing.assert_array_equal(motion, sequential.generate(cond, 2, seed=4).data)
    assert not np.array_equal(motion, shipped.generate(cond, 2, seed=4).data)
    with pytest.raises(ListenerctlError, match="window order"):
        LBDListener.from_checkpoint(SHIPPED, windows="random")


def test_sampler_and_steps_overrides(shipped):
    cond = Conditioning(FPS, 80, audio=synthetic_audio(80))
    ddim = LBDListener.from_checkpoint(SHIPPED, steps=20, sampler="ddim")
    assert ddim.describe()["sampler"] == "ddim" and ddim.steps == 20
    assert ddim.generate(cond, 2, seed=0).data.shape == (2, 80, 58)
    with pytest.raises(ListenerctlError, match="sampler"):
        LBDListener.from_checkpoint(SHIPPED, sampler="euler")
    with pytest.raises(ListenerctlError, match="steps"):
        LBDListener.from_checkpoint(SHIPPED, steps=0)
    with pytest.raises(ListenerctlError, match="fps"):
        shipped.generate(Conditioning(30.0, 80, audio=synthetic_audio(80)), 2, seed=0)


# ---------------------------------------------------------------- training with the shared trainer

TINY = dict(width=32, heads=4, latent_dim=4, denoiser_width=32, denoiser_layers=3, time_dim=16, batch_size=8,
            noise_repeats=2, autoencoder_steps=4, warmup_steps=2, steps=10)


def test_two_phase_training_freezes_the_autoencoder_and_reloads(tiny_corpus, tmp_path):
    from listenerctl.training.loop import run_training

    stem = tmp_path / "lbd"
    plan = make_train_plan(tiny_corpus, seed=0, **TINY)
    run_training(plan, 4, stem, log_every=2)                 # phase 1 only: reconstruction
    after_phase1 = {k: v.clone() for k, v in plan.model.state_dict().items()}
    plan = make_train_plan(tiny_corpus, seed=0, **TINY)
    card = run_training(plan, 8, stem, log_every=2)          # resumes, then phase 2: diffusion
    after_phase2 = plan.model.state_dict()

    frozen = [k for k in after_phase2 if k.startswith(("decoder.", "encoder.body.", "encoder.motion_in."))]
    trained = [k for k in after_phase2 if k.startswith(("denoiser.", "encoder.audio_in."))]
    assert frozen and all(torch.equal(after_phase1[k], after_phase2[k]) for k in frozen)
    assert all(not torch.equal(after_phase1[k], after_phase2[k]) for k in trained)
    assert not torch.equal(after_phase1["style_scale"], after_phase2["style_scale"])   # style prior fitted

    assert card["training"]["resumed_from"] == 4 and card["steps"] == 8
    assert np.isfinite([card["metrics"][k] for k in ("val_recon_mse", "val_eps_mse", "val_FRCorr_k10")]).all()
    generator = LBDListener.from_checkpoint(stem)
    assert generator.model.config == LBDConfig(**TINY)
    motion = generator.generate(Conditioning(FPS, 130, audio=synthetic_audio(130)), 3, seed=0).data
    assert motion.shape == (3, 130, 58) and np.isfinite(motion).all()


def test_bad_training_settings_are_one_sentence(tiny_corpus):
    with pytest.raises(ListenerctlError, match="unknown lbd setting"):
        make_train_plan(tiny_corpus, codebook=256)
    with pytest.raises(ListenerctlError, match="multiples"):
        make_train_plan(tiny_corpus, overlap=7)

