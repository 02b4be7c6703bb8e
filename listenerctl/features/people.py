"""Every person in view of a video, tracked over the whole recording (DESIGN §2): the raw per-person
arkit58, where each person was found, and their face boxes, before one of them is chosen as the speaker."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from listenerctl.conditioning import FaceFeatures
from listenerctl.errors import ListenerctlError, NoFaceError
from listenerctl.features.face import face_features


@dataclass
class People:
    """P people tracked through T frames at ``fps``, numbered from the image's left by their median face centre.

    arkit [P, T, 58] float32 per-frame arkit58 (head translation in camera-frame cm), NaN where not found;
    found [P, T] bool; boxes [P, T, 4] float32 face box x0, y0, x1, y1 as fractions of the frame's width and
    height, NaN where not found; thumbnails [P, S, S, 3] uint8, one face crop per person for reports;
    frame_size (width, height) of the input video in pixels, where known.
    """

    arkit: np.ndarray
    found: np.ndarray
    boxes: np.ndarray
    thumbnails: np.ndarray
    fps: float
    frame_size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.found)

    @property
    def num_frames(self) -> int:
        return self.found.shape[1]

    def face(self, person: int) -> FaceFeatures:
        """One person's face features (lost frames interpolated, translation relative to their resting head)."""
        if not self.found[person].any():
            raise NoFaceError(f"person {person} is never found.")
        return face_features(self.arkit[person].copy(), self.found[person])

    def _require_someone(self) -> None:
        if len(self) == 0:
            raise NoFaceError("no face was found in any frame of the video.")

    def largest(self) -> int:
        """The person whose median face box (area, over the frames where found) is the largest."""
        self._require_someone()
        areas = [np.median(np.prod(self.boxes[p, self.found[p], 2:] - self.boxes[p, self.found[p], :2], axis=1))
                 for p in range(len(self))]
        return int(np.argmax(areas))

    def nth(self, index: int) -> int:
        """Person ``index`` (0 = leftmost), checked: one sentence naming how many people were seen if out of range."""
        self._require_someone()
        if not 0 <= index < len(self):
            seen = "1 person was" if len(self) == 1 else f"{len(self)} people were"
            raise ListenerctlError(f"face {index} was asked for but {seen} seen (faces are numbered 0 to "
                                   f"{len(self) - 1} from the left).")
        return index

    def nearest(self, x: float, y: float) -> int:
        """The person whose face box centre is nearest the point (x, y) in pixels of the input video, as the
        median distance over the frames where they are found (needs ``frame_size``)."""
        self._require_someone()
        if self.frame_size is None:
            raise ValueError("People.nearest needs frame_size, the input video's size in pixels")
        width, height = self.frame_size
        if not (0 <= x <= width and 0 <= y <= height):
            raise ListenerctlError(f"the point {x:g},{y:g} lies outside the {width}x{height} video.")
        centres = (self.boxes[..., :2] + self.boxes[..., 2:]) / 2 * np.array([width, height])
        gaps = np.hypot(centres[..., 0] - x, centres[..., 1] - y)
        return int(np.argmin([np.median(gaps[p, self.found[p]]) for p in range(len(self))]))

    def choose(self, face: str = "largest", at: tuple[float, float] | None = None) -> tuple[int, str]:
        """The person to condition on and why, in words: the one nearest the pixel point ``at`` when given,
        else ``face`` = 'largest' (`largest`) or a number N (`nth`)."""
        if at is not None:
            return self.nearest(*at), f"nearest the point {at[0]:g},{at[1]:g}"
        if face == "largest":
            return self.largest(), "the largest face"
        return self.nth(parse_face(face)), f"face {face} from the left"


def parse_face(face: str) -> int | str:
    """A ``--face`` value checked: 'auto' or 'largest' as is, else a face number ≥ 0; one sentence otherwise."""
    if face in ("auto", "largest"):
        return face
    if not face.isdigit():
        raise ListenerctlError(f"--face takes 'auto', 'largest' or a face number (0 = the leftmost), not {face!r}.")
    return int(face)


def parse_point(text: str) -> tuple[float, float]:
    """A ``--face-at X,Y`` value (pixels of the input video) as a pair of numbers; one sentence otherwise."""
    try:
        x, y = (float(part) for part in text.split(","))
    except ValueError:
        raise ListenerctlError(f"--face-at takes a pixel point X,Y such as 640,360, not {text!r}.") from None
    return x, y
