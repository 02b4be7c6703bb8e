"""A dyadic corpus as models and metrics use it: per speaker clip, its conditioning and its M
appropriate listener reactions.

Works on corpora made by `listenerctl data synth` (spec arkit58, exact speaker features stored under
``Speaker_features``) and on REACT2024 itself (spec faceverse58: speaker features computed from the
clip's audio; the speaker's FaceVerse coefficients stand in the face slot).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from listenerctl.conditioning import Conditioning, FaceFeatures
from listenerctl.data.react import FPS, ReactDataset, clip_path, read_emotion, read_fv
from listenerctl.data.synth import CORPUS_CARD, SPEAKER_FEATURES
from listenerctl.errors import ListenerctlError
from listenerctl.media import load_audio


@dataclass
class SpeakerClip:
    """One speaker clip: ``key`` its clip path; ``cond`` [T frames]; ``speaker_emotion`` [T, 25];
    ``reactions`` [M, T, D] appropriate listener motion; ``reaction_emotion`` [M, T, 25]."""

    key: str
    cond: Conditioning
    speaker_emotion: np.ndarray
    reactions: np.ndarray
    reaction_emotion: np.ndarray


@dataclass
class Corpus:
    root: Path
    split: str
    spec: str
    fps: float
    clips: list[SpeakerClip]

    @property
    def seconds(self) -> float:
        return sum(c.cond.num_frames for c in self.clips) / self.fps


def read_card(root: Path) -> dict | None:
    path = Path(root) / CORPUS_CARD
    return json.loads(path.read_text()) if path.is_file() else None


def training_data_card(train: Corpus, held_out: Corpus, reactions: int) -> dict:
    """The ``training_data`` entry of a model card trained on ``train`` (``reactions`` listener reactions
    in all) and measured on ``held_out``: corpus, clip counts, seconds and who the listeners are."""
    card = read_card(train.root) or {}
    return {"corpus": str(train.root), "split": train.split, "speaker_clips": len(train.clips),
            "reactions": reactions, "speaker_seconds": round(train.seconds, 1),
            "teacher": card.get("teacher", "recorded listeners"),
            "held_out": {"split": held_out.split, "speaker_clips": len(held_out.clips)}}


def _speaker_conditioning(root: Path, split: str, rel: str, frames: int, spec: str) -> Conditioning:
    stored = root / split / SPEAKER_FEATURES / f"{rel}.npz"
    if stored.is_file():
        return Conditioning.load_npz(stored)
    from listenerctl.features.audio import extract_audio

    audio = extract_audio(load_audio(clip_path(root, split, "audio", rel)), FPS, frames)
    face_motion = read_fv(clip_path(root, split, "3dfv", rel))
    face = FaceFeatures(face_motion, read_emotion(clip_path(root, split, "emotion", rel)), np.ones(frames, bool))
    return Conditioning(FPS, frames, audio=audio, face=face)


def load_corpus(root: str | Path, split: str, limit: int | None = None) -> Corpus:
    """Group the pairs of ``split`` by speaker clip (first ``limit`` speaker clips when given)."""
    root = Path(root)
    card = read_card(root)
    spec = card["spec"] if card else "faceverse58"
    data = ReactDataset(root, split)
    if data.neighbours is None and card is None:
        raise ListenerctlError(f"{root} has no neighbour_emotion_{split}.npy; the appropriate reactions of "
                               "each speaker clip are unknown.")
    rows_of: dict[str, list[int]] = {}
    for row, (speaker, _) in enumerate(data.pairs):
        rows_of.setdefault(speaker, []).append(row)
    clips = []
    for rel, rows in list(rows_of.items())[:limit]:
        listeners = sorted({int(j) for r in rows for j in data.appropriate(r)}) if data.neighbours is not None \
            else rows
        reactions = np.stack([read_fv(clip_path(root, split, "3dfv", data.pairs[j][1])) for j in listeners])
        emotions = np.stack([read_emotion(clip_path(root, split, "emotion", data.pairs[j][1])) for j in listeners])
        frames = reactions.shape[1]
        clips.append(SpeakerClip(rel, _speaker_conditioning(root, split, rel, frames, spec),
                                 read_emotion(clip_path(root, split, "emotion", rel)), reactions, emotions))
    if not clips:
        raise ListenerctlError(f"split {split} of {root} lists no pairs.")
    return Corpus(root, split, spec, float(FPS), clips)
