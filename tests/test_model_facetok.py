"""facetok: the shipped checkpoint generates any length with K batched samples, depends on the speaker,
and loads (or fails) cleanly; the tokenizer, sampler and phased training behave as documented."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ROOT, run_cli, shared_file

from listenerctl.checkpoint import config_from_card
from listenerctl.conditioning import AudioFeatures, Conditioning
from listenerctl.data.corpus import load_corpus
from listenerctl.emotion import emotion_from_arkit
from listenerctl.errors import ListenerctlError
from listenerctl.features.audio import extract_audio
from listenerctl.media import load_audio
from listenerctl.metrics.react import fr_corr, fr_dist, fr_div
from listenerctl.models import load_generator
from listenerctl.models.baselines import MeanListener, RandomListener
from listenerctl.models.facetok import GROUPS, FacetokConfig, FacetokListener, FacetokModel, group_matrix, sample_top_k
from listenerctl.models.rules import RuleListener
from listenerctl.motion import SPECS
from listenerctl.training.facetok import CorpusTensors, phase_of, plan_training, training_batches
from listenerctl.training.loop import run_training

CHECKPOINT = ROOT / "checkpoints" / "facetok.safetensors"
FPS = 25.0


@pytest.fixture(scope="module")
def listener() -> FacetokListener:
    generator = load_generator("facetok")
    assert isinstance(generator, FacetokListener)
    return generator


@pytest.fixture(scope="module")
def speech() -> Conditioning:
    """The first 30 s (751 frames) of real speech (BEAT speaker scott)."""
    audio = extract_audio(load_audio(shared_file("speech/beat_scott_68s.wav")), FPS, 751)
    return Conditioning(FPS, 751, audio=audio)


def silence(num_frames: int) -> Conditioning:
    """Audio features of digital silence."""
    return Conditioning(FPS, num_frames, audio=extract_audio(np.zeros(num_frames * 640, np.float32), FPS, num_frames))


# ------------------------------------------------------------------ the shipped checkpoint


def test_shipped_checkpoint_card_records_every_phase_and_its_controls(listener):
    """(What every card records is checked for every model in test_models_registry.py.)"""
    card = listener.card
    assert card["steps"] > card["config"]["tokenizer_steps"] + card["config"]["emotion_steps"]
    assert card["wall_time_s"] < 20 * 60 and "train split" in card["training_data"]  # on a shared 2-core box
    metrics = card["metrics"]
    assert metrics["mean_pose_over_tokenizer_mse"] >= 5.0
    assert metrics["code_usage"] > 0.5
    assert metrics["emotion_decoder_mse"] < metrics["mean_emotion_mse"]
    assert metrics["FRCorr"] > metrics["FRCorr_rotated_speakers"]
    assert config_from_card(card, FacetokConfig, CHECKPOINT) == listener.config


def test_each_patch_is_decoded_once_as_the_whole_sequence_would_be(listener, speech):
    """The per-patch decoding kept during generation (the cache that keeps cost per frame flat) equals
    decoding the finished token sequence in one go, for a length that is not a multiple of the patch."""
    cond = Conditioning(FPS, 101, audio=AudioFeatures(**{k: v[:101] for k, v in vars(speech.audio).items()}))
    tokens, standardised = listener.generate_tokens(cond, 2, seed=0)
    assert tokens.shape == (2, 101) and tokens.max() < 1000
    assert torch.allclose(standardised, listener.model.tokenizer.decode_indices(tokens), atol=1e-5)


def test_work_per_patch_is_bounded_whatever_the_length(listener):
    """A long input never makes the speaker encoder or the decoder see more than one window: the cost per
    frame stays flat in T."""
    c, seen = listener.config, {"speaker": [], "listener": []}
    hooks = [getattr(listener.model, part).register_forward_hook(
        lambda module, args, out, part=part: seen[part].append(args[0].shape[1])) for part in seen]
    try:
        listener.generate(silence(1000), 2, seed=0)
    finally:
        for hook in hooks:
            hook.remove()
    assert max(seen["speaker"]) == c.context + c.patch and max(seen["listener"]) == c.context
    assert len(seen["listener"]) == -(-1000 // c.patch)


def test_emotion_decoder_output_is_valid_emotion25(listener, speech):
    motion, emotion = listener.generate_with_emotion(speech, 2, seed=1)
    assert emotion.spec == "emotion25" and emotion.data.shape == (2, speech.num_frames, 25)
    aus, va, expressions = emotion.data[..., :15], emotion.data[..., 15:17], emotion.data[..., 17:]
    assert aus.min() >= 0 and aus.max() <= 1 and np.abs(va).max() <= 1
    assert np.allclose(expressions.sum(-1), 1.0, atol=1e-5)
    assert np.array_equal(motion.data, listener.generate(speech, 2, seed=1).data)


def test_other_frame_rates_are_refused(listener):
    cond = silence(30)
    with pytest.raises(ListenerctlError, match="25 fps"):
        listener.generate(Conditioning(30.0, 30, audio=cond.audio), 1, seed=0)


def react_metrics(generator, clips) -> dict:
    """FRCorr, FRDist, FRDiv of K = 10 samples per clip, and FRCorr against the next clip's reactions."""
    pred = np.stack([emotion_from_arkit(generator.generate(c.cond, 10, seed=100 + i).data)
                     for i, c in enumerate(clips)])
    appropriate = [c.reaction_emotion for c in clips]
    return {"FRCorr": fr_corr(pred, appropriate), "FRDist": fr_dist(pred, appropriate), "FRDiv": fr_div(pred),
            "FRCorr_rotated": fr_corr(np.roll(pred, 1, axis=0), appropriate)}


@pytest.fixture(scope="module")
def demo_corpus(tmp_path_factory) -> Path:
    """The demo corpus the shipped checkpoint was trained on, rebuilt from ../shared/data by the README's command
    (seeded: the same splits, so its test split was held out from training)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("rebuilding the demo corpus needs espeak-ng")
    corpus = tmp_path_factory.mktemp("demo") / "corpus"
    built = run_cli("data", "synth", shared_file("speech").parent, "-o", corpus, "--synth-minutes", "28", timeout=1800)
    assert built.returncode == 0, built.stderr
    return corpus


@pytest.mark.slow
def test_beats_the_baselines_on_the_held_out_test_split(listener, demo_corpus):
    clips = load_corpus(demo_corpus, "test").clips
    ours = react_metrics(listener, clips)
    for baseline in (MeanListener(), RandomListener()):
        theirs = react_metrics(baseline, clips)
        assert ours["FRCorr"] > theirs["FRCorr"] and ours["FRDist"] < theirs["FRDist"], (ours, theirs)
    assert ours["FRDiv"] > 0.3 * react_metrics(RuleListener(), clips)["FRDiv"]
    assert ours["FRCorr_rotated"] < 0.8 * ours["FRCorr"]


# ------------------------------------------------------------------ parts


def test_blendshape_groups_cover_every_channel_once():
    member = group_matrix() > 0
    assert member.shape == (len(GROUPS), 58) and member.sum(0).eq(1).all()
    names = SPECS["arkit58"].channels
    assert {names[i] for i in member[GROUPS.index("head")].nonzero()[:, 0]} == set(names[52:])
    assert {names[i] for i in member[GROUPS.index("jaw")].nonzero()[:, 0]} == {"jawForward", "jawLeft", "jawOpen",
                                                                               "jawRight"}
    assert torch.allclose(group_matrix().sum(1), torch.ones(len(GROUPS)))


def test_factorised_head_scores_each_code_by_its_fsq_levels():
    model = FacetokModel(FacetokConfig())
    fsq, onehot = model.tokenizer.fsq, model.listener.level_onehot
    assert fsq.codebook_size == 1000 and onehot.shape == (23, 1000)
    assert onehot.sum(0).eq(4).all()                         # one level per FSQ dimension
    codes = fsq.indices_to_codes(torch.arange(1000))         # [1000, 4] on the grid
    level_scores = torch.cat([(torch.arange(n) - n // 2) / (n // 2) for n in fsq.levels])  # each level's grid value
    assert torch.allclose(level_scores @ onehot, codes.sum(-1), atol=1e-6)


def test_fiber_gates_start_closed():
    model = FacetokModel(FacetokConfig())
    assert all(block.cross.alpha.item() == 0.0 for block in model.speaker.fusion.blocks)


def test_sampler_follows_temperature_and_top_k():
    gen = torch.Generator().manual_seed(0)
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0]).log_softmax(0).expand(1, 20000, 4)
    for temperature in (0.5, 1.0):
        draws = sample_top_k(logits, temperature, 4, gen, coupled=False)[0]
        share = torch.bincount(draws, minlength=4).float() / draws.numel()
        assert torch.allclose(share, torch.softmax(logits[0, 0] / temperature, 0), atol=0.015)
    top2 = sample_top_k(logits, 1.0, 2, gen, coupled=False)
    assert set(top2.unique().tolist()) == {0, 1}
    assert sample_top_k(logits[:, :50], 1.0, 1, gen, coupled=False).eq(0).all()
    coupled = sample_top_k(torch.randn(6, 1, 1000).expand(6, 32, 1000), 1.0, 50, gen, coupled=True)
    assert (coupled == coupled[:, :1]).all() and coupled[:, 0].unique().numel() > 1


# ------------------------------------------------------------------ training


TINY = FacetokConfig(token_window=4, tokenizer_width=16, tokenizer_layers=1, width=16, heads=2, speaker_layers=1,
                     listener_layers=1, patch=8, context=8, tokenizer_steps=6, emotion_steps=3, tokenizer_batch_size=4,
                     batch_size=4, warmup_steps=2)


def tiny_corpus(clips: int, seed: int) -> CorpusTensors:
    """Random speaker audio and two listener reactions per clip whose pitch follows the speaker's energy."""
    rng = np.random.default_rng(seed)
    frames = 40
    audio = rng.normal(size=(clips, frames, 123)).astype(np.float32)
    reactions = rng.uniform(0, 0.2, size=(clips, 2, frames, 58)).astype(np.float32)
    reactions[..., 52] = audio[:, None, :, 0] * 0.1
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return CorpusTensors(audio=t(audio), audio_present=torch.ones(clips, dtype=torch.bool),
                         face=torch.zeros(clips, frames, 58), face_present=torch.zeros(clips, dtype=torch.bool),
                         reactions=t(reactions), emotion=t(rng.uniform(size=(clips, 2, frames, 25)).astype(np.float32)))


def test_phases_freeze_the_tokenizer_and_the_checkpoint_generates(tmp_path):
    steps = TINY.tokenizer_steps + TINY.emotion_steps + 4
    phases = [phase_of(s, TINY) for s in (0, 5, 6, 8, 9, steps)]
    assert phases == ["tokenizer"] * 2 + ["emotion"] * 2 + ["predictor"] * 2
    plan = plan_training(tiny_corpus(3, 0), tiny_corpus(2, 1), TINY, seed=0, description="tiny random corpus")
    initial = {k: v.clone() for k, v in plan.model.state_dict().items()}
    run_training(plan, TINY.tokenizer_steps, tmp_path / "facetok", log_every=3)
    after_tokenizer = {k: v.clone() for k, v in plan.model.state_dict().items()}
    card = run_training(plan, steps, tmp_path / "facetok", log_every=3)
    final = plan.model.state_dict()

    def changed(a, b, part):
        return any(not torch.equal(a[k], b[k]) for k in a if k.startswith(part))

    assert changed(initial, after_tokenizer, "tokenizer.")
    assert not changed(initial, after_tokenizer, "emotion.") and not changed(initial, after_tokenizer, "listener.")
    assert not changed(after_tokenizer, final, "tokenizer.")
    assert changed(after_tokenizer, final, "emotion.") and changed(after_tokenizer, final, "listener.")
    assert changed(after_tokenizer, final, "speaker.")
    metrics = set(card["metrics"])
    assert {"mean_pose_over_tokenizer_mse", "code_usage", "patch_ce", "FRCorr", "FRDist", "FRDiv"} <= metrics

    generator = FacetokListener.from_checkpoint(tmp_path / "facetok")
    cond = Conditioning(FPS, 21, audio=AudioFeatures(np.zeros((21, 80)), np.zeros((21, 39)), np.full(21, -60.0),
                                                     np.zeros(21), np.zeros(21, bool), np.zeros(21, bool)))
    assert generator.generate(cond, 2, seed=0).data.shape == (2, 21, 58)


def test_training_hides_a_random_share_of_past_tokens():
    """Each predictor window hides its past tokens at a rate drawn from [0, mask_max): 0.15 on average."""
    batches = training_batches(tiny_corpus(3, 0), replace(TINY, tokenizer_steps=0, emotion_steps=0, batch_size=64),
                               seed=0)
    masks = torch.stack([next(batches)["token_mask"] for _ in range(20)]).float()     # [20, 64, window]
    assert 0.12 < masks.mean() < 0.18 and masks.mean(-1).max() < 0.7 and masks.mean(-1).min() == 0.0


def test_context_must_be_a_multiple_of_the_patch():
    with pytest.raises(ValueError, match="multiple"):
        replace(TINY, context=12)
