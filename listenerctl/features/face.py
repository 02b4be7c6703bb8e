"""Speaker face features from video: MediaPipe Face Landmarker → arkit58 per frame, cached on disk.

arkit58 row = 52 blendshape weights in [0, 1] (MediaPipe's categories in `motion.ARKIT52` order, `_neutral`
dropped, ``tongueOut`` = 0) + head pose from the facial transformation matrix, in the camera frame
MediaPipe uses (x to the image's right, y up, z toward the viewer; the face sits at negative z):

    headPitch  rad, positive = nodding down (chin toward the chest)
    headYaw    rad, positive = turning to the subject's left (the image's right)
    headRoll   rad, positive = tilting toward the subject's right shoulder (counter-clockwise on screen)
    headTx/Ty/Tz  cm, the canonical face's origin in that frame (Tz ≈ −30 to −60 at webcam distance)

The rotation is R = Ry(yaw) · Rx(pitch) · Rz(roll) with right-handed elementary rotations about the
camera axes, so a renderer rebuilds it with `head_rotation`. *Left/*Right blendshapes are the
subject's own sides.

With several faces the largest (landmark bounding box) is tracked from frame to frame (bounding-box
overlap keeps the same person), or, with ``face_index``, the N-th face counted from the image's left.
MediaPipe's C++ logging goes to file descriptor 2 and cannot be filtered from Python; it is silenced
while a landmarker exists (set LISTENERCTL_DEBUG=1 to see it), and Python's own stderr keeps working.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from listenerctl.atomic import atomic_file
from listenerctl.conditioning import FaceFeatures
from listenerctl.emotion import emotion_from_arkit
from listenerctl.errors import ListenerctlError, NoFaceError
from listenerctl.media import MediaInfo, iter_video_frames, probe
from listenerctl.motion import ARKIT52, ARKIT58_DIM
from listenerctl.paths import FACE_MODEL

MAX_FACES = 4  # faces MediaPipe looks for per frame, so the largest one can be chosen
TRACK_IOU = 0.3  # bounding-box overlap with the previous frame's face that counts as the same person
MAX_WORKERS = 4  # parallel landmarkers (threads) at most
# Frames whose longer side exceeds this many pixels are downscaled by ffmpeg first. Measured: halves
# MediaPipe's CPU time on 4K input, but for 1080p the scaling costs ffmpeg more than it saves.
MAX_SIDE = 1920
CACHE_VERSION = 1  # bump when the extracted values change meaning

Progress = Callable[[int], None]

_stderr_lock = threading.Lock()
_stderr_depth = 0
_stderr_saved: tuple[int, object] | None = None


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null while MediaPipe runs; Python's ``sys.stderr`` is moved to a
    duplicate of the real stderr meanwhile, so progress bars and warnings still show. Re-entrant."""
    global _stderr_depth, _stderr_saved
    if os.environ.get("LISTENERCTL_DEBUG"):
        yield
        return
    with _stderr_lock:
        if _stderr_depth == 0:
            python_stderr = sys.stderr
            if python_stderr is not None:
                python_stderr.flush()
            saved_fd = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
            _stderr_saved = (saved_fd, python_stderr)
            sys.stderr = open(saved_fd, "w", buffering=1, errors="backslashreplace", closefd=False,
                              encoding=getattr(python_stderr, "encoding", None) or "utf-8")
        _stderr_depth += 1
    try:
        yield
    finally:
        with _stderr_lock:
            _stderr_depth -= 1
            if _stderr_depth == 0:
                saved_fd, python_stderr = _stderr_saved
                sys.stderr.flush()
                sys.stderr = python_stderr
                os.dup2(saved_fd, 2)
                os.close(saved_fd)
                _stderr_saved = None


@contextmanager
def open_landmarker(video: bool, num_faces: int = MAX_FACES, model_path: str | Path | None = None):
    """A MediaPipe FaceLandmarker (VIDEO mode when ``video``, else IMAGE) with blendshapes and
    transformation matrices, closed on exit; its native log lines are silenced meanwhile."""
    from mediapipe.tasks.python import BaseOptions, vision

    path = Path(model_path) if model_path is not None else FACE_MODEL
    if not path.is_file():
        raise ListenerctlError(f"face model not found at {path}; restore checkpoints/face_landmarker.task "
                               "(git checkout) or name the file.")
    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(path)),
        running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
        num_faces=num_faces, output_face_blendshapes=True, output_facial_transformation_matrixes=True)
    with native_stderr_silenced():
        with vision.FaceLandmarker.create_from_options(options) as landmarker:
            yield landmarker


def mp_image(rgb: np.ndarray):
    import mediapipe as mp

    return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb, dtype=np.uint8))


def head_pose(matrix: np.ndarray) -> np.ndarray:
    """Head pose [..., 6] = pitch, yaw, roll (rad), tx, ty, tz (cm) from facial transformation matrices
    [..., 4, 4] (conventions in the module docstring)."""
    rotation = matrix[..., :3, :3] / np.linalg.norm(matrix[..., :3, :3], axis=-2, keepdims=True)
    pitch = np.arcsin(np.clip(-rotation[..., 1, 2], -1.0, 1.0))
    yaw = np.arctan2(rotation[..., 0, 2], rotation[..., 2, 2])
    roll = np.arctan2(rotation[..., 1, 0], rotation[..., 1, 1])
    return np.concatenate([np.stack([pitch, yaw, roll], axis=-1), matrix[..., :3, 3]], axis=-1)


def head_rotation(pitch: np.ndarray, yaw: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] = Ry(yaw) · Rx(pitch) · Rz(roll) from angles [...] in radians; the
    inverse of the angles in `head_pose`."""
    cp, sp, cy, sy, cr, sr = (np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw), np.cos(roll), np.sin(roll))
    rows = [[cy * cr + sy * sp * sr, -cy * sr + sy * sp * cr, sy * cp],
            [cp * sr, cp * cr, -sp],
            [-sy * cr + cy * sp * sr, sy * sr + cy * sp * cr, cy * cp]]
    return np.stack([np.stack(row, axis=-1) for row in rows], axis=-2)


def landmark_boxes(result) -> np.ndarray:
    """Landmark bounding boxes [F, 4] (x0, y0, x1, y1, normalised image coordinates) of every face."""
    boxes = np.zeros((len(result.face_landmarks), 4))
    for k, landmarks in enumerate(result.face_landmarks):
        xy = np.array([(p.x, p.y) for p in landmarks])
        boxes[k] = (*xy.min(axis=0), *xy.max(axis=0))
    return boxes


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union [N, M] of boxes ``a`` [N, 4] and ``b`` [M, 4] (x0, y0, x1, y1, any unit)."""
    low = np.maximum(a[:, None, :2], b[None, :, :2])
    high = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def choose_face(boxes: np.ndarray, previous: np.ndarray | None, face_index: int | None) -> int | None:
    """Which of the faces ``boxes`` [F, 4] to use: the ``face_index``-th from the left when given (None if
    there are fewer faces); else the one overlapping the ``previous`` frame's face, else the largest."""
    if len(boxes) == 0:
        return None
    if face_index is not None:
        order = np.argsort((boxes[:, 0] + boxes[:, 2]) / 2, kind="stable")
        return int(order[face_index]) if face_index < len(boxes) else None
    if previous is not None:
        overlap = box_iou(boxes, previous[None])[:, 0]
        if overlap.max() >= TRACK_IOU:
            return int(np.argmax(overlap))
    return int(np.argmax(np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)))


def arkit_row(result, face: int) -> np.ndarray:
    """arkit58 [58] of one detected face: blendshapes by name (tongueOut 0), then `head_pose`."""
    weights = {c.category_name: c.score for c in result.face_blendshapes[face]}
    row = np.zeros(ARKIT58_DIM, dtype=np.float32)
    row[:len(ARKIT52)] = [weights.get(name, 0.0) for name in ARKIT52]
    row[len(ARKIT52):] = head_pose(np.asarray(result.facial_transformation_matrixes[face], dtype=np.float64))
    return row


def _check_face_index(face_index: int | None) -> None:
    if face_index is not None and face_index < 0:
        raise ListenerctlError(f"face index must be 0 or more (0 = the leftmost face), got {face_index}.")


def _detect(landmarker, frame: np.ndarray, timestamp_ms: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Boxes [F, 4] and arkit58 rows of every face in one frame (runs in a worker thread)."""
    result = landmarker.detect_for_video(mp_image(frame), timestamp_ms)
    return landmark_boxes(result), [arkit_row(result, face) for face in range(len(result.face_landmarks))]


def blendshapes_for_frames(frames: Iterable[np.ndarray], fps: float = 25.0, face_index: int | None = None,
                           model_path: str | Path | None = None, progress: Progress | None = None,
                           workers: int | None = None) -> np.ndarray:
    """arkit58 [T, 58] float32 of consecutive RGB uint8 frames [H, W, 3] at ``fps``; rows are NaN where no
    face was found (`landmark_rows` without the face count)."""
    return landmark_rows(frames, fps, face_index, model_path, progress, workers)[0]


def landmark_rows(frames: Iterable[np.ndarray], fps: float = 25.0, face_index: int | None = None,
                  model_path: str | Path | None = None, progress: Progress | None = None,
                  workers: int | None = None) -> tuple[np.ndarray, int]:
    """(arkit58 [T, 58] float32 of consecutive RGB uint8 frames [H, W, 3] at ``fps``, rows NaN where no face
    was found; the most faces seen in one frame).

    Frames go round-robin to ``workers`` VIDEO-mode landmarkers (default: one per CPU core, at most
    `MAX_WORKERS`), each in its own thread; MediaPipe's native code runs them in parallel. Looking for
    `MAX_FACES` faces makes MediaPipe detect afresh in every frame, so the split does not change the
    result. The face to keep is chosen in frame order (`choose_face`). At most 2 frames per worker are
    held in memory.
    """
    _check_face_index(face_index)
    num_faces = MAX_FACES if face_index is None else max(MAX_FACES, face_index + 1)
    workers = workers or max(1, min(MAX_WORKERS, os.cpu_count() or 1))
    rows: list[np.ndarray] = []
    missing = np.full(ARKIT58_DIM, np.nan, dtype=np.float32)
    previous = None
    most_faces = 0

    def keep(boxes: np.ndarray, faces: list[np.ndarray]) -> None:
        nonlocal previous, most_faces
        most_faces = max(most_faces, len(boxes))
        face = choose_face(boxes, previous, face_index)
        rows.append(missing if face is None else faces[face])
        previous = previous if face is None else boxes[face]
        if progress is not None:
            progress(len(rows))

    with ExitStack() as stack:
        landmarkers = [stack.enter_context(open_landmarker(True, num_faces, model_path)) for _ in range(workers)]
        threads = [stack.enter_context(ThreadPoolExecutor(1)) for _ in range(workers)]
        pending: deque[Future] = deque()
        for i, frame in enumerate(frames):
            k = i % workers
            pending.append(threads[k].submit(_detect, landmarkers[k], frame, int(round(i * 1000.0 / fps))))
            while len(pending) > 2 * workers:
                keep(*pending.popleft().result())
        while pending:
            keep(*pending.popleft().result())
    return (np.stack(rows) if rows else np.zeros((0, ARKIT58_DIM), np.float32)), most_faces


def fill_missing(arkit: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Linearly interpolate the rows of ``arkit`` [T, D] where ``found`` [T] is False from the nearest
    found rows on each side (held constant before the first and after the last). Needs one found row."""
    known = np.flatnonzero(found)
    t = np.arange(len(arkit))
    after = known[np.minimum(np.searchsorted(known, t), len(known) - 1)]
    before = known[np.maximum(np.searchsorted(known, t) - 1, 0)]
    weight = np.clip((t - before) / np.maximum(after - before, 1), 0.0, 1.0)[:, None]
    return (arkit[before] * (1.0 - weight) + arkit[after] * weight).astype(np.float32)


def default_cache_dir() -> Path:
    """$LISTENERCTL_CACHE/face, or ~/.cache/listenerctl/face."""
    root = os.environ.get("LISTENERCTL_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "listenerctl") / "face"


def detection_size(info: MediaInfo) -> tuple[int, int] | None:
    """(width, height) to downscale a video of ``info``'s size to so the longer side is at most `MAX_SIDE`
    (even sizes), or None."""
    longest = max(info.width, info.height)
    if longest <= MAX_SIDE:
        return None
    scale = MAX_SIDE / longest
    return (2 * round(info.width * scale / 2), 2 * round(info.height * scale / 2))


def cache_key(video_path: Path, settings: dict, model_path: Path) -> str:
    """A cache entry's name: hex sha256 of the video's and model's bytes, `CACHE_VERSION` and ``settings``."""
    from listenerctl.hashing import file_sha256

    blob = json.dumps({"video": file_sha256(video_path), "model": file_sha256(model_path),
                       "version": CACHE_VERSION, **settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _load_cached(path: Path) -> tuple[np.ndarray, np.ndarray, int] | None:
    try:
        with np.load(path) as cached:
            return cached["arkit"], cached["found"], int(cached["most_faces"])
    except (OSError, KeyError, ValueError):
        return None


def write_cache(path: Path, **arrays) -> None:
    """Write a cache entry (an .npz of ``arrays``) atomically; one that cannot be written only costs a rerun."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as fh:
            np.savez(fh, **arrays)
    except OSError:
        pass


def extract_face(video_path: str | Path, fps: float = 25.0, num_frames: int | None = None,
                 face_index: int | None = None, cache_dir: str | Path | None = None,
                 progress: Progress | None = None, model_path: str | Path | None = None) -> FaceFeatures:
    """Speaker face features of a video at ``fps``: arkit [T, 58], emotion [T, 25], found [T] bool.

    Head translation (the last 3 columns, cm) is relative to the median head position over the clip's
    found frames, so it is a motion like the rotations, not a camera-frame position.
    T = ``num_frames`` (the last frame repeats or the video is cut) or every frame at ``fps``. Frames
    without the face are interpolated (`fill_missing`) and marked found=False. Results are cached in
    ``cache_dir`` (default `default_cache_dir`) under the sha256 of the file's bytes and the settings.
    ``progress(frames_done)`` is called after each frame. Raises `NoFaceError` when no frame has a face, and
    `ListenerctlError` when ``face_index`` names more faces than any frame holds.
    """
    video_path = Path(video_path)
    model = Path(model_path) if model_path is not None else FACE_MODEL
    _check_face_index(face_index)
    size = detection_size(probe(video_path))
    settings = {"fps": fps, "num_frames": num_frames, "face_index": face_index, "size": size}
    entry = Path(cache_dir or default_cache_dir()) / f"{cache_key(video_path, settings, model)}.npz"
    cached = _load_cached(entry)
    if cached is not None:
        arkit, found, most_faces = cached
    else:
        with closing(iter_video_frames(video_path, fps=fps, size=size, num_frames=num_frames)) as frames:
            arkit, most_faces = landmark_rows(frames, fps, face_index, model, progress)
        found = ~np.isnan(arkit).any(axis=1)
        write_cache(entry, arkit=arkit, found=found, most_faces=most_faces)
    if not found.any() and most_faces > 0:
        faces = "1 face was" if most_faces == 1 else f"at most {most_faces} faces were"
        raise ListenerctlError(f"face {face_index} was asked for but {faces} seen in any one frame of "
                               f"{video_path.name} (faces are numbered from 0 at the left).")
    if not found.any():
        raise NoFaceError(f"no face found in any frame of {video_path.name}; the speaker's face must be visible "
                          "and at least roughly frontal to use it.")
    return face_features(arkit, found)


def face_features(arkit: np.ndarray, found: np.ndarray) -> FaceFeatures:
    """FaceFeatures of one person's raw per-frame arkit58 [T, 58] (NaN rows where ``found`` [T] is False, at
    least one found): lost frames interpolated (`fill_missing`), head translation made relative to the
    median head position over the found frames (a motion like the rotations, not a camera-frame position)."""
    arkit = fill_missing(arkit, found)
    arkit[:, -3:] -= np.median(arkit[found, -3:], axis=0)
    return FaceFeatures(arkit=arkit, emotion=emotion_from_arkit(arkit), found=found)


def landmarks_for_image(rgb: np.ndarray, model_path: str | Path | None = None) -> np.ndarray | None:
    """The 478 face landmarks [478, 3] of the largest face in one RGB uint8 image [H, W, 3] (IMAGE mode):
    x, y in pixels, z relative depth in the same pixel scale (smaller = nearer the camera); None when
    there is no face."""
    with open_landmarker(video=False, model_path=model_path) as landmarker:
        result = landmarker.detect(mp_image(rgb))
    face = choose_face(landmark_boxes(result), None, None)
    if face is None:
        return None
    height, width = rgb.shape[:2]
    points = np.array([(p.x, p.y, p.z) for p in result.face_landmarks[face]], dtype=np.float64)
    return (points * np.array([width, height, width])).astype(np.float32)
