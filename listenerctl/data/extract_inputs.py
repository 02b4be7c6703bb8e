"""The sessions ``listenerctl data extract`` reads, and their analysis into `extract.SessionRecord`s.

Layouts (each INPUT):

- a ``.csv`` with columns ``session,person,video`` and optionally ``audio``: layout (a), one video per person
  per session; ``audio`` names that person's own track (default: the video's own audio stream). When every
  person of a session names the same audio file it is one mixed track.
- a folder holding two or more videos: layout (a), the folder is a session, each video a person (named by
  its stem), each with its own track: a ``.wav`` beside the video with its stem, else the video's audio —
  or, with ``shared``, every video a session of its own as below;
- a folder holding one video, or a video file: layout (b), one video with everyone in view and one mixed
  audio track (`features.tracking.track_people` finds and follows the people);
- a folder holding only folders: each of them as above.

Who talks: with one track per person, voice activity on each track; with one mixed track, audio–visual
synchrony (`features.speakers.detect_speakers`).
"""

from __future__ import annotations

import csv
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from listenerctl.atomic import remove_stale_partials
from listenerctl.conditioning import AudioFeatures, FaceFeatures
from listenerctl.data.dyads import DyadOptions, Session
from listenerctl.data.extract import (SESSIONS, STAGING, SessionRecord, load_session, save_session, session_folder,
                                     write_corpus)
from listenerctl.errors import ListenerctlError, NoFaceError
from listenerctl.media import iter_video_frames, load_audio, probe
from listenerctl.motion import num_frames

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm"}
Progress = Callable[[int, int], None]   # (frames done, frames in the session)


@dataclass
class PersonInput:
    """One person's video and own audio track (None: the video's audio stream)."""

    name: str
    video: Path
    audio: Path | None = None

    @property
    def audio_source(self) -> Path:
        return self.audio or self.video


@dataclass
class SessionInput:
    """A session: ``people`` (layout a) or one ``video`` with everyone in view (layout b)."""

    key: str
    people: list[PersonInput] = field(default_factory=list)
    video: Path | None = None

    @property
    def mixed_audio(self) -> bool:
        return self.video is not None or len({p.audio_source for p in self.people}) == 1


def _videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                  and not p.name.startswith("."))


def _session_key(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "session"


def _folder_sessions(folder: Path, shared: bool) -> list[SessionInput]:
    """The session(s) of a folder of videos: one per video when ``shared`` (everyone in view in each)."""
    videos = _videos(folder)
    if shared:
        return [SessionInput(_session_key(v.stem), video=v) for v in videos]
    if len(videos) == 1:
        return [SessionInput(_session_key(folder.name), video=videos[0])]
    people = [PersonInput(v.stem, v, v.with_suffix(".wav") if v.with_suffix(".wav").is_file() else None)
              for v in videos]
    return [SessionInput(_session_key(folder.name), people)]


def _csv_sessions(path: Path) -> list[SessionInput]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ListenerctlError(f"{path} cannot be read as CSV ({error}).") from None
    needed = {"session", "person", "video"}
    if not rows or not needed <= set(rows[0]):
        raise ListenerctlError(f"{path} needs a header with the columns session, person, video (and optionally "
                               f"audio) and at least one row.")
    sessions: dict[str, SessionInput] = {}
    for number, row in enumerate(rows, start=2):
        video = (path.parent / row["video"]).resolve()
        audio = (path.parent / row["audio"]).resolve() if (row.get("audio") or "").strip() else None
        for media in (video, audio):
            if media is not None and not media.is_file():
                raise ListenerctlError(f"{path} line {number}: file not found: {media}.")
        key = _session_key(row["session"].strip())
        sessions.setdefault(key, SessionInput(key)).people.append(PersonInput(row["person"].strip(), video, audio))
    return list(sessions.values())


def find_sessions(inputs: list[Path], shared: bool = False) -> list[SessionInput]:
    """Every session named by ``inputs`` (module docstring), in input order; with ``shared`` every video in
    a folder is a session of its own with everyone in view. One sentence for an input that is none of the
    layouts or a session key given twice."""
    sessions: list[SessionInput] = []
    for path in map(Path, inputs):
        if not path.exists():
            raise ListenerctlError(f"input not found: {path}.")
        path = path.resolve()
        if path.is_file() and path.suffix.lower() == ".csv":
            sessions += _csv_sessions(path)
        elif path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
            sessions.append(SessionInput(_session_key(path.stem), video=path))
        elif path.is_dir() and _videos(path):
            sessions += _folder_sessions(path, shared)
        elif path.is_dir() and any(_videos(sub) for sub in path.iterdir() if sub.is_dir()):
            for sub in sorted(path.iterdir()):
                sessions += _folder_sessions(sub, shared) if sub.is_dir() and _videos(sub) else []
        else:
            raise ListenerctlError(f"{path} is not a session: give a video, a folder of videos (one per person, or "
                                   f"one with everyone in view), a folder of such folders, or a CSV.")
    keys = [s.key for s in sessions]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ListenerctlError(f"session {', '.join(twice)} is given more than once; session names must be unique.")
    return sessions


def session_frames(session: SessionInput, fps: float) -> int:
    """Frames the analysis covers: the shortest of the session's videos."""
    videos = [session.video] if session.video is not None else [p.video for p in session.people]
    frames = []
    for video in videos:
        info = probe(video)
        if not info.has_video:
            raise ListenerctlError(f"{video.name} has no video stream.")
        frames.append(num_frames(info.video_duration, fps))
    return min(frames)


def _audio_features(path: Path, fps: float, frames: int) -> AudioFeatures:
    """Features of the first audio stream of ``path`` over ``frames``; a file without one is silence."""
    from listenerctl.features.audio import extract_audio

    samples = load_audio(path) if probe(path).has_audio else np.zeros(1, np.float32)
    return extract_audio(samples, fps, frames)


def _thumbnail(video: Path, frame: int, fps: float) -> np.ndarray:
    """A [THUMB_PX, THUMB_PX, 3] uint8 crop around the face in ``frame`` of a one-person video (the whole
    frame when no face is found there)."""
    import cv2

    from listenerctl.features.crop_landmarks import THUMB_PX, face_thumbnail
    from listenerctl.features.face import landmarks_for_image

    with closing(iter_video_frames(video, fps=fps, num_frames=frame + 1)) as frames:
        rgb = next(f for i, f in enumerate(frames) if i == frame)
    points = landmarks_for_image(rgb)
    if points is None:
        return cv2.resize(rgb, (THUMB_PX, THUMB_PX), interpolation=cv2.INTER_AREA)
    return face_thumbnail(rgb, np.concatenate([points[:, :2].min(axis=0), points[:, :2].max(axis=0)]))


def _person_faces(session: SessionInput, fps: float, frames: int, progress: Progress | None,
                  cache_dir: Path | None) -> tuple[list[FaceFeatures], np.ndarray]:
    """Layout (a): each person's face features from their own video, and their thumbnails."""
    from listenerctl.features.crop_landmarks import THUMB_PX
    from listenerctl.features.face import extract_face

    faces, thumbnails = [], []
    for p, person in enumerate(session.people):
        done = p * frames
        step = None if progress is None else (lambda n, done=done: progress(done + n, frames * len(session.people)))
        try:
            face = extract_face(person.video, fps, frames, cache_dir=cache_dir, progress=step)
            thumbnails.append(_thumbnail(person.video, int(np.argmax(face.found)), fps))
        except NoFaceError:
            face = FaceFeatures(np.zeros((frames, 58), np.float32), np.zeros((frames, 25), np.float32),
                                np.zeros(frames, bool))
            thumbnails.append(np.zeros((THUMB_PX, THUMB_PX, 3), np.uint8))
        faces.append(face)
    return faces, np.stack(thumbnails)


def _people_of(faces: list[FaceFeatures], thumbnails: np.ndarray, fps: float):
    """A `People` of per-person face features (layout a: everyone has their own video)."""
    from listenerctl.features.people import People

    found = np.stack([f.found for f in faces])
    arkit = np.where(found[..., None], np.stack([f.arkit for f in faces]), np.nan).astype(np.float32)
    return People(arkit, found, np.full((*found.shape, 4), np.nan, np.float32), thumbnails, fps)


def analyse_session(session: SessionInput, fps: float = 25.0, progress: Progress | None = None,
                    cache_dir: Path | None = None) -> SessionRecord:
    """Track the faces of ``session``, decide who talks when, and return its `SessionRecord`."""
    from listenerctl.features.speakers import detect_speakers

    frames = session_frames(session, fps)
    if session.video is not None:
        from listenerctl.features.tracking import track_people

        people = track_people(session.video, fps=fps, num_frames=frames, cache_dir=cache_dir, progress=(
            None if progress is None else lambda n: progress(n, frames)))
        if len(people) == 0:
            raise ListenerctlError(f"nobody is ever seen in {session.video.name}.")
        faces = [people.face(p) if people.found[p].any() else
                 FaceFeatures(np.zeros((frames, 58), np.float32), np.zeros((frames, 25), np.float32), people.found[p])
                 for p in range(len(people))]
        sources, audio_sources = [str(session.video)] * len(people), [str(session.video)]
    else:
        faces, thumbnails = _person_faces(session, fps, frames, progress, cache_dir)
        people = _people_of(faces, thumbnails, fps)
        sources = [str(p.video) for p in session.people]
        audio_sources = list(dict.fromkeys(str(p.audio_source) for p in session.people))
    tracks = [_audio_features(Path(a), fps, frames) for a in audio_sources]
    if len(tracks) == 1:
        speakers = detect_speakers(people, audio=tracks[0])
        audio_of = [0] * len(people)
    else:
        speakers = detect_speakers(people, person_audio=tracks)
        audio_of = list(range(len(people)))
    record_session = Session(session.key, fps, faces, speakers.active.astype(np.int32),
                             [tracks[t] for t in audio_of])
    return SessionRecord(record_session, people.thumbnails, sources, audio_sources, audio_of)


def extract_corpus(inputs: list[Path], root: Path, options: DyadOptions, seed: int = 0,
                   report: Callable[[str], None] = print,
                   progress_for: Callable[[str], Progress] | None = None, shared: bool = False) -> dict:
    """``data extract``: analyse every session of ``inputs`` not analysed under ``root`` yet (a rerun skips
    finished ones; an interrupted run's leftovers are removed), then write the corpus (`write_corpus`);
    returns the extract report. A session whose media cannot be read is reported and left out.
    ``progress_for(session key)`` gives the progress callback of that session's analysis; ``shared`` as in
    `find_sessions`."""
    root = Path(root)
    sessions = find_sessions(inputs, shared)
    began = time.time()
    leftovers = [root / STAGING, *(session_folder(root, s.key) for s in sessions)]
    for final in leftovers:
        remove_stale_partials(final, began)
    records, failed = [], {}
    for session in sessions:
        folder = session_folder(root, session.key)
        if (folder / "session.json").is_file():
            report(f"{session.key}: analysed before, reusing {SESSIONS}/{session.key}")
        else:
            try:
                save_session(root, analyse_session(session, progress=progress_for and progress_for(session.key)))
            except ListenerctlError as error:
                failed[session.key] = str(error)
                report(f"{session.key}: failed ({error})")
                continue
        records.append(load_session(folder))
    return write_corpus(root, records, options, seed, report, failed)
