"""Motion specs (named channels, frame rate) and the `Motion` container with npz I/O and resampling.

A `Motion` holds a float32 array ``[K, T, D]``: K samples, T frames at ``fps``, D channels of ``spec``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# MediaPipe Face Landmarker blendshape order with `_neutral` dropped; `tongueOut` appended (ARKit has it).
ARKIT52 = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight",
    "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft",
    "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight",
    "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose",
    "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight",
    "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower",
    "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)
# Head rotation in radians, R = Ry(yaw) Rx(pitch) Rz(roll) in MediaPipe's camera frame (x right, y up,
# z toward the viewer; pitch > 0 nods down, yaw > 0 turns to the subject's left); then head translation
# in cm relative to the clip's resting position (see listenerctl.features.face).
HEAD_POSE = ("headPitch", "headYaw", "headRoll", "headTx", "headTy", "headTz")

EMOTION_AUS = ("AU1", "AU2", "AU4", "AU6", "AU7", "AU9", "AU10", "AU12", "AU14", "AU15", "AU17",
               "AU23", "AU24", "AU25", "AU26")
EMOTION_VA = ("valence", "arousal")
EMOTION_EXPRESSIONS = ("Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt")

FLAME_DECA56 = tuple(f"exp{i:02d}" for i in range(50)) + (
    "headPitch", "headYaw", "headRoll", "jawPitch", "jawYaw", "jawRoll")

# BEAT `spine_neck_141`: 47 upper-body joints in BVH file order, 3 Euler angles (degrees) each, in the
# files' channel order Xrotation Yrotation Zrotation. Per arm: shoulder, arm, forearm, hand, 18 finger
# joints. Matches BEAT's shipped 141-D mean/std (tests/test_beat.py): same zero-variance channels,
# std correlation 0.98, mean correlation 0.95 outside the forearms' X/Z angles (which wander by 360°).
BEAT_JOINTS47 = (
    "Spine", "Neck", "Neck1",
    "RightShoulder", "RightArm", "RightForeArm", "RightHand",
    "RightHandMiddle1", "RightHandMiddle2", "RightHandMiddle3",
    "RightHandRing", "RightHandRing1", "RightHandRing2", "RightHandRing3",
    "RightHandPinky", "RightHandPinky1", "RightHandPinky2", "RightHandPinky3",
    "RightHandIndex", "RightHandIndex1", "RightHandIndex2", "RightHandIndex3",
    "RightHandThumb1", "RightHandThumb2", "RightHandThumb3",
    "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand",
    "LeftHandMiddle1", "LeftHandMiddle2", "LeftHandMiddle3",
    "LeftHandRing", "LeftHandRing1", "LeftHandRing2", "LeftHandRing3",
    "LeftHandPinky", "LeftHandPinky1", "LeftHandPinky2", "LeftHandPinky3",
    "LeftHandIndex", "LeftHandIndex1", "LeftHandIndex2", "LeftHandIndex3",
    "LeftHandThumb1", "LeftHandThumb2", "LeftHandThumb3",
)


@dataclass(frozen=True)
class MotionSpec:
    """A named channel layout and its native frame rate (frames per second)."""

    name: str
    channels: tuple[str, ...]
    fps: float

    @property
    def dim(self) -> int:
        return len(self.channels)

    def index(self, channel: str) -> int:
        return self.channels.index(channel)


SPECS: dict[str, MotionSpec] = {
    "arkit58": MotionSpec("arkit58", ARKIT52 + HEAD_POSE, 25.0),
    # REACT2024 FaceVerse coefficients share the 52+3+3 layout but their expression basis differs.
    "faceverse58": MotionSpec("faceverse58", tuple(f"fv{i:02d}" for i in range(52)) + HEAD_POSE, 25.0),
    "emotion25": MotionSpec("emotion25", EMOTION_AUS + EMOTION_VA + EMOTION_EXPRESSIONS, 25.0),
    "deca56": MotionSpec("deca56", FLAME_DECA56, 30.0),
    "beat141": MotionSpec(
        "beat141", tuple(f"{j}_{a}" for j in BEAT_JOINTS47 for a in ("rx", "ry", "rz")), 15.0),
    "beatface51": MotionSpec("beatface51", ARKIT52[:51], 15.0),
}

ARKIT58_DIM = SPECS["arkit58"].dim                    # 58: ARKit blendshapes then head pose
BLENDSHAPE_DIM = len(ARKIT52)                         # 52: the first arkit58 channels, held in [0, 1]
EMOTION25_DIM = SPECS["emotion25"].dim                # 25: AUs, valence / arousal, expression probabilities
ARKIT58_EMOTION25_DIM = ARKIT58_DIM + EMOTION25_DIM   # 83: a face (listener or speaker) as arkit58 then emotion25


def get_spec(name: str) -> MotionSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"unknown motion spec {name!r}; known: {', '.join(SPECS)}") from None


def num_frames(duration_s: float, fps: float) -> int:
    """Frames covering ``duration_s`` seconds at ``fps``: round(duration x fps)."""
    return int(round(duration_s * fps))


def resample(array: np.ndarray, src_fps: float, dst_fps: float, axis: int = -2) -> np.ndarray:
    """Linearly resample ``array`` along ``axis`` (time) from ``src_fps`` to ``dst_fps``.

    Frame i sits at time i / fps; the output covers the same duration, round(T x dst/src) frames.
    """
    if src_fps == dst_fps:
        return array
    t_src = array.shape[axis]
    t_dst = max(1, int(round(t_src * dst_fps / src_fps)))
    x_src = np.arange(t_src) / src_fps
    x_dst = np.minimum(np.arange(t_dst) / dst_fps, x_src[-1])
    moved = np.moveaxis(array, axis, 0)
    idx = np.clip(np.searchsorted(x_src, x_dst, side="right") - 1, 0, t_src - 1)
    nxt = np.minimum(idx + 1, t_src - 1)
    span = np.where(nxt > idx, x_src[nxt] - x_src[idx], 1.0)
    w = ((x_dst - x_src[idx]) / span).reshape((-1,) + (1,) * (moved.ndim - 1))
    out = moved[idx] * (1.0 - w) + moved[nxt] * w
    return np.moveaxis(out.astype(array.dtype, copy=False), 0, axis)



def fit_length(frames: np.ndarray, num_frames: int) -> np.ndarray:
    """Cut or pad (repeating the last row) ``frames`` [T', C] to [num_frames, C]."""
    if len(frames) >= num_frames:
        return frames[:num_frames]
    return np.concatenate([frames, np.repeat(frames[-1:], num_frames - len(frames), axis=0)])

@dataclass
class Motion:
    """Generated or extracted motion: ``data`` float32 [K, T, D] in ``spec`` channels at ``fps``."""

    data: np.ndarray
    spec: str
    fps: float

    def __post_init__(self) -> None:
        self.data = np.asarray(self.data, dtype=np.float32)
        if self.data.ndim == 2:
            self.data = self.data[None]
        dim = get_spec(self.spec).dim
        if self.data.ndim != 3 or self.data.shape[-1] != dim:
            raise ValueError(f"{self.spec} motion needs shape [K, T, {dim}], got {self.data.shape}")

    @property
    def num_samples(self) -> int:
        return self.data.shape[0]

    @property
    def num_frames(self) -> int:
        return self.data.shape[1]

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def channel(self, name: str) -> np.ndarray:
        """One named channel as [K, T]."""
        return self.data[..., get_spec(self.spec).index(name)]

    def resampled(self, fps: float) -> "Motion":
        return Motion(resample(self.data, self.fps, fps, axis=1), self.spec, fps)
