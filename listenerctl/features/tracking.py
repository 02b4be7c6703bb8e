"""Every person in view of a video, found at every face size and followed with a stable identity (DESIGN §2).

Per frame (streamed, one frame in memory): each live tracklet's face is looked up in a crop around where it
was in the previous frame (`crop_landmarks`); faces are detected afresh over the whole frame and its tiles
(`detection`) every `DETECT_EVERY` frames and at every shot cut, and a detected face no tracklet covers
starts a new tracklet. A face lost (occluded, turned away) is looked for again where it was, in every frame
for `RECOVER_FRAMES`. A shot cut (the frame's colour histogram or its small grey image jumps) ends every
tracklet, so no tracklet runs from one person onto another who appears in the same place after the cut. At
the end, tracklets are grouped into people by appearance (`reid`), people seen in fewer than
`MIN_PERSON_FRAMES` frames are dropped as spurious, and the rest are numbered from the image's left by
their median face centre.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from pathlib import Path

import cv2
import numpy as np

from listenerctl.features.crop_landmarks import THUMB_PX, CropFace, face_thumbnail, landmarks_in_crop
from listenerctl.features.detection import detect_in_tile, merge, open_detector, tiles
from listenerctl.features.face import (ARKIT58_DIM, MAX_WORKERS, Progress, box_iou, cache_key, default_cache_dir,
                                       detection_size, native_stderr_silenced, open_landmarker, write_cache)
from listenerctl.features.people import People
from listenerctl.features.reid import Tracklet, colour_distance, group
from listenerctl.media import iter_video_frames, probe
from listenerctl.paths import FACE_MODEL

DETECT_EVERY = 15  # frames between detection passes while nothing is lost (0.6 s at 25 fps)
RECOVER_FRAMES = 25  # a lost face is looked for where it was, every frame, for this long (1 s at 25 fps)
MATCH_IOU = 0.2  # a face overlapping its tracklet's last box at least this much continues the tracklet
DUPLICATE_IOU = 0.5  # two tracklets overlapping this much follow one face: the shorter one ends
# A shot cut: consecutive frames' colour histograms differ by more than CUT_HIST (total variation, 0-1) or
# their 64 × 36 grey thumbnails by more than CUT_PIXELS (mean absolute grey levels). Measured on the test
# composites: cuts 0.16-0.28 and 14-31, frames within a shot at most 0.03 and 2.3.
CUT_HIST = 0.12
CUT_PIXELS = 12.0
# A face whose colour descriptor is this far (Hellinger) from its tracklet's mean so far is someone else, a
# cut the frame difference missed (a dissolve, one person replaced by another in the same place); within a
# shot the camera's colours stay, so colour is the sharper test here.
SWAP_DISTANCE = 0.4
MIN_TRACKLET = 3  # shorter tracklets are dropped as flicker
MIN_PERSON_FRAMES = 12  # people found in fewer frames (about half a second) are dropped as spurious
TRACKING_VERSION = 1  # bump when the tracked values change meaning


def shot_signature(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(colour histogram [8 × 4 × 4] summing to 1, grey thumbnail [36, 64] float32) of an RGB uint8 frame."""
    small = cv2.resize(frame, (64, 36), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [8, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
    return hist / hist.sum(), cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)


def is_cut(previous: tuple[np.ndarray, np.ndarray] | None, current: tuple[np.ndarray, np.ndarray]) -> bool:
    """Whether two consecutive frames' `shot_signature`s differ enough to be a shot cut."""
    if previous is None:
        return False
    histogram_change = 0.5 * np.abs(previous[0] - current[0]).sum()
    pixel_change = np.abs(previous[1] - current[1]).mean()
    return bool(histogram_change > CUT_HIST or pixel_change > CUT_PIXELS)


class _Workers:
    """A thread pool whose threads each own an IMAGE-mode landmarker and a face detector."""

    def __init__(self, stack: ExitStack, count: int, model: Path):
        self._local = threading.local()
        self._stack, self._model, self._lock = stack, model, threading.Lock()
        self.pool = stack.enter_context(ThreadPoolExecutor(count))

    def _tools(self):
        if not hasattr(self._local, "tools"):
            with self._lock:  # ExitStack is not thread-safe
                self._local.tools = (self._stack.enter_context(open_landmarker(False, 2, self._model)),
                                     self._stack.enter_context(open_detector(self._model)))
        return self._local.tools

    def landmarks(self, frame: np.ndarray, boxes: list[np.ndarray]) -> list[CropFace | None]:
        """`landmarks_in_crop` of each box, in parallel."""
        return list(self.pool.map(lambda box: landmarks_in_crop(self._tools()[0], frame, box), boxes))

    def detect(self, frame: np.ndarray) -> np.ndarray:
        """Boxes [N, 4] (pixels) of the faces in the frame and its `tiles` (`detection.merge`), the regions
        shared among the threads."""
        regions = tiles(frame.shape[1], frame.shape[0])
        return merge(list(self.pool.map(lambda tile: detect_in_tile(self._tools()[1], frame, tile), regions)))


class _Tracker:
    """Tracklets over a stream of frames (module docstring); `finish` hands back all worth keeping."""

    def __init__(self, workers: _Workers, frame_size: tuple[int, int]):
        self.workers = workers
        self.scale = np.array(frame_size * 2, dtype=np.float64)  # pixels → fractions of width/height
        self.live: list[tuple[Tracklet, np.ndarray]] = []  # tracklet, its last box in pixels
        self.done: list[Tracklet] = []
        self.signature = None
        self.last_detection = -DETECT_EVERY
        self.lost: list[tuple[int, np.ndarray]] = []  # (frame, last box in pixels) of faces lost lately

    def _add(self, tracklet: Tracklet, face: CropFace, frame: np.ndarray) -> None:
        tracklet.rows.append(face.arkit)
        tracklet.boxes.append((face.box / self.scale).astype(np.float32))
        tracklet.colour_sum = tracklet.colour_sum + face.colour
        tracklet.texture_sum = tracklet.texture_sum + face.texture
        area = float(np.prod(face.box[2:] - face.box[:2]))
        if area > tracklet.thumbnail_area:
            tracklet.thumbnail, tracklet.thumbnail_area = face_thumbnail(frame, face.box), area

    def _end(self, tracklet: Tracklet) -> None:
        if len(tracklet.rows) >= MIN_TRACKLET:
            self.done.append(tracklet)

    def step(self, index: int, frame: np.ndarray) -> None:
        """Follow every live tracklet into frame ``index``, look again where faces were lost, and start
        tracklets for new faces."""
        signature = shot_signature(frame)
        cut = is_cut(self.signature, signature)
        self.signature = signature
        if cut:
            for tracklet, _ in self.live:
                self._end(tracklet)
            self.live, self.lost = [], []
        faces = self.workers.landmarks(frame, [box for _, box in self.live])
        kept: list[tuple[Tracklet, np.ndarray]] = []
        for (tracklet, box), face in zip(self.live, faces):
            overlaps = (face is not None and box_iou(face.box[None], box[None])[0, 0] >= MATCH_IOU
                        and colour_distance(face.colour, tracklet.colour_sum / len(tracklet.rows)) < SWAP_DISTANCE)
            duplicate = overlaps and any(box_iou(face.box[None], other[None])[0, 0] > DUPLICATE_IOU
                                         for _, other in kept)
            if overlaps and not duplicate:
                self._add(tracklet, face, frame)
                kept.append((tracklet, face.box))
            else:
                self._end(tracklet)
                self.lost.append((index, box))
        self.live = sorted(kept, key=lambda item: -len(item[0].rows))
        self.lost = [(when, box) for when, box in self.lost if index - when <= RECOVER_FRAMES]
        if cut or index - self.last_detection >= DETECT_EVERY:
            self.last_detection = index
            self._start(index, frame, list(self.workers.detect(frame)))
        elif self.lost:
            self._start(index, frame, [box for _, box in self.lost])

    def _start(self, index: int, frame: np.ndarray, candidates: list[np.ndarray]) -> None:
        """Start a tracklet for each face found around a ``candidates`` box [4] (pixels) that no live
        tracklet covers; a lost face found again is no longer looked for."""
        tracked = self._live_boxes()
        fresh = []
        for box in candidates:
            centre = (box[:2] + box[2:]) / 2
            inside = np.all((tracked[:, :2] <= centre) & (centre <= tracked[:, 2:]), axis=1)
            if not inside.any() and not (box_iou(box[None], tracked) > MATCH_IOU).any():
                fresh.append(box)
        for face in self.workers.landmarks(frame, fresh):
            if face is not None and not (box_iou(face.box[None], self._live_boxes()) > DUPLICATE_IOU).any():
                tracklet = Tracklet(start=index)
                self._add(tracklet, face, frame)
                self.live.append((tracklet, face.box))
        live = self._live_boxes()
        self.lost = [(when, box) for when, box in self.lost if not (box_iou(box[None], live) > MATCH_IOU).any()]

    def _live_boxes(self) -> np.ndarray:
        """The live tracklets' last face boxes [N, 4] (pixels)."""
        return np.array([box for _, box in self.live]).reshape(-1, 4)

    def finish(self) -> list[Tracklet]:
        for tracklet, _ in self.live:
            self._end(tracklet)
        self.live = []
        return self.done


def people_from_tracklets(tracklets: list[Tracklet], num_frames: int, fps: float,
                          frame_size: tuple[int, int]) -> People:
    """Group ``tracklets`` into people (`reid.group`), drop those found in fewer than `MIN_PERSON_FRAMES`
    frames, and number the rest from the image's left by median face centre."""
    people = [p for p in group(tracklets) if sum(len(t.rows) for t in p) >= MIN_PERSON_FRAMES]
    arkit = np.full((len(people), num_frames, ARKIT58_DIM), np.nan, np.float32)
    boxes = np.full((len(people), num_frames, 4), np.nan, np.float32)
    thumbnails = np.zeros((len(people), THUMB_PX, THUMB_PX, 3), np.uint8)
    for p, person in enumerate(people):
        for t in person:
            arkit[p, t.start:t.end] = np.stack(t.rows)
            boxes[p, t.start:t.end] = np.stack(t.boxes)
        thumbnails[p] = max(person, key=lambda t: t.thumbnail_area).thumbnail
    found = ~np.isnan(boxes[..., 0])
    centres = [np.median((boxes[p, found[p], 0] + boxes[p, found[p], 2]) / 2) for p in range(len(people))]
    order = np.argsort(centres, kind="stable").astype(int)
    return People(arkit=arkit[order], found=found[order], boxes=boxes[order], thumbnails=thumbnails[order], fps=fps,
                  frame_size=frame_size)


def _load(entry: Path) -> People | None:
    try:
        with np.load(entry) as cached:
            return People(arkit=cached["arkit"], found=cached["found"], boxes=cached["boxes"],
                          thumbnails=cached["thumbnails"], fps=float(cached["fps"]),
                          frame_size=tuple(int(v) for v in cached["frame_size"]))
    except (OSError, KeyError, ValueError):
        return None


def track_people(video_path: str | Path, fps: float = 25.0, num_frames: int | None = None,
                 cache_dir: str | Path | None = None, progress: Progress | None = None,
                 model_path: str | Path | None = None, workers: int | None = None) -> People:
    """Every person in ``video_path`` tracked at ``fps`` (module docstring): `People` with T = ``num_frames``
    (default: the whole video stream), possibly none. Frames whose longer side exceeds `face.MAX_SIDE` are
    downscaled first. ``workers`` threads (default: one per core, at most `face.MAX_WORKERS`) share each
    frame's crops. Cached in ``cache_dir`` (default `face.default_cache_dir`) under the sha256 of the file's
    bytes and the settings; ``progress(frames_done)`` is called after each frame."""
    video_path = Path(video_path)
    model = Path(model_path) if model_path is not None else FACE_MODEL
    info = probe(video_path)
    size = detection_size(info)
    settings = {"fps": fps, "num_frames": num_frames, "size": size, "tracking": TRACKING_VERSION}
    entry = Path(cache_dir or default_cache_dir()) / f"people-{cache_key(video_path, settings, model)}.npz"
    cached = _load(entry)
    if cached is not None:
        return cached
    workers = workers or max(1, min(MAX_WORKERS, os.cpu_count() or 1))
    count = 0
    with ExitStack() as stack:
        stack.enter_context(native_stderr_silenced())
        tracker = None
        frames = stack.enter_context(closing(iter_video_frames(video_path, fps=fps, size=size, num_frames=num_frames)))
        pool = _Workers(stack, workers, model)
        for count, frame in enumerate(frames, start=1):
            tracker = tracker or _Tracker(pool, (frame.shape[1], frame.shape[0]))
            tracker.step(count - 1, frame)
            if progress is not None:
                progress(count)
        tracklets = tracker.finish() if tracker is not None else []
    people = people_from_tracklets(tracklets, count, fps, (info.width, info.height))
    write_cache(entry, arkit=people.arkit, found=people.found, boxes=people.boxes, thumbnails=people.thumbnails,
                fps=people.fps, frame_size=np.array(people.frame_size))
    return people
