"""What every generator is conditioned on: the speaker's audio and face features at the motion frame rate,
and optionally what the speaker says (transcript embeddings)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from listenerctl.atomic import atomic_file


@dataclass
class AudioFeatures:
    """Speaker audio features, one row per motion frame (T frames at the conditioning fps).

    mel [T, 80] log-mel (natural log of power + 1e-6); mfcc [T, 39] 13 MFCC + deltas + delta-deltas;
    energy [T] RMS level in dBFS; f0 [T] pitch in Hz (0 where unvoiced); voiced [T] bool;
    vad [T] bool voice activity (speech present).
    """

    mel: np.ndarray
    mfcc: np.ndarray
    energy: np.ndarray
    f0: np.ndarray
    voiced: np.ndarray
    vad: np.ndarray

    def matrix(self) -> np.ndarray:
        """All features side by side as float32 [T, 80 + 39 + 4] for learned models."""
        cols = [self.mel, self.mfcc, self.energy[:, None], np.log1p(self.f0)[:, None],
                self.voiced[:, None], self.vad[:, None]]
        return np.concatenate([np.asarray(c, np.float32) for c in cols], axis=1)


@dataclass
class FaceFeatures:
    """Speaker face, one row per motion frame: arkit [T, 58], emotion [T, 25], found [T] bool
    (False where no face was detected and the row was interpolated)."""

    arkit: np.ndarray
    emotion: np.ndarray
    found: np.ndarray

    @property
    def found_share(self) -> float:
        return float(np.mean(self.found)) if len(self.found) else 0.0


@dataclass
class TextFeatures:
    """What the speaker says: ``embeddings`` [U, E] float32, one row per transcript unit (a word or a segment)
    from a text encoder; ``unit`` [T] int32, per frame the unit being spoken, −1 where none is. The table
    is kept apart from the frames so a long input costs U·E, not T·E."""

    embeddings: np.ndarray
    unit: np.ndarray

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def table(self) -> np.ndarray:
        """``embeddings`` with a zero row appended [U + 1, E]: index ``unit`` mod (U + 1) into it to get the
        per-frame embedding, zeros where nothing is being said."""
        return np.concatenate([self.embeddings, np.zeros((1, self.dim), np.float32)]).astype(np.float32)

    def rows(self) -> np.ndarray:
        """``unit`` as indices into `table` [T] int64 (−1 → the zero row)."""
        return np.where(self.unit < 0, len(self.embeddings), self.unit).astype(np.int64)

    def slice(self, start: int, stop: int) -> "TextFeatures":
        """Frames [start, stop), keeping only the units they mention (renumbered in order)."""
        unit = self.unit[start:stop]
        used = np.unique(unit[unit >= 0])
        renumbered = np.where(unit >= 0, np.searchsorted(used, unit), -1).astype(np.int32)
        return TextFeatures(self.embeddings[used], renumbered)


@dataclass
class Conditioning:
    """Everything a generator sees about the speaker. At least one of ``audio`` / ``face`` is set; ``text``
    (transcript embeddings) is optional and only some models use it."""

    fps: float
    num_frames: int
    audio: AudioFeatures | None = None
    face: FaceFeatures | None = None
    text: TextFeatures | None = None

    def __post_init__(self) -> None:
        if self.audio is None and self.face is None:
            raise ValueError("conditioning needs audio features, face features or both")
        for part in (self.audio, self.face):
            for f in fields(part) if part is not None else ():
                arr = getattr(part, f.name)
                if len(arr) != self.num_frames:
                    raise ValueError(f"{f.name} has {len(arr)} frames, expected {self.num_frames}")
        if self.text is not None:
            if len(self.text.unit) != self.num_frames:
                raise ValueError(f"text unit has {len(self.text.unit)} frames, expected {self.num_frames}")
            if len(self.text.unit) and self.text.unit.max() >= len(self.text.embeddings):
                raise ValueError("text unit indices run past the embedding table")

    @property
    def modalities(self) -> str:
        """'audio+face', 'audio' or 'face', with '+text' when transcript embeddings are present."""
        parts = (("audio", self.audio), ("face", self.face), ("text", self.text))
        return "+".join(n for n, p in parts if p is not None)

    def slice(self, start: int, stop: int) -> "Conditioning":
        """Frames [start, stop) of every feature."""
        def cut(part):
            if part is None:
                return None
            return type(part)(**{f.name: getattr(part, f.name)[start:stop] for f in fields(part)})
        text = None if self.text is None else self.text.slice(start, stop)
        return Conditioning(self.fps, stop - start, audio=cut(self.audio), face=cut(self.face), text=text)

    def save_npz(self, path: Path) -> None:
        """Write every feature as ``audio_<name>`` / ``face_<name>`` / ``text_<name>`` arrays plus fps to
        ``path``, atomically."""
        arrays: dict[str, np.ndarray] = {"fps": np.float32(self.fps)}
        for prefix, part in (("audio", self.audio), ("face", self.face), ("text", self.text)):
            if part is not None:
                arrays.update({f"{prefix}_{f.name}": getattr(part, f.name) for f in fields(part)})
        with atomic_file(path) as fh:
            np.savez_compressed(fh, **arrays)

    @classmethod
    def load_npz(cls, path: Path) -> "Conditioning":
        with np.load(path) as z:
            def part(kind, prefix):
                names = [f.name for f in fields(kind)]
                if f"{prefix}_{names[0]}" not in z:
                    return None
                return kind(**{n: z[f"{prefix}_{n}"] for n in names})
            audio, face = part(AudioFeatures, "audio"), part(FaceFeatures, "face")
            n = len(audio.vad) if audio is not None else len(face.found)
            return cls(float(z["fps"]), n, audio, face, part(TextFeatures, "text"))
