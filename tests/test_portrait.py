"""The portrait renderer: loading portraits, fitting, the anchored warp, what moves on screen, and the
MediaPipe round trip of issue 3 (shapes read back monotone with r > 0.8, head pitch/yaw within 3 deg)."""

from __future__ import annotations

import numpy as np
import pytest

from listenerctl.errors import ListenerctlError
from renderers.calibrate import POSE_SWEEPS, SHAPE_SWEEPS, pose_sweep, shape_sweep
from renderers.contact_sheet import pose
from renderers.face_rig import (ARKIT58_DIM, LEFT_EYE_LOWER, LEFT_EYE_UPPER, LIPS_LOWER_INNER, LIPS_UPPER_INNER,
                                RIGHT_EYE_LOWER, RIGHT_EYE_UPPER)
from renderers.portrait import DEFAULT_PORTRAIT, PortraitRenderer, default_portrait, load_portrait
from renderers.portrait_fit import frame_square, similarity
from helpers import shared_file

SIZE = 128
SHARED_PORTRAITS = ["portraits/portrait_1.jpg", "portraits/portrait_2.jpg", "portraits/portrait_3.jpg"]
TURNS = {"pitch": {"headPitch": 0.2}, "yaw": {"headYaw": 0.25}, "pitch+yaw+expression": {
    "headPitch": -0.2, "headYaw": -0.25, "headRoll": 0.1, "jawOpen": 0.8, "mouthSmileLeft": 1.0, "eyeBlinkRight": 1.0}}


@pytest.fixture(scope="module")
def renderer():
    with PortraitRenderer(default_portrait(), SIZE, max_batch=4) as r:
        yield r


def _box(renderer, indices, margin: int = 2) -> tuple[slice, slice]:
    """Rows and columns of the crop's box around the photo's landmarks ``indices``."""
    xy = renderer.fit.landmarks[list(indices), :2]
    (x0, y0), (x1, y1) = np.floor(xy.min(axis=0)).astype(int) - margin, np.ceil(xy.max(axis=0)).astype(int) + margin
    return slice(max(y0, 0), y1), slice(max(x0, 0), x1)


def _triangle_areas(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    a, b, c = (points[triangles[:, i]] for i in range(3))
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1]))


# ---- loading ------------------------------------------------------------------------------------------
def test_load_portrait_reads_rgb_from_awkward_names(tmp_path):
    import cv2

    bgr = np.zeros((20, 30, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's BGR order
    path = tmp_path / "mon portrait é.png"
    cv2.imwrite(str(tmp_path / "plain.png"), bgr)
    path.write_bytes((tmp_path / "plain.png").read_bytes())
    image = load_portrait(path)
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8
    assert (image[..., 0] == 200).all() and (image[..., 2] == 0).all()


@pytest.mark.parametrize("case, message", [("missing", "portrait not found"), ("folder", "not a file"),
                                           ("text", "cannot read"), ("empty", "cannot read")])
def test_load_portrait_errors_are_one_sentence(tmp_path, case, message):
    path = {"missing": tmp_path / "nope.jpg", "folder": tmp_path, "text": tmp_path / "notes.jpg",
            "empty": tmp_path / "empty.png"}[case]
    if case == "text":
        path.write_text("not an image")
    if case == "empty":
        path.write_bytes(b"")
    with pytest.raises(ListenerctlError, match=message) as info:
        load_portrait(path)
    assert "\n" not in str(info.value)


def test_default_portrait_is_a_small_jpeg_with_its_notice():
    image = default_portrait()
    assert image.shape == (512, 512, 3) and image.dtype == np.uint8
    assert DEFAULT_PORTRAIT.stat().st_size < 100_000
    notice = (DEFAULT_PORTRAIT.parent / "NOTICE.md").read_text()
    assert "NASA" in notice and "public domain" in notice and "scikit-image" in notice


def test_a_portrait_without_a_face_is_refused():
    noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    with pytest.raises(ListenerctlError, match="no face found in the portrait wall.png; use a frontal photo"):
        PortraitRenderer(noise, SIZE, name="wall.png")


# ---- fitting ------------------------------------------------------------------------------------------
def test_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(50, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation = q * np.sign(np.linalg.det(q))  # a proper rotation
    target = 2.5 * source @ rotation.T + [3.0, -1.0, 7.0]
    scale, fitted, offset = similarity(source, target)
    np.testing.assert_allclose([scale, *offset], [2.5, 3.0, -1.0, 7.0], atol=1e-9)
    np.testing.assert_allclose(fitted, rotation, atol=1e-9)
    mirrored = target * [-1.0, 1.0, 1.0]  # the best fit of a mirror image is still a rotation
    assert np.linalg.det(similarity(source, mirrored)[1]) == pytest.approx(1.0)


def test_frame_square_frames_head_and_shoulders_inside_the_image():
    face = np.array([[400.0, 300.0], [500.0, 430.0]])  # face box 100 x 130 px in a 1200 x 900 image
    left, top, side = frame_square(face, 900, 1200)
    assert side == round(2.9 * 130)
    assert left < 400 and left + side > 500 and top < 300 - 0.5 * 130 and top + side > 430 + 130
    assert left + side / 2 == pytest.approx(450, abs=1)
    near_edge = frame_square(face - [390.0, 290.0], 900, 1200)  # face in the top-left corner
    assert near_edge[:2] == (0, 0)
    big_face = frame_square(np.array([[10.0, 20.0], [200.0, 240.0]]), 256, 300)
    assert big_face[2] == 256 and 0 <= big_face[0] <= 300 - 256 and big_face[1] == 0


def test_neutral_pose_reproduces_the_cropped_portrait(renderer):
    frame = renderer.render(np.zeros(ARKIT58_DIM, np.float32)).astype(int)
    diff = np.abs(frame - renderer.fit.texture.astype(int))
    assert diff.mean() < 0.5 and np.percentile(diff, 99.5) <= 2


def test_fitted_neutral_lands_on_the_landmarks(renderer):
    vertices = renderer.warp.vertices(np.zeros((1, ARKIT58_DIM), np.float32))[0]
    np.testing.assert_allclose(vertices[:468, :2], renderer.fit.landmarks[:, :2], atol=1e-3)


@pytest.mark.parametrize("portrait", ["default"] + SHARED_PORTRAITS)
def test_warp_mesh_tiles_the_frame_without_gaps_or_overlaps(portrait):
    image = default_portrait() if portrait == "default" else load_portrait(shared_file(portrait))
    with PortraitRenderer(image, SIZE) as r:
        points = r.warp.vertices(np.zeros((1, ARKIT58_DIM), np.float32))[0, :, :2]
        area = np.abs(_triangle_areas(points, r.warp.triangles)).sum()
        # no gap leaves the sum short; the photo's own landmarks may fold over a few square pixels
        assert SIZE * SIZE * (1 - 1e-5) < area < SIZE * SIZE * 1.001
        assert (points >= 0).all() and (points <= SIZE).all()


# ---- rendering ----------------------------------------------------------------------------------------
def test_batches_match_single_renders_across_chunks(renderer):
    poses = np.stack([pose({"jawOpen": w, "headYaw": 0.2 * w}) for w in np.linspace(0, 1, 6)])  # 6 > max_batch
    batch = renderer.render_batch(poses)
    assert batch.shape == (6, SIZE, SIZE, 3) and batch.dtype == np.uint8
    for single, frame in zip(poses, batch):  # tiles differ from a lone render by float rounding at most
        diff = np.abs(renderer.render(single).astype(int) - frame)
        assert diff.max() <= 3 and diff.mean() < 0.01
    assert renderer.render_batch(np.zeros((0, ARKIT58_DIM))).shape == (0, SIZE, SIZE, 3)
    with pytest.raises(ValueError):
        renderer.render_batch(np.zeros((2, 52)))


@pytest.mark.parametrize("motion", sorted(TURNS))
def test_background_stays_anchored_while_the_face_moves(renderer, motion):
    still, moved = renderer.warp.vertices(np.stack([pose({}), pose(TURNS[motion])]))[..., :2]
    on_border = ((still == 0) | (still == SIZE)).any(axis=1)
    assert on_border.sum() >= 4 * 8 and (moved[on_border] == still[on_border]).all()
    neutral, frame = renderer.render_batch(np.stack([pose({}), pose(TURNS[motion])])).astype(int)
    change = np.abs(frame - neutral).max(axis=-1)
    outermost = np.ones((SIZE, SIZE), bool)
    outermost[1:-1, 1:-1] = False  # pixels next to the pinned border move by a fraction of a pixel at most
    assert change[outermost].max() <= 4 and change[outermost].mean() < 0.2
    assert change[_box(renderer, range(468))].mean() > 8


def test_head_pose_moves_the_face_the_right_way(renderer):
    nose_tip = 1
    neutral, down, left = renderer.warp.vertices(np.stack([pose({}), pose({"headPitch": 0.2}),
                                                           pose({"headYaw": 0.2})]))[:, nose_tip, :2]
    assert down[1] - neutral[1] > 3 and abs(down[0] - neutral[0]) < 1      # nods down the image
    assert left[0] - neutral[0] > 3                                        # turns to the image's right


def test_blink_covers_the_eyes_and_leaves_the_mouth(renderer):
    neutral, blink = renderer.render_batch(np.stack([pose({}), pose({"eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0})]))
    for eye in (LEFT_EYE_UPPER + LEFT_EYE_LOWER, RIGHT_EYE_UPPER + RIGHT_EYE_LOWER):
        box = _box(renderer, eye, margin=0)
        dark = lambda image: np.percentile(image[box].mean(axis=-1), 10)  # pupil, iris and lash pixels
        assert dark(blink) > dark(neutral) + 15, "the dark iris should be covered by the lid"
    mouth = _box(renderer, LIPS_UPPER_INNER + LIPS_LOWER_INNER)
    assert np.abs(blink[mouth].astype(int) - neutral[mouth]).max() <= 2


def test_jaw_open_shows_a_dark_mouth_and_keeps_the_eyes(renderer):
    neutral, opened = renderer.render_batch(np.stack([pose({}), pose({"jawOpen": 1.0})])).astype(int)
    xy = renderer.warp.vertices(pose({"jawOpen": 1.0})[None])[0, list(LIPS_LOWER_INNER), :2]
    upper = renderer.fit.landmarks[list(LIPS_UPPER_INNER), :2]
    inside = np.round((upper[4:7] + xy[4:7]) / 2).astype(int)  # half way between the parted lips
    assert opened[inside[:, 1], inside[:, 0]].mean() < 0.5 * neutral[inside[:, 1], inside[:, 0]].mean()
    eyes = _box(renderer, LEFT_EYE_UPPER + LEFT_EYE_LOWER)
    assert np.abs(opened[eyes] - neutral[eyes]).max() <= 2


def test_smile_widens_the_mouth(renderer):
    smile = pose({"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0})
    neutral, smiling = renderer.warp.vertices(np.stack([pose({}), smile]))[:, [61, 291], 0]
    assert (smiling[1] - smiling[0]) > (neutral[1] - neutral[0]) + 2


# ---- round trip through MediaPipe (issue 3) -----------------------------------------------------------
def roundtrip(image: np.ndarray) -> dict:
    """Shape sweeps and head pose sweeps of `renderers.calibrate`, rendered at 256 px from ``image``; pose
    read-backs are taken relative to the neutral frame's (head pose is relative to the portrait's own)."""
    with PortraitRenderer(image, 256) as r:
        shapes = {name: shape_sweep(r, channels) for name, channels in SHAPE_SWEEPS.items()}
        poses = {name: pose_sweep(r, channel) for name, channel in POSE_SWEEPS.items()}
    for result in poses.values():
        read, driven = np.array(result["read_deg"]), np.array(result["driven_deg"])
        result["relative_error_deg"] = float(np.abs(read - read[driven == 0] - driven).max())
    return {"shapes": shapes, "pose": poses}


def assert_roundtrip(table: dict) -> None:
    for name, result in table["shapes"].items():
        assert result["faces_found"], f"MediaPipe lost the face during {name}"
        assert result["pearson"] > 0.8 and result["monotone"], (name, result)
    for name, result in table["pose"].items():
        assert result["relative_error_deg"] < 3.0, (name, result)


def test_default_portrait_round_trip():
    assert_roundtrip(roundtrip(default_portrait()))


@pytest.mark.slow
@pytest.mark.parametrize("portrait", SHARED_PORTRAITS)
def test_shared_portraits_round_trip(portrait):
    assert_roundtrip(roundtrip(load_portrait(shared_file(portrait))))

