"""Dyads from a tracked conversation: which stretches become speaker–listener clips, and which listener
clips are appropriate reactions to which speaker clip (pure logic on arrays; `data.extract` writes them).

Per session: P people's face features (T frames), ``talker`` [T] int (the person talking, −1 nobody).
For each person l as the listener, the frames where l is quiet (l does not talk; l's own talk runs
shorter than `BACKCHANNEL_S` — "mm-hm", "yeah" — count as listening behaviour) are cut, from the start of
each quiet run, into consecutive clips of ``clip_frames``. A clip's speaker is the other person who talks
most in it. A clip is kept when the speaker talks in at least ``min_speaker_talk`` of its frames, the
listener in at most ``max_listener_talk`` and both faces are found in at least ``min_found``; otherwise it
is dropped with that reason. Quiet runs shorter than one clip are counted as unused seconds.

Appropriate reactions (REACT's sense: the listeners of speaker behaviour alike to this clip's): each clip
is described by the mean and standard deviation over its frames of the speaker's emotion25 and of the
speaker audio's prosody (energy dB, log(1 + f0), voiced, voice activity): 58 numbers. Each number is
standardised over the split's clips (z-scores; spread floored at 1e-6); two clips are similar when the
root-mean-square difference of their z-scores is at most ``similarity_threshold`` (default 0.5: within
half a standard deviation per number on average, between-clip spread measured on the split itself, so
the rule adapts to the corpus). A clip is always appropriate to itself.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from listenerctl.conditioning import AudioFeatures, FaceFeatures
from listenerctl.features.audio import bool_runs, runs_to_mask

BACKCHANNEL_S = 1.0        # listener talk runs shorter than this still count as listening
SIMILARITY_THRESHOLD = 0.5  # RMS z-score difference under which two speaker clips are alike


@dataclass(frozen=True)
class DyadOptions:
    """How clips are cut and kept: ``clip_frames`` per clip (751 = REACT's 30 s at 25 fps), and the shares
    of a clip's frames needed: speaker talking, listener talking (at most), each face found."""

    clip_frames: int = 751
    min_speaker_talk: float = 0.5
    max_listener_talk: float = 0.15
    min_found: float = 0.8
    similarity_threshold: float = SIMILARITY_THRESHOLD

    def __post_init__(self) -> None:
        if self.clip_frames < 2:
            raise ValueError(f"clips need at least 2 frames, got {self.clip_frames}")
        for name in ("min_speaker_talk", "max_listener_talk", "min_found"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} is a share in 0 … 1, got {getattr(self, name)}")


@dataclass
class Session:
    """One tracked conversation: ``faces`` per person (FaceFeatures of T frames), ``talker`` [T] int32
    (−1 nobody), ``speaker_audio`` per person the audio features heard when that person speaks (their own
    track, or the one mixed track for all), at ``fps``."""

    key: str
    fps: float
    faces: list[FaceFeatures]
    talker: np.ndarray
    speaker_audio: list[AudioFeatures | None]

    @property
    def num_frames(self) -> int:
        return len(self.talker)

    def speaking_shares(self) -> list[float]:
        """Share of all frames in which each person talks."""
        return [float(np.mean(self.talker == p)) if self.num_frames else 0.0 for p in range(len(self.faces))]


@dataclass(frozen=True)
class DyadClip:
    """Frames [start, stop) of a session with ``speaker`` talking to ``listener`` (person indices)."""

    speaker: int
    listener: int
    start: int
    stop: int


@dataclass
class DyadCut:
    """The clips kept, the reasons clips were dropped (reason → count) and quiet seconds too short for a clip."""

    kept: list[DyadClip] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    short_quiet_s: float = 0.0


def session_problem(session: Session) -> str | None:
    """Why ``session`` cannot give dyads (one sentence), or None."""
    seen = [p for p, face in enumerate(session.faces) if np.any(face.found)]
    if len(seen) < 2:
        return f"only {len(seen)} person is ever seen; a dyad needs two" if seen else "nobody is ever seen"
    if not np.any(session.talker >= 0):
        return "nobody talks"
    return None


def listening_mask(talker: np.ndarray, listener: int, fps: float) -> np.ndarray:
    """[T] bool: frames where ``listener`` is quiet, their talk runs shorter than `BACKCHANNEL_S` included."""
    starts, ends = bool_runs(talker == listener)
    long = (ends - starts) >= BACKCHANNEL_S * fps
    return ~runs_to_mask(starts[long], ends[long], len(talker))


def cut_dyads(session: Session, options: DyadOptions) -> DyadCut:
    """The dyad clips of ``session`` (module docstring); nothing when `session_problem` finds one."""
    cut = DyadCut()
    if session_problem(session) is not None:
        return cut
    talker, n = session.talker, options.clip_frames
    for listener in range(len(session.faces)):
        others = [p for p in range(len(session.faces)) if p != listener]
        starts, ends = bool_runs(listening_mask(talker, listener, session.fps))
        for run_start, run_end in zip(starts, ends):
            count = (run_end - run_start) // n
            cut.short_quiet_s += ((run_end - run_start) - count * n) / session.fps
            for k in range(count):
                start = int(run_start + k * n)
                clip = _judge(session, listener, others, start, start + n, options)
                if isinstance(clip, DyadClip):
                    cut.kept.append(clip)
                else:
                    cut.dropped[clip] += 1
    return cut


def _judge(session: Session, listener: int, others: list[int], start: int, stop: int,
           options: DyadOptions) -> DyadClip | str:
    """The clip [start, stop) with its speaker, or the reason it is dropped."""
    talk = session.talker[start:stop]
    speaker = max(others, key=lambda p: int(np.sum(talk == p)))
    if np.mean(talk == speaker) < options.min_speaker_talk:
        return f"the speaker talks in under {options.min_speaker_talk:.0%} of the clip"
    if np.mean(talk == listener) > options.max_listener_talk:
        return f"the listener talks in over {options.max_listener_talk:.0%} of the clip"
    for role, person in (("listener", listener), ("speaker", speaker)):
        if np.mean(session.faces[person].found[start:stop]) < options.min_found:
            return f"the {role}'s face is found in under {options.min_found:.0%} of the clip"
    return DyadClip(speaker, listener, start, stop)


def speaker_descriptor(emotion: np.ndarray, audio: AudioFeatures | None) -> np.ndarray:
    """58 numbers describing a speaker clip: mean and std over frames of emotion25 [T, 25] and of the audio's
    energy, log(1 + f0), voiced and vad (zeros without audio)."""
    if audio is None:
        prosody = np.zeros((len(emotion), 4), np.float64)
    else:
        prosody = np.stack([audio.energy, np.log1p(audio.f0), audio.voiced, audio.vad], axis=1).astype(np.float64)
    values = np.concatenate([np.asarray(emotion, np.float64), prosody], axis=1)
    return np.concatenate([values.mean(axis=0), values.std(axis=0)])


def appropriate_matrix(descriptors: np.ndarray, threshold: float = SIMILARITY_THRESHOLD) -> np.ndarray:
    """[N, N] bool from clip descriptors [N, D]: True where the RMS z-score difference is at most
    ``threshold`` (z-scores over these N clips); the diagonal is always True."""
    descriptors = np.asarray(descriptors, np.float64)
    if len(descriptors) == 0:
        return np.zeros((0, 0), bool)
    z = (descriptors - descriptors.mean(axis=0)) / np.maximum(descriptors.std(axis=0), 1e-6)
    distance = np.sqrt(np.mean((z[:, None, :] - z[None, :, :]) ** 2, axis=-1))
    return (distance <= threshold) | np.eye(len(z), dtype=bool)
