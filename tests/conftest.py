"""Shared test helpers: where the real test media live, a CLI runner and small media made with ffmpeg."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from listenerctl.conditioning import AudioFeatures, FaceFeatures
from listenerctl.media import write_wav

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLE_WAV = ROOT / "samples" / "talk.wav"


def shared_file(relative: str) -> Path:
    """A file under ../shared/data, or skip the test when that folder is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real test media not available: {path} (../shared/data is absent)")
    return path


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `listenerctl ARGS` in a child process, as a user would, capturing text output."""
    env = {**os.environ, "LISTENERCTL_DEBUG": ""}
    return subprocess.run([sys.executable, "-m", "listenerctl.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout, env=env)


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly with an argument list; fail the test on error."""
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """Small synthetic media files shared by the tests of a session."""
    return tmp_path_factory.mktemp("media")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep the face-feature cache of tests out of the user's home folder."""
    monkeypatch.setenv("LISTENERCTL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread: small per-window forwards run several times slower with two threads on a busy
    machine (measured 7x on 2 loaded cores), and one is what the shipped timings use. Modules ask for it
    with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Speaker features and a tiny corpus shared by the learned-model tests.

def synthetic_audio(frames: int, seed: int = 0) -> AudioFeatures:
    """Feature rows of alternating 'speech' (loud, voiced, pitched) and silence, about 2 s each."""
    rng = np.random.default_rng(seed)
    speech = (np.arange(frames) // 50 + seed) % 2 == 0
    mel = np.where(speech[:, None], -2.0, -12.0) + rng.normal(0, 0.5, (frames, 80))
    f0 = np.where(speech, 120 + 30 * rng.random(frames), 0.0)
    return AudioFeatures(mel.astype(np.float32), rng.normal(0, 1, (frames, 39)).astype(np.float32),
                         np.where(speech, -20.0, -90.0).astype(np.float32), f0.astype(np.float32), speech.copy(),
                         speech)


def synthetic_face(frames: int) -> FaceFeatures:
    """A steady, slightly noisy speaker face: arkit [T, 58] around 0.1, every frame found."""
    arkit = np.clip(np.random.default_rng(3).normal(0.1, 0.05, (frames, 58)), 0, 1).astype(np.float32)
    return FaceFeatures(arkit, np.zeros((frames, 25), np.float32), np.ones(frames, bool))


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """Three 6 s synthetic 'speech' recordings made into a corpus of 75-frame clips, 3 reactions each."""
    from listenerctl.data.synth import SynthOptions, build_corpus

    root = tmp_path_factory.mktemp("tiny_corpus")
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 6) / 16000
    (root / "speech").mkdir()
    for i in range(3):
        pitch = 120 + 40 * np.sin(2 * np.pi * 0.7 * t + i)
        voice = np.sin(2 * np.pi * np.cumsum(pitch) / 16000) * (np.sin(2 * np.pi * 0.4 * t + i) > -0.2)
        write_wav(root / "speech" / f"speaker{i}.wav",
                  (0.3 * voice + 0.003 * rng.standard_normal(len(t))).astype(np.float32))
    build_corpus([root / "speech"], root / "corpus", SynthOptions(personalities=3, clip_frames=75),
                 report=lambda line: None)
    return root / "corpus"


TEXT_WORDS = ("yes", "no", "so", "well", "really", "funny", "sad", "happy", "lovely", "worried", "the", "it", "was")


@pytest.fixture(scope="session")
def tiny_text_encoder(tmp_path_factory) -> Path:
    """A randomly initialised one-layer BERT (hidden size 16) with a word-level vocabulary of `TEXT_WORDS`,
    saved as a local text encoder folder the way transformers' save_pretrained writes one."""
    transformers = pytest.importorskip("transformers")
    import torch

    folder = tmp_path_factory.mktemp("tiny_bert")
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TEXT_WORDS]) + "\n")
    transformers.BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    config = transformers.BertConfig(vocab_size=5 + len(TEXT_WORDS), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        transformers.BertModel(config).save_pretrained(folder)
    return folder
