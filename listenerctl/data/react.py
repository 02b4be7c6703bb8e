"""REACT2024 corpus: read speaker-listener pairs window by window, and write clips in the same layout.

Layout::

    ROOT/{split}.csv                          rows ``index,speaker_path,listener_path`` (header first)
    ROOT/neighbour_emotion_{split}.npy        optional [N, N] bool: row i marks the listener clips
                                              appropriate for the speaker clip of CSV row i
    ROOT/{split}/3D_FV_files/<rel>.npy        [T, 58] FaceVerse coefficients (spec faceverse58)
    ROOT/{split}/Emotion/<rel>.csv            a header row, then [T, 25] facial attributes (emotion25)
    ROOT/{split}/Audio_files/<rel>.wav        the person's speech, 44.1 kHz as released
    ROOT/{split}/Video_files/<rel>.mp4        the person's face video, 25 fps

``split`` is train, val or test and ``<rel>`` is ``site/session/person/clip``. Released clips hold 751
frames at 25 fps and are evaluated on their first 750. The val and test lists are mirrored: the
second half of their rows is the first half with speaker and listener swapped; rows keep CSV order.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path, PurePosixPath
from typing import Iterable

import numpy as np
from scipy.signal import resample_poly

from listenerctl.atomic import atomic_file
from listenerctl.errors import ListenerctlError
from listenerctl.media import SAMPLE_RATE, load_audio, write_wav
from listenerctl.motion import EMOTION25_DIM, get_spec

SPLITS = ("train", "val", "test")
FPS = 25
FV_DIM = get_spec("faceverse58").dim
RELEASE_AUDIO_RATE = 44_100  # Hz, the rate of REACT's WAV files
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640 samples of 16 kHz audio per 25 fps frame
AUDIO_SHORTFALL_FRAMES = 2  # audio may end up to this many frames before its clip (zero-padded)
# modality -> (folder under ROOT/split, file suffix)
MODALITIES = {"3dfv": ("3D_FV_files", ".npy"), "emotion": ("Emotion", ".csv"),
              "audio": ("Audio_files", ".wav"), "video": ("Video_files", ".mp4")}
MOTION_MODALITIES = ("3dfv", "emotion")
LAST_WINDOW = ("shift", "drop")
_SHOWN = 3  # offending files or rows an error names before "..."


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ListenerctlError(f"unknown REACT split {split!r}; use one of {', '.join(SPLITS)}.")


def _check_rel_path(rel_path: str) -> str:
    path = PurePosixPath(rel_path)
    if not rel_path or path.is_absolute() or ".." in path.parts or "\\" in rel_path:
        raise ListenerctlError(f"clip path {rel_path!r} must be relative, like site/session/person/clip.")
    return rel_path


def _listing(items: list[str]) -> str:
    return "; ".join(items[:_SHOWN]) + ("; ..." if len(items) > _SHOWN else "")


def clip_path(root: str | Path, split: str, modality: str, rel_path: str) -> Path:
    """File holding one clip's ``modality`` ('3dfv', 'emotion', 'audio' or 'video'): ROOT/split/FOLDER/rel.EXT."""
    folder, suffix = MODALITIES[modality]
    return Path(root) / split / folder / f"{rel_path}{suffix}"


def split_csv_path(root: str | Path, split: str) -> Path:
    return Path(root) / f"{split}.csv"


def neighbours_path(root: str | Path, split: str) -> Path:
    return Path(root) / f"neighbour_emotion_{split}.npy"


def read_split_csv(root: str | Path, split: str) -> list[tuple[str, str]]:
    """(speaker_path, listener_path) of every row of ROOT/split.csv, in file order."""
    path = split_csv_path(root, split)
    if not path.is_file():
        raise ListenerctlError(f"REACT split list not found: {path}.")
    pairs = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = [cell.strip() for cell in next(reader, [])]
        if header[1:3] != ["speaker_path", "listener_path"]:
            raise ListenerctlError(f"{path} must start with the header ',speaker_path,listener_path'.")
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < 3:
                raise ListenerctlError(f"{path} line {reader.line_num} has {len(row)} columns; "
                                       "expected index, speaker_path, listener_path.")
            pairs.append((_check_rel_path(row[1].strip()), _check_rel_path(row[2].strip())))
    if not pairs:
        raise ListenerctlError(f"{path} lists no speaker-listener pairs.")
    return pairs


def describe_nonfinite(array: np.ndarray, where: str | Path) -> str | None:
    """A phrase on the NaN / infinite values of ``array`` [T, D] (how many, in which frames), or None."""
    bad = ~np.isfinite(array)
    if not bad.any():
        return None
    frames = np.flatnonzero(bad.any(axis=1))
    column = int(np.flatnonzero(bad[frames[0]])[0])
    return (f"{where} holds {int(bad.sum())} NaN or infinite values in {frames.size} frames "
            f"(first at frame {frames[0]}, column {column})")


def _fv_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """[T, 58] for a 3D_FV array shape, dropping singleton axes ([T, 1, 58], [1, T, 58]); other shapes as given."""
    leading = [d for d in shape[:-1] if d != 1]
    return (leading[0] if leading else 1, shape[-1]) if len(shape) >= 2 and len(leading) <= 1 else shape


def _load_npy(path: Path, mmap: bool = False) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None)
    except (OSError, ValueError) as exc:
        raise ListenerctlError(f"cannot read {path} as a .npy array ({exc}).") from None


def _load_fv(path: Path) -> np.ndarray:
    """FaceVerse coefficients [T, 58] float32 as stored (no NaN check)."""
    array = _load_npy(path)
    shape = _fv_shape(array.shape)
    if len(shape) != 2 or shape[1] != FV_DIM:
        raise ListenerctlError(f"{path} has shape {array.shape}; expected [T, {FV_DIM}].")
    return array.reshape(shape).astype(np.float32)


def _load_emotion(path: Path) -> np.ndarray:
    """Facial attributes [T, 25] float32 from a CSV with one header row (no NaN check)."""
    try:
        array = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32, ndmin=2)
    except ValueError as exc:
        raise ListenerctlError(f"cannot read {path} as comma-separated numbers ({exc}).") from None
    if array.shape[1] != EMOTION25_DIM:
        raise ListenerctlError(f"{path} has {array.shape[1]} columns; expected {EMOTION25_DIM} (emotion25).")
    return array


def _emotion_shape(path: Path) -> tuple[int, int]:
    """(data rows, header columns) of an Emotion CSV without parsing its numbers."""
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return (len(lines) - 1, lines[0].count(",") + 1) if lines else (0, 0)


def read_fv(path: str | Path, mean_face: np.ndarray | None = None) -> np.ndarray:
    """FaceVerse coefficients [T, 58] float32 from a 3D_FV .npy, minus ``mean_face`` [58] when given."""
    path = Path(path)
    array = _load_fv(path)
    problem = describe_nonfinite(array, path)
    if problem:
        raise ListenerctlError(problem + ".")
    return array - mean_face if mean_face is not None else array


def read_emotion(path: str | Path) -> np.ndarray:
    """Facial attributes [T, 25] float32 (emotion25) from an Emotion CSV with one header row."""
    path = Path(path)
    array = _load_emotion(path)
    problem = describe_nonfinite(array, path)
    if problem:
        raise ListenerctlError(problem + ".")
    return array


def read_mean_face(path: str | Path) -> np.ndarray:
    """REACT's mean FaceVerse coefficients [58] float32 from ``mean_face.npy`` (any shape of 58 values)."""
    path = Path(path)
    if not path.is_file():
        raise ListenerctlError(f"mean face file not found: {path}.")
    mean = _load_npy(path)
    if mean.size != FV_DIM:
        raise ListenerctlError(f"{path} holds {mean.size} values; a REACT mean face holds {FV_DIM}.")
    mean = mean.reshape(FV_DIM).astype(np.float32)
    problem = describe_nonfinite(mean[None], path)
    if problem:
        raise ListenerctlError(problem + ".")
    return mean


def _fit_audio(samples: np.ndarray, num_frames: int, rate: int, source: str) -> np.ndarray:
    """``samples`` [N] cut or zero-padded to exactly ``num_frames`` frames at 25 fps: [num_frames * rate / 25].

    Audio more than AUDIO_SHORTFALL_FRAMES frames shorter than its clip is refused.
    """
    needed = num_frames * rate // FPS
    if needed - samples.size > AUDIO_SHORTFALL_FRAMES * rate // FPS:
        raise ListenerctlError(f"{source} holds {samples.size / rate:.2f} s of audio but its clip lasts "
                               f"{num_frames / FPS:.2f} s ({num_frames} frames).")
    return np.pad(samples[:needed], (0, max(needed - samples.size, 0)))


def _window_bounds(length: int, window: int | None, stride: int, last: str) -> np.ndarray:
    """[n, 2] (start, stop) frames of the windows of a ``length``-frame clip (see `ReactDataset`)."""
    if window is None:
        return np.array([[0, length]])
    starts = np.arange(0, length - window + 1, stride)
    if last == "shift" and starts[-1] + window < length:
        starts = np.append(starts, length - window)
    return np.stack([starts, starts + window], axis=1)


class ReactDataset:
    """The speaker-listener pairs of one REACT split, served window by window.

    Item ``i`` is a dict: ``pair`` (row of the split CSV), ``start`` and ``stop`` (frames), then for each
    of ``modalities``: ``speaker_3dfv`` / ``listener_3dfv`` [w, 58] float32 (minus the mean face when
    ``mean_face`` names REACT's ``mean_face.npy``) and ``speaker_emotion`` / ``listener_emotion``
    [w, 25] float32; with ``load_audio`` also ``speaker_audio`` [w * 640] float32, the speaker's speech
    for those frames as 16 kHz mono samples.

    ``window=None`` serves whole clips. Otherwise windows of ``window`` frames start every ``stride``
    frames (default ``window``); when the last full window stops short of the clip's end, ``last="shift"``
    adds one more ending exactly at the end (overlapping its predecessor) and ``last="drop"`` leaves the
    tail out (``window=750, last="drop"`` is REACT's evaluation cut of its 751-frame clips). Windows of
    a pair are consecutive and pairs keep CSV order, so mirrored halves stay where the CSV puts them.

    Construction checks the whole split and raises one `ListenerctlError` per kind of problem: a
    missing split folder, CSV or modality folder; files the CSV lists but the disk lacks (counted,
    first few named); clips of the wrong width; pairs whose clips differ in length; clips shorter
    than the window. NaN values raise when a clip is read; `check_finite` finds them all up front.
    """

    def __init__(self, root: str | Path, split: str, mean_face: str | Path | None = None,
                 window: int | None = None, stride: int | None = None, load_audio: bool = False,
                 modalities: Iterable[str] = MOTION_MODALITIES, last: str = "shift"):
        self.root, self.split = Path(root), split
        self.modalities = tuple(dict.fromkeys(modalities))
        self.load_audio = load_audio
        if not self.modalities or set(self.modalities) - set(MOTION_MODALITIES):
            raise ValueError(f"modalities must be a non-empty subset of {MOTION_MODALITIES}, got {self.modalities}")
        if (window is not None and window < 1) or (stride is not None and (window is None or stride < 1)):
            raise ValueError(f"window and stride must be positive frame counts (stride needs a window), "
                             f"got window={window}, stride={stride}")
        if last not in LAST_WINDOW:
            raise ValueError(f"last must be one of {LAST_WINDOW}, got {last!r}")
        self.window, self.stride, self.last = window, stride or window, last
        _check_split(split)
        if not self.root.is_dir():
            raise ListenerctlError(f"REACT root folder not found: {self.root}.")
        if not (self.root / split).is_dir():
            raise ListenerctlError(f"REACT split folder not found: {self.root / split}.")
        self.pairs = read_split_csv(self.root, split)
        self.mean_face = read_mean_face(mean_face) if mean_face is not None else None
        self._check_files()
        self.lengths = self._pair_lengths()
        self.windows = self._windows()
        self.neighbours = self._read_neighbours()
        self._cached: tuple[int, dict[str, np.ndarray]] | None = None

    @property
    def num_pairs(self) -> int:
        return len(self.pairs)

    def _clips(self, modality: str) -> list[str]:
        """Distinct clip paths the CSV names for ``modality`` (speakers only for audio), first-seen order."""
        roles = (0,) if modality == "audio" else (0, 1)
        return list(dict.fromkeys(pair[r] for pair in self.pairs for r in roles))

    def _needed(self) -> tuple[str, ...]:
        return self.modalities + (("audio",) if self.load_audio else ())

    def _check_files(self) -> None:
        missing = []
        for modality in self._needed():
            folder = self.root / self.split / MODALITIES[modality][0]
            if not folder.is_dir():
                raise ListenerctlError(f"REACT split {self.split} has no {folder.name} folder: {folder}.")
            missing += [p for p in (clip_path(self.root, self.split, modality, rel) for rel in self._clips(modality))
                        if not p.is_file()]
        if missing:
            raise ListenerctlError(f"{len(missing)} files listed in {self.split}.csv are missing, e.g. "
                                   f"{_listing([str(p) for p in missing])}.")

    def _clip_lengths(self, modality: str) -> dict[str, int]:
        """Frames of every clip of ``modality``, read from file headers; wrong widths raise."""
        width = FV_DIM if modality == "3dfv" else EMOTION25_DIM
        lengths, bad = {}, []
        for rel in self._clips(modality):
            path = clip_path(self.root, self.split, modality, rel)
            shape = _fv_shape(_load_npy(path, mmap=True).shape) if modality == "3dfv" else _emotion_shape(path)
            if len(shape) != 2 or shape[1] != width or shape[0] < 1:
                bad.append(f"{path} is {tuple(shape)}")
            lengths[rel] = shape[0]
        if bad:
            raise ListenerctlError(f"{len(bad)} {modality} files do not hold [T >= 1, {width}] values, e.g. "
                                   f"{_listing(bad)}.")
        return lengths

    def _pair_lengths(self) -> np.ndarray:
        """Frames of each pair [N] int; pairs whose clips differ in length raise, naming them."""
        per_modality = {m: self._clip_lengths(m) for m in self.modalities}
        lengths, ragged = [], []
        for row, pair in enumerate(self.pairs):
            found = {f"{role} {m}": per_modality[m][rel] for m in self.modalities
                     for role, rel in zip(("speaker", "listener"), pair)}
            if len(set(found.values())) > 1:
                detail = ", ".join(f"{name} {n}" for name, n in found.items())
                ragged.append(f"row {row} ({pair[0]} -> {pair[1]}): {detail}")
            lengths.append(next(iter(found.values())))
        if ragged:
            raise ListenerctlError(f"{len(ragged)} of {len(self.pairs)} pairs in {self.split}.csv have clips of "
                                   f"different lengths (frames), e.g. {_listing(ragged)}.")
        return np.array(lengths, dtype=np.int64)

    def _windows(self) -> np.ndarray:
        """[W, 3] int64 rows of (pair, start, stop)."""
        if self.window is not None:
            short = [f"row {row} ({self.pairs[row][0]}, {n} frames)"
                     for row, n in enumerate(self.lengths) if n < self.window]
            if short:
                raise ListenerctlError(f"{len(short)} pairs are shorter than the {self.window}-frame window, "
                                       f"e.g. {_listing(short)}.")
        parts = []
        for row, n in enumerate(self.lengths):
            bounds = _window_bounds(int(n), self.window, self.stride, self.last)
            parts.append(np.column_stack([np.full(len(bounds), row), bounds]))
        return np.concatenate(parts).astype(np.int64)

    def _read_neighbours(self) -> np.ndarray | None:
        path = neighbours_path(self.root, self.split)
        if not path.is_file():
            return None
        matrix = _load_npy(path)
        if matrix.shape != (self.num_pairs, self.num_pairs):
            raise ListenerctlError(f"{path} has shape {matrix.shape} but {self.split}.csv lists "
                                   f"{self.num_pairs} pairs; expected [{self.num_pairs}, {self.num_pairs}].")
        return matrix.astype(bool)

    def appropriate(self, pair: int) -> np.ndarray:
        """Indices [M] of the pairs whose listener clip is an appropriate reaction to the speaker of ``pair``."""
        if self.neighbours is None:
            raise ListenerctlError(f"REACT split {self.split} has no appropriate-reaction matrix "
                                   f"({neighbours_path(self.root, self.split)} is absent).")
        return np.flatnonzero(self.neighbours[pair])

    def _read_pair(self, pair: int) -> dict[str, np.ndarray]:
        """Whole-clip arrays of one pair (see the class docstring), the last pair read kept in memory."""
        if self._cached is not None and self._cached[0] == pair:
            return self._cached[1]
        arrays = {}
        for role, rel in zip(("speaker", "listener"), self.pairs[pair]):
            if "3dfv" in self.modalities:
                arrays[f"{role}_3dfv"] = read_fv(clip_path(self.root, self.split, "3dfv", rel), self.mean_face)
            if "emotion" in self.modalities:
                arrays[f"{role}_emotion"] = read_emotion(clip_path(self.root, self.split, "emotion", rel))
        if self.load_audio:
            path = clip_path(self.root, self.split, "audio", self.pairs[pair][0])
            arrays["speaker_audio"] = _fit_audio(load_audio(path), int(self.lengths[pair]), SAMPLE_RATE, str(path))
        self._cached = (pair, arrays)
        return arrays

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict:
        pair, start, stop = (int(v) for v in self.windows[range(len(self))[index]])
        item: dict = {"pair": pair, "start": start, "stop": stop}
        for name, array in self._read_pair(pair).items():
            scale = SAMPLES_PER_FRAME if name == "speaker_audio" else 1
            item[name] = array[start * scale:stop * scale].copy()
        return item

    def check_finite(self) -> None:
        """Read every clip of the requested modalities once; raise one error counting those holding NaN or
        infinite values and saying where, instead of failing on the first one mid-training."""
        loaders = {"3dfv": _load_fv, "emotion": _load_emotion}
        problems = []
        for modality in self.modalities:
            for rel in self._clips(modality):
                path = clip_path(self.root, self.split, modality, rel)
                problem = describe_nonfinite(loaders[modality](path), path)
                problems += [problem] if problem else []
        if problems:
            raise ListenerctlError(f"{len(problems)} clip files of REACT split {self.split} hold NaN or infinite "
                                   f"values: {_listing(problems)}.")


def write_react_clip(root: str | Path, split: str, rel_path: str, fv58: np.ndarray, emotion: np.ndarray,
                     audio: str | Path | np.ndarray | None = None, video: str | Path | None = None) -> None:
    """Write one person's clip in REACT layout, each file atomically.

    fv58 [T, 58] FaceVerse-layout coefficients (raw, mean face not subtracted) -> 3D_FV_files .npy;
    emotion [T, 25] emotion25 -> Emotion .csv with a header of channel names;
    audio: a media file, or 16 kHz mono samples [N] -> Audio_files .wav, mono 44.1 kHz 16-bit, cut or
    zero-padded to T frames at 25 fps (more than AUDIO_SHORTFALL_FRAMES frames short raises);
    video: an MP4 file -> Video_files .mp4 (copied as is; it should run at 25 fps).
    Wrong shapes or non-finite values raise ValueError; missing input files or audio too short for the
    clip raise `ListenerctlError`; either way before anything is written.
    """
    _check_split(split)
    _check_rel_path(rel_path)
    fv58, emotion = np.asarray(fv58, np.float32), np.asarray(emotion, np.float32)
    if fv58.ndim != 2 or fv58.shape[1] != FV_DIM or len(fv58) == 0:
        raise ValueError(f"fv58 must be [T >= 1, {FV_DIM}], got {fv58.shape}")
    if emotion.shape != (len(fv58), EMOTION25_DIM):
        raise ValueError(f"emotion must be [{len(fv58)}, {EMOTION25_DIM}] like fv58, got {emotion.shape}")
    for name, array in (("fv58", fv58), ("emotion", emotion)):
        if not np.isfinite(array).all():
            raise ValueError(f"{name} holds NaN or infinite values")
    if isinstance(audio, np.ndarray) and audio.ndim != 1:
        raise ValueError(f"audio samples must be mono [N], got {audio.shape}")
    if video is not None and Path(video).suffix.lower() != ".mp4":
        raise ValueError(f"video must be an .mp4 file, got {video}")
    for source in (audio, video):
        if isinstance(source, (str, Path)) and not Path(source).is_file():
            raise ListenerctlError(f"file not found: {source}.")
    if isinstance(audio, np.ndarray):
        samples = _fit_audio(resample_poly(audio.astype(np.float32), RELEASE_AUDIO_RATE, SAMPLE_RATE),
                             len(fv58), RELEASE_AUDIO_RATE, f"the audio given for {rel_path}")
    elif audio is not None:
        samples = _fit_audio(load_audio(audio, RELEASE_AUDIO_RATE), len(fv58), RELEASE_AUDIO_RATE, str(audio))

    def target(modality: str) -> Path:
        path = clip_path(root, split, modality, rel_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    with atomic_file(target("3dfv")) as fh:
        np.save(fh, fv58)
    with atomic_file(target("emotion"), "w") as fh:
        fh.write(",".join(get_spec("emotion25").channels) + "\n")
        np.savetxt(fh, emotion, delimiter=",", fmt="%.9g")
    if audio is not None:
        write_wav(target("audio"), samples, RELEASE_AUDIO_RATE)
    if video is not None:
        with open(video, "rb") as src, atomic_file(target("video")) as dst:
            shutil.copyfileobj(src, dst)


def write_split_csv(root: str | Path, split: str, pairs: Iterable[tuple[str, str]], mirror: bool = False) -> Path:
    """Write ROOT/split.csv listing ``pairs`` (speaker_path, listener_path); ``mirror`` appends every pair
    again with roles swapped, as REACT's val and test lists do. Returns the CSV path."""
    _check_split(split)
    pairs = [(_check_rel_path(s), _check_rel_path(l)) for s, l in pairs]
    rows = pairs + ([(l, s) for s, l in pairs] if mirror else [])
    path = split_csv_path(root, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "w") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["", "speaker_path", "listener_path"])
        writer.writerows([index, s, l] for index, (s, l) in enumerate(rows))
    return path


def write_neighbours(root: str | Path, split: str, matrix: np.ndarray) -> Path:
    """Write the appropriate-reaction matrix [N, N] (row i: listener clips appropriate for speaker clip i,
    N = rows of split.csv) as bool to ROOT/neighbour_emotion_{split}.npy. Returns its path."""
    _check_split(split)
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"the neighbour matrix must be square [N, N], got {matrix.shape}")
    path = neighbours_path(root, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as fh:
        np.save(fh, matrix.astype(bool))
    return path
