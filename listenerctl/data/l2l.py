"""Learning2Listen corpus (Ng et al., CVPR 2022): 64-frame DECA sequences of speaker-listener pairs
from one YouTube channel, with the speaker's mel spectrogram.

Layout, for person p in {0, 1} (p0 sits on the left of the video, p1 on the right)::

    ROOT/<speaker_name>/<split>/p{p}_speak_faces_clean_deca.npy    [N_p, 64, 184] p speaking
    ROOT/<speaker_name>/<split>/p{p}_speak_audio_clean_deca.npy    [N_p, 256, 128] p's speech, mel
    ROOT/<speaker_name>/<split>/p{1-p}_list_faces_clean_deca.npy   [N_p, 64, 184] the other listening

Face features are 50 FLAME expression, 6 pose (3 head, 3 jaw) and 128 detail coefficients per frame;
motion keeps the first 56 (spec deca56, 30 fps). Each motion frame has 4 mel frames of 128 bins.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from listenerctl.data.react import describe_nonfinite
from listenerctl.errors import ListenerctlError
from listenerctl.motion import get_spec

SPEC = "deca56"
FPS = get_spec(SPEC).fps
DECA56_DIM = get_spec(SPEC).dim  # 56
SEQUENCE_FRAMES = 64
MEL_PER_FRAME = 4
MEL_BINS = 128


def l2l_file(folder: Path, person: int, role: str, kind: str) -> Path:
    """``folder``/p{person}_{role}_{kind}_clean_deca.npy, role 'speak' or 'list', kind 'faces' or 'audio'."""
    return folder / f"p{person}_{role}_{kind}_clean_deca.npy"


def _subfolders(folder: Path) -> str:
    return ", ".join(sorted(p.name for p in folder.iterdir() if p.is_dir())) or "none"


def _load(path: Path, frames: int, min_features: int, max_features: int | None = None) -> np.ndarray:
    """Memory-mapped [N, frames, F] array with min_features <= F <= max_features; other shapes raise."""
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise ListenerctlError(f"cannot read {path} as a .npy array ({exc}).") from None
    features_ok = array.ndim == 3 and min_features <= array.shape[2] <= (max_features or array.shape[2])
    if not features_ok or array.shape[1] != frames:
        wanted = min_features if max_features == min_features else f"{min_features} or more"
        raise ListenerctlError(f"{path} has shape {array.shape}; expected [N, {frames}, {wanted}].")
    return array


class L2LDataset:
    """One channel's split of Learning2Listen as (speaker, listener) sequence pairs.

    Item ``i`` is a dict: ``speaker_motion`` [64, 56] float32 and ``listener_motion`` [64, 56] float32
    (deca56), ``speaker_mel`` [64, 512] float32 (mel frames 4t..4t+3 of motion frame t side by side).
    Items run through p0 speaking (p1 listening), then p1 speaking (p0 listening). Arrays are
    memory-mapped: only the items read are loaded. Missing folders or files, shapes other than the
    layout's and sequence counts that do not pair up raise `ListenerctlError` on construction; NaN
    values raise when their item is read.
    """

    spec = SPEC
    fps = FPS

    def __init__(self, root: str | Path, speaker_name: str, split: str):
        root = Path(root)
        if not root.is_dir():
            raise ListenerctlError(f"Learning2Listen root folder not found: {root}.")
        if not (root / speaker_name).is_dir():
            raise ListenerctlError(f"no Learning2Listen speaker {speaker_name!r} in {root} "
                                   f"(found: {_subfolders(root)}).")
        folder = root / speaker_name / split
        if not folder.is_dir():
            raise ListenerctlError(f"no {split!r} split for Learning2Listen speaker {speaker_name!r} "
                                   f"(found: {_subfolders(root / speaker_name)}).")
        needed = [l2l_file(folder, p, role, kind) for p in (0, 1)
                  for role, kind in (("speak", "faces"), ("speak", "audio"), ("list", "faces"))]
        missing = [path.name for path in needed if not path.is_file()]
        if missing:
            raise ListenerctlError(f"{len(missing)} Learning2Listen files are missing from {folder}: "
                                   f"{', '.join(missing)}.")
        self.folder = folder
        self.parts = [self._direction(folder, speaker) for speaker in (0, 1)]  # p0 speaking, then p1
        self._starts = np.cumsum([0] + [len(part["speaker_motion"][1]) for part in self.parts])

    @staticmethod
    def _direction(folder: Path, speaker: int) -> dict[str, tuple[Path, np.ndarray]]:
        """Item name -> (file, memory-mapped array) for the sequences where person ``speaker`` speaks."""
        paths = {"speaker_motion": l2l_file(folder, speaker, "speak", "faces"),
                 "speaker_mel": l2l_file(folder, speaker, "speak", "audio"),
                 "listener_motion": l2l_file(folder, 1 - speaker, "list", "faces")}
        arrays = {name: _load(path, SEQUENCE_FRAMES * MEL_PER_FRAME, MEL_BINS, MEL_BINS) if name == "speaker_mel"
                  else _load(path, SEQUENCE_FRAMES, DECA56_DIM) for name, path in paths.items()}
        counts = {paths[name].name: len(array) for name, array in arrays.items()}
        if len(set(counts.values())) > 1:
            detail = ", ".join(f"{name} {n}" for name, n in counts.items())
            raise ListenerctlError(f"Learning2Listen sequences do not pair up in {folder} ({detail}); "
                                   "each must hold the same number.")
        return {name: (paths[name], arrays[name]) for name in paths}

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        index = range(len(self))[index]
        part = int(np.searchsorted(self._starts, index, side="right")) - 1
        row = index - int(self._starts[part])
        item = {}
        for name, (path, array) in self.parts[part].items():
            if name == "speaker_mel":
                values = np.array(array[row], np.float32).reshape(SEQUENCE_FRAMES, MEL_PER_FRAME * MEL_BINS)
            else:
                values = np.array(array[row, :, :DECA56_DIM], np.float32)
            problem = describe_nonfinite(values, f"sequence {row} of {path}")
            if problem:
                raise ListenerctlError(problem + ".")
            item[name] = values
        return item
