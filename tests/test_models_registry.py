"""Every registered generator (learned ones with their shipped checkpoint), through the public generation API
only: the checkpoint card records its training, generation on real speech gives [K, T, D] of the model's spec
for any length, seeds reproduce, the K samples differ, and the motion follows the speaker. A newly registered
model is covered by being in `REGISTRY`."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from helpers import SAMPLE_WAV, shared_file, synthetic_face
from listenerctl.checkpoint import read_card
from listenerctl.conditioning import Conditioning
from listenerctl.features.audio import extract_audio
from listenerctl.media import load_audio
from listenerctl.models import REGISTRY, load_generator
from listenerctl.models.base import Generator
from listenerctl.motion import ARKIT52, get_spec

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAMES = sorted(REGISTRY)
LEARNED = [name for name in NAMES if REGISTRY[name].learned]
SPEAKER_BLIND = {"random", "mean"}      # baselines that ignore the speaker by design (registry descriptions)
CLIP_S = 8.0                            # the real input: the first 8 s of a recording
SAMPLES = 4


@pytest.fixture(scope="module")
def generators():
    """name → the registered generator, each loaded once per module."""
    loaded: dict[str, Generator] = {}

    def get(name: str) -> Generator:
        if name not in loaded:
            loaded[name] = load_generator(name)
        return loaded[name]

    return get


@pytest.fixture(scope="module")
def speakers():
    """(speaker, fps, takes_face) → conditioning for 8 s of a real speaker: 'talk' is the shipped samples/talk.wav,
    'radio' another person (../shared/data/speech/radio_8s.wav); listener models also get a speaker face
    (`synthetic_face`, a different one per speaker: no real face features are extracted, to keep the tests fast)."""
    made: dict[tuple, Conditioning] = {}
    sources = {"talk": (lambda: SAMPLE_WAV, 3), "radio": (lambda: shared_file("speech/radio_8s.wav"), 4)}

    def get(speaker: str, fps: float, takes_face: bool) -> Conditioning:
        key = (speaker, fps, takes_face)
        if key not in made:
            path, face_seed = sources[speaker]
            frames = int(CLIP_S * fps)
            audio = extract_audio(load_audio(path())[: int(16_000 * CLIP_S)], fps, frames)
            face = synthetic_face(frames, seed=face_seed) if takes_face else None
            made[key] = Conditioning(fps, frames, audio=audio, face=face)
        return made[key]

    return get


def real_input(generators, speakers, name: str, speaker: str = "talk") -> tuple[Generator, Conditioning]:
    """The generator and its conditioning: speech at the generator's rate, plus a face for listener models."""
    generator = generators(name)
    return generator, speakers(speaker, generator.fps, REGISTRY[name].task == "listener")


@pytest.mark.parametrize("name", LEARNED)
def test_shipped_card_records_data_steps_time_and_held_out_scores(generators, name):
    generator = generators(name)
    checkpoint = REGISTRY[name].default_checkpoint()
    card = read_card(checkpoint)
    assert card["model"] == name and card["spec"] == generator.spec and card["fps"] == generator.fps
    assert card["training_data"] and card["steps"] > 0 and card["wall_time_s"] > 0
    scores = card["metrics"]
    assert scores and all(np.isfinite(value) for value in scores.values()), scores
    provenance = json.dumps({key: card[key] for key in ("training_data", "metrics_note") if key in card})
    assert re.search(r"held[ _-]out", provenance), f"{name}: the card does not say where its metrics were measured"
    assert generator.describe()["sha256"] == card["sha256"]
    assert checkpoint.stat().st_size < 5e6                              # shipped inside the package


@pytest.mark.parametrize("frames", [1, 37, None], ids=["1", "37", "8s"])
@pytest.mark.parametrize("name", NAMES)
def test_any_length_gives_k_finite_samples_of_the_spec(generators, speakers, name, frames):
    """Lengths shorter than any model's window (1, 37 frames) and several windows (8 s)."""
    generator, cond = real_input(generators, speakers, name)
    assert generator.name == name
    if frames is not None:
        cond = cond.slice(0, frames)
    motion = generator.generate(cond, 3, seed=1)
    spec = get_spec(generator.spec)
    assert motion.spec == spec.name and motion.fps == cond.fps
    assert motion.data.shape == (3, cond.num_frames, spec.dim) and motion.data.dtype == np.float32
    assert np.isfinite(motion.data).all()
    if spec.name == "arkit58":
        blendshapes = motion.data[..., :len(ARKIT52)]
        assert blendshapes.min() >= 0.0 and blendshapes.max() <= 1.0
        assert np.abs(motion.data[..., 52:55]).max() < np.radians(45)  # head rotation stays plausible


@pytest.mark.parametrize("name", [name for name in NAMES if REGISTRY[name].task == "listener"])
def test_a_listener_model_takes_the_speaker_face_alone(generators, speakers, name):
    """A video whose audio is missing still gives a listener: the speaker's face is enough."""
    generator, cond = real_input(generators, speakers, name)
    motion = generator.generate(Conditioning(cond.fps, cond.num_frames, face=cond.face), 2, seed=0)
    assert motion.data.shape == (2, cond.num_frames, get_spec(generator.spec).dim)
    assert np.isfinite(motion.data).all()


@pytest.mark.parametrize("name", NAMES)
def test_seed_reproduces_and_samples_differ_unless_deterministic(generators, speakers, name):
    """A generator whose K samples are all the same is deterministic: no seed may change it, and a learned
    model may not be one. Any other reproduces its seed, changes with another, and its samples all differ."""
    generator, cond = real_input(generators, speakers, name)
    first = generator.generate(cond, SAMPLES, seed=7).data
    np.testing.assert_array_equal(first, generator.generate(cond, SAMPLES, seed=7).data)
    other_seed = generator.generate(cond, SAMPLES, seed=8).data
    flat = first.reshape(SAMPLES, -1)
    gaps = [np.abs(flat[i] - flat[j]).mean() for i in range(SAMPLES) for j in range(i)]
    if max(gaps) == 0:
        assert not REGISTRY[name].learned, f"{name} draws identical samples"
        np.testing.assert_array_equal(first, other_seed)
    else:
        assert not np.allclose(first, other_seed)
        assert min(gaps) > 1e-3


@pytest.mark.parametrize("name", [name for name in NAMES if name not in SPEAKER_BLIND])
def test_motion_follows_the_speaker(generators, speakers, name):
    """Same seed (same noise), two different real speakers: the motion differs by more than a tenth of how much
    it moves within one sample."""
    generator, talk = real_input(generators, speakers, name, "talk")
    _, radio = real_input(generators, speakers, name, "radio")
    first = generator.generate(talk, 2, seed=5).data
    second = generator.generate(radio, 2, seed=5).data
    movement = np.abs(first - first.mean(axis=1, keepdims=True)).mean()
    assert np.abs(first - second).mean() > 0.1 * movement
