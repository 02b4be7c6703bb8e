"""The cospeech job end to end with the shipped DiffSHEG checkpoint: every output file readable and
consistent, atomic publishing, and one clear sentence for each kind of bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from listenerctl.cospeech import CoSpeechOptions, generate_cospeech, read_cospeech_motion
from listenerctl.data.beat import LIVE_LINK_COLUMNS, read_beat_face_json, read_bvh
from listenerctl.errors import ListenerctlError
from listenerctl.media import probe_streams, write_wav
from listenerctl.models import load_generator
from helpers import ffmpeg

FAST = CoSpeechOptions(steps=5, size=96)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def generator():
    return load_generator("diffsheg")


def speech(seconds: float, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * (np.sin(2 * np.pi * 3 * t) > 0) * np.sin(2 * np.pi * 160 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, generator):
    root = tmp_path_factory.mktemp("cospeech")
    wav = root / "talk 1.wav"  # a space in the name
    write_wav(wav, speech(2.0))
    folder = generate_cospeech(wav, root / "out", samples=2, seed=5, options=FAST, generator=generator)
    return folder


def test_outputs_are_complete_and_consistent(finished, generator):
    assert finished.name == "talk 1"
    manifest = json.loads((finished / "manifest.json").read_text())
    expected = {"motion.npz", "manifest.json"} | {f"sample_{k:02d}{s}" for k in range(2) for s in
                                                 (".bvh", "_face.json", "_livelink.csv", ".mp4")}
    assert set(manifest["outputs"]) == expected == {p.name for p in finished.iterdir()}
    assert manifest["complete"] and manifest["seed"] == 5 and manifest["model"]["sha256"] == generator.card["sha256"]
    expression, gesture = read_cospeech_motion(finished / "motion.npz")
    assert expression.data.shape == (2, 30, 51) and gesture.data.shape == (2, 30, 141) and gesture.fps == 15.0
    assert not np.allclose(gesture.data[0], gesture.data[1])  # K samples differ

    clip = read_bvh(finished / "sample_01.bvh")
    assert clip.skeleton.num_joints == 75 and clip.fps == pytest.approx(15.0, rel=1e-4)
    beat_index = [clip.skeleton.index(n) for n in ("Spine", "RightArm", "LeftHandThumb3")]
    written = clip.rotations[:, beat_index].reshape(30, -1)
    from listenerctl.motion import BEAT_JOINTS47
    wanted = gesture.data[1].reshape(30, 47, 3)[:, [BEAT_JOINTS47.index(n) for n in ("Spine", "RightArm",
                                                                                   "LeftHandThumb3")]]
    assert np.allclose(written, wanted.reshape(30, -1), atol=1e-4)

    face = read_beat_face_json(finished / "sample_00_face.json")
    assert np.allclose(face.data[0], expression.data[0], atol=1e-5)
    with open(finished / "sample_00_livelink.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == LIVE_LINK_COLUMNS and len(rows) == 31

    streams = probe_streams(finished / "sample_00.mp4")["streams"]
    video = next(s for s in streams if s["codec_type"] == "video")
    assert int(video["nb_read_frames"]) == 50 and video["avg_frame_rate"] == "25/1"
    assert any(s["codec_type"] == "audio" for s in streams)


def test_a_failure_leaves_nothing_under_the_final_name(tmp_path, generator, monkeypatch):
    import listenerctl.cospeech as job

    wav = tmp_path / "talk.wav"
    write_wav(wav, speech(1.0))

    def broken(*args, **kwargs):
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(job, "write_videos", broken)
    with pytest.raises(RuntimeError):
        generate_cospeech(wav, tmp_path / "out", samples=1, options=FAST, generator=generator)
    assert list((tmp_path / "out").iterdir()) == []


def test_short_silent_and_odd_rate_inputs_work_and_say_so(tmp_path, generator):
    quiet = tmp_path / "quiet.wav"
    write_wav(quiet, np.zeros(8000, np.float32))
    notes = []
    folder = generate_cospeech(quiet, tmp_path / "out", samples=1, options=CoSpeechOptions(steps=3, render="none"),
                               generator=generator, report=notes.append)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert any("silent" in n for n in manifest["notes"]) and any("window" in n for n in manifest["notes"])
    assert notes and "quiet.wav" in notes[0]
    odd = tmp_path / "odd.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=220:sample_rate=44100:duration=1.3", "-ac", "2", str(odd))
    folder = generate_cospeech(odd, tmp_path / "out", samples=1, options=CoSpeechOptions(steps=3, render="none"),
                               generator=generator)
    assert read_cospeech_motion(folder / "motion.npz")[1].num_frames == 20  # 1.3 s at 15 fps


def test_bad_inputs_are_one_sentence(tmp_path, generator):
    cases = []
    cases.append((tmp_path / "absent.wav", "not found"))
    short = tmp_path / "short.wav"
    write_wav(short, speech(0.1))
    cases.append((short, "at least 0.2 s"))
    mute = tmp_path / "mute.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=64x64:d=1", "-c:v", "libx264", str(mute))
    cases.append((mute, "no audio track"))
    for path, message in cases:
        with pytest.raises(ListenerctlError, match=message) as info:
            generate_cospeech(path, tmp_path / "out", samples=1, options=FAST, generator=generator)
        assert "\n" not in str(info.value)
    wav = tmp_path / "talk.wav"
    write_wav(wav, speech(1.0))
    with pytest.raises(ListenerctlError, match="needs the folder"):
        generate_cospeech(wav, tmp_path / "out", options=CoSpeechOptions(render="smplx"), generator=generator)
    (tmp_path / "models").mkdir()
    with pytest.raises(ListenerctlError, match="lacks SMPLX_NEUTRAL.npz"):
        generate_cospeech(wav, tmp_path / "out", samples=1,
                          options=CoSpeechOptions(steps=2, render="smplx", smplx_folder=str(tmp_path / "models")),
                          generator=generator)
    assert not (tmp_path / "out" / "talk").exists()


def test_cli_generates_cospeech_files_for_the_sample_recording(tmp_path, monkeypatch):
    from listenerctl.motion import resample
    from helpers import SAMPLE_WAV, run_cli

    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    result = run_cli("generate", SAMPLE_WAV, "--task", "cospeech", "-k", "1", "--steps", "4", "--size", "64",
                     "--device", "cpu", "-o", tmp_path)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / SAMPLE_WAV.stem
    for name in ("motion.npz", "manifest.json", "sample_00.bvh", "sample_00_face.json", "sample_00_livelink.csv",
                 "sample_00.mp4"):
        assert (folder / name).is_file(), name
    expression, gesture = read_cospeech_motion(folder / "motion.npz")
    video_frames = resample(gesture.data, 15.0, 25.0, axis=1).shape[1]
    probe = probe_streams(folder / "sample_00.mp4")
    video = next(s for s in probe["streams"] if s["codec_type"] == "video")
    assert int(video["nb_read_frames"]) == video_frames and video["avg_frame_rate"] == "25/1"
    assert any(s["codec_type"] == "audio" for s in probe["streams"])
    assert float(probe["format"]["duration"]) == pytest.approx(video_frames / 25.0, abs=0.1)
    assert gesture.num_frames / 15.0 == pytest.approx(28.76, abs=0.1)  # samples/talk.wav lasts 28.76 s
    clip = read_bvh(folder / "sample_00.bvh")
    assert clip.rotations.shape[:2] == (gesture.num_frames, 75) and clip.fps == pytest.approx(15.0, rel=1e-4)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["task"] == "cospeech" and manifest["options"]["steps"] == 4


def test_cli_cospeech_bad_input_is_one_sentence(tmp_path):
    from helpers import SAMPLE_WAV, run_cli

    result = run_cli("generate", SAMPLE_WAV, "--task", "cospeech", "--smplx-model", tmp_path, "-o", tmp_path / "o")
    assert result.returncode == 2 and "lacks SMPLX_NEUTRAL.npz" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = run_cli("generate", SAMPLE_WAV, "--task", "cospeech", "--model", "rules2", "-o", tmp_path / "o")
    assert result.returncode == 2 and "not a co-speech model" in result.stderr
    result = run_cli("generate", SAMPLE_WAV, "--model", "diffsheg", "--render", "none", "-o", tmp_path / "o")
    assert result.returncode == 2 and "not a listener model" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()
