"""Transcript embeddings: timed transcripts in three formats, frames mapped to the unit being spoken, a local
text encoder, conditioning that carries the embeddings, difflistener's transcript stream and the CLI's
handling of transcripts (sidecars, refusals in one sentence)."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch

from helpers import SAMPLE_WAV, run_cli, synthetic_audio
from listenerctl.conditioning import Conditioning, TextFeatures
from listenerctl.errors import ListenerctlError
from listenerctl.features.text import TextEncoder, read_transcript, sidecar_transcript, text_features
from listenerctl.models import load_generator
from listenerctl.models.difflistener import DiffListener, DiffListenerConfig, DiffListenerModel

FPS = 25.0
SRT = """1
00:00:00,000 --> 00:00:01,500
so it was <i>really</i>
funny

2
00:00:02,000 --> 00:00:03,250
yes
"""
VTT = """WEBVTT

intro
00:00.000 --> 00:01.500 align:start
so it was really
funny

00:00:02.000 --> 00:00:03.250
yes
"""
UNITS = [(0.0, 1.5, "so it was really funny"), (2.0, 3.25, "yes")]


def _units(path):
    return [(u.start, u.end, u.text) for u in read_transcript(path)]


def test_srt_vtt_and_json_give_the_same_units(tmp_path):
    (tmp_path / "a.srt").write_text(SRT)
    (tmp_path / "a.vtt").write_text(VTT)
    (tmp_path / "a.json").write_text(json.dumps([{"start": s, "end": e, "text": t} for s, e, t in UNITS]))
    for suffix in ("srt", "vtt", "json"):
        assert _units(tmp_path / f"a.{suffix}") == UNITS


def test_windows_line_ends_byte_order_mark_and_vtt_notes_are_read(tmp_path):
    (tmp_path / "a.srt").write_bytes(b"\xef\xbb\xbf" + SRT.replace("\n", "\r\n").encode())
    (tmp_path / "a.vtt").write_text(VTT.replace("WEBVTT\n", "WEBVTT\n\nNOTE made by hand\nfor the test\n"))
    assert _units(tmp_path / "a.srt") == _units(tmp_path / "a.vtt") == UNITS


def test_whisper_json_with_timed_words_gives_word_units(tmp_path):
    whisper = {"text": "yes really", "segments": [
        {"start": 0.0, "end": 2.0, "text": " yes really",
         "words": [{"word": " yes", "start": 0.1, "end": 0.4}, {"word": " really", "start": 0.6, "end": 1.1}]},
        {"start": 3.0, "end": 4.0, "text": " so"}]}
    (tmp_path / "w.json").write_text(json.dumps(whisper))
    assert _units(tmp_path / "w.json") == [(0.1, 0.4, "yes"), (0.6, 1.1, "really"), (3.0, 4.0, "so")]


@pytest.mark.parametrize("name, text, message", [
    ("t.txt", "hello there", "not .srt, .vtt or .json"),
    ("t.srt", "just words, no cue times\n", "no timed text"),
    ("t.json", "{", "not valid JSON"),
    ("t.json", '{"words": 3}', "neither a list of segments"),
    ("t.json", '[{"text": "yes"}]', "numeric start, end and text"),
    ("t.json", '[{"start": 2, "end": 1, "text": "yes"}]', "end after start"),
])
def test_bad_transcripts_are_one_sentence(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(ListenerctlError, match=message):
        read_transcript(tmp_path / name)


def test_missing_transcript_and_sidecar_lookup(tmp_path):
    with pytest.raises(ListenerctlError, match="transcript not found"):
        read_transcript(tmp_path / "absent.srt")
    media = tmp_path / "talk.mp4"
    media.write_bytes(b"")
    assert sidecar_transcript(media) is None
    (tmp_path / "talk.vtt").write_text(VTT)
    assert sidecar_transcript(media) == tmp_path / "talk.vtt"


def test_frames_take_the_unit_spoken_at_their_centre(tmp_path, tiny_text_encoder):
    (tmp_path / "a.srt").write_text(SRT)
    encoder = TextEncoder(tiny_text_encoder)
    text = text_features(read_transcript(tmp_path / "a.srt"), encoder, FPS, 90)
    assert text.embeddings.shape == (2, 16) and text.embeddings.dtype == np.float32
    assert text.unit.shape == (90,) and text.unit.dtype == np.int32
    expected = np.full(90, -1)
    expected[:37] = 0                 # centres 0.02 … 1.46 s lie in [0, 1.5)
    expected[50:81] = 1               # centres 2.02 … 3.22 s lie in [2, 3.25)
    np.testing.assert_array_equal(text.unit, expected)
    again = encoder.embed(["yes", "so it was really funny", "yes"])
    np.testing.assert_allclose(again[0], again[2], atol=1e-6)
    np.testing.assert_allclose(again[:2][::-1], text.embeddings, atol=1e-5)
    assert np.abs(again[0] - again[1]).mean() > 1e-3


def test_text_encoder_folder_errors(tmp_path):
    pytest.importorskip("transformers")
    with pytest.raises(ListenerctlError, match="does not exist"):
        TextEncoder(tmp_path / "absent")
    with pytest.raises(ListenerctlError, match="no text encoder could be loaded"):
        TextEncoder(tmp_path)


def _text(frames: int, dim: int = 16) -> TextFeatures:
    """Three units over ``frames`` frames with silent gaps: 0 then 1 then 2, random embeddings [3, dim]."""
    unit = np.full(frames, -1, np.int32)
    for i, (a, b) in enumerate(((5, 30), (40, 70), (80, frames - 5))):
        unit[a:b] = i
    return TextFeatures(np.random.default_rng(dim).normal(size=(3, dim)).astype(np.float32), unit)


def test_conditioning_keeps_text_through_npz_and_slicing(tmp_path):
    cond = Conditioning(FPS, 150, audio=synthetic_audio(150), text=_text(150))
    assert cond.modalities == "audio+text"
    cond.save_npz(tmp_path / "speaker.npz")
    back = Conditioning.load_npz(tmp_path / "speaker.npz")
    np.testing.assert_array_equal(back.text.unit, cond.text.unit)
    np.testing.assert_array_equal(back.text.embeddings, cond.text.embeddings)
    part = cond.slice(50, 100)                       # units 1 and 2 only, renumbered 0 and 1
    assert part.num_frames == 50 and len(part.text.embeddings) == 2
    np.testing.assert_array_equal(part.text.table()[part.text.rows()], cond.text.table()[cond.text.rows()][50:100])
    with pytest.raises(ValueError, match="text unit has 149 frames"):
        Conditioning(FPS, 150, audio=synthetic_audio(150), text=TextFeatures(cond.text.embeddings, cond.text.unit[1:]))


TINY = dict(window=32, overlap_tokens=1, code_dim=8, vq_width=16, width=32, heads=4, denoiser_layers=1,
            time_dim=16, diffusion_steps=20, steps=5)


def test_difflistener_transcript_stream_is_used_and_optional():
    torch.manual_seed(0)
    generator = DiffListener(DiffListenerModel(DiffListenerConfig(**TINY, text_dim=16)))
    audio = synthetic_audio(150)
    spoken = generator.generate(Conditioning(FPS, 150, audio=audio, text=_text(150)), 3, seed=1).data
    other = _text(150)
    other.embeddings[:] = other.embeddings[::-1]
    reworded = generator.generate(Conditioning(FPS, 150, audio=audio, text=other), 3, seed=1).data
    silent = generator.generate(Conditioning(FPS, 150, audio=audio), 3, seed=1).data
    assert spoken.shape == silent.shape == (3, 150, 58)
    assert not np.allclose(spoken, reworded) and not np.allclose(spoken, silent)
    np.testing.assert_array_equal(spoken, generator.generate(Conditioning(FPS, 150, audio=audio, text=_text(150)),
                                                             3, seed=1).data)
    with pytest.raises(ListenerctlError, match="have 8 channels; this difflistener checkpoint was trained on a "
                                               "text encoder with 16"):
        generator.generate(Conditioning(FPS, 150, audio=audio, text=_text(150, dim=8)), 1, seed=0)


def test_models_without_a_transcript_stream_refuse_one_but_score_without_it():
    cond = Conditioning(FPS, 100, audio=synthetic_audio(100), text=_text(100))
    lbd = load_generator("lbd")
    with pytest.raises(ListenerctlError, match="lbd model does not take transcripts"):
        lbd.generate(cond, 1, seed=0)
    assert lbd.usable(cond).text is None and lbd.usable(cond).audio is cond.audio
    rules = load_generator("rules")
    np.testing.assert_array_equal(rules.generate(rules.usable(cond), 2, seed=0).data,
                                  rules.generate(Conditioning(FPS, 100, audio=cond.audio), 2, seed=0).data)


def test_cli_refuses_transcripts_it_cannot_use(tmp_path, tiny_text_encoder):
    (tmp_path / "talk.srt").write_text(SRT)
    cases = [
        (["--model", "rules", "--text-encoder", tiny_text_encoder], "rules model does not take transcripts"),
        (["--model", "difflistener", "--text-encoder", tiny_text_encoder], "difflistener model does not take"),
        (["--transcript", tmp_path / "talk.srt"], "name its local folder with --text-encoder"),
    ]
    for extra, message in cases:
        result = run_cli("generate", SAMPLE_WAV, "-o", tmp_path / "out", "--render", "none", *extra)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert re.search(message, result.stderr.replace("\n", " ")), result.stderr
    shutil.copy(SAMPLE_WAV, tmp_path / "other.wav")
    result = run_cli("generate", SAMPLE_WAV, tmp_path / "other.wav", "-o", tmp_path / "out",
                     "--transcript", tmp_path / "talk.srt")
    assert result.returncode == 2 and "transcript of one input" in result.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- corpus, training and the CLI with transcripts

def write_word_srt(path, seconds: float, words: list[str], step: float = 0.75) -> None:
    """A SubRip file saying ``words`` in turn, one every ``step`` seconds (0.6 s each) for ``seconds``."""
    stamp = lambda t: f"00:00:{int(t):02d},{round(1000 * (t % 1)):03d}"  # noqa: E731
    cues = [f"{i + 1}\n{stamp(t)} --> {stamp(t + 0.6)}\n{words[i % len(words)]}\n"
            for i, t in enumerate(np.arange(0, seconds - 0.6, step))]
    path.write_text("\n".join(cues))


@pytest.fixture(scope="module")
def text_corpus(tmp_path_factory, tiny_corpus, tiny_text_encoder):
    """The tiny corpus's recordings, each with a word-timed .srt beside it, made into a corpus with the tiny
    text encoder: (corpus folder, speech folder)."""
    from listenerctl.data.synth import SynthOptions, build_corpus

    root = tmp_path_factory.mktemp("text_corpus")
    speech = root / "speech"
    shutil.copytree(tiny_corpus.parent / "speech", speech)
    for i, wav in enumerate(sorted(speech.glob("*.wav"))):
        write_word_srt(wav.with_suffix(".srt"), 6.0, ["happy", "sad", "really", "yes"][i:] + ["so"])
    build_corpus([speech], root / "corpus", SynthOptions(personalities=3, clip_frames=75), report=lambda _: None,
                 text_encoder=TextEncoder(tiny_text_encoder))
    return root / "corpus", speech


def test_corpus_keeps_transcript_embeddings_and_training_uses_them(text_corpus, tiny_text_encoder, tmp_path):
    from listenerctl.data.corpus import load_corpus, read_card
    from listenerctl.training.difflistener import make_train_plan
    from listenerctl.training.loop import run_training

    corpus, speech = text_corpus
    assert read_card(corpus)["text_encoder"] == {"folder": str(tiny_text_encoder), "dim": 16}
    clip = load_corpus(corpus, "train").clips[0]
    assert clip.cond.modalities == "audio+text" and clip.cond.text.dim == 16
    assert 0.5 < np.mean(clip.cond.text.unit >= 0) < 1.0         # words 0.6 s of every 0.75 s

    plan = make_train_plan(corpus, seed=0, **TINY, batch_size=8, vqvae_steps=4, warmup_steps=2, dead_after=2)
    assert plan.model.config.text_dim == 16
    batch = next(plan.batches)
    assert batch["text"].shape == (8, 32, 16) and batch["has_text"].dtype == torch.bool
    stem = tmp_path / "difflistener_text"
    card = run_training(plan, 8, stem, log_every=4)
    assert card["config"]["text_dim"] == 16 and np.isfinite(card["metrics"]["val_FRCorr_k10"])
    assert DiffListener.from_checkpoint(stem).text_dim == 16

    out = tmp_path / "out"
    talk = speech / "speaker0.wav"                                 # its transcript is speaker0.srt, beside it
    result = run_cli("generate", talk, "-o", out, "--model", "difflistener", "--checkpoint", f"{stem}.safetensors", "-k", "3",
                     "--render", "none", "--text-encoder", tiny_text_encoder)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "speaker0" / "manifest.json").read_text())
    assert manifest["conditioning"] == "audio+text"
    assert any(note.startswith("transcript speaker0.srt: 8 units") for note in manifest["notes"])
    assert manifest["options"]["text_encoder"] == str(tiny_text_encoder)
    assert manifest["input"]["transcript"] == str(speech / "speaker0.srt")
    speaker = Conditioning.load_npz(out / "speaker0" / "speaker.npz")
    assert speaker.text.dim == 16
    with np.load(out / "speaker0" / "motion.npz") as motion:
        assert motion["listener"].shape == (3, 150, 58)

    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(talk, alone / "talk.wav")                           # no transcript beside it
    result = run_cli("batch", alone, "-o", tmp_path / "batch", "--model", "difflistener", "--checkpoint", f"{stem}.safetensors",
                     "-k", "2", "--render", "none", "--text-encoder", tiny_text_encoder)
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((tmp_path / "batch" / "talk" / "manifest.json").read_text())
    assert manifest["conditioning"] == "audio"
    assert "no transcript beside the input: conditioning without text" in manifest["notes"]


SMILES = ("mouthSmileLeft", "mouthSmileRight")


def _spoken_words(srt, frames: int) -> np.ndarray:
    """Per frame at 25 fps the word said at its centre ('' between words) [frames]."""
    words = np.full(frames, "", dtype=object)
    centres = (np.arange(frames) + 0.5) / FPS
    for unit in read_transcript(srt):
        words[(centres >= unit.start) & (centres < unit.end)] = unit.text
    return words


@pytest.mark.slow
def test_difflistener_learns_a_listener_who_smiles_at_one_word(tmp_path, tiny_text_encoder):
    """Listeners who smile while the speaker says 'happy' and not while they say 'sad', the words in random
    order over audio that carries no hint of which: trained on the transcripts, the model smiles at 'happy'
    on held-out recordings, and swapping the two words in the transcript moves the smile with them."""
    from listenerctl.data.corpus import load_corpus
    from listenerctl.data.react import clip_path, read_fv, read_split_csv, write_react_clip
    from listenerctl.data.synth import SynthOptions, build_corpus
    from listenerctl.emotion import emotion_from_arkit
    from listenerctl.media import write_wav
    from listenerctl.training.difflistener import make_train_plan
    from listenerctl.motion import get_spec
    from listenerctl.training.loop import run_training

    rng = np.random.default_rng(0)
    speech, seconds, clip = tmp_path / "speech", 30.0, 125
    speech.mkdir()
    t = np.arange(int(16000 * seconds)) / 16000
    for i in range(8):
        pitch = 120 + 40 * np.sin(2 * np.pi * 0.7 * t + i)
        voice = np.sin(2 * np.pi * np.cumsum(pitch) / 16000) * (np.sin(2 * np.pi * 0.4 * t + i) > -0.2)
        write_wav(speech / f"speaker{i}.wav", (0.3 * voice + 0.003 * rng.standard_normal(len(t))).astype(np.float32))
        write_word_srt(speech / f"speaker{i}.srt", seconds, list(rng.choice(["happy", "sad"], 40)), step=1.0)
    encoder = TextEncoder(tiny_text_encoder)
    root = tmp_path / "corpus"
    build_corpus([speech], root, SynthOptions(personalities=3, clip_frames=clip), report=lambda _: None,
                 text_encoder=encoder)
    smile = [get_spec("arkit58").index(name) for name in SMILES]
    for split in ("train", "val", "test"):                          # the listeners smile at 'happy'
        for speaker_rel, listener_rel in read_split_csv(root, split):
            key, c = speaker_rel.split("/")[1], int(speaker_rel.split("/")[-1])
            words = _spoken_words(speech / f"{key}.srt", (c + 1) * clip)[c * clip:]
            motion = read_fv(clip_path(root, split, "3dfv", listener_rel))
            motion[:, smile] = np.where(words == "happy", 0.8, 0.0)[:, None]
            write_react_clip(root, split, listener_rel, motion, emotion_from_arkit(motion))

    torch.manual_seed(0)
    plan = make_train_plan(root, seed=0, window=64, overlap_tokens=2, code_dim=16, vq_width=32, width=64,
                           denoiser_layers=2, diffusion_steps=50, steps=25, batch_size=32, vqvae_steps=600,
                           warmup_steps=50, text_drop=0.2)
    run_training(plan, 2600, tmp_path / "model", log_every=2600)
    generator = DiffListener(plan.model)

    happy, sad = encoder.embed(["happy", "sad"])
    swap = {"happy": "sad", "sad": "happy", "": ""}
    scored: dict[str, list] = {"as said": [], "swapped": []}
    for i, item in enumerate(load_corpus(root, "test").clips):
        text = item.cond.text
        is_happy = np.isclose(text.embeddings, happy, atol=1e-4).all(axis=1)
        said = np.where(text.unit < 0, "", np.where(is_happy[text.unit], "happy", "sad"))
        swapped = TextFeatures(np.where(is_happy[:, None], sad, happy), text.unit)
        for label, words, features in (("as said", said, text), ("swapped", np.vectorize(swap.get)(said), swapped)):
            cond = Conditioning(FPS, item.cond.num_frames, audio=item.cond.audio, text=features)
            smiles = generator.generate(cond, 5, seed=i).data[..., smile].mean(axis=(0, 2))
            scored[label].append((words, smiles))
    for pairs in scored.values():
        words, smiles = (np.concatenate(part) for part in zip(*pairs))
        assert smiles[words == "happy"].mean() - smiles[words == "sad"].mean() > 0.3   # measured 0.45 and 0.56
