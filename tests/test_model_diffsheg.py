"""DiffSHEG: shapes for any length, K samples batched and different, determinism, uni-directional
expression → gesture flow, FOPPAS pinning, the shipped checkpoint listening to speech, clear errors."""

from __future__ import annotations

from dataclasses import asdict, replace
from importlib.util import find_spec

import numpy as np
import pytest
import torch

from listenerctl.conditioning import Conditioning, FaceFeatures
from listenerctl.errors import ListenerctlError
from listenerctl.features.audio import extract_audio
from listenerctl.media import load_audio, write_wav
from listenerctl.models import REGISTRY, load_generator
from listenerctl.data.beat import beat_speaker, skeleton_from_card
from listenerctl.features.audio_encoder import PretrainedAudioEncoder, parse_audio_encoder
from listenerctl.metrics.gesture import gesture_speed, motion_energy, window_join_ratio
from listenerctl.models.diffsheg import EXPRESSION_DIM, FPS, GESTURE_DIM, DiffSheg, DiffShegConfig, UniEG
from listenerctl.training.diffsheg import diffusion_loss, make_train_plan
from listenerctl.models.layers import AdaptiveNorm
from helpers import ROOT, run_cli, shared_file

SHIPPED = ROOT / "checkpoints" / "diffsheg.safetensors"
TINY = DiffShegConfig(width=32, heads=2, audio_layers=1, expression_layers=1, gesture_layers=1, window=20,
                      overlap=4, diffusion_steps=100, styles=("any", "scott"))

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_generator(config: DiffShegConfig = TINY, seed: int = 0) -> DiffSheg:
    """An untrained small model whose adaptive norms (zero at init) already respond to style and step."""
    torch.manual_seed(seed)
    model = UniEG(config)
    for module in model.modules():
        if isinstance(module, AdaptiveNorm):
            torch.nn.init.normal_(module.to_scale_shift.weight, std=0.2)
    card = {"model": "diffsheg", "config": asdict(config), "spec": "beat141", "fps": 15.0}
    return DiffSheg(model, card)


def speech_features(seconds: float = 4.0, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    syllables = (np.sin(2 * np.pi * 4 * t) > 0).astype(np.float32)
    return extract_audio(0.3 * syllables * np.sin(2 * np.pi * 180 * t), fps=15.0).mel


@pytest.fixture(scope="module")
def tiny():
    return tiny_generator()


@pytest.mark.parametrize("frames", [1, 37, 751, 3000])
def test_any_length_gives_k_samples_of_both_specs(tiny, frames):
    audio = np.random.default_rng(frames).normal(-5, 2, (frames, 80)).astype(np.float32)
    steps = 2 if frames >= 751 else 5
    motion = tiny.sample(audio, 3, seed=0, steps=steps)
    assert motion.expression.data.shape == (3, frames, EXPRESSION_DIM) and motion.expression.spec == "beatface51"
    assert motion.gesture.data.shape == (3, frames, GESTURE_DIM) and motion.gesture.spec == "beat141"
    for part in (motion.expression.data, motion.gesture.data):
        assert part.dtype == np.float32 and np.isfinite(part).all()
    assert motion.expression.data.min() >= 0 and motion.expression.data.max() <= 1
    assert motion.gesture.fps == 15.0


def test_style_ids_change_the_samples(tiny):
    audio = speech_features(2.0)
    assert tiny.style_ids(None, 3) == [0, 1, 0]  # the K samples cycle over the gesture styles
    plain = tiny.sample(audio, 2, seed=3, steps=4, styles=["any"])
    styled = tiny.sample(audio, 2, seed=3, steps=4, styles=["any", "scott"])
    assert np.array_equal(plain.gesture.data[0], styled.gesture.data[0])
    assert not np.allclose(plain.gesture.data[1], styled.gesture.data[1])
    with pytest.raises(ListenerctlError, match="unknown style"):
        tiny.sample(audio, 1, seed=0, styles=["nobody"])


def test_gesture_branch_sees_the_expression_but_sends_no_gradient_back():
    gen = tiny_generator(seed=1)
    model = gen.model.train()
    batch = {"audio": torch.randn(2, 12, 80), "expression": torch.rand(2, 12, EXPRESSION_DIM),
             "gesture": torch.randn(2, 12, GESTURE_DIM), "has_expression": torch.tensor([False, False]),
             "has_gesture": torch.tensor([True, True]), "style": torch.zeros(2, dtype=torch.long)}
    diffusion_loss(model, batch)["loss"].backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.expression_branch.parameters())
    assert model.gesture_branch.blocks[0].attn.to_q.weight.grad.abs().sum() > 0
    model.eval()
    x = torch.randn(1, 12, EXPRESSION_DIM + GESTURE_DIM)
    t, style = torch.tensor([10]), torch.zeros(1, dtype=torch.long)
    with torch.no_grad():
        features = model.encode_audio(batch["audio"][:1])
        base = model(x, t, features, style)
        changed = x.clone()
        changed[..., :EXPRESSION_DIM] += 1.0
        moved = model(changed, t, features, style)
        gesture_only = x.clone()
        gesture_only[..., EXPRESSION_DIM:] += 1.0
        expression_kept = model(gesture_only, t, features, style)
    assert not torch.allclose(base[..., EXPRESSION_DIM:], moved[..., EXPRESSION_DIM:])  # expression → gesture
    assert torch.allclose(base[..., :EXPRESSION_DIM], expression_kept[..., :EXPRESSION_DIM])  # never back


def test_foppas_pins_each_window_to_the_previous_tail(tiny, monkeypatch):
    import listenerctl.models.diffsheg as module

    calls = []
    real_sample = module.sample

    def spy(model_fn, shape, sampler, steps, generator, inpaint=None, dtype=torch.float32):
        out = real_sample(model_fn, shape, sampler, steps, generator, inpaint, dtype)
        calls.append((shape, inpaint, out.clone()))
        return out

    monkeypatch.setattr(module, "sample", spy)
    frames = TINY.window + 4 * (TINY.window - 6)  # five windows, each sharing exactly 6 frames
    motion = tiny.sample(speech_features(6.0)[:frames], 2, seed=0, steps=3, overlap=6)
    assert len(calls) == 5 and calls[0][1] is None
    for (_, _, previous), (shape, (known, mask), _) in zip(calls, calls[1:]):
        assert int(mask.sum()) == 6 and bool(mask[0, :6].all()) and shape[1] == TINY.window
        assert torch.equal(known[:, :6], previous[:, -6:])
    # outside the overlaps the output is each window's own frames; inside, a blend of both windows
    first = calls[0][2]
    expression, gesture = (torch.from_numpy(m.data) for m in (motion.expression, motion.gesture))
    assert torch.allclose(tiny.model.normalise(expression, gesture)[:, 6:14, EXPRESSION_DIM:],
                          first[:, 6:14, EXPRESSION_DIM:], atol=1e-4)


def test_generate_follows_the_conditioning_rate_and_needs_audio(tiny):
    samples = np.zeros(16_000 * 2, np.float32)
    audio = extract_audio(samples, fps=25.0)
    cond = Conditioning(25.0, 50, audio=audio)
    motion = tiny.generate(cond, 2, seed=0)
    assert motion.data.shape == (2, 50, GESTURE_DIM) and motion.fps == 25.0 and motion.spec == "beat141"
    face_only = Conditioning(25.0, 50, face=FaceFeatures(np.zeros((50, 58)), np.zeros((50, 25)), np.ones(50, bool)))
    with pytest.raises(ListenerctlError, match="no audio"):
        tiny.generate(face_only, 1, seed=0)


def test_bad_requests_are_one_sentence(tiny):
    with pytest.raises(ListenerctlError, match=r"audio features \[T >= 1, 80\]"):
        tiny.sample(np.zeros((0, 80), np.float32), 1, seed=0)
    with pytest.raises(ListenerctlError, match="overlap"):
        tiny.sample(np.zeros((30, 80), np.float32), 1, seed=0, overlap=TINY.window)
    with pytest.raises(ListenerctlError, match="at least 1"):
        tiny.sample(np.zeros((30, 80), np.float32), 0, seed=0)


def test_audio_encoder_spec_is_checked(tmp_path):
    assert parse_audio_encoder("none") is None
    with pytest.raises(ListenerctlError, match="not understood"):
        parse_audio_encoder("whisper:/x")
    with pytest.raises(ListenerctlError, match="does not exist"):
        parse_audio_encoder(f"hubert:{tmp_path / 'absent'}")
    assert parse_audio_encoder(f"hubert:{tmp_path}") == ("hubert", tmp_path)

    if find_spec("transformers") is None:
        with pytest.raises(ListenerctlError, match="needs the `transformers` package"):
            PretrainedAudioEncoder("hubert", tmp_path, FPS)
    else:
        with pytest.raises(ListenerctlError, match="no hubert audio encoder could be loaded"):
            PretrainedAudioEncoder("hubert", tmp_path, FPS)


def test_audio_encoder_must_match_the_checkpoint(tmp_path):
    mel_only = tiny_generator()
    mel_only.use_audio_encoder("none")
    with pytest.raises(ListenerctlError, match="log-mel features alone"):
        mel_only.use_audio_encoder(f"hubert:{tmp_path}")
    hubert = DiffSheg(UniEG(replace(TINY, audio_encoder="hubert:/elsewhere", encoder_dim=8)), {})
    with pytest.raises(ListenerctlError, match="trained with a hubert audio encoder, not wav2vec2"):
        hubert.use_audio_encoder(f"wav2vec2:{tmp_path}")
    hubert.use_audio_encoder(f"hubert:{tmp_path}")
    if find_spec("transformers") is None:
        with pytest.raises(ListenerctlError, match="transformers"):
            hubert.audio_features(np.zeros(16_000, np.float32))


def test_beat_speaker_names():
    assert beat_speaker("2_scott_0_1_1") == "scott" and beat_speaker("talk") == "talk"


# ---- the shipped checkpoint -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped():
    assert SHIPPED.is_file(), "the shipped checkpoint checkpoints/diffsheg.safetensors is missing"
    return load_generator("diffsheg")


def test_registry_loads_the_shipped_checkpoint(shipped):
    """(What every card records is checked for every model in test_models_registry.py.)"""
    assert REGISTRY["diffsheg"].task == "cospeech" and REGISTRY["diffsheg"].learned
    assert isinstance(shipped, DiffSheg)
    card = shipped.card
    assert card["fps"] == 15.0 and "skeleton" in card
    assert "demonstration" in card["training_data"]["note"]
    assert {"fgd_diffsheg", "fgd_mean_pose_noise", "fgd_random_training_clip"} <= set(card["metrics"])
    buffers = dict(shipped.model.named_buffers())
    assert buffers["gesture_std"].shape == (GESTURE_DIM,) and buffers["expression_mean"].shape == (EXPRESSION_DIM,)


def test_shipped_model_moves_more_for_speech_than_for_silence(shipped):
    """Held-out speech against digital silence of the same length (measured on the shipped demo: expression
    2.0-2.1x, gesture joint speed 1.24-1.29x; the gesture branch of a one-minute model listens only mildly)."""
    wav = shared_file("beat/2_scott_0_1_1.wav")
    speech = load_audio(wav)[-16_000 * 8:]
    spoken = shipped.sample(shipped.audio_features(speech), 3, seed=0)
    quiet = shipped.sample(shipped.audio_features(np.zeros_like(speech)), 3, seed=0)
    assert motion_energy(spoken.expression.data) > 1.5 * motion_energy(quiet.expression.data)
    skeleton = skeleton_from_card(shipped.card)
    assert gesture_speed(spoken.gesture.data, skeleton) > 1.15 * gesture_speed(quiet.gesture.data, skeleton)


def test_window_join_ratio_sees_seams():
    t = np.arange(300)[None, :, None] / 15.0
    smooth = np.sin(2 * np.pi * 0.7 * t) + 0.5 * np.sin(2 * np.pi * 1.3 * t + 1.0)
    assert window_join_ratio(smooth, 60, 10) == pytest.approx(1.0, abs=0.3)
    seamed = smooth.copy()
    for start in range(50, 300, 50):
        seamed[:, start:] += 1.0  # a jump where each window takes over
    assert window_join_ratio(seamed, 60, 10) > 3.0


@pytest.mark.slow
def test_foppas_leaves_no_seams_on_two_minutes_of_speech(shipped):
    speech = np.concatenate([load_audio(shared_file("speech/beat_scott_68s.wav")),
                             load_audio(shared_file("beat/2_scott_0_1_1.wav"))])
    motion = shipped.sample(shipped.audio_features(speech), 2, seed=0)
    config = shipped.config
    for part in ("expression", "gesture"):
        assert window_join_ratio(getattr(motion, part).data, config.window, config.overlap) < 1.5, part


def test_training_a_tiny_model_on_the_beat_sample_writes_a_loadable_checkpoint(tmp_path):
    from listenerctl.training.loop import run_training

    data = shared_file("beat/2_scott_0_1_1.bvh").parent
    shared_file("video/talking_face_8s.mp4")
    overrides = {**{k: v for k, v in asdict(TINY).items() if k not in ("styles", "window", "overlap")},
                 "steps": 2, "window": 30, "overlap": 6, "batch_size": 4, "eval_samples": 2}
    plan = make_train_plan(data, seed=0, **overrides)
    card = run_training(plan, 3, tmp_path / "dsg", log_every=1)
    assert list(card["config"]["styles"]) == ["any", "scott", "video:talking_face_8s"]
    assert "talking_face_8s" in card["training_data"]["expression"] and "skeleton" in card
    assert np.isfinite([card["metrics"][k] for k in ("fgd_diffsheg", "beat_align_diffsheg")]).all()
    assert plan.model.gesture_std.max() <= 180.0 and plan.model.audio_std.min() > 0
    reloaded = DiffSheg.from_checkpoint(tmp_path / "dsg.safetensors")
    motion = reloaded.sample(speech_features(1.0), 2, seed=0, steps=2)
    assert motion.gesture.data.shape == (2, 15, GESTURE_DIM)


def test_velocity_term_penalises_jitter_of_the_clean_estimate(monkeypatch):
    gen = tiny_generator(seed=2)
    model = gen.model
    batch = {"audio": torch.randn(2, 12, 80), "expression": torch.rand(2, 12, EXPRESSION_DIM),
             "gesture": torch.randn(2, 12, GESTURE_DIM), "has_expression": torch.tensor([True, True]),
             "has_gesture": torch.tensor([True, True]), "style": torch.zeros(2, dtype=torch.long)}
    x0 = model.normalise(batch["expression"], batch["gesture"])
    offset = torch.zeros_like(x0) + 0.3
    jitter = 0.3 * (-1.0) ** torch.arange(12).view(1, 12, 1).expand_as(x0)
    terms = {}
    for name, error in (("offset", offset), ("jitter", jitter)):
        monkeypatch.setattr(model, "denoise", lambda *args, error=error: x0 + error)
        terms[name] = diffusion_loss(model, batch, velocity_weight=1.0, generator=torch.Generator().manual_seed(0))
    for part in ("expression", "gesture"):  # same position error, only the jitter moves the velocity term
        assert terms["offset"][f"loss_{part}"] == pytest.approx(float(terms["jitter"][f"loss_{part}"]), rel=1e-4)
        assert float(terms["offset"][f"velocity_{part}"]) < 1e-8 < float(terms["jitter"][f"velocity_{part}"])


# ---- a pretrained audio encoder (HuBERT) from a local folder ----------------------------------------

def save_tiny_hubert(folder) -> int:
    """A randomly initialised two-layer HuBERT and its feature extractor saved as a local model folder (what
    a user's downloaded HuBERT folder holds, in miniature); returns its hidden size."""
    transformers = pytest.importorskip("transformers")
    config = transformers.HubertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=32, conv_dim=(16, 16), conv_stride=(5, 4),
                                       conv_kernel=(10, 8), num_conv_pos_embeddings=16,
                                       num_conv_pos_embedding_groups=2)
    torch.manual_seed(0)
    transformers.HubertModel(config).save_pretrained(folder)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=16_000).save_pretrained(folder)
    return config.hidden_size


def test_hubert_features_feed_training_and_generation(tmp_path):
    from listenerctl.training.loop import run_training

    hidden = save_tiny_hubert(tmp_path / "hubert")
    encoder = PretrainedAudioEncoder("hubert", tmp_path / "hubert", FPS)
    speech = load_audio(shared_file("beat/2_scott_0_1_1.wav"))[:16_000 * 3]
    features = encoder(speech, 45)
    assert features.shape == (45, hidden) and np.isfinite(features).all()
    assert not np.allclose(features, encoder(np.zeros_like(speech), 45), atol=1e-3)  # it hears the speech

    data = shared_file("beat/2_scott_0_1_1.bvh").parent
    overrides = {**{k: v for k, v in asdict(TINY).items() if k not in ("styles", "window", "overlap")},
                 "steps": 2, "window": 30, "overlap": 6, "batch_size": 4, "eval_samples": 2,
                 "face_videos": (), "audio_encoder": f"hubert:{tmp_path / 'hubert'}"}
    plan = make_train_plan(data, seed=0, **overrides)
    card = run_training(plan, 2, tmp_path / "dsg", log_every=1)
    assert card["config"]["encoder_dim"] == hidden
    reloaded = DiffSheg.from_checkpoint(tmp_path / "dsg.safetensors")
    joint = reloaded.audio_features(speech)
    assert joint.shape == (45, 80 + hidden)
    motion = reloaded.sample(joint, 2, seed=0, steps=2)
    assert motion.gesture.data.shape == (2, 45, GESTURE_DIM) and np.isfinite(motion.gesture.data).all()

    wav = tmp_path / "speech.wav"
    write_wav(wav, speech)
    result = run_cli("generate", wav, "--task", "cospeech", "--checkpoint", tmp_path / "dsg.safetensors",
                     "--audio-encoder", f"hubert:{tmp_path / 'hubert'}", "-k", "1", "--steps", "2",
                     "--render", "none", "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    with np.load(tmp_path / "out" / "speech" / "motion.npz") as saved:
        assert saved["gesture"].shape == (1, 45, GESTURE_DIM)
