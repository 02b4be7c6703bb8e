"""Shared test helpers (imported by the tests as `helpers`): where the real test media live, a CLI runner, small
media made with ffmpeg, and synthetic speaker features. Fixtures live in conftest.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from listenerctl.conditioning import AudioFeatures, FaceFeatures

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


def two_people_clip(path: Path) -> Path:
    """Write 3 s of the two real talking faces side by side to ``path`` (640x384): A on the left (256 px), B on
    the right and larger (384 px), with A's audio. Skips the test when ../shared/data is absent."""
    ffmpeg("-i", str(shared_file("video/talking_face_8s.mp4")), "-i", str(shared_file("video/talking_face_b_8s.mp4")),
           "-filter_complex", "[0:v]scale=256:256,pad=256:384:0:64[a];[1:v]scale=384:384[b];[a][b]hstack[v]",
           "-map", "[v]", "-map", "0:a", "-t", "3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(path))
    return path


def synthetic_audio(frames: int, seed: int = 0) -> AudioFeatures:
    """Feature rows of alternating 'speech' (loud, voiced, pitched) and silence, about 2 s each."""
    rng = np.random.default_rng(seed)
    speech = (np.arange(frames) // 50 + seed) % 2 == 0
    mel = np.where(speech[:, None], -2.0, -12.0) + rng.normal(0, 0.5, (frames, 80))
    f0 = np.where(speech, 120 + 30 * rng.random(frames), 0.0)
    return AudioFeatures(mel.astype(np.float32), rng.normal(0, 1, (frames, 39)).astype(np.float32),
                         np.where(speech, -20.0, -90.0).astype(np.float32), f0.astype(np.float32), speech.copy(),
                         speech)


def synthetic_face(frames: int, seed: int = 3) -> FaceFeatures:
    """A steady, slightly noisy speaker face: arkit [T, 58] around 0.1, every frame found (another ``seed``:
    another face)."""
    arkit = np.clip(np.random.default_rng(seed).normal(0.1, 0.05, (frames, 58)), 0, 1).astype(np.float32)
    return FaceFeatures(arkit, np.zeros((frames, 25), np.float32), np.ones(frames, bool))
