"""The difflistener model (VQ-VAE + mask-and-replace discrete diffusion): the closed-form transition maths
against dense matrices, any length, K distinct samples, reproducible seeds, speaker-driven output, token-level
window stitching, two-phase training with the shared trainer, checkpoint errors and the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import listenerctl.models.difflistener as dl
from helpers import ROOT, run_cli, shared_file, synthetic_audio, synthetic_face
from listenerctl.checkpoint import load_checkpoint
from listenerctl.conditioning import Conditioning
from listenerctl.errors import ListenerctlError
from listenerctl.features.audio import extract_audio
from listenerctl.media import load_audio
from listenerctl.models import load_generator
from listenerctl.models.difflistener import DiffListener, DiffListenerConfig, MaskReplaceProcess, draw
from listenerctl.training.difflistener import make_train_plan
from listenerctl.motion import get_spec

SHIPPED = ROOT / "checkpoints" / "difflistener.safetensors"
FPS = 25.0
SPEC = get_spec("arkit58")


@pytest.fixture(scope="module")
def shipped() -> DiffListener:
    generator = load_generator("difflistener")
    assert isinstance(generator, DiffListener)
    return generator


@pytest.fixture(scope="module")
def quick() -> DiffListener:
    """The shipped checkpoint sampling with 10 jumps instead of 100 (shape and plumbing tests)."""
    return DiffListener.from_checkpoint(SHIPPED, steps=10)


# ---------------------------------------------------------------- the discrete diffusion process

def _dense(process: MaskReplaceProcess, s: int, t: int) -> torch.Tensor:
    """The (V+1)×(V+1) transition matrix from step s to t (rows: from, columns: to), built explicitly."""
    v = process.codebook
    if s == 0:
        alpha, gamma = process.alpha_bar[t].double(), process.gamma_bar[t].double()
    else:
        alpha = process.alpha_bar[t].double() / process.alpha_bar[s].double()
        gamma = 1 - (1 - process.gamma_bar[t].double()) / (1 - process.gamma_bar[s].double())
    matrix = torch.zeros(v + 1, v + 1, dtype=torch.float64)
    matrix[:v, :v] = (1 - alpha - gamma) / v + alpha * torch.eye(v, dtype=torch.float64)
    matrix[:v, v] = gamma
    matrix[v, v] = 1.0
    return matrix


@pytest.mark.parametrize("s,t", [(0, 1), (3, 4), (2, 7), (0, 10), (9, 10)])
def test_closed_form_posterior_matches_dense_bayes(s, t):
    """p(x_s | x_t) from the transition parameters equals Σ_x0 q(x_t|x_s) q(x_s|x0) / q(x_t|x0) p0(x0),
    normalised, computed with explicit matrices — for predicted and one-hot x_0, every x_t, skipped steps."""
    v = 5
    process = MaskReplaceProcess(v, 10)
    torch.testing.assert_close(_dense(process, 0, s) @ _dense(process, s, t), _dense(process, 0, t))
    step, to_s, to_t = _dense(process, s, t), _dense(process, 0, s), _dense(process, 0, t)
    for p0 in (torch.rand(v, generator=torch.Generator().manual_seed(t)).softmax(0).double(),
               torch.eye(v, dtype=torch.float64)[1]):
        for x_t in range(v + 1):
            joint = step[:, x_t] * ((p0 / to_t[:v, x_t]) @ to_s[:v])
            expected = joint / joint.sum()
            got = process.posterior(p0.float()[None, None], torch.tensor([[x_t]]), torch.tensor([t]),
                                    torch.tensor([s]))[0, 0].double()
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_forward_noise_matches_its_marginal_and_schedule_ends():
    process = MaskReplaceProcess(4, 100)
    x0 = torch.full((1, 200_000), 2)
    x_t = process.noise(x0, torch.tensor([40]), torch.Generator().manual_seed(0))
    share = torch.bincount(x_t[0], minlength=5).double() / x0.numel()
    torch.testing.assert_close(share, _dense(process, 0, 40)[2], atol=4e-3, rtol=0)
    assert process.alpha_bar[0] == 1 and process.gamma_bar[0] == 0
    assert abs(float(process.gamma_bar[-1]) - 0.9) < 1e-6 and abs(float(process.alpha_bar[-1])) < 1e-6


def test_skip_step_jumps_cover_the_whole_schedule():
    process = MaskReplaceProcess(8, 100)
    for count in (100, 25, 10, 1):
        jumps = process.timesteps(count)
        assert len(jumps) == count and jumps[0][0] == 100 and jumps[-1][1] == 0
        assert all(t > s for t, s in jumps) and all(a[1] == b[0] for a, b in zip(jumps, jumps[1:]))


def test_draw_follows_the_probabilities():
    probs = torch.tensor([[0.1, 0.0, 0.6, 0.3]]).expand(100_000, 4)
    drawn = draw(3 * probs, torch.Generator().manual_seed(0))                 # weights need not sum to 1
    share = torch.bincount(drawn, minlength=4).double() / len(drawn)
    torch.testing.assert_close(share, probs[0].double(), atol=5e-3, rtol=0)


# ---------------------------------------------------------------- the shipped checkpoint

def test_shipped_checkpoint_card_records_both_phases(shipped):
    """(What every card records is checked for every model in test_models_registry.py.)"""
    _, card = load_checkpoint(SHIPPED, expected_model="difflistener")
    cfg = card["config"]
    assert cfg["codebook"] == 256 and cfg["downsample"] == 8 and cfg["diffusion_steps"] == 100
    assert card["steps"] > cfg["vqvae_steps"] > 0
    assert card["training_data"]["teacher"] == "rules"
    assert {"val_FRCorr_k10", "val_FRDist_k10", "val_FRDiv_k10", "val_FRCorr_shuffled_k10", "val_recon_mse",
            "val_code_usage", "val_perplexity"} <= set(card["metrics"])
    assert shipped.describe()["sampling_steps"] == 100


def test_window_joins_do_not_jump(shipped):
    """Frame-to-frame steps at the frames where a window's pinned tokens meet its sampled ones are no
    larger than at any other token boundary: the joined token timeline is decoded in one pass."""
    motion = shipped.generate(Conditioning(FPS, 750, audio=synthetic_audio(750)), 6, seed=2).data
    steps = np.abs(np.diff(motion, axis=1)).mean(axis=(0, 2))            # [T - 1], step t → t + 1
    cfg = shipped.model.config
    shift = cfg.tokens - cfg.overlap_tokens
    joins = [token * cfg.downsample - 1 for start in range(shift, 750 // cfg.downsample, 2 * shift)
             for token in (start + cfg.overlap_tokens, start + shift) if token * cfg.downsample < 750]
    token_ends = np.arange(cfg.downsample - 1, 749, cfg.downsample)
    assert len(joins) >= 4
    assert steps[joins].mean() < 1.5 * steps[token_ends].mean()
    assert steps[token_ends].mean() < 2.0 * steps.mean()


def test_pinned_tokens_are_kept_and_free_ones_sampled(shipped):
    model = shipped.model
    n = model.config.tokens
    context = torch.randn(6, n, model.config.width, generator=torch.Generator().manual_seed(0))
    known = torch.randint(model.config.codebook, (6, n), generator=torch.Generator().manual_seed(1))
    pinned = torch.zeros(6, n, dtype=torch.bool)
    pinned[:, :2] = pinned[:, -2:] = True
    tokens = model.sample_tokens(context, torch.Generator().manual_seed(2), 10, pinned, known)
    assert torch.equal(tokens[pinned], known[pinned])
    assert not torch.equal(tokens[~pinned], known[~pinned])
    assert tokens.max() < model.config.codebook                              # no [MASK] left


def test_chunked_decoding_equals_one_pass(shipped, monkeypatch):
    model = shipped.model
    tokens = torch.randint(model.config.codebook, (2, 50), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole = model.decode_tokens(tokens)
        monkeypatch.setattr(dl, "DECODE_CHUNK", 7)
        chunked = model.decode_tokens(tokens)
    assert whole.shape == (2, 50 * model.config.downsample, 83)
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)


def test_batched_inputs_over_several_chunks_equal_alone(quick, monkeypatch):
    """`generate_many` over inputs whose windows take one or several chunks per parity (chunks of 8 windows
    here): chunks of a round share calls, small chunks sample alone, and each input gets exactly its
    one-by-one motion in fewer denoiser passes."""
    monkeypatch.setattr(dl, "WINDOW_CHUNK", 8)
    conds = [Conditioning(FPS, frames, audio=synthetic_audio(frames, seed=seed))  # 8, 7, 23 and 4 windows
             for frames, seed in ((900, 1), (700, 2), (2500, 3), (410, 4))]
    seeds = [4, 5, 6, 7]
    passes = []
    sample_tokens = quick.model.sample_tokens
    monkeypatch.setattr(quick.model, "sample_tokens", lambda *a, **k: passes.append(1) or sample_tokens(*a, **k))
    alone = [quick.generate(cond, 4, seed) for cond, seed in zip(conds, seeds)]
    alone_passes, passes[:] = len(passes), []
    together = quick.generate_many(conds, 4, seeds)
    assert (alone_passes, len(passes)) == (10, 8)
    for one, batched in zip(alone, together):
        np.testing.assert_array_equal(batched.data, one.data)


def test_listener_warms_to_speech():
    """Against the same seeds, a real speaker makes the listener smile more than silence does, as the
    rules teacher does (its warmth grows with the speaker's speech activity). Sampled with 25 jumps to keep
    the test fast (measured margin 0.075 at 25 jumps, 0.06–0.08 at the default 100)."""
    shipped = DiffListener.from_checkpoint(SHIPPED, steps=25)
    samples = load_audio(shared_file("speech/beat_scott_68s.wav"))[: 16000 * 24]
    speech = Conditioning(FPS, 600, audio=extract_audio(samples, FPS, 600))
    silence = Conditioning(FPS, 600, audio=extract_audio(np.zeros_like(samples), FPS, 600))
    talk, quiet = (shipped.generate(c, 10, seed=11).data for c in (speech, silence))
    smile = [SPEC.index("mouthSmileLeft"), SPEC.index("mouthSmileRight")]
    assert talk[..., smile].mean() > quiet[..., smile].mean() + 0.02


def test_face_only_and_audio_face_conditioning(quick):
    frames = 120
    face_only = quick.generate(Conditioning(FPS, frames, face=synthetic_face(frames)), 2, seed=0).data
    both = quick.generate(Conditioning(FPS, frames, audio=synthetic_audio(frames), face=synthetic_face(frames)),
                          2, seed=0).data
    audio_only = quick.generate(Conditioning(FPS, frames, audio=synthetic_audio(frames)), 2, seed=0).data
    assert face_only.shape == both.shape == (2, frames, 58)
    assert np.isfinite(face_only).all() and np.isfinite(both).all()
    assert not np.allclose(both, audio_only)


def test_steps_override_and_bad_requests(quick):
    cond = Conditioning(FPS, 80, audio=synthetic_audio(80))
    assert quick.describe()["sampling_steps"] == 10
    assert quick.generate(cond, 2, seed=0).data.shape == (2, 80, 58)
    with pytest.raises(ListenerctlError, match="steps"):
        DiffListener.from_checkpoint(SHIPPED, steps=0)
    with pytest.raises(ListenerctlError, match="steps"):
        DiffListener.from_checkpoint(SHIPPED, steps=101)
    with pytest.raises(ListenerctlError, match="fps"):
        quick.generate(Conditioning(30.0, 80, audio=synthetic_audio(80)), 2, seed=0)


def _generate_with_cli(talk, out) -> None:
    if not talk.is_file():
        pytest.skip(f"sample not available: {talk}")
    proc = run_cli("generate", talk, "--model", "difflistener", "-k", 2, "--render", "none", "-o", out)
    assert proc.returncode == 0, proc.stderr
    with np.load(out / "talk" / "motion.npz") as motion:
        listener = motion["listener"]
    assert listener.shape[0] == 2 and listener.shape[2] == 58 and listener.shape[1] > 600
    manifest = json.loads((out / "talk" / "manifest.json").read_text())
    assert "difflistener" in json.dumps(manifest)


def test_cli_generates_from_speech(tmp_path):
    _generate_with_cli(ROOT / "samples" / "talk.wav", tmp_path / "out")


@pytest.mark.slow
def test_cli_generates_from_video(tmp_path):
    """The full video path (face tracking of 29 s of video dominates: ~50 s on a loaded 2-core machine)."""
    _generate_with_cli(ROOT / "samples" / "talk.mp4", tmp_path / "out")


# ---------------------------------------------------------------- training with the shared trainer

TINY = dict(window=32, overlap_tokens=1, code_dim=8, vq_width=16, width=32, heads=4, denoiser_layers=1,
            time_dim=16, diffusion_steps=20, steps=5, batch_size=8, vqvae_steps=4, warmup_steps=2, dead_after=2)


def test_two_phase_training_freezes_the_vqvae_and_reloads(tiny_corpus, tmp_path):
    from listenerctl.training.loop import run_training

    stem = tmp_path / "difflistener"
    plan = make_train_plan(tiny_corpus, seed=0, **TINY)
    card = run_training(plan, 4, stem, log_every=2)                 # phase 1 only: VQ-VAE
    assert "val_FRCorr_k10" not in card["metrics"] and 0 < card["metrics"]["val_code_usage"] <= 1
    after_phase1 = {k: v.clone() for k, v in plan.model.state_dict().items()}
    plan = make_train_plan(tiny_corpus, seed=0, **TINY)
    card = run_training(plan, 8, stem, log_every=2)                 # resumes, then phase 2: diffusion
    after_phase2 = plan.model.state_dict()

    frozen = [k for k in after_phase2 if k.startswith(("encoder.", "decoder.", "quantizer."))]
    trained = [k for k in after_phase2 if k.startswith(("denoiser.body.", "fusion.audio_in."))]
    assert frozen and all(torch.equal(after_phase1[k], after_phase2[k]) for k in frozen)
    assert trained and all(not torch.equal(after_phase1[k], after_phase2[k]) for k in trained)

    assert card["training"]["resumed_from"] == 4 and card["steps"] == 8
    metrics = card["metrics"]
    assert np.isfinite([metrics[k] for k in ("val_recon_mse", "val_vlb", "val_x0_ce", "val_FRCorr_k10",
                                             "val_FRCorr_shuffled_k10")]).all()
    generator = DiffListener.from_checkpoint(stem)
    assert generator.model.config == DiffListenerConfig(**TINY)
    motion = generator.generate(Conditioning(FPS, 130, audio=synthetic_audio(130)), 3, seed=0).data
    assert motion.shape == (3, 130, 58) and np.isfinite(motion).all()


def test_velocity_weight_enters_the_vqvae_loss(tiny_corpus):
    batch = next(make_train_plan(tiny_corpus, seed=0, **TINY).batches)
    terms = {}
    for weight in (0.0, 3.0):
        plan = make_train_plan(tiny_corpus, seed=0, **{**TINY, "velocity_weight": weight})
        terms[weight] = plan.model.vqvae_loss(batch)
    off, on = terms[0.0], terms[3.0]
    torch.testing.assert_close(off["loss"], off["recon"] + off["commitment"])
    torch.testing.assert_close(on["loss"], on["recon"] + 3.0 * on["velocity"] + on["commitment"])


def test_bad_training_settings_are_one_sentence(tiny_corpus):
    with pytest.raises(ListenerctlError, match="unknown difflistener setting"):
        make_train_plan(tiny_corpus, text_encoder="bert")
    with pytest.raises(ListenerctlError, match="multiple"):
        make_train_plan(tiny_corpus, window=100)
    with pytest.raises(ListenerctlError, match="power of 2"):
        make_train_plan(tiny_corpus, downsample=6)
