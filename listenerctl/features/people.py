"""Every person in view of a video, tracked over the whole recording (DESIGN §2): the raw per-person
arkit58, where each person was found, and their face boxes, before one of them is chosen as the speaker."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from listenerctl.conditioning import FaceFeatures
from listenerctl.errors import NoFaceError
from listenerctl.features.face import face_features


@dataclass
class People:
    """P people tracked through T frames at ``fps``, numbered from the image's left by their median face centre.

    arkit [P, T, 58] float32 per-frame arkit58 (head translation in camera-frame cm), NaN where not found;
    found [P, T] bool; boxes [P, T, 4] float32 face box x0, y0, x1, y1 as fractions of the frame's width and
    height, NaN where not found; thumbnails [P, S, S, 3] uint8, one face crop per person for reports.
    """

    arkit: np.ndarray
    found: np.ndarray
    boxes: np.ndarray
    thumbnails: np.ndarray
    fps: float

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
