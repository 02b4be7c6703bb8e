"""Which tracklets (unbroken runs of one face within a shot) are the same person: re-identification by
appearance, never by position, so a person seen again after a cut or a loss keeps their identity.

A tracklet's descriptor is the mean hue-saturation histogram of the middle of its face (skin, eyes, brows,
lips; `crop_landmarks.HIST_BINS`); two descriptors differ by their Hellinger distance (0 to 1). Measured on
the project's two real talking faces, each shown at 160, 320 and 900 pixels and at four moments: one
person's tracklets differ by at most 0.18, the two people by at least 0.26. (A face-shape descriptor from
pose-normalised rigid landmarks, and an aligned grey face patch, were measured too and told the two apart
worse than they told one person's moments apart, so they are not used.) Tracklets are grouped greedily,
longest first: each joins the nearest person it never shares a frame with, if nearer than `SAME_PERSON`,
else starts a new person. People who share a frame are never merged, whatever they look like.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SAME_PERSON = 0.22  # Hellinger distance below which two tracklets are one person


@dataclass
class Tracklet:
    """One face followed through consecutive frames of one shot, from frame ``start``: per-frame arkit58 rows
    [58] and boxes [4] (fractions of the frame), the sum of its histograms [B], and the crop of the frame
    where the face was largest (``thumbnail`` [S, S, 3] uint8, ``thumbnail_area`` its box in pixels²)."""

    start: int
    rows: list[np.ndarray] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    hist_sum: np.ndarray | float = 0.0
    thumbnail: np.ndarray | None = None
    thumbnail_area: float = -1.0

    @property
    def end(self) -> int:
        """One past the last frame."""
        return self.start + len(self.rows)

    def descriptor(self) -> np.ndarray:
        """Mean histogram [B] (sums to 1)."""
        return self.hist_sum / len(self.rows)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Hellinger distance (0 = same, 1 = disjoint) of two histograms [B] that sum to 1."""
    return float(np.sqrt(max(0.0, 1.0 - float(np.sqrt(a * b).sum()))))


def group(tracklets: list[Tracklet]) -> list[list[Tracklet]]:
    """Tracklets grouped into people (module docstring); each person's tracklets never share a frame."""
    people: list[list[Tracklet]] = []
    for tracklet in sorted(tracklets, key=lambda t: (-len(t.rows), t.start)):
        best, best_distance = None, SAME_PERSON
        for person in people:
            if any(t.start < tracklet.end and tracklet.start < t.end for t in person):
                continue
            mean = sum(t.hist_sum for t in person) / sum(len(t.rows) for t in person)
            gap = distance(tracklet.descriptor(), mean)
            if gap < best_distance:
                best, best_distance = person, gap
        if best is None:
            people.append([tracklet])
        else:
            best.append(tracklet)
    return people
