"""The listener corpus as training windows, shared by the listener models that learn from windows of
arkit58 + emotion25 reactions and the speaker's audio and face (lbd, difflistener, sfms): the train / val
splits, the per-channel normalisation statistics, and `WindowSource`, a split laid out as tensors from
which random windows (and whole-reaction tiles) are drawn."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from listenerctl.data.corpus import Corpus, load_corpus
from listenerctl.errors import ListenerctlError
from listenerctl.features.audio import AUDIO_FEATURE_DIM
from listenerctl.models.speaker import speaker_arrays
from listenerctl.motion import ARKIT58_EMOTION25_DIM

STATISTICS = ("motion_mean", "motion_std", "audio_mean", "audio_std")  # buffers `feature_statistics` fills
STD_FLOOR = 0.05                                      # normalisation never divides by less than this


def listener_splits(data: Path, model: str) -> tuple[Corpus, Corpus]:
    """The train and val splits of the corpus at ``data``; one sentence unless its listeners are arkit58."""
    train, val = load_corpus(data, "train"), load_corpus(data, "val")
    if train.spec != "arkit58":
        raise ListenerctlError(f"{model} learns arkit58 listeners; the corpus at {data} holds {train.spec}.")
    return train, val


def feature_statistics(corpus: Corpus) -> dict[str, np.ndarray]:
    """Per-channel mean and spread (floored at `STD_FLOOR`) of the listener motion [83] and the speaker
    audio features [123] of ``corpus``, keyed like the model's buffers."""
    motion = np.concatenate([np.concatenate([c.reactions, c.reaction_emotion], axis=-1)
                             .reshape(-1, ARKIT58_EMOTION25_DIM) for c in corpus.clips])
    audios = [a for a, _ in map(speaker_arrays, (c.cond for c in corpus.clips)) if a is not None]
    audio = np.concatenate(audios) if audios else np.zeros((1, AUDIO_FEATURE_DIM), np.float32)
    stats = {}
    for name, values in (("motion", motion), ("audio", audio)):
        stats[f"{name}_mean"] = values.mean(axis=0)
        stats[f"{name}_std"] = np.maximum(values.std(axis=0), STD_FLOOR)
    return stats


@dataclass
class WindowSource:
    """A corpus split laid out for drawing training windows, as tensors on the training device.

    listener [R·T, 83]: every reaction's normalised frames, one after another; audio [S·T, 123] and face
    [S·T, 83]: every speaker clip's normalised features (zeros where the clip lacks them); reactions
    [R, 5] int: per reaction its first listener row, its speaker's first row, its frame count and the
    speaker's audio / face presence. Transcript embeddings, when the corpus has them: text_table [U + 1, E]
    (every clip's unit embeddings, then a zero row; E = 0 without text), text_rows [S·T] long (per speaker
    frame its row of text_table) and has_text [R] bool (the reaction's speaker clip has a transcript).
    """

    listener: Tensor
    audio: Tensor
    face: Tensor
    reactions: np.ndarray
    text_table: Tensor
    text_rows: Tensor
    has_text: np.ndarray

    @classmethod
    def from_corpus(cls, corpus: Corpus, stats: dict[str, np.ndarray], device: str) -> "WindowSource":
        def normalised(values: np.ndarray | None, name: str, frames: int, dim: int) -> np.ndarray:
            if values is None:
                return np.zeros((frames, dim), np.float32)
            return ((values - stats[f"{name}_mean"]) / stats[f"{name}_std"]).astype(np.float32)

        listener, audio, face, reactions, has_text = [], [], [], [], []
        text_dims = {c.cond.text.dim for c in corpus.clips if c.cond.text is not None}
        if len(text_dims) > 1:
            raise ListenerctlError(f"the {corpus.split} split of {corpus.root} mixes transcript embeddings of "
                                   f"{' and '.join(map(str, sorted(text_dims)))} channels; embed every transcript "
                                   "with the same text encoder.")
        text_dim = text_dims.pop() if text_dims else 0
        tables, text_rows, units = [], [], 0
        listener_row = speaker_row = 0
        for clip in corpus.clips:
            frames = clip.cond.num_frames
            clip_audio, clip_face = speaker_arrays(clip.cond)
            audio.append(normalised(clip_audio, "audio", frames, AUDIO_FEATURE_DIM))
            face.append(normalised(clip_face, "motion", frames, ARKIT58_EMOTION25_DIM))
            text = clip.cond.text
            if text is not None:
                tables.append(text.embeddings.astype(np.float32))
            text_rows.append(np.where(text.unit >= 0, text.unit + units, -1) if text is not None else
                             np.full(frames, -1))
            units += 0 if text is None else len(text.embeddings)
            motion = np.concatenate([clip.reactions[:, :frames], clip.reaction_emotion[:, :frames]], axis=-1)
            for reaction in motion:
                listener.append(normalised(reaction, "motion", frames, ARKIT58_EMOTION25_DIM))
                reactions.append((listener_row, speaker_row, frames, clip_audio is not None, clip_face is not None))
                has_text.append(text is not None)
                listener_row += frames
            speaker_row += frames
        stacked = lambda parts: torch.from_numpy(np.concatenate(parts)).to(device)  # noqa: E731
        rows = np.concatenate(text_rows)
        return cls(stacked(listener), stacked(audio), stacked(face), np.asarray(reactions, np.int64),
                   stacked([*tables, np.zeros((1, text_dim), np.float32)]),
                   torch.from_numpy(np.where(rows < 0, units, rows).astype(np.int64)).to(device),
                   np.asarray(has_text, bool))

    @property
    def text_dim(self) -> int:
        """Channels of the corpus's transcript embeddings (0 when it has none)."""
        return int(self.text_table.shape[1])

    def batch(self, rng: np.random.Generator, size: int, window: int, face_drop: float, audio_drop: float,
              text_drop: float = 0.0) -> dict:
        """``size`` random ``window``-frame windows: listener [B, w, 83], speaker audio [B, w, 123] and
        face [B, w, 83], presence flags has_audio / has_face [B] bool after the random drops, and the
        index of each window's reaction, reaction [B]. When the corpus has transcripts also text [B, w, E]
        (zeros between units) and has_text [B] bool (after dropping a present transcript with
        probability ``text_drop``)."""
        usable = np.flatnonzero(self.reactions[:, 2] >= window)
        if len(usable) == 0:
            raise ListenerctlError(f"no reaction in the corpus is as long as one {window}-frame training window.")
        reaction = rng.choice(usable, size)
        listener_row, speaker_row, frames, has_audio, has_face = self.reactions[reaction].T
        start = (rng.random(size) * (frames - window + 1)).astype(np.int64)
        offsets = np.arange(window)
        keep_face = has_face.astype(bool) & (rng.random(size) >= face_drop)
        keep_audio = has_audio.astype(bool) & ~(keep_face & (rng.random(size) < audio_drop))
        speaker_rows = torch.from_numpy((speaker_row + start)[:, None] + offsets)
        device = self.listener.device
        batch = {"listener": self.listener[torch.from_numpy((listener_row + start)[:, None] + offsets)],
                 "audio": self.audio[speaker_rows], "face": self.face[speaker_rows],
                 "has_audio": torch.from_numpy(keep_audio).to(device), "has_face": torch.from_numpy(keep_face).to(device),
                 "reaction": torch.from_numpy(reaction).to(device)}
        if self.text_dim:
            keep_text = self.has_text[reaction] & (rng.random(size) >= text_drop)
            batch["text"] = self.text_table[self.text_rows[speaker_rows.to(device)]]
            batch["has_text"] = torch.from_numpy(keep_text).to(device)
        return batch

    def tiles(self, window: int) -> Tensor:
        """Every reaction cut into J whole ``window``-frame windows from its start, J set by the shortest
        reaction: normalised listener frames [R, J, w, 83]."""
        count = int(self.reactions[:, 2].min()) // window
        if count == 0:
            raise ListenerctlError(f"a reaction in the corpus is shorter than one {window}-frame training window.")
        rows = torch.from_numpy(self.reactions[:, :1] + np.arange(count * window)).to(self.listener.device)
        return self.listener[rows].view(len(self.reactions), count, window, ARKIT58_EMOTION25_DIM)
