"""Face detection at every size: MediaPipe's BlazeFace (the detector inside the landmarker bundle) run over
the whole frame and over overlapping tiles of it.

BlazeFace (short range) sees its input at 128 × 128 pixels and finds faces from about 15 % to 80 % of that
input's side (measured on the project's real talking faces: 15 % found at score 0.85, 8 % missed). A face a
tenth of a 1080p frame's height is 5 % of a whole-frame input and is missed there; in a tile half the frame's
height it is 20 %. Square tiles of `TILE_SCALES` × the frame's shorter side, overlapping by half a tile, so
every face smaller than half a tile lies whole inside one of them, cover faces from about 5 % of the
frame's shorter side up to the whole frame.
"""

from __future__ import annotations

import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from listenerctl.errors import ListenerctlError
from listenerctl.features.face import box_iou, mp_image

TILE_SCALES = (1.0, 1 / 2, 1 / 3)  # tile sides as fractions of the frame's shorter side
TILE_PX = 128  # tiles are shrunk to the size BlazeFace looks at before detection (it would shrink them anyway)
MIN_SCORE = 0.5  # BlazeFace confidence to keep a detection
NMS_IOU = 0.3  # detections overlapping more than this (from neighbouring tiles or scales) are one face
DETECTOR_FILE = "face_detector.tflite"  # inside the face_landmarker.task zip bundle


@contextmanager
def open_detector(bundle: Path) -> Iterator:
    """A MediaPipe FaceDetector (IMAGE mode) built from the BlazeFace model inside the landmarker ``bundle``,
    closed on exit."""
    from mediapipe.tasks.python import BaseOptions, vision

    try:
        with zipfile.ZipFile(bundle) as archive:
            model = archive.read(DETECTOR_FILE)
    except (OSError, KeyError, zipfile.BadZipFile):
        raise ListenerctlError(f"{bundle} holds no {DETECTOR_FILE}; restore checkpoints/face_landmarker.task "
                               "(git checkout).") from None
    options = vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_buffer=model),
                                         running_mode=vision.RunningMode.IMAGE, min_detection_confidence=MIN_SCORE)
    with vision.FaceDetector.create_from_options(options) as detector:
        yield detector


def tiles(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Regions (x0, y0, width, height) in pixels to detect in: the whole frame, then square tiles covering it at
    each of `TILE_SCALES`, neighbours overlapping by half a tile, the last of a row or column flush with the
    frame's edge."""
    result = [(0, 0, width, height)]
    for scale in TILE_SCALES:
        side = max(1, round(min(width, height) * scale))
        stride = max(1, side // 2)
        xs = sorted({*range(0, width - side + 1, stride), width - side})
        ys = sorted({*range(0, height - side + 1, stride), height - side})
        result += [(x, y, side, side) for y in ys for x in xs]
    return result


def suppress(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Indices of ``boxes`` [N, 4] kept by greedy non-maximum suppression, best ``scores`` [N] first."""
    keep: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if not keep or box_iou(boxes[i:i + 1], boxes[keep]).max() <= NMS_IOU:
            keep.append(int(i))
    return np.array(keep, dtype=int)


def detect_in_tile(detector, frame: np.ndarray, tile: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Face boxes [N, 4] (x0, y0, x1, y1 in frame pixels) and scores [N] found in one region ``tile`` (x0, y0,
    width, height) of an RGB uint8 ``frame`` [H, W, 3]."""
    x0, y0, width, height = tile
    scale = min(1.0, TILE_PX / max(width, height))
    view = frame[y0:y0 + height, x0:x0 + width]
    small = (cv2.resize(view, (max(1, round(width * scale)), max(1, round(height * scale))),
                        interpolation=cv2.INTER_AREA) if scale < 1 else view)
    result = detector.detect(mp_image(small))
    boxes = np.array([[d.bounding_box.origin_x, d.bounding_box.origin_y,
                       d.bounding_box.origin_x + d.bounding_box.width, d.bounding_box.origin_y + d.bounding_box.height]
                      for d in result.detections], dtype=np.float64).reshape(-1, 4)
    scores = np.array([d.categories[0].score for d in result.detections], dtype=np.float64)
    return boxes / scale + np.array([x0, y0, x0, y0]), scores


def merge(found: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Boxes [N, 4] of the faces in several regions' (boxes, scores) from `detect_in_tile`, duplicates merged
    (`suppress`)."""
    boxes = np.concatenate([b for b, _ in found])
    scores = np.concatenate([s for _, s in found])
    return boxes[suppress(boxes, scores)] if len(boxes) else boxes

