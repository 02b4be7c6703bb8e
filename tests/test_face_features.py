"""Speaker face front-end on real video: MediaPipe blendshapes + head pose, face choice, gaps, cache, quiet stderr."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from scipy.signal import find_peaks

from helpers import ffmpeg, shared_file
from listenerctl.errors import ListenerctlError, NoFaceError
from listenerctl.features import face as face_module
from listenerctl.features.face import (blendshapes_for_frames, choose_face, extract_face, fill_missing, head_pose,
                                       head_rotation, landmarks_for_image)
from listenerctl.media import iter_video_frames
from listenerctl.motion import ARKIT52

VIDEO = "video/talking_face_8s.mp4"
PITCH, YAW, ROLL, TX, TY, TZ = range(52, 58)


def channel(arkit: np.ndarray, name: str) -> np.ndarray:
    return arkit[:, ARKIT52.index(name)]


@pytest.fixture(scope="module")
def talking(tmp_path_factory):
    """The real talking-face clip, its features and the cache folder they were written to."""
    video = shared_file(VIDEO)
    cache = tmp_path_factory.mktemp("face_cache")
    done: list[int] = []
    features = extract_face(video, cache_dir=cache, progress=done.append)
    return video, features, cache, done


def test_every_frame_at_25_fps_with_the_face_found(talking):
    video, features, _, done = talking
    frames = round(8.0 * 25)  # the clip's video stream lasts 8 s (its container, with the audio, 8.08 s)
    assert features.arkit.shape == (frames, 58) and features.arkit.dtype == np.float32
    assert features.emotion.shape == (frames, 25) and features.found.shape == (frames,)
    assert features.found_share > 0.95
    assert done == list(range(1, frames + 1))
    weights = features.arkit[:, :52]
    assert weights.min() >= 0 and weights.max() <= 1
    assert np.all(channel(features.arkit, "tongueOut") == 0)


def test_jaw_moves_while_talking_and_blinks_show_up(talking):
    _, features, _, _ = talking
    jaw = channel(features.arkit, "jawOpen")
    assert jaw.max() - jaw.min() > 0.2
    blink = (channel(features.arkit, "eyeBlinkLeft") + channel(features.arkit, "eyeBlinkRight")) / 2
    peaks, _ = find_peaks(blink, height=0.5, distance=5)
    per_minute = len(peaks) / (len(blink) / 25) * 60
    # This speaker blinks about once a second (8 closures in 8 s, checked frame by frame), more than the
    # 15-30/min of an average talker; the bound only rules out missed blinks and flicker.
    assert 5 <= per_minute <= 90, peaks
    assert np.all(blink[peaks] > 2 * np.median(blink))


def test_head_pose_is_plausible_and_translation_relative_to_rest(talking):
    _, features, _, _ = talking
    angles = np.degrees(features.arkit[:, [PITCH, YAW, ROLL]])
    assert np.abs(angles).max() < 30
    assert angles.std(axis=0).min() > 0.5  # the head does move
    shift = features.arkit[:, [TX, TY, TZ]]
    assert np.allclose(np.median(shift, axis=0), 0, atol=1e-4) and np.abs(shift).max() < 10  # cm from rest
    assert shift.std(axis=0).max() > 0.05


def test_head_pose_axes_follow_the_documented_convention():
    # A face turned to its left, nodding down and tilted toward its right shoulder (camera frame: x right, y up).
    pitch, yaw, roll = np.radians([10.0, 20.0, -5.0])
    matrix = np.eye(4)
    matrix[:3, :3] = head_rotation(pitch, yaw, roll)
    matrix[:3, 3] = (1.0, -2.0, -40.0)
    assert np.allclose(head_pose(matrix), [pitch, yaw, roll, 1.0, -2.0, -40.0])
    forward = matrix[:3, 2]  # where the nose points
    assert forward[0] > 0 and forward[1] < 0  # toward the image's right (subject's left) and down


def test_yaw_follows_the_nose_and_the_mirror_flips_it(tmp_path):
    video = shared_file(VIDEO)
    frames = list(iter_video_frames(video, num_frames=40))
    arkit = blendshapes_for_frames(frames)
    mirrored = blendshapes_for_frames([np.ascontiguousarray(f[:, ::-1]) for f in frames])
    assert np.corrcoef(arkit[:, YAW], -mirrored[:, YAW])[0, 1] > 0.9
    assert np.corrcoef(arkit[:, ROLL], -mirrored[:, ROLL])[0, 1] > 0.9
    assert np.corrcoef(channel(arkit, "eyeBlinkLeft"), channel(mirrored, "eyeBlinkRight"))[0, 1] > 0.8


def test_parallel_workers_give_the_same_result_as_one():
    frames = list(iter_video_frames(shared_file(VIDEO), num_frames=16))
    assert np.array_equal(blendshapes_for_frames(frames, workers=1), blendshapes_for_frames(frames, workers=2))


def test_cache_hit_returns_identical_arrays_without_mediapipe(talking, monkeypatch):
    video, features, cache, _ = talking
    assert len(list(cache.glob("*.npz"))) == 1

    def no_landmarker(*args, **kwargs):
        raise AssertionError("MediaPipe ran although the result was cached")

    monkeypatch.setattr(face_module, "open_landmarker", no_landmarker)
    again = extract_face(video, cache_dir=cache)
    for name in ("arkit", "emotion", "found"):
        assert np.array_equal(getattr(again, name), getattr(features, name))
    with pytest.raises(AssertionError, match="MediaPipe ran"):  # other settings, other entry
        extract_face(video, cache_dir=cache, num_frames=10)


def test_default_cache_follows_listenerctl_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LISTENERCTL_CACHE", str(tmp_path))
    assert face_module.default_cache_dir() == tmp_path / "face"


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory):
    """10 frames: a half-size copy of the speaker on the left, the full-size speaker on the right."""
    path = tmp_path_factory.mktemp("two") / "two faces.mp4"
    ffmpeg("-i", str(shared_file(VIDEO)), "-filter_complex",
           "[0:v]split[a][b];[a]scale=256:256,pad=512:512:0:128[small];[small][b]hstack",
           "-frames:v", "10", "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path))
    return path


def test_several_faces_track_the_largest_or_the_named_one(two_faces, tmp_path):
    largest = extract_face(two_faces, cache_dir=tmp_path)
    leftmost = extract_face(two_faces, face_index=0, cache_dir=tmp_path)
    second = extract_face(two_faces, face_index=1, cache_dir=tmp_path)
    assert largest.found.all() and leftmost.found.all()
    assert np.allclose(second.arkit, largest.arkit)
    # camera-frame positions (before the per-clip centring) tell which face each choice tracked
    raw_largest = blendshapes_for_frames(iter_video_frames(two_faces))
    raw_leftmost = blendshapes_for_frames(iter_video_frames(two_faces), face_index=0)
    assert np.all(raw_leftmost[:, TX] < 0) and np.all(raw_largest[:, TX] > 0)  # left vs right half
    assert np.all(raw_leftmost[:, TZ] < raw_largest[:, TZ])  # the small face reads as farther away
    with pytest.raises(ListenerctlError, match=r"^face 2 was asked for but at most 2 faces were seen") as error:
        extract_face(two_faces, face_index=2, cache_dir=tmp_path)
    assert not isinstance(error.value, NoFaceError)  # not reported as "no face found"


def test_choose_face_keeps_the_tracked_person_when_another_grows():
    tracked = np.array([0.6, 0.2, 0.8, 0.5])
    boxes = np.array([[0.0, 0.0, 0.5, 0.6], [0.61, 0.21, 0.8, 0.5]])  # the other face is now larger
    assert choose_face(boxes, None, None) == 0
    assert choose_face(boxes, tracked, None) == 1
    assert choose_face(boxes, tracked, 1) == 1 and choose_face(boxes, None, 0) == 0
    assert choose_face(boxes, None, 2) is None and choose_face(np.zeros((0, 4)), tracked, None) is None


def test_frames_without_a_face_are_interpolated_and_reported(tmp_path):
    path = tmp_path / "covered.mp4"
    ffmpeg("-i", str(shared_file(VIDEO)), "-vf", "drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='between(n,10,14)'",
           "-frames:v", "25", "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path))
    features = extract_face(path, cache_dir=tmp_path)
    assert list(np.flatnonzero(~features.found)) == [10, 11, 12, 13, 14]
    assert features.found_share == pytest.approx(20 / 25)
    gap = features.arkit[9:16]
    expected = gap[0] + (gap[-1] - gap[0]) * np.linspace(0, 1, 7)[:, None]
    assert np.allclose(gap, expected, atol=1e-5)


def test_fill_missing_interpolates_inside_and_holds_the_ends():
    arkit = np.array([[np.nan], [1.0], [np.nan], [np.nan], [4.0], [np.nan]], np.float32)
    found = ~np.isnan(arkit[:, 0])
    assert fill_missing(arkit, found)[:, 0].tolist() == [1.0, 1.0, 2.0, 3.0, 4.0, 4.0]


def test_video_without_a_face_raises_the_clear_error(tmp_path):
    path = tmp_path / "bars.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-frames:v", "6", "-pix_fmt", "yuv420p", str(path))
    with pytest.raises(NoFaceError, match=r"no face found in any frame of bars\.mp4"):
        extract_face(path, cache_dir=tmp_path)
    with pytest.raises(NoFaceError):  # the verdict is cached too
        extract_face(path, cache_dir=tmp_path)


def test_landmarks_for_image_in_pixels_and_none_without_a_face():
    portrait = cv2.cvtColor(cv2.imread(str(shared_file("portraits/portrait_1.jpg"))), cv2.COLOR_BGR2RGB)
    points = landmarks_for_image(portrait)
    height, width = portrait.shape[:2]
    assert points.shape == (478, 3) and points.dtype == np.float32
    assert np.all((points[:, 0] >= 0) & (points[:, 0] < width) & (points[:, 1] >= 0) & (points[:, 1] < height))
    assert np.ptp(points[:, 0]) > width / 4  # a face, not a speck
    assert landmarks_for_image(np.full((128, 128, 3), 127, np.uint8)) is None


def test_native_log_lines_are_silenced_while_python_stderr_keeps_working(capfd, tmp_path):
    video = shared_file(VIDEO)
    extract_face(video, num_frames=3, cache_dir=tmp_path, progress=lambda n: print(f"frame {n}", file=sys.stderr))
    os.write(2, b"fd 2 is back\n")
    assert capfd.readouterr().err == "frame 1\nframe 2\nframe 3\nfd 2 is back\n"


def test_extraction_in_a_fresh_interpreter_writes_nothing_on_stderr(tmp_path):
    video = shared_file(VIDEO)
    code = ("import sys; from listenerctl.features.face import extract_face; "
            "f = extract_face(sys.argv[1], num_frames=20, cache_dir=sys.argv[2]); print(f.found_share)")
    env = {k: v for k, v in os.environ.items() if k != "LISTENERCTL_DEBUG"}
    proc = subprocess.run([sys.executable, "-c", code, str(video), str(tmp_path)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1.0"
    assert proc.stderr == ""
