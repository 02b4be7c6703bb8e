"""The sfms listener (Sparse Facial Motion Structure): Gumbel top-k keyframes (Algorithm 1, straight-through),
FSQ keyframe tokens, inpainting, the rolled predictor, any length, K distinct samples, reproducible
seeds, speaker-driven output, training with the shared trainer, and checkpoint errors."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from helpers import ROOT, synthetic_audio, synthetic_face
from listenerctl.checkpoint import load_checkpoint
from listenerctl.conditioning import Conditioning
from listenerctl.errors import ListenerctlError
from listenerctl.models import load_generator
from listenerctl.models.sfms import SFMSConfig, SFMSListener
from listenerctl.models.sfms_keyframes import (Inpainter, KeyframeTokenizer, gumbel_top_k, hard_k_hot,
                                               nearest_keyframe_offset, neighbour_keyframes, relaxed_k_hot,
                                               uniform_k_hot)
from listenerctl.training.sfms import make_train_plan, temperature_at, token_batch


SHIPPED = ROOT / "checkpoints" / "sfms.safetensors"
FPS = 25.0


# ---------------------------------------------------------------- keyframe selection and tokens

def test_gumbel_top_k_is_hard_forward_and_relaxed_backward():
    scores = torch.randn(5, 48, generator=torch.Generator().manual_seed(0), requires_grad=True)
    mask = gumbel_top_k(scores, 7, temperature=0.5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(mask.detach().sum(dim=1), torch.full((5,), 7.0))
    assert set(mask.detach().unique().tolist()) <= {0.0, 1.0}
    (mask * torch.arange(48.0)).sum().backward()         # prefer later frames
    assert scores.grad.abs().sum() > 0 and scores.grad[:, -8:].mean() > scores.grad[:, :8].mean()


def test_relaxed_k_hot_suppresses_taken_mass_and_hardens_when_cold():
    scores = torch.randn(4, 48, generator=torch.Generator().manual_seed(2))
    warm = relaxed_k_hot(scores, 7, temperature=1.0)
    torch.testing.assert_close(warm.sum(dim=1), torch.full((4,), 7.0))
    assert warm.min() >= 0 and warm.max() < 1.1                 # mass already taken is suppressed
    without_suppression = 7 * torch.softmax(scores, dim=-1)
    assert warm.max() < without_suppression.max()
    separated = torch.stack([torch.randperm(48, generator=torch.Generator().manual_seed(i)) for i in range(4)]) / 4
    cold = relaxed_k_hot(separated, 7, temperature=0.01)     # score gaps of 0.25 ≫ τ: the hard top-k
    torch.testing.assert_close(cold, hard_k_hot(separated, 7), atol=1e-3, rtol=0)


def test_static_selection_and_nearest_keyframe_offsets():
    assert uniform_k_hot(48, 3).nonzero().flatten().tolist() == [8, 24, 40]
    mask = torch.zeros(2, 10)
    mask[0, [2, 7]] = 1
    offset = nearest_keyframe_offset(mask)
    assert offset[0].tolist() == [-2, -1, 0, 1, 2, -2, -1, 0, 1, 2]
    assert (offset[1] == offset[1, 0]).all() and offset[1, 0] > 10          # no keyframe in the window


def test_neighbour_keyframes_bracket_every_frame():
    mask = torch.zeros(3, 8)
    mask[0, [2, 5]] = 1
    mask[2, 0] = 1                                                           # row 1: no keyframe
    previous, following, before, after = neighbour_keyframes(mask)
    assert previous[0].tolist() == [2, 2, 2, 2, 2, 5, 5, 5]                 # none before frame 2: the next one
    assert following[0].tolist() == [2, 2, 2, 5, 5, 5, 5, 5]                # none after frame 5: the previous one
    assert before[0].tolist() == [-2, -1, 0, 1, 2, 0, 1, 2] and after[0].tolist() == [2, 1, 0, 2, 1, 0, -1, -2]
    assert (before[1] == before[1, 0]).all() and before[1, 0] > 8 and (previous[1] == 0).all()
    assert (previous[2] == 0).all() and (following[2] == 0).all() and before[2].tolist() == list(range(8))


def test_inpainter_reads_the_codes_of_both_bracketing_keyframes():
    torch.manual_seed(0)                      # no transformer layers: each frame sees only its own input
    inpainter = Inpainter(code_dim=4, dim=6, width=16, layers=0, heads=2, position_dim=8).eval()
    mask = torch.zeros(1, 12)
    mask[0, [3, 9]] = 1
    codes = torch.randn(1, 12, 4)
    with torch.no_grad():
        rebuilt = inpainter(mask, codes)
        unkept = codes.clone()
        unkept[0, [0, 5, 11]] = 7.0                                         # codes of transition frames
        assert torch.equal(inpainter(mask, unkept), rebuilt)                # are never read
        changed = codes.clone()
        changed[0, 9] += 1.0                                                # the later keyframe's code
        moved = (inpainter(mask, changed) - rebuilt).abs().amax(dim=-1)[0]
    assert (moved[4:] > 0).all() and (moved[:3] == 0).all()     # reaches the frames after keyframe 3 only


def test_tokens_hold_k_keyframes_with_256_codes_and_decode():
    tokenizer = KeyframeTokenizer(58, 48, 7, "learned", (4, 4, 4, 4), 32, 4, 1, 1, 1, 16).eval()
    assert tokenizer.fsq.codebook_size == 256
    frames = torch.randn(6, 48, 58)
    with torch.no_grad():
        tokens = tokenizer.tokens(frames)
        assert torch.equal((tokens > 0).sum(dim=1), torch.full((6,), 7))
        assert tokens.max() <= 256
        torch.testing.assert_close(tokenizer.decode_tokens(tokens), tokenizer.reconstruct(frames), atol=1e-5,
                                   rtol=1e-5)
    dense = KeyframeTokenizer(58, 48, 7, "dense", (4, 4, 4, 4), 32, 4, 1, 1, 1, 16)
    assert torch.equal(dense.select(frames), torch.ones(6, 48))


def test_best_of_samples_target_rebuilds_at_least_as_well_as_static():
    torch.manual_seed(0)
    tokenizer = KeyframeTokenizer(58, 48, 5, "learned", (4, 4, 4, 4), 32, 4, 1, 1, 1, 16)
    frames = torch.randn(8, 48, 58)
    with torch.no_grad():
        target = tokenizer._best_selection(frames, tokenizer.scorer(frames), samples=4)

        def error(mask: torch.Tensor) -> torch.Tensor:
            rebuilt = tokenizer.inpainter(mask, tokenizer.encode(frames, mask)[0])
            return (rebuilt - frames).pow(2).mean(dim=(1, 2))

        assert torch.equal(target.sum(dim=1), torch.full((8,), 5.0))
        assert (error(target) <= error(tokenizer.static_mask.expand(8, -1)) + 1e-6).all()
    terms = tokenizer.loss(frames, temperature=0.5, best_of=2, select_weight=0.1)
    terms["loss"].backward()
    assert all(p.grad is not None for p in tokenizer.scorer_parameters())


def test_temperature_anneals_over_the_tokenizer_phase():
    cfg = SFMSConfig(tokenizer_steps=101, tau_start=1.0, tau_end=0.1)
    assert temperature_at(cfg, 0) == (1.0, 1.0)
    assert temperature_at(cfg, 50) == pytest.approx((0.1 ** 0.5, 0.5))
    assert temperature_at(cfg, 100) == temperature_at(cfg, 500) == pytest.approx((0.1, 0.0))


# ---------------------------------------------------------------- the shipped checkpoint

@pytest.fixture(scope="module")
def shipped() -> SFMSListener:
    generator = load_generator("sfms")
    assert isinstance(generator, SFMSListener)
    return generator


def test_shipped_checkpoint_card_records_both_phases(shipped):
    """(What every card records is checked for every model in test_models_registry.py.)"""
    _, card = load_checkpoint(SHIPPED, expected_model="sfms")
    assert card["steps"] > card["config"]["tokenizer_steps"] > 0
    assert card["training_data"]["teacher"] == "rules"
    assert {"val_FRCorr_k10", "val_FRDist_k10", "val_FRDiv_k10", "val_recon_mse", "val_ce"} <= set(card["metrics"])
    assert shipped.describe()["config"]["levels"] == (4, 4, 4, 4)
    weight = shipped.model.class_weight
    assert 0 < weight[0] < 1 and torch.equal(weight[1:], torch.ones(256))      # transitions weighted down


def test_generated_keyframes_are_sparse_like_the_training_tokens(shipped):
    """The prior correction keeps the sampled keyframe rate near the tokenizer's k / w."""
    model = shipped.model
    speaker = model.speaker_timeline(torch.from_numpy(synthetic_audio(600).matrix()), None, 600)
    with torch.no_grad():
        tokens = model.sample_tokens(speaker, 4, torch.Generator().manual_seed(0), 1.0, 0)
    rate = (tokens > 0).float().mean().item()
    expected = model.config.keyframes / model.config.window
    assert 0.5 * expected < rate < 2.0 * expected


def test_face_only_and_audio_face_conditioning(shipped):
    frames = 120
    face_only = shipped.generate(Conditioning(FPS, frames, face=synthetic_face(frames)), 2, seed=0).data
    both = shipped.generate(Conditioning(FPS, frames, audio=synthetic_audio(frames), face=synthetic_face(frames)),
                            2, seed=0).data
    audio_only = shipped.generate(Conditioning(FPS, frames, audio=synthetic_audio(frames)), 2, seed=0).data
    assert face_only.shape == both.shape == (2, frames, 58)
    assert np.isfinite(face_only).all() and not np.allclose(both, audio_only)


def test_sampling_overrides_and_errors(shipped):
    cond = Conditioning(FPS, 80, audio=synthetic_audio(80))
    greedy = SFMSListener.from_checkpoint(SHIPPED, top_k=1)
    assert greedy.describe()["top_k"] == 1
    np.testing.assert_array_equal(greedy.generate(cond, 2, seed=0).data, greedy.generate(cond, 2, seed=5).data)
    with pytest.raises(ListenerctlError, match="temperature"):
        SFMSListener.from_checkpoint(SHIPPED, temperature=0)
    with pytest.raises(ListenerctlError, match="fps"):
        shipped.generate(Conditioning(30.0, 80, audio=synthetic_audio(80)), 2, seed=0)


# ---------------------------------------------------------------- training with the shared trainer

TINY = dict(width=16, heads=2, position_dim=8, predictor_width=16, predictor_layers=1, encoder_layers=1,
            inpainter_layers=1, batch_size=8, tokenizer_steps=4, warmup_steps=2, best_of=2, keyframes=5)


def test_two_phase_training_freezes_the_tokenizer_and_reloads(tiny_corpus, tmp_path):
    from listenerctl.training.loop import run_training

    stem = tmp_path / "sfms"
    plan = make_train_plan(tiny_corpus, seed=0, **TINY)
    run_training(plan, 4, stem, log_every=2)                 # phase 1 only: the tokenizer
    after_phase1 = {k: v.clone() for k, v in plan.model.state_dict().items()}
    plan = make_train_plan(tiny_corpus, seed=0, **TINY)
    card = run_training(plan, 8, stem, log_every=2)          # resumes, then phase 2: the predictor
    after_phase2 = plan.model.state_dict()

    frozen = [k for k in after_phase2 if k.startswith("tokenizer.")]
    trained = [k for k in after_phase2 if k.startswith("predictor.body.")]
    assert frozen and all(torch.equal(after_phase1[k], after_phase2[k]) for k in frozen)
    assert all(not torch.equal(after_phase1[k], after_phase2[k]) for k in trained)
    assert after_phase2["class_weight"][0] < 1                # token prior fitted

    assert card["training"]["resumed_from"] == 4 and card["steps"] == 8
    assert np.isfinite([card["metrics"][k] for k in ("val_recon_mse", "val_ce", "val_FRCorr_k10")]).all()
    generator = SFMSListener.from_checkpoint(stem)
    assert generator.model.config == SFMSConfig(**TINY)
    motion = generator.generate(Conditioning(FPS, 130, audio=synthetic_audio(130)), 3, seed=0).data
    assert motion.shape == (3, 130, 58) and np.isfinite(motion).all()


def test_neutral_prefix_windows_start_cold(tiny_corpus):
    from listenerctl.data.corpus import load_corpus
    from listenerctl.training.listener_windows import WindowSource, feature_statistics

    cfg = SFMSConfig(**{**TINY, "neutral_prefix": 1.0})
    train = load_corpus(tiny_corpus, "train")
    source = WindowSource.from_corpus(train, feature_statistics(train), "cpu")
    tokens = torch.randint(1, 257, (len(source.reactions), 48))
    neutral = torch.zeros(cfg.window, dtype=torch.long)
    cold = token_batch(source, tokens, neutral, np.random.default_rng(0), 16, cfg)
    assert (cold["tokens"][:, 0] == 0).all() and not cold["has_audio"][:, 0].any()
    assert (cold["tokens"][:, -cfg.chunk:] > 0).all()        # the predicted frames are never prefix
    warm = token_batch(source, tokens, neutral, np.random.default_rng(0), 16, SFMSConfig(**TINY, neutral_prefix=0.0))
    assert (warm["tokens"] > 0).all()


def test_bad_training_settings_are_one_sentence(tiny_corpus):
    with pytest.raises(ListenerctlError, match="unknown sfms setting"):
        make_train_plan(tiny_corpus, codebook=256)
    with pytest.raises(ListenerctlError, match="keyframes"):
        make_train_plan(tiny_corpus, keyframes=60)
