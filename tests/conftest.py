"""Shared test fixtures (the helpers they and the tests use are in helpers.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from listenerctl.media import write_wav


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
