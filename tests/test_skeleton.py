"""Skeleton renderer: capsules follow forward kinematics, the face rig lands on the head and moves with
it, SMPL-X needs its model files and maps BEAT joints onto SMPL-X's."""

from __future__ import annotations

import numpy as np
import pytest

from listenerctl.data.beat import forward_kinematics, load_beat_bvh
from listenerctl.errors import ListenerctlError
from listenerctl.motion import ARKIT52, BEAT_JOINTS47
from renderers.mesh import BACKGROUND
from renderers.skeleton import SkeletonRenderer, beat_to_smplx_pose, smplx_model_file
from helpers import shared_file

SIZE = 192


@pytest.fixture(scope="module")
def beat():
    motion, skeleton = load_beat_bvh(shared_file("beat/2_scott_0_1_1.bvh"))
    return motion.data[0], skeleton


@pytest.fixture(scope="module")
def renderer(beat):
    with SkeletonRenderer(beat[1], size=SIZE) as r:
        yield r


def foreground(image: np.ndarray) -> np.ndarray:
    return np.abs(image.astype(int) - np.round(np.asarray(BACKGROUND) * 255)).max(axis=-1) > 3


def test_frames_have_the_size_and_draw_a_body(renderer, beat):
    frames = renderer.render_batch(beat[0][:3])
    assert frames.shape == (3, SIZE, SIZE, 3) and frames.dtype == np.uint8
    share = foreground(frames[0]).mean()
    assert 0.05 < share < 0.5


def test_capsules_sit_where_forward_kinematics_puts_the_joints(renderer, beat):
    gestures, skeleton = beat
    pose = np.zeros((1, 141))
    positions, _ = renderer.pose(pose)
    rest = forward_kinematics(skeleton, np.zeros((1, skeleton.num_joints, 3)))
    assert np.allclose(positions, rest)
    # Raise the right arm: the pixel of the rest-pose right elbow empties, the raised elbow's fills.
    raised = pose.copy()
    raised[0, 3 * BEAT_JOINTS47.index("RightArm") + 2] = -60.0
    before, after = (foreground(renderer.render_batch(p)[0]) for p in (pose, raised))
    elbow = skeleton.index("RightForeArm")
    col, row = np.round(renderer._view_pixels(positions[0, elbow])).astype(int)
    assert before[row, col] and not after[row, col]
    new_col, new_row = np.round(renderer._view_pixels(renderer.pose(raised)[0][0, elbow])).astype(int)
    assert new_row < row and after[new_row, new_col]


def test_face_rig_is_pasted_on_the_head_and_follows_the_jaw(renderer, beat):
    gestures, _ = beat
    pose = gestures[:1]
    closed = np.zeros((1, 51), np.float32)
    opened = closed.copy()
    opened[0, ARKIT52.index("jawOpen")] = 1.0
    body, face_closed, face_open = (renderer.render_batch(pose, e) for e in (None, closed, opened))
    head = renderer._view_pixels(renderer.pose(pose)[0][0, renderer._head])
    col, row = np.round(head).astype(int)
    window = (slice(max(row - 30, 0), row + 15), slice(col - 20, col + 20))  # the head joint sits at eye level
    assert np.abs(face_closed[0][window].astype(int) - body[0][window]).mean() > 5   # the face replaced the head
    assert np.abs(face_open[0][window].astype(int) - face_closed[0][window]).mean() > 0.5  # the jaw moved
    far = (slice(SIZE - 30, SIZE), slice(0, 30))
    for frame in (face_closed, face_open):
        assert np.array_equal(frame[0][far], body[0][far])  # nothing pasted away from the head


def test_body_and_face_renderers_keep_to_their_own_gl_contexts(beat):
    # The face is drawn in a second GL context; each batch must still draw the body in the body's own,
    # so the same pose gives the same frame however many batches came before it.
    gestures, skeleton = beat
    with SkeletonRenderer(skeleton, size=SIZE) as fresh:
        frames = [fresh.render_batch(gestures[:2], np.zeros((2, 51), np.float32)) for _ in range(3)]
    assert all(np.array_equal(frames[0], later) for later in frames[1:])


def test_head_orientation_turns_the_face(renderer):
    pose = np.zeros((2, 141))
    pose[1, 3 * BEAT_JOINTS47.index("Neck") + 1] = 40.0  # yaw the neck
    _, rotations = renderer.pose(pose)
    assert np.allclose(rotations[0], np.eye(3), atol=1e-9)
    assert rotations[1][0, 2] == pytest.approx(np.sin(np.deg2rad(40.0)), abs=1e-6)
    frames = renderer.render_batch(pose, np.zeros((2, 51)))
    assert np.abs(frames[0].astype(int) - frames[1]).sum() > 0


def test_smplx_folder_without_model_files_is_one_sentence(tmp_path):
    with pytest.raises(ListenerctlError, match="does not exist"):
        smplx_model_file(tmp_path / "absent")
    (tmp_path / "README.txt").write_text("no model here")
    with pytest.raises(ListenerctlError) as info:
        smplx_model_file(tmp_path)
    message = str(info.value)
    assert "SMPLX_NEUTRAL.npz" in message and "README.txt" in message and "\n" not in message
    (tmp_path / "smplx").mkdir()
    (tmp_path / "smplx" / "SMPLX_NEUTRAL.npz").write_bytes(b"")
    assert smplx_model_file(tmp_path) == tmp_path / "smplx" / "SMPLX_NEUTRAL.npz"


def test_beat_joints_map_onto_smplx_pose_parameters():
    pose = np.zeros((2, 141))
    assert all(np.allclose(v, 0) for v in beat_to_smplx_pose(pose).values())
    pose[1, 3 * BEAT_JOINTS47.index("LeftForeArm") + 1] = 90.0   # elbow bend about y
    pose[1, 3 * BEAT_JOINTS47.index("RightHandIndex1") + 2] = 30.0
    mapped = beat_to_smplx_pose(pose)
    assert mapped["body_pose"].shape == (2, 63)
    left_elbow = mapped["body_pose"][1].reshape(21, 3)[17]
    assert np.allclose(left_elbow, [0.0, np.pi / 2, 0.0])
    assert np.allclose(np.delete(mapped["body_pose"][1].reshape(21, 3), 17, axis=0), 0.0)
    index1 = mapped["right_hand_pose"][1].reshape(15, 3)[0]
    assert np.allclose(index1, [0.0, 0.0, np.deg2rad(30.0)])
    assert np.allclose(mapped["left_hand_pose"], 0.0)
