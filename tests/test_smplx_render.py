"""SMPL-X bodies end to end without the licensed model: a synthetic SMPLX_NEUTRAL.npz with the arrays and
shapes `smplx.SMPLX` loads (a mannequin, one rounded segment per joint skinned rigidly to it), drawn by
`SmplxRenderer` directly and through the cospeech CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from listenerctl.motion import ARKIT52, BEAT_JOINTS47
from renderers.mesh import BACKGROUND
from renderers.skeleton import SmplxRenderer
from helpers import SAMPLE_WAV, ffmpeg, run_cli

JOINT_NAMES = pytest.importorskip("smplx.joint_names", reason="needs smplx (pip install smplx)").JOINT_NAMES

SIZE = 128
JOINTS = tuple(JOINT_NAMES[:55])  # SMPL-X's skinned joints, in its order
RINGS, SEGMENTS = 11, 16          # segment grid: 12 rings x 16 = 192 vertices per joint
PER_JOINT = (RINGS + 1) * SEGMENTS
# The middle and left joints: rest position (m; pelvis at the origin, y up, facing +z, the subject's left
# at +x), parent, where the joint's segment ends (a joint, or an offset in m) and its radius (m).
# The right joints mirror the left ones in x.
BODY = {
    "pelvis": ((0.0, 0.0, 0.0), None, "spine1", 0.12),
    "left_hip": ((0.06, -0.09, 0.0), "pelvis", "left_knee", 0.07),
    "spine1": ((0.0, 0.11, -0.02), "pelvis", "spine2", 0.13),
    "left_knee": ((0.10, -0.46, 0.0), "left_hip", "left_ankle", 0.05),
    "spine2": ((0.0, 0.25, 0.0), "spine1", "spine3", 0.13),
    "left_ankle": ((0.09, -0.86, -0.04), "left_knee", "left_foot", 0.04),
    "spine3": ((0.0, 0.31, 0.02), "spine2", "neck", 0.12),
    "left_foot": ((0.12, -0.92, 0.08), "left_ankle", (0.0, -0.02, 0.10), 0.035),
    "neck": ((0.0, 0.52, -0.01), "spine3", "head", 0.05),
    "left_collar": ((0.08, 0.42, 0.0), "spine3", "left_shoulder", 0.05),
    "head": ((0.0, 0.60, 0.04), "neck", (0.0, 0.21, -0.02), 0.09),
    "left_shoulder": ((0.17, 0.45, -0.01), "left_collar", "left_elbow", 0.045),
    "left_elbow": ((0.43, 0.43, -0.03), "left_shoulder", "left_wrist", 0.035),
    "left_wrist": ((0.68, 0.43, -0.01), "left_elbow", "left_middle1", 0.03),
    "jaw": ((0.0, 0.60, 0.05), "head", (0.0, -0.07, 0.09), 0.035),  # the chin, in front of the neck
    "left_eye_smplhf": ((0.03, 0.67, 0.11), "head", (0.0, 0.0, 0.02), 0.012),
}
FINGERS = {  # first knuckle from the wrist (m) and phalanx direction, left hand palm down
    "index": ((0.09, 0.0, 0.025), (1.0, 0.0, 0.0)), "middle": ((0.095, 0.0, 0.005), (1.0, 0.0, 0.0)),
    "pinky": ((0.08, 0.0, -0.035), (1.0, 0.0, 0.0)), "ring": ((0.09, 0.0, -0.015), (1.0, 0.0, 0.0)),
    "thumb": ((0.03, -0.01, 0.035), (0.7071, 0.0, 0.7071)),
}
PHALANX_M, FINGER_RADIUS_M = 0.03, 0.009
PELVIS_IN_MODEL_M = (0.0, -0.35, 0.01)  # SMPL-X's template is not pelvis-centred: its pelvis lies below the origin


def rest_skeleton() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rest joints [55, 3] m, parents [55] (-1 at the pelvis), segment ends [55, 3] m and radii [55] m."""
    joints = {}  # name: (position, parent, end, radius)
    for side, mirror in (("left", 1.0), ("right", -1.0)):
        flip = np.array([mirror, 1.0, 1.0])

        def rename(name: str) -> str:
            return name.replace("left_", f"{side}_")

        for name, (position, parent, end, radius) in BODY.items():
            joints[rename(name)] = (np.array(position) * flip, parent and rename(parent),
                                    rename(end) if isinstance(end, str) else np.array(end) * flip, radius)
        wrist = joints[f"{side}_wrist"][0]
        for finger, (knuckle, direction) in FINGERS.items():
            step = PHALANX_M * np.array(direction) * flip
            for k in (1, 2, 3):
                position = wrist + np.array(knuckle) * flip + (k - 1) * step
                parent = f"{side}_wrist" if k == 1 else f"{side}_{finger}{k - 1}"
                joints[f"{side}_{finger}{k}"] = (position, parent, 0.8 * step, FINGER_RADIUS_M)
    positions = np.stack([joints[n][0] for n in JOINTS])
    ends = np.stack([joints[end][0] if isinstance(end, str) else position + end
                     for position, _, end, _ in (joints[n] for n in JOINTS)])
    parents = np.array([JOINTS.index(joints[n][1]) if joints[n][1] else -1 for n in JOINTS])
    return positions, parents, ends, np.array([joints[n][3] for n in JOINTS])


def segment(start: np.ndarray, end: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """A closed rounded solid from pole ``start`` to pole ``end`` [3] m, ``radius`` m wide: vertices
    [PER_JOINT, 3] (the first SEGMENTS all at ``start``) and outward-wound triangles [2·RINGS·SEGMENTS, 3]."""
    axis = end - start
    length = np.linalg.norm(axis)
    d = axis / length
    u = np.cross(d, [0.0, 0.0, 1.0] if abs(d[2]) < 0.9 else [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    w = np.cross(d, u)
    polar = np.linspace(0, np.pi, RINGS + 1)[:, None, None]
    azimuth = np.linspace(0, 2 * np.pi, SEGMENTS, endpoint=False)[None, :, None]
    vertices = (start + (1 - np.cos(polar)) * length / 2 * d
                + radius * np.sqrt(np.sin(polar)) * (np.cos(azimuth) * u + np.sin(azimuth) * w))
    r, s = np.meshgrid(np.arange(RINGS), np.arange(SEGMENTS), indexing="ij")
    a, b = r * SEGMENTS + s, r * SEGMENTS + (s + 1) % SEGMENTS
    triangles = np.concatenate([np.stack([a, b, a + SEGMENTS], -1), np.stack([b, b + SEGMENTS, a + SEGMENTS], -1)])
    return vertices.reshape(-1, 3), triangles.reshape(-1, 3)


def write_synthetic_smplx(folder: Path) -> Path:
    """``folder``/SMPLX_NEUTRAL.npz: every array `smplx.SMPLX` reads, in its shape, for a mannequin of
    V = 55·192 = 10560 vertices (more than the largest vertex id smplx takes keypoints from, 9929).
    Each joint's segment is skinned 100 % to it and its start pole regresses the joint exactly; shape,
    expression and pose correctives are zero, the hand PCA basis the identity."""
    positions, parents, ends, radii = rest_skeleton()
    parts = [segment(positions[j], ends[j], radii[j]) for j in range(55)]
    vertices = np.concatenate([v for v, _ in parts]) + PELVIS_IN_MODEL_M
    faces = np.concatenate([f + j * PER_JOINT for j, (_, f) in enumerate(parts)])
    v = len(vertices)
    regressor = np.zeros((55, v))
    for j in range(55):
        regressor[j, j * PER_JOINT:j * PER_JOINT + SEGMENTS] = 1.0 / SEGMENTS
    head = JOINTS.index("head")
    head_faces = np.arange(head * 2 * RINGS * SEGMENTS, (head + 1) * 2 * RINGS * SEGMENTS)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        folder / "SMPLX_NEUTRAL.npz", v_template=vertices, f=faces.astype(np.uint32),
        shapedirs=np.zeros((v, 3, 300 + 100), np.float32),  # 300 shape then 100 expression directions
        posedirs=np.zeros((v, 3, 54 * 9), np.float32),      # one per rotation-matrix entry of the 54 non-root joints
        J_regressor=regressor, weights=np.repeat(np.eye(55), PER_JOINT, axis=0),
        kintree_table=np.stack([parents, np.arange(55)]),
        hands_componentsl=np.eye(45), hands_componentsr=np.eye(45), hands_meanl=np.zeros(45), hands_meanr=np.zeros(45),
        lmk_faces_idx=head_faces[:51], lmk_bary_coords=np.full((51, 3), 1 / 3),
        dynamic_lmk_faces_idx=np.resize(head_faces, (79, 17)), dynamic_lmk_bary_coords=np.full((79, 17, 3), 1 / 3))
    return folder / "SMPLX_NEUTRAL.npz"


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("smplx_model")
    write_synthetic_smplx(folder)
    return folder


@pytest.fixture(scope="module")
def renderer(model_folder):
    with SmplxRenderer(model_folder, size=SIZE) as r:
        yield r


def foreground(image: np.ndarray) -> np.ndarray:
    return np.abs(image.astype(int) - np.round(np.asarray(BACKGROUND) * 255)).max(axis=-1) > 3


def pixel(renderer: SmplxRenderer, point_m: np.ndarray) -> tuple[int, int]:
    """(row, column) of a pelvis-relative point [3] m in the renderer's view."""
    col, row = np.floor(renderer._view_pixels(np.asarray(point_m) * 100.0)).astype(int)
    return row, col


def test_the_synthetic_model_loads_as_smplx_and_regresses_its_joints(model_folder):
    import smplx
    import torch

    model = smplx.SMPLX(model_path=str(model_folder / "SMPLX_NEUTRAL.npz"), ext="npz", use_pca=False)
    assert model.v_template.shape == (55 * PER_JOINT, 3) and model.J_regressor.shape == (55, 55 * PER_JOINT)
    with torch.no_grad():
        joints = model().joints[0, :55].numpy()
    assert np.allclose(joints, rest_skeleton()[0] + PELVIS_IN_MODEL_M, atol=1e-6)


def test_rest_pose_draws_a_centred_body(renderer):
    frames = renderer.render_batch(np.zeros((1, 141)))
    assert frames.shape == (1, SIZE, SIZE, 3) and frames.dtype == np.uint8
    body = foreground(frames[0])
    assert 0.02 < body.mean() < 0.6
    positions = rest_skeleton()[0]
    for name in ("pelvis", "spine2", "head", "left_elbow", "right_elbow", "left_hip"):
        assert body[pixel(renderer, positions[JOINTS.index(name)])], name
    assert not body[:3].any() and body[-1].any()         # the top of the head in view, the legs cut by the frame
    assert (body == body[:, ::-1]).mean() > 0.99          # the mirror-symmetric mannequin sits at the centre


def test_a_batch_renders_each_pose_as_alone(renderer):
    poses = np.zeros((3, 141))
    poses[1, 3 * BEAT_JOINTS47.index("RightArm") + 2] = -60.0
    poses[2, 3 * BEAT_JOINTS47.index("LeftForeArm") + 1] = 45.0
    frames = renderer.render_batch(poses, np.zeros((3, 51)))
    assert frames.shape == (3, SIZE, SIZE, 3)
    for pose, frame in zip(poses, frames):
        assert np.array_equal(frame, renderer.render_batch(pose[None])[0])


def test_a_beat_arm_rotation_moves_only_that_smplx_arm(renderer):
    # BEAT RightArm -60° about z raises the right arm; SMPL-X's right_shoulder must turn the same way.
    rest = np.zeros((1, 141))
    raised = rest.copy()
    raised[0, 3 * BEAT_JOINTS47.index("RightArm") + 2] = -60.0
    before, after = (renderer.render_batch(p)[0] for p in (rest, raised))
    positions = rest_skeleton()[0]
    shoulder, elbow, wrist = (positions[JOINTS.index(f"right_{n}")] for n in ("shoulder", "elbow", "wrist"))
    turn = Rotation.from_euler("z", -60.0, degrees=True)
    for point in ((shoulder + elbow) / 2, (elbow + wrist) / 2):
        moved = shoulder + turn.apply(point - shoulder)
        assert moved[1] > point[1] + 0.1
        assert foreground(before)[pixel(renderer, point)] and not foreground(after)[pixel(renderer, point)]
        assert foreground(after)[pixel(renderer, moved)] and not foreground(before)[pixel(renderer, moved)]
    rows, cols = np.nonzero(np.any(before != after, axis=-1))
    below, right_of = pixel(renderer, [-0.10, 0.30, 0.0])
    assert cols.max() < right_of and rows.max() < below  # the left arm, the torso and the legs stay put


def test_jaw_open_drops_the_chin_and_nothing_else(renderer):
    # With the neck turned 90° to the left the chin is seen in profile: opening the jaw lowers its outline.
    pose = np.zeros((1, 141))
    pose[0, 3 * BEAT_JOINTS47.index("Neck") + 1] = 90.0
    neutral = np.zeros((1, 51))
    opened, brows = neutral.copy(), neutral.copy()
    opened[0, ARKIT52.index("jawOpen")] = 1.0
    brows[0, ARKIT52.index("browInnerUp")] = 1.0
    closed_frame, open_frame, brow_frame = (renderer.render_batch(pose, e)[0] for e in (neutral, opened, brows))
    assert np.array_equal(brow_frame, closed_frame)  # only jawOpen reaches the SMPL-X body
    closed_body, open_body = foreground(closed_frame), foreground(open_frame)
    gained, lost = np.nonzero(open_body & ~closed_body)[0], np.nonzero(closed_body & ~open_body)[0]
    assert len(gained) and len(lost) and gained.mean() > lost.mean() + 2  # rows grow downwards
    rows, cols = np.nonzero(np.any(open_frame != closed_frame, axis=-1))
    top, left = pixel(renderer, [0.0, 0.64, 0.0])
    bottom, right = pixel(renderer, [0.20, 0.46, 0.0])
    assert top <= rows.min() and rows.max() <= bottom and left <= cols.min() and cols.max() <= right


def test_cli_renders_cospeech_videos_with_the_smplx_body(model_folder, tmp_path, monkeypatch):
    from listenerctl.cospeech import read_cospeech_motion
    from listenerctl.media import iter_video_frames, probe_streams

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    wav = tmp_path / "talk.wav"
    ffmpeg("-i", str(SAMPLE_WAV), "-t", "4", str(wav))  # the first 4 s of the sample recording
    result = run_cli("generate", wav, "--task", "cospeech", "--smplx-model", model_folder, "-k", "1",
                     "--steps", "2", "--size", "96", "--device", "cpu", "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    video = tmp_path / "out" / "talk" / "sample_00.mp4"
    expression, gesture = read_cospeech_motion(video.with_name("motion.npz"))
    face, body = expression.resampled(25.0).data[0], gesture.resampled(25.0).data[0]
    stream = next(s for s in probe_streams(video)["streams"] if s["codec_type"] == "video")
    assert int(stream["nb_read_frames"]) == len(body) == 100 and stream["avg_frame_rate"] == "25/1"
    t = len(body) // 2
    decoded = list(iter_video_frames(video))[t].astype(int)
    with SmplxRenderer(model_folder, size=96) as direct:
        drawn = direct.render_batch(body[t:t + 1], face[t:t + 1])[0]
    assert 0.02 < foreground(drawn).mean() and np.abs(decoded - drawn).mean() < 3.0  # the SMPL-X frame, encoded
