"""`generate` renders by default: every video decodes as H.264 at 25 fps with T frames and the speaker's audio."""

from __future__ import annotations

import json

import numpy as np

from helpers import SAMPLE_WAV, ffmpeg, run_cli, shared_file
from listenerctl.media import probe_streams


def check_video(path, frames, audio_seconds=None, width=None):
    info = probe_streams(path)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert video["codec_name"] == "h264" and video["pix_fmt"] == "yuv420p"
    assert video["r_frame_rate"] == "25/1"
    assert int(video["nb_read_frames"]) == frames
    if width is not None:
        assert int(video["width"]) == width
    audio = [s for s in info["streams"] if s["codec_type"] == "audio"]
    if audio_seconds is None:
        assert not audio
    else:
        assert len(audio) == 1 and abs(float(audio[0]["duration"]) - audio_seconds) <= 1 / 25


def test_generate_renders_mesh_videos_with_audio(tmp_path):
    clip = tmp_path / "talk6.wav"
    ffmpeg("-i", str(SAMPLE_WAV), "-t", "6", str(clip))
    proc = run_cli("generate", clip, "-k", 3, "--side-by-side", "--size", 128, "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    item = tmp_path / "out" / "talk6"
    for name in ["sample_00.mp4", "sample_01.mp4", "sample_02.mp4"]:
        check_video(item / name, 150, audio_seconds=6.0, width=128)
    check_video(item / "grid.mp4", 150, audio_seconds=6.0, width=256)  # 4 tiles → 2 x 2
    check_video(item / "side_by_side_00.mp4", 150, audio_seconds=6.0, width=256)
    manifest = json.loads((item / "manifest.json").read_text())
    assert "grid.mp4" in manifest["outputs"] and manifest["options"]["render"] == "mesh"
    assert manifest["timings"]["render_s"] > 0


def test_samples_look_different_and_move(tmp_path):
    """Rendered samples differ from each other, and each changes over time (it is not a still)."""
    clip = tmp_path / "talk4.wav"
    ffmpeg("-i", str(SAMPLE_WAV), "-ss", "2", "-t", "4", str(clip))
    assert run_cli("generate", clip, "-k", 2, "--size", 128, "-o", tmp_path / "out").returncode == 0
    frames = {}
    for k in (0, 1):
        raw = tmp_path / f"s{k}.rgb"
        ffmpeg("-i", str(tmp_path / "out" / "talk4" / f"sample_{k:02d}.mp4"), "-f", "rawvideo", "-pix_fmt", "rgb24", str(raw))
        frames[k] = np.fromfile(raw, np.uint8).reshape(-1, 128, 128, 3).astype(np.float32)
    assert frames[0].shape[0] == 100
    assert np.abs(frames[0] - frames[1]).mean() > 0.5
    assert np.abs(frames[0][1:] - frames[0][:-1]).mean(axis=(1, 2, 3)).max() > 0.5


def test_video_input_grid_shows_the_speaker(tmp_path):
    video = shared_file("video/talking_face_8s.mp4")
    clip = tmp_path / "face3.mp4"
    ffmpeg("-i", str(video), "-t", "3", str(clip))
    assert run_cli("generate", clip, "-k", 1, "--size", 128, "-o", tmp_path / "out").returncode == 0
    item = tmp_path / "out" / "face3"
    check_video(item / "grid.mp4", 75, audio_seconds=3.0, width=256)
    raw = tmp_path / "grid.rgb"
    ffmpeg("-i", str(item / "grid.mp4"), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", str(raw))
    grid = np.fromfile(raw, np.uint8).reshape(128, 256, 3)
    assert grid[:, :128].std() > 20  # the speaker tile holds the real video, not a flat colour


def test_video_without_audio_gives_silent_videos(tmp_path):
    video = shared_file("video/talking_face_8s.mp4")
    clip = tmp_path / "mute.mp4"
    ffmpeg("-i", str(video), "-t", "2", "-an", str(clip))
    assert run_cli("generate", clip, "-k", 1, "--size", 64, "-o", tmp_path / "out").returncode == 0
    check_video(tmp_path / "out" / "mute" / "sample_00.mp4", 50, audio_seconds=None)


def test_render_command_rerenders_saved_motion(tmp_path):
    clip = tmp_path / "talk3.wav"
    ffmpeg("-i", str(SAMPLE_WAV), "-t", "3", str(clip))
    assert run_cli("generate", clip, "-k", 2, "--render", "none", "-o", tmp_path / "out").returncode == 0
    item = tmp_path / "out" / "talk3"
    assert not list(item.glob("*.mp4"))
    proc = run_cli("render", item / "motion.npz", "--size", 96)
    assert proc.returncode == 0, proc.stderr
    check_video(item / "sample_01.mp4", 75, audio_seconds=3.0, width=96)
    check_video(item / "grid.mp4", 75, audio_seconds=3.0, width=192)
    missing = run_cli("render", tmp_path / "nothing.npz")
    assert missing.returncode == 2 and "motion file not found" in missing.stderr
