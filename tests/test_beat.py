"""BEAT I/O: BVH read/write round trips, the beat141 selection against BEAT's statistics, forward
kinematics, face JSON and Live Link Face CSV."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from listenerctl.data.beat import (LIVE_LINK_COLUMNS, forward_kinematics, load_beat_bvh, read_beat_face_json,
                                   read_bvh, write_beat_bvh, write_beat_face_json, write_bvh,
                                   write_live_link_csv)
from listenerctl.errors import ListenerctlError
from listenerctl.motion import BEAT_JOINTS47, Motion, get_spec
from helpers import shared_file

BVH = "beat/2_scott_0_1_1.bvh"

TINY_BVH = """HIERARCHY
ROOT Root
{
\tOFFSET 0 0 0
\tCHANNELS 6 Xposition Yposition Zposition Xrotation Yrotation Zrotation
\tJOINT Child
\t{
\t\tOFFSET 1 0 0
\t\tCHANNELS 3 Zrotation Xrotation Yrotation
\t\tJOINT Tip
\t\t{
\t\t\tOFFSET 1 0 0
\t\t\tCHANNELS 3 Xrotation Yrotation Zrotation
\t\t\tEnd Site
\t\t\t{
\t\t\t\tOFFSET 0.5 0 0
\t\t\t}
\t\t}
\t}
}
MOTION
Frames: 2
Frame Time: 0.1
0 0 0 0 0 0 0 0 0 0 0 0
5 0 0 90 0 90 90 0 0 0 0 0
"""


@pytest.fixture(scope="module")
def clip():
    return read_bvh(shared_file(BVH))


@pytest.fixture(scope="module")
def beat_motion():
    return load_beat_bvh(shared_file(BVH))


@pytest.fixture
def tiny_bvh(tmp_path):
    path = tmp_path / "tiny.bvh"
    path.write_text(TINY_BVH)
    return path


def test_reader_parses_hierarchy_and_motion(clip):
    sk = clip.skeleton
    assert sk.num_joints == 75 and sk.names[0] == "Hips" and sk.parents[0] == -1
    parent = {name: sk.names[p] for name, p in zip(sk.names, sk.parents) if p >= 0}
    assert parent["RightHandIndex"] == "RightHand" and parent["RightHandThumb1"] == "RightHandIndex"
    np.testing.assert_allclose(sk.offsets[sk.index("Spine")], [0.0, 6.269896, -2.264934])
    assert set(sk.rotation_orders) == {"XYZ"}
    assert len(sk.end_sites) == 13  # head, ten fingers, two feet
    np.testing.assert_allclose(clip.root_translation[0], [0.00295, -0.00796, -0.01234])
    np.testing.assert_allclose(clip.rotations[0, 0], [-21.00948, -1.5018, -7.117338])


def test_decimated_file_keeps_header_duration(clip):
    # The header announces 7,669 frames at 120 fps; the file holds every 8th of them (957 rows).
    assert clip.rotations.shape == (957, 75, 3)
    assert clip.fps == pytest.approx(15.0, rel=1e-3)
    assert len(clip.rotations) / clip.fps == pytest.approx(7669 / 120, rel=5e-3)


def test_tiny_bvh_channel_orders_and_kinematics(tiny_bvh):
    tiny = read_bvh(tiny_bvh)
    assert tiny.skeleton.rotation_orders == ("XYZ", "ZXY", "XYZ")
    np.testing.assert_allclose(tiny.rotations[1, 1], [90, 0, 0])  # Child's angles in its Z, X, Y order
    positions = forward_kinematics(tiny.skeleton, tiny.rotations, tiny.root_translation)
    # R_root = Rx(90) Rz(90) (channel order) sends +x to +z; Child's Rz(90) then sends the tip's +x to -x.
    np.testing.assert_allclose(positions[1], [[5, 0, 0], [5, 0, 1], [4, 0, 1]], atol=1e-9)
    np.testing.assert_allclose(positions[0], [[0, 0, 0], [1, 0, 0], [2, 0, 0]], atol=1e-9)


def test_bvh_round_trip_keeps_everything(clip, tmp_path):
    out = tmp_path / "copy.bvh"
    write_bvh(out, clip.skeleton, clip.rotations, clip.fps, clip.root_translation)
    again = read_bvh(out)
    assert np.abs(again.rotations - clip.rotations).max() < 1e-4
    assert np.abs(again.root_translation - clip.root_translation).max() < 1e-4
    assert again.skeleton.names == clip.skeleton.names
    assert again.skeleton.channels == clip.skeleton.channels
    np.testing.assert_array_equal(again.skeleton.parents, clip.skeleton.parents)
    np.testing.assert_allclose(again.skeleton.offsets, clip.skeleton.offsets)
    assert again.skeleton.end_sites.keys() == clip.skeleton.end_sites.keys()
    assert again.fps == pytest.approx(clip.fps, rel=1e-4)


def test_beat141_spec_layout():
    channels = get_spec("beat141").channels
    assert len(BEAT_JOINTS47) == 47 and len(channels) == 141
    assert channels[:3] == ("Spine_rx", "Spine_ry", "Spine_rz")
    assert channels[3 * BEAT_JOINTS47.index("LeftForeArm") + 2] == "LeftForeArm_rz"


def test_load_beat_bvh_selects_47_joints(clip, beat_motion):
    motion, skeleton = beat_motion
    assert motion.spec == "beat141" and motion.fps == 15.0 and motion.data.shape == (1, 957, 141)
    j = skeleton.index("RightForeArm")
    k = BEAT_JOINTS47.index("RightForeArm")
    np.testing.assert_allclose(motion.data[0, :, 3 * k:3 * k + 3], clip.rotations[:, j], atol=1e-4)


def test_load_beat_bvh_takes_every_8th_frame_of_120fps(clip, beat_motion, tmp_path):
    path = tmp_path / "full_rate.bvh"
    write_bvh(path, clip.skeleton, clip.rotations, 120.0, clip.root_translation)
    motion, _ = load_beat_bvh(path)
    frames = len(clip.rotations)
    assert motion.num_frames == math.ceil(frames / 8)
    np.testing.assert_allclose(motion.data[0], beat_motion[0].data[0, ::8], atol=1e-4)


def _stats(name: str) -> np.ndarray:
    return np.load(shared_file(f"beat/stats/{name}.npy")).astype(np.float64)


def test_beat141_statistics_match_beat(beat_motion):
    mean, std = _stats("bvh_mean"), _stats("bvh_std")
    data = beat_motion[0].data[0].astype(np.float64)
    ours_mean, ours_std = data.mean(0), data.std(0)
    # Forearm X/Z angles wander across 360-degree branches (dataset std > 2000 deg): their means say nothing.
    settled = std < 180.0
    assert settled.sum() == 137
    assert np.corrcoef(ours_mean[settled], mean[settled])[0, 1] > 0.9
    assert np.corrcoef(ours_std, std)[0, 1] > 0.9
    np.testing.assert_array_equal(ours_std < 1e-3, std < 1e-3)  # the same channels never move


def test_beat_joints_are_the_best_file_order_match_to_beat_statistics(clip):
    """Assign BEAT's 47 statistics rows to skeleton joints in file order (dynamic programming over a
    per-joint mean/std distance); the cheapest assignment must be BEAT_JOINTS47."""
    mean, std = _stats("bvh_mean").reshape(47, 3), _stats("bvh_std").reshape(47, 3)
    joint_mean, joint_std = clip.rotations.mean(0), clip.rotations.std(0)  # [J, 3]
    weight = np.where(std < 180.0, 1.0 / (std + 1.0), 0.0)[:, None]  # [47, 1, 3]
    cost = (weight * (np.abs(joint_mean[None] - mean[:, None]) + np.abs(joint_std[None] - std[:, None]))).sum(-1)
    cost += 1e3 * ((joint_std[None] < 1e-3) != (std[:, None] < 1e-3)).any(-1)  # [47, J]
    best = [cost[0]]
    for row in range(1, 47):
        earlier = np.concatenate([[np.inf], np.minimum.accumulate(best[-1])[:-1]])
        best.append(cost[row] + earlier)
    picks = [int(np.argmin(best[-1]))]
    for row in range(45, -1, -1):
        picks.append(int(np.argmin(best[row][:picks[-1]])))
    assert tuple(clip.skeleton.names[j] for j in reversed(picks)) == BEAT_JOINTS47


def test_beat_bvh_write_then_read(beat_motion, tmp_path):
    motion, skeleton = beat_motion
    out = tmp_path / "generated.bvh"
    write_beat_bvh(out, motion, skeleton)
    clip = read_bvh(out)
    assert clip.frame_time == pytest.approx(1 / 15, abs=1e-6)
    animated = np.isin(np.arange(skeleton.num_joints), [skeleton.index(n) for n in BEAT_JOINTS47])
    assert np.abs(clip.rotations[:, ~animated]).max() == 0.0
    assert np.abs(clip.root_translation).max() == 0.0
    again, _ = load_beat_bvh(out)
    assert np.abs(again.data - motion.data).max() < 1e-4


def test_fk_zero_rotation_is_rest_pose(clip):
    sk = clip.skeleton
    rest = np.zeros((sk.num_joints, 3))
    for j in range(sk.num_joints):
        chain = j
        while chain >= 0:
            rest[j] += sk.offsets[chain]
            chain = sk.parents[chain]
    positions = forward_kinematics(sk, np.zeros((1, sk.num_joints, 3)))
    np.testing.assert_allclose(positions[0], rest, atol=1e-9)
    assert positions[0, sk.index("HeadEnd"), 1] > positions[0, sk.index("Neck"), 1] > 0


def test_fk_keeps_bone_lengths(clip):
    sk = clip.skeleton
    positions = forward_kinematics(sk, clip.rotations, clip.root_translation)
    child = np.arange(1, sk.num_joints)
    lengths = np.linalg.norm(positions[:, child] - positions[:, sk.parents[child]], axis=-1)
    np.testing.assert_allclose(lengths, np.broadcast_to(np.linalg.norm(sk.offsets[child], axis=-1),
                                                        lengths.shape), atol=1e-6)
    assert np.ptp(positions[:, sk.index("RightHand")], axis=0).max() > 10.0  # the hands do move


def test_bad_bvh_files_raise_clear_errors(tmp_path, tiny_bvh):
    with pytest.raises(ListenerctlError, match="does not exist"):
        read_bvh(tmp_path / "missing.bvh")
    garbage = tmp_path / "garbage.bvh"
    garbage.write_text("HIERARCHY\nROOT Hips\n{\n\tOFFSET 0 0\nMOTION\nFrames: 1\n")
    with pytest.raises(ListenerctlError, match="not a readable BVH"):
        read_bvh(garbage)
    short = tmp_path / "short.bvh"
    short.write_text(TINY_BVH.replace("Frames: 2", "Frames: 3"))
    with pytest.raises(ListenerctlError, match="announces 3 frames but holds 2"):
        read_bvh(short)
    with pytest.raises(ListenerctlError, match="not BEAT's"):
        load_beat_bvh(tiny_bvh)


def _face_motion(frames: int, fps: float, seed: int = 0) -> Motion:
    rng = np.random.default_rng(seed)
    return Motion(rng.uniform(0, 1, (1, frames, 51)), "beatface51", fps)


def test_face_json_round_trip(tmp_path):
    motion = _face_motion(40, 15.0)
    out = tmp_path / "face.json"
    write_beat_face_json(out, motion)
    content = json.loads(out.read_text())
    assert content["names"] == list(get_spec("beatface51").channels)
    assert content["frames"][3]["time"] == pytest.approx(3 / 15)
    again = read_beat_face_json(out)
    assert again.spec == "beatface51" and again.fps == 15.0
    np.testing.assert_allclose(again.data, motion.data, atol=1e-6)


def test_face_json_maps_names_and_takes_every_4th_of_60fps(tmp_path):
    names = list(get_spec("beatface51").channels) + ["tongueOut"]
    order = np.random.default_rng(1).permutation(len(names))
    weights = np.random.default_rng(2).uniform(0, 1, (30, len(names)))
    frames = [{"weights": row[order].tolist(), "time": i / 60} for i, row in enumerate(weights)]
    path = tmp_path / "beat_face.json"
    path.write_text(json.dumps({"names": [names[i][0].upper() + names[i][1:] for i in order], "frames": frames}))
    motion = read_beat_face_json(path)
    np.testing.assert_allclose(motion.data[0], weights[::4, :51], atol=1e-6)


def test_face_json_errors(tmp_path):
    with pytest.raises(ListenerctlError, match="does not exist"):
        read_beat_face_json(tmp_path / "none.json")
    path = tmp_path / "partial.json"
    path.write_text(json.dumps({"names": ["jawOpen"], "frames": [{"weights": [0.1], "time": 0.0}]}))
    with pytest.raises(ListenerctlError, match="lacks the blendshapes browDownLeft"):
        read_beat_face_json(path)
    path.write_text("{not json")
    with pytest.raises(ListenerctlError, match="not a BEAT face JSON"):
        read_beat_face_json(path)


def test_live_link_csv_columns_and_values(tmp_path):
    rng = np.random.default_rng(3)
    spec = get_spec("arkit58")
    data = rng.uniform(0, 1, (1, 20, spec.dim))
    motion = Motion(data, "arkit58", 15.0)
    out = tmp_path / "take.csv"
    write_live_link_csv(out, motion)
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert tuple(header) == LIVE_LINK_COLUMNS and len(header) == 63
    assert header[17:20] == ["JawRight", "JawLeft", "JawOpen"] and header[-9:-6] == ["HeadYaw", "HeadPitch", "HeadRoll"]
    assert len(body) == 20 and {r[1] for r in body} == {"61"}
    assert body[0][0] == "00:00:00:00.000" and body[16][0] == "00:00:01:01.000"
    column = {name: i for i, name in enumerate(header)}
    values = np.array([[float(v) for v in r[2:]] for r in body])
    np.testing.assert_allclose(values[:, column["JawOpen"] - 2], data[0, :, spec.index("jawOpen")], atol=1e-6)
    np.testing.assert_allclose(values[:, column["HeadYaw"] - 2], data[0, :, spec.index("headYaw")], atol=1e-6)
    np.testing.assert_allclose(values[:, column["TongueOut"] - 2], data[0, :, spec.index("tongueOut")], atol=1e-6)


def test_live_link_csv_from_beat_face_has_no_tongue_or_head(tmp_path):
    motion = _face_motion(5, 15.0)
    out = tmp_path / "beat.csv"
    write_live_link_csv(out, motion)
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    column = rows[0].index("TongueOut")
    assert all(float(r[column]) == 0.0 for r in rows[1:])
    assert float(rows[2][rows[0].index("EyeBlinkLeft")]) == pytest.approx(
        motion.data[0, 1, get_spec("beatface51").index("eyeBlinkLeft")], abs=1e-6)
