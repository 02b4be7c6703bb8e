"""BEAT motion capture I/O: BVH skeletons and motion, forward kinematics, face JSON, Live Link Face CSV.

BVH conventions used throughout: angles are degrees; a joint's rotation channels listed as
``Xrotation Yrotation Zrotation`` compose as R = Rx · Ry · Rz (intrinsic, in listed order); a joint's
world position is ``parent position + parent world rotation · offset``. Rotation arrays ``[F, J, 3]``
keep each joint's three angles in its own channel order (``Skeleton.rotation_orders``).

BEAT's ``spine_neck_141`` (spec beat141) takes the 47 joints ``motion.BEAT_JOINTS47`` (file order) with
their three angles as written (X, Y, Z for BEAT), every 8th frame of the 120 fps capture (15 fps).
The face comes as JSON ``{"names": [51 ARKit names], "frames": [{"weights": [51], "time": s}]}``.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from listenerctl.atomic import atomic_file
from listenerctl.errors import ListenerctlError
from listenerctl.motion import BEAT_JOINTS47, Motion, get_spec, resample

BEAT_FPS = 15.0
_AXES = "XYZ"
_STRIDE_TOLERANCE = 0.01  # a frame-rate ratio within 1 % of an integer is decimated by frame skipping

# Live Link Face CSV columns, in the order the app writes them: the 52 ARKit shapes in ARKit's own
# order (note JawRight before JawLeft and MouthRight before MouthLeft), then head and eye rotations.
LIVE_LINK_BLENDSHAPES = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft",
    "EyeSquintLeft", "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight",
    "EyeLookOutRight", "EyeLookUpRight", "EyeSquintRight", "EyeWideRight", "JawForward", "JawRight",
    "JawLeft", "JawOpen", "MouthClose", "MouthFunnel", "MouthPucker", "MouthRight", "MouthLeft",
    "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft", "MouthFrownRight", "MouthDimpleLeft",
    "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight", "MouthRollLower", "MouthRollUpper",
    "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft", "MouthPressRight", "MouthLowerDownLeft",
    "MouthLowerDownRight", "MouthUpperUpLeft", "MouthUpperUpRight", "BrowDownLeft", "BrowDownRight",
    "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft",
    "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight", "TongueOut",
)
LIVE_LINK_ROTATIONS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                       "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
LIVE_LINK_COLUMNS = ("Timecode", "BlendShapeCount") + LIVE_LINK_BLENDSHAPES + LIVE_LINK_ROTATIONS


@dataclass(frozen=True, eq=False)
class Skeleton:
    """A BVH hierarchy: J joints in file order (parents before children).

    names [J]; parents [J] int (-1 for the root); offsets [J, 3] rest offset from the parent in file
    units (cm for BEAT); channels [J] the channel names of each joint as in the header;
    end_sites {joint index: [3] offset of its End Site}.
    """

    names: tuple[str, ...]
    parents: np.ndarray
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    end_sites: dict[int, np.ndarray]

    @property
    def num_joints(self) -> int:
        return len(self.names)

    @property
    def rotation_orders(self) -> tuple[str, ...]:
        """Per joint, the axes of its three rotation channels in file order, e.g. "XYZ"."""
        return tuple("".join(c[0] for c in chans if c.endswith("rotation")) for chans in self.channels)

    def index(self, name: str) -> int:
        return self.names.index(name)


@dataclass
class BvhClip:
    """A BVH file's content: rotations [F, J, 3] degrees (channel order), root_translation [F, 3]
    (x, y, z in file units; zeros when the root has no position channels), seconds per frame."""

    skeleton: Skeleton
    rotations: np.ndarray
    root_translation: np.ndarray
    frame_time: float

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time


def _parse_hierarchy(tokens: list[str]) -> Skeleton:
    """Build the skeleton from the whitespace tokens of the HIERARCHY section."""
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    end_sites: dict[int, np.ndarray] = {}
    open_blocks: list[tuple[str, int]] = []  # ("joint" | "end", joint index) per open brace
    pending: tuple[str, int] | None = None
    i = 1 if tokens and tokens[0] == "HIERARCHY" else 0
    while i < len(tokens):
        word = tokens[i]
        if word in ("ROOT", "JOINT"):
            joints_open = [j for kind, j in open_blocks if kind == "joint"]
            parents.append(joints_open[-1] if joints_open else -1)
            names.append(tokens[i + 1])
            offsets.append([0.0, 0.0, 0.0])
            channels.append(())
            pending = ("joint", len(names) - 1)
            i += 2
        elif word == "End":
            pending = ("end", open_blocks[-1][1])
            i += 2
        elif word == "{":
            open_blocks.append(pending)
            i += 1
        elif word == "}":
            open_blocks.pop()
            i += 1
        elif word == "OFFSET":
            kind, joint = open_blocks[-1]
            values = [float(v) for v in tokens[i + 1:i + 4]]
            if kind == "joint":
                offsets[joint] = values
            else:
                end_sites[joint] = np.array(values)
            i += 4
        elif word == "CHANNELS":
            count = int(tokens[i + 1])
            channels[open_blocks[-1][1]] = tuple(tokens[i + 2:i + 2 + count])
            i += 2 + count
        else:
            raise ValueError(f"unexpected word {word!r}")
    if not names or open_blocks:
        raise ValueError("no complete joint hierarchy")
    return Skeleton(tuple(names), np.array(parents), np.array(offsets, dtype=np.float64),
                    tuple(channels), end_sites)


def _check_channels(skeleton: Skeleton) -> None:
    """Every joint needs three rotation channels; only the root may carry (three) position channels."""
    for j, chans in enumerate(skeleton.channels):
        unknown = set(chans) - {f"{axis}{kind}" for axis in _AXES for kind in ("rotation", "position")}
        if unknown:
            raise ListenerctlError(f"BVH joint {skeleton.names[j]} has unsupported channels "
                                   f"{', '.join(sorted(unknown))}.")
        rotations = [c for c in chans if c.endswith("rotation")]
        positions = [c for c in chans if c.endswith("position")]
        if len(rotations) != 3 or sorted(r[0] for r in rotations) != list(_AXES):
            raise ListenerctlError(f"BVH joint {skeleton.names[j]} needs X, Y and Z rotation channels, "
                                   f"it has {' '.join(chans) or 'none'}.")
        if positions and (j != 0 or sorted(p[0] for p in positions) != list(_AXES)):
            raise ListenerctlError(f"BVH joint {skeleton.names[j]} has position channels; only the root "
                                   "may carry X, Y and Z positions.")


def _channel_columns(skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """Motion-line columns of the rotations [J, 3] (channel order) and of the root x, y, z [3] (-1: none)."""
    rotation_cols = np.zeros((skeleton.num_joints, 3), dtype=np.int64)
    translation_cols = np.full(3, -1, dtype=np.int64)
    col = 0
    for j, chans in enumerate(skeleton.channels):
        k = 0
        for name in chans:
            if name.endswith("rotation"):
                rotation_cols[j, k] = col
                k += 1
            else:
                translation_cols[_AXES.index(name[0])] = col
            col += 1
    return rotation_cols, translation_cols


def read_bvh(path: str | Path) -> BvhClip:
    """Read a BVH file: hierarchy, rotations [F, J, 3] degrees and root translation [F, 3].

    When the header's ``Frames:`` count is about k times the motion rows present (k >= 2), the rows
    are taken as every k-th frame and the frame time is scaled by k, so the clip keeps the header's
    duration (DiffSHEG's BEAT files keep the 120 fps header over 15 fps rows).
    """
    path = Path(path)
    if not path.is_file():
        raise ListenerctlError(f"BVH file {path} does not exist.")
    sections = re.split(r"^\s*MOTION\s*$", path.read_text(encoding="utf-8", errors="replace"),
                        maxsplit=1, flags=re.MULTILINE)
    try:
        if len(sections) != 2:
            raise ValueError("no MOTION section")
        head, motion = sections
        skeleton = _parse_hierarchy(head.split())
        words = motion.split()
        if words[0] != "Frames:" or words[2:4] != ["Frame", "Time:"]:
            raise ValueError("no 'Frames:' and 'Frame Time:' lines")
        header_frames, frame_time = int(words[1]), float(words[4])
        values = np.array(words[5:], dtype=np.float64)
    except (ValueError, IndexError, TypeError) as exc:
        raise ListenerctlError(f"{path} is not a readable BVH file ({exc}).") from None
    _check_channels(skeleton)
    num_channels = sum(len(c) for c in skeleton.channels)
    rows = values.size // num_channels
    if rows == 0 or values.size % num_channels or frame_time <= 0:
        raise ListenerctlError(f"{path} holds {values.size} motion values, not whole frames of "
                               f"{num_channels} channels at a positive frame time.")
    stride = max(1, round(header_frames / rows))
    if abs(header_frames / (stride * rows) - 1.0) > _STRIDE_TOLERANCE:
        raise ListenerctlError(f"{path} announces {header_frames} frames but holds {rows}.")
    table = values.reshape(rows, num_channels)
    rotation_cols, translation_cols = _channel_columns(skeleton)
    translation = np.where(translation_cols >= 0, table[:, np.maximum(translation_cols, 0)], 0.0)
    return BvhClip(skeleton, table[:, rotation_cols], translation, frame_time * stride)


def _format_hierarchy(skeleton: Skeleton) -> list[str]:
    """HIERARCHY section lines, tab-indented, joints and End Sites as in the source header."""
    children: dict[int, list[int]] = {j: [] for j in range(-1, skeleton.num_joints)}
    for j, parent in enumerate(skeleton.parents):
        children[int(parent)].append(j)

    def block(j: int, depth: int) -> list[str]:
        pad = "\t" * depth
        lines = [f"{pad}{'ROOT' if skeleton.parents[j] < 0 else 'JOINT'} {skeleton.names[j]}", f"{pad}{{",
                 f"{pad}\tOFFSET {' '.join(f'{v:.6f}' for v in skeleton.offsets[j])}",
                 f"{pad}\tCHANNELS {len(skeleton.channels[j])} {' '.join(skeleton.channels[j])}"]
        for child in children[j]:
            lines += block(child, depth + 1)
        if j in skeleton.end_sites:
            lines += [f"{pad}\tEnd Site", f"{pad}\t{{",
                      f"{pad}\t\tOFFSET {' '.join(f'{v:.6f}' for v in skeleton.end_sites[j])}", f"{pad}\t}}"]
        return lines + [f"{pad}}}"]

    return ["HIERARCHY"] + [line for root in children[-1] for line in block(root, 0)]


def write_bvh(path: str | Path, skeleton: Skeleton, rotations: np.ndarray, fps: float,
              root_translation: np.ndarray | None = None) -> None:
    """Write a BVH file (atomically): ``skeleton``'s header, rotations [T, J, 3] degrees in each
    joint's channel order, root translation [T, 3] x, y, z (zeros when None), frame time 1 / fps."""
    rotations = np.asarray(rotations, dtype=np.float64)
    if rotations.ndim != 3 or rotations.shape[1:] != (skeleton.num_joints, 3):
        raise ValueError(f"rotations need shape [T, {skeleton.num_joints}, 3], got {rotations.shape}")
    frames = rotations.shape[0]
    translation = (np.zeros((frames, 3)) if root_translation is None
                   else np.asarray(root_translation, dtype=np.float64))
    if translation.shape != (frames, 3):
        raise ValueError(f"root_translation needs shape [{frames}, 3], got {translation.shape}")
    rotation_cols, translation_cols = _channel_columns(skeleton)
    table = np.zeros((frames, sum(len(c) for c in skeleton.channels)))
    table[:, rotation_cols] = rotations
    table[:, translation_cols[translation_cols >= 0]] = translation[:, translation_cols >= 0]
    lines = _format_hierarchy(skeleton) + ["MOTION", f"Frames: {frames}", f"Frame Time: {1.0 / fps:.6f}"]
    with atomic_file(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
        np.savetxt(fh, table, fmt="%.6f")


def _euler_matrices(angles_deg: np.ndarray, orders: tuple[str, ...]) -> np.ndarray:
    """Rotation matrices [..., J, 3, 3] of Euler angles [..., J, 3] degrees: R = R(a0) · R(a1) · R(a2)
    about each joint's axes ``orders[j]``, each elementary rotation right-handed about X, Y or Z."""
    axis = np.array([[_AXES.index(a) for a in order] for order in orders])  # [J, 3]
    joint = np.arange(len(orders))
    theta = np.deg2rad(angles_deg)
    cos, sin = np.cos(theta), np.sin(theta)
    result = None
    for k in range(3):
        a, b, c = axis[:, k], (axis[:, k] + 1) % 3, (axis[:, k] + 2) % 3  # rotation in the b-c plane
        elementary = np.zeros(theta.shape[:-1] + (3, 3))
        elementary[..., joint, a, a] = 1.0
        elementary[..., joint, b, b] = elementary[..., joint, c, c] = cos[..., k]
        elementary[..., joint, b, c] = -sin[..., k]
        elementary[..., joint, c, b] = sin[..., k]
        result = elementary if result is None else result @ elementary
    return result


def forward_kinematics(skeleton: Skeleton, rotations_deg: np.ndarray,
                       root_translation: np.ndarray | None = None) -> np.ndarray:
    """World joint positions [T, J, 3] (file units) from rotations [T, J, 3] degrees in channel order.

    The root sits at its offset plus ``root_translation`` [T, 3] (none: at its offset). Joints of equal
    depth are placed together, so the work is vectorised over frames and over each tree level.
    """
    rotations_deg = np.asarray(rotations_deg, dtype=np.float64)
    local = _euler_matrices(rotations_deg, skeleton.rotation_orders)  # [T, J, 3, 3]
    frames, joints = rotations_deg.shape[:2]
    world_rot = np.empty_like(local)
    positions = np.empty((frames, joints, 3))
    depth = np.zeros(joints, dtype=np.int64)
    for j, parent in enumerate(skeleton.parents):
        depth[j] = depth[parent] + 1 if parent >= 0 else 0
    roots = np.flatnonzero(depth == 0)
    world_rot[:, roots] = local[:, roots]
    positions[:, roots] = skeleton.offsets[roots]
    if root_translation is not None:
        positions[:, roots] += np.asarray(root_translation, dtype=np.float64)[:, None]
    for level in range(1, depth.max() + 1):
        js = np.flatnonzero(depth == level)
        ps = skeleton.parents[js]
        positions[:, js] = positions[:, ps] + np.einsum("tjab,jb->tja", world_rot[:, ps], skeleton.offsets[js])
        world_rot[:, js] = world_rot[:, ps] @ local[:, js]
    return positions


def beat141_joint_indices(skeleton: Skeleton) -> np.ndarray:
    """Skeleton indices [47] of ``BEAT_JOINTS47``; each must rotate in X, Y, Z channel order."""
    missing = [name for name in BEAT_JOINTS47 if name not in skeleton.names]
    if missing:
        raise ListenerctlError(f"The skeleton is not BEAT's: it lacks joints {', '.join(missing)}.")
    indices = np.array([skeleton.index(name) for name in BEAT_JOINTS47])
    all_orders = skeleton.rotation_orders
    orders = {all_orders[j] for j in indices}
    if orders != {_AXES}:
        raise ListenerctlError(f"BEAT joints must rotate in X, Y, Z channel order, found {sorted(orders)}.")
    return indices


def expand_beat141(skeleton: Skeleton, beat141: np.ndarray) -> np.ndarray:
    """Full-skeleton rotations [T, J, 3] degrees from beat141 rows [T, 141]; other joints at rest (0)."""
    beat141 = np.asarray(beat141, dtype=np.float64)
    rotations = np.zeros((beat141.shape[0], skeleton.num_joints, 3))
    rotations[:, beat141_joint_indices(skeleton)] = beat141.reshape(-1, len(BEAT_JOINTS47), 3)
    return rotations


def _at_fps(frames: np.ndarray, src_fps: float, fps: float) -> np.ndarray:
    """Frames [F, ...] at ``src_fps`` brought to ``fps``: every k-th frame when src/fps is an integer k
    (as BEAT decimates 120 -> 15 fps and 60 -> 15 fps), linear resampling otherwise."""
    ratio = src_fps / fps
    stride = round(ratio)
    if stride >= 1 and abs(ratio - stride) <= _STRIDE_TOLERANCE * stride:
        return frames[::stride]
    return resample(frames, src_fps, fps, axis=0)


def load_beat_bvh(path: str | Path, fps: float = BEAT_FPS) -> tuple[Motion, Skeleton]:
    """A BEAT BVH as beat141 motion [1, T, 141] at ``fps`` (120 fps capture: every 8th frame,
    T = ceil(F / 8)), with the file's skeleton."""
    clip = read_bvh(path)
    rows = clip.rotations[:, beat141_joint_indices(clip.skeleton)].reshape(len(clip.rotations), -1)
    return Motion(_at_fps(rows, clip.fps, fps)[None], "beat141", fps), clip.skeleton


def write_beat_bvh(path: str | Path, motion: Motion, skeleton: Skeleton, sample: int = 0) -> None:
    """Write sample ``sample`` of a beat141 motion as a BVH over ``skeleton`` (e.g. a BEAT file's):
    the 47 joints animated, all other joints at rest, root at the origin, frame time 1 / motion.fps."""
    if motion.spec != "beat141":
        raise ValueError(f"write_beat_bvh needs beat141 motion, got {motion.spec}")
    write_bvh(path, skeleton, expand_beat141(skeleton, motion.data[sample]), motion.fps)


def _named_columns(motion: Motion, sample: int, names: tuple[str, ...]) -> np.ndarray:
    """Sample ``sample``'s channels named ``names`` (case-insensitive) as float64 [T, len(names)];
    channels the motion's spec lacks are zero."""
    lookup = {c.lower(): i for i, c in enumerate(get_spec(motion.spec).channels)}
    data = motion.data[sample].astype(np.float64)
    out = np.zeros((motion.num_frames, len(names)))
    for k, name in enumerate(names):
        if name.lower() in lookup:
            out[:, k] = data[:, lookup[name.lower()]]
    return out


def read_beat_face_json(path: str | Path, fps: float = BEAT_FPS) -> Motion:
    """BEAT face JSON as beatface51 motion [1, T, 51] at ``fps``; names are matched case-insensitively,
    the source rate comes from the frame times (BEAT: 60 fps, every 4th frame taken for 15 fps)."""
    path = Path(path)
    if not path.is_file():
        raise ListenerctlError(f"Face JSON file {path} does not exist.")
    channels = get_spec("beatface51").channels
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        column = {str(n).lower(): i for i, n in enumerate(content["names"])}
        weights = np.array([frame["weights"] for frame in content["frames"]], dtype=np.float64)
        times = np.array([frame["time"] for frame in content["frames"]], dtype=np.float64)
    except (ValueError, KeyError, TypeError) as exc:
        reason = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ListenerctlError(f"{path} is not a BEAT face JSON file ({reason}).") from None
    missing = [c for c in channels if c.lower() not in column]
    if missing:
        raise ListenerctlError(f"{path} lacks the blendshapes {', '.join(missing)}.")
    steps = np.diff(times)
    width = len(content["names"])
    if weights.ndim != 2 or weights.shape[1] != width or len(times) < 2 or np.any(steps <= 0):
        raise ListenerctlError(f"{path} needs two or more frames of {width} weights at increasing times.")
    rows = weights[:, [column[c.lower()] for c in channels]]
    return Motion(_at_fps(rows, 1.0 / float(np.median(steps)), fps)[None], "beatface51", fps)


def write_beat_face_json(path: str | Path, motion: Motion, sample: int = 0) -> None:
    """Write a motion's 51 BEAT blendshapes (from beatface51 or arkit58) as BEAT face JSON, frame i at
    time i / fps seconds, names in ARKit's alphabetical order (the order of BEAT's face statistics)."""
    names = get_spec("beatface51").channels
    if not set(names) <= set(get_spec(motion.spec).channels):
        raise ValueError(f"{motion.spec} motion lacks BEAT's 51 blendshapes")
    weights = _named_columns(motion, sample, names)
    frames = [{"weights": [round(float(w), 6) for w in row], "time": round(i / motion.fps, 6)}
              for i, row in enumerate(weights)]
    with atomic_file(path, "w") as fh:
        json.dump({"names": list(names), "frames": frames}, fh)


def _timecode(frame: int, fps: float) -> str:
    """Live Link Face timecode ``HH:MM:SS:FF.fff``: frame number FF within the second, sub-frame fraction."""
    seconds = frame / fps
    whole = int(np.floor(seconds + 1e-9))
    in_second = (seconds - whole) * fps
    ff = int(np.floor(in_second + 1e-6))
    millis = min(999, max(0, round((in_second - ff) * 1000)))
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}:{ff:02d}.{millis:03d}"


def write_live_link_csv(path: str | Path, motion: Motion, sample: int = 0) -> None:
    """Write a face motion (arkit58 or beatface51) as a Live Link Face CSV (``LIVE_LINK_COLUMNS``).

    BlendShapeCount is 61 (52 shapes + 9 rotations). HeadYaw/HeadPitch/HeadRoll are the motion's head
    angles in radians (0 without them); eye rotations are 0 (gaze lives in the eyeLook* shapes).
    """
    shapes = _named_columns(motion, sample, LIVE_LINK_BLENDSHAPES)
    head = _named_columns(motion, sample, ("headYaw", "headPitch", "headRoll"))
    eyes = np.zeros((motion.num_frames, len(LIVE_LINK_ROTATIONS) - 3))
    values = np.concatenate([shapes, head, eyes], axis=1)
    count = len(LIVE_LINK_BLENDSHAPES) + len(LIVE_LINK_ROTATIONS)
    with atomic_file(path, "w") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(LIVE_LINK_COLUMNS)
        for i, row in enumerate(values):
            writer.writerow([_timecode(i, motion.fps), count, *(f"{v:.6f}" for v in row)])


# ---------------------------------------------------------------- speakers and skeletons in checkpoint cards

_BEAT_NAME = re.compile(r"^\d+_([a-z]+)_", re.IGNORECASE)


def beat_speaker(stem: str) -> str:
    """BEAT speaker name of a file stem like '2_scott_0_1_1' ('scott'); the stem itself otherwise."""
    match = _BEAT_NAME.match(stem)
    return match.group(1).lower() if match else stem


def skeleton_to_card(skeleton: Skeleton) -> dict:
    """A `Skeleton` as JSON-ready lists: names, parents, offsets, channels, end_sites."""
    return {"names": list(skeleton.names), "parents": [int(p) for p in skeleton.parents],
            "offsets": np.asarray(skeleton.offsets).round(6).tolist(), "channels": [list(c) for c in skeleton.channels],
            "end_sites": {str(j): np.asarray(v).round(6).tolist() for j, v in skeleton.end_sites.items()}}


def skeleton_from_card(card: dict) -> Skeleton:
    """The `Skeleton` stored by `skeleton_to_card`; one sentence when the card lacks it."""
    try:
        entry = card["skeleton"]
        return Skeleton(tuple(entry["names"]), np.array(entry["parents"], dtype=np.int64),
                        np.array(entry["offsets"], dtype=np.float64), tuple(tuple(c) for c in entry["channels"]),
                        {int(j): np.array(v, dtype=np.float64) for j, v in entry["end_sites"].items()})
    except (KeyError, TypeError, ValueError):
        raise ListenerctlError("the diffsheg checkpoint card holds no readable BEAT skeleton header.") from None
