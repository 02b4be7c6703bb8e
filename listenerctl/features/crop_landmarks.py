"""Face landmarks of one face from a crop around it, mapped back to the whole frame.

The crop is a square `CROP_SCALE` × the face box's longer side around its centre (black beyond the frame's
edges), resized to `CROP_PX` pixels, the scale at which the landmarker sees faces well whatever their size
in the frame. Head pose from the crop's facial transformation matrix:

- rotation is taken as the landmarker reports it for the crop, i.e. relative to the line of sight through
  the crop's centre (no correction for where the face sits in the frame). That is right for split screens and
  video-call grids, where each panel has its own camera, and within a few degrees for faces near the middle
  of one wide shot (off-centre faces in a wide shot read as turned toward the camera by up to the ray angle).
- translation is moved into the whole frame's camera: MediaPipe's virtual camera has a vertical field of
  view of `FOV_Y_DEG` over the image height, so a face seen in a crop of side s looks frame-height / s times
  nearer than in the whole frame; depth is scaled by that, and x, y follow the face's projected centre.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from listenerctl.features.face import arkit_row, landmark_boxes, mp_image
from listenerctl.features.face_descriptors import colour, texture

CROP_SCALE = 2.0  # crop side / face box's longer side
CROP_PX = 256  # crop side in pixels given to the landmarker
THUMB_PX = 96  # side of a person's thumbnail (tracking, contact sheets)
FOV_Y_DEG = 63.0  # vertical field of view of MediaPipe's face-geometry camera
LANDMARK_FACES = 2  # faces the landmarker may return per crop; the one nearest the crop's centre is kept


@dataclass
class CropFace:
    """One face found in a crop: ``arkit`` [58] (translation in the whole frame's camera, cm), ``box`` [4]
    landmark bounding box x0, y0, x1, y1 in frame pixels, and its `face_descriptors`: ``colour`` [64] and
    ``texture`` [944]."""

    arkit: np.ndarray
    box: np.ndarray
    colour: np.ndarray
    texture: np.ndarray


def crop_square(frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """The `CROP_PX` square RGB crop [S, S, 3] around ``box`` [4] (frame pixels), black outside the frame, and
    its origin x0, y0 and side in frame pixels."""
    side = max(8, int(round(CROP_SCALE * max(box[2] - box[0], box[3] - box[1]))))
    x0 = int(round((box[0] + box[2]) / 2 - side / 2))
    y0 = int(round((box[1] + box[3]) / 2 - side / 2))
    height, width = frame.shape[:2]
    canvas = np.zeros((side, side, 3), np.uint8)
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
    if xb > xa and yb > ya:
        canvas[ya - y0:yb - y0, xa - x0:xb - x0] = frame[ya:yb, xa:xb]
    return cv2.resize(canvas, (CROP_PX, CROP_PX), interpolation=cv2.INTER_AREA), x0, y0, side


def face_thumbnail(frame: np.ndarray, box: np.ndarray) -> np.ndarray:
    """A `THUMB_PX` square crop [S, S, 3] of the face ``box`` [4] (pixels), with a little margin."""
    crop, _, _, _ = crop_square(frame, box)  # twice the face's size; keep the middle 65 %
    margin = int(round(0.175 * crop.shape[0]))
    return cv2.resize(crop[margin:-margin, margin:-margin], (THUMB_PX, THUMB_PX), interpolation=cv2.INTER_AREA)


def frame_translation(crop_translation: np.ndarray, origin: tuple[float, float], side: float,
                      frame_size: tuple[int, int]) -> np.ndarray:
    """Head translation [3] (cm) in the whole frame's camera from the one [3] the landmarker reports in a
    square crop of ``side`` pixels at ``origin`` (x0, y0) of a frame of ``frame_size`` (width, height)."""
    tan = np.tan(np.radians(FOV_Y_DEG) / 2)
    x_c, y_c, z_c = crop_translation
    u = 0.5 + x_c / -z_c / (2 * tan)  # the head's projected centre in the crop, fractions of its side
    v = 0.5 - y_c / -z_c / (2 * tan)
    width, height = frame_size
    x, y = origin[0] + u * side, origin[1] + v * side
    z = z_c * height / side
    return np.array([-z * (x - width / 2) / (height / 2) * tan, z * (y - height / 2) / (height / 2) * tan, z])


def landmarks_in_crop(landmarker, frame: np.ndarray, box: np.ndarray) -> CropFace | None:
    """The face nearest the centre of the crop around ``box`` [4] (frame pixels) of an RGB uint8 ``frame``
    [H, W, 3], found by an IMAGE-mode ``landmarker``; None when the crop holds no face."""
    crop, x0, y0, side = crop_square(frame, box)
    result = landmarker.detect(mp_image(crop))
    if not result.face_landmarks:
        return None
    boxes = landmark_boxes(result)  # [F, 4], fractions of the crop
    face = int(np.argmin(np.abs((boxes[:, :2] + boxes[:, 2:]) / 2 - 0.5).sum(axis=1)))
    pts = np.array([(p.x, p.y, p.z) for p in result.face_landmarks[face]])
    crop_box = boxes[face] * CROP_PX
    matrix = np.asarray(result.facial_transformation_matrixes[face], dtype=np.float64)
    arkit = arkit_row(result, face)
    arkit[-3:] = frame_translation(matrix[:3, 3], (x0, y0), side, (frame.shape[1], frame.shape[0]))
    frame_box = crop_box * side / CROP_PX + np.array([x0, y0, x0, y0])
    return CropFace(arkit, frame_box, colour(crop, crop_box), texture(crop, pts))
