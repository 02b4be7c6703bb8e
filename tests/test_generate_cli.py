"""End to end: `listenerctl generate` on real inputs, and the conduct on bad input (DESIGN §11)."""

from __future__ import annotations

import json
import os
import shutil
import time

import numpy as np
import pytest

from helpers import SAMPLE_WAV, ffmpeg, run_cli, shared_file, two_people_clip
from listenerctl.media import probe


def generate(*args):
    """`listenerctl generate ARGS --render none`: these tests are about motion and conduct, not video."""
    return run_cli("generate", *args, "--render", "none")


def listener_of(item_dir):
    with np.load(item_dir / "motion.npz") as z:
        return z["listener"], z["emotion"], float(z["fps"]), str(z["spec"])


def assert_clean_failure(proc, out_dir, phrase):
    """One sentence naming the problem on stderr, non-zero exit, no traceback, nothing left behind."""
    assert proc.returncode != 0
    assert phrase in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) <= 2, proc.stderr
    assert not out_dir.exists() or not any(out_dir.rglob("*")), list(out_dir.rglob("*"))


def test_generate_on_shipped_sample(tmp_path):
    proc = generate(SAMPLE_WAV, "--samples", 10, "-o", tmp_path)
    assert proc.returncode == 0, proc.stderr
    item = tmp_path / "talk"
    listener, emotion, fps, spec = listener_of(item)
    frames = round(probe(SAMPLE_WAV).duration * 25)
    assert listener.shape == (10, frames, 58) and listener.dtype == np.float32
    assert emotion.shape == (10, frames, 25)
    assert (fps, spec) == (25.0, "arkit58")
    manifest = json.loads((item / "manifest.json").read_text())
    assert manifest["complete"] and manifest["conditioning"] == "audio"
    assert manifest["seed"] == 0 and manifest["model"]["name"] == "rules"
    assert "audio-only" in proc.stderr
    flat = listener.reshape(10, -1)
    assert min(np.abs(flat[i] - flat[j]).mean() for i in range(10) for j in range(i)) > 1e-3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary folders left"


def test_generate_on_talking_face_video_uses_face_and_audio(tmp_path):
    video = shared_file("video/talking_face_8s.mp4")
    proc = generate(video, "-k", 3, "-o", tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "talking_face_8s" / "manifest.json").read_text())
    assert manifest["conditioning"] == "audio+face"
    assert manifest["face_found_share"] > 0.95
    assert listener_of(tmp_path / "talking_face_8s")[0].shape == (3, 200, 58)
    assert proc.stderr.strip() == "" or "face lost" in proc.stderr, proc.stderr


def test_same_seed_same_motion_other_seed_other_motion(tmp_path):
    clip = tmp_path / "clip.wav"
    ffmpeg("-i", str(SAMPLE_WAV), "-t", "6", str(clip))
    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert generate(clip, "-k", 2, "--seed", seed, "-o", tmp_path / name).returncode == 0
        runs[name] = listener_of(tmp_path / name / "clip")[0]
    assert np.array_equal(runs["a"], runs["b"])
    assert not np.allclose(runs["a"], runs["c"])


@pytest.mark.parametrize("name", ["with space.wav", "ünïcødé 語.wav"])
def test_odd_file_names(tmp_path, name):
    clip = tmp_path / name
    shutil.copy(SAMPLE_WAV, clip)
    proc = generate(clip, "-k", 2, "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / clip.stem / "motion.npz").exists()


@pytest.mark.parametrize("rate,channels", [(8000, 1), (44100, 2), (48000, 6)])
def test_odd_sample_rates_and_channel_counts(tmp_path, rate, channels):
    clip = tmp_path / f"speech_{rate}_{channels}.wav"
    ffmpeg("-i", str(SAMPLE_WAV), "-t", "4", "-ar", str(rate), "-ac", str(channels), str(clip))
    proc = generate(clip, "-k", 2, "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert listener_of(tmp_path / "out" / clip.stem)[0].shape == (2, 100, 58)


def test_video_without_audio_conditions_on_face(tmp_path):
    video = shared_file("video/talking_face_8s.mp4")
    silent = tmp_path / "silent.mp4"
    ffmpeg("-i", str(video), "-t", "4", "-an", "-c:v", "copy", str(silent))
    proc = generate(silent, "-k", 2, "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "no audio track" in proc.stderr
    manifest = json.loads((tmp_path / "out" / "silent" / "manifest.json").read_text())
    assert manifest["conditioning"] == "face"


def test_video_without_face_conditions_on_audio(tmp_path):
    clip = tmp_path / "noface.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-i", str(SAMPLE_WAV), "-t", "3",
           "-pix_fmt", "yuv420p", "-shortest", str(clip))
    proc = generate(clip, "-k", 2, "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "no face found in any frame" in proc.stderr
    manifest = json.loads((tmp_path / "out" / "noface" / "manifest.json").read_text())
    assert manifest["conditioning"] == "audio"


def test_faces_lost_in_some_frames_are_interpolated_and_reported(tmp_path):
    video = shared_file("video/talking_face_8s.mp4")
    clip = tmp_path / "dropouts.mp4"
    ffmpeg("-i", str(video), "-t", "4", "-vf", "drawbox=enable='between(t,1,2)':x=0:y=0:w=iw:h=ih:color=black:t=fill",
           "-c:a", "copy", str(clip))
    proc = generate(clip, "-k", 2, "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "out" / "dropouts" / "manifest.json").read_text())
    assert 0.6 < manifest["face_found_share"] < 0.85
    assert "face lost in" in proc.stderr


@pytest.fixture(scope="module")
def two_people(tmp_path_factory):
    """3 s of the two real talking faces side by side, the right one (B) larger, with A's audio."""
    return two_people_clip(tmp_path_factory.mktemp("two_people") / "two people.mp4")


@pytest.mark.parametrize("choice,person,because", [([], 0, "who talks most"), (["--face", "largest"], 1, "the largest face"),
                                                   (["--face", "1"], 1, "face 1"),
                                                   (["--face-at", "100,200"], 0, "nearest the point 100,200")])
def test_with_two_people_the_chosen_face_conditions_and_the_manifest_says_so(two_people, tmp_path, choice, person,
                                                                                because):
    proc = generate(two_people, "-k", 2, "-o", tmp_path, *choice)
    assert proc.returncode == 0, proc.stderr
    assert f"2 people seen (numbered from the left): conditioning on person {person}, {because}" in proc.stderr
    manifest = json.loads((tmp_path / "two people" / "manifest.json").read_text())
    assert manifest["people"]["seen"] == 2 and manifest["people"]["chosen"] == person
    assert manifest["people"]["because"].startswith(because) and min(manifest["people"]["found_share"]) > 0.9
    assert manifest["conditioning"] == "audio+face"


@pytest.mark.parametrize("choice,phrase", [(["--face", "2"], "face 2 was asked for but 2 people were seen"),
                                           (["--face", "left"], "--face takes 'auto', 'largest' or a face number"),
                                           (["--face-at", "10"], "--face-at takes a pixel point X,Y"),
                                           (["--face-at", "900,10"], "outside the 640x384 video")])
def test_a_face_choice_that_cannot_be_met_is_one_sentence(two_people, tmp_path, choice, phrase):
    assert_clean_failure(generate(two_people, "-k", 2, "-o", tmp_path / "out", *choice), tmp_path / "out", phrase)


def test_variable_frame_rate_video(tmp_path):
    video = shared_file("video/talking_face_8s.mp4")
    vfr = tmp_path / "vfr.mkv"
    # drop frames unevenly (keep 2 of every 3 in the first half, all later): a variable frame rate stream
    ffmpeg("-i", str(video), "-t", "4", "-vf", "select='gte(t,2)+not(eq(mod(n,3),2))'", "-fps_mode", "vfr",
           "-c:a", "aac", str(vfr))
    proc = generate(vfr, "-k", 2, "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    frames = round(probe(vfr).duration * 25)
    assert listener_of(tmp_path / "out" / "vfr")[0].shape == (2, frames, 58)


def test_missing_file(tmp_path):
    proc = generate(tmp_path / "nope.mp4", "-o", tmp_path / "out")
    assert_clean_failure(proc, tmp_path / "out", "input file not found")


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert_clean_failure(generate(empty, "-o", tmp_path / "out"), tmp_path / "out", "empty (0 bytes)")


def test_corrupt_container(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).bytes(50_000))
    assert_clean_failure(generate(junk, "-o", tmp_path / "out"), tmp_path / "out",
                         "cannot read junk.mp4 as audio or video")


def test_truncated_video(tmp_path):
    video = shared_file("video/talking_face_8s.mp4")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    proc = generate(cut, "-k", 2, "-o", tmp_path / "out")
    if proc.returncode == 0:  # a stream ffmpeg can still read in part is used as far as it goes
        assert (tmp_path / "out" / "cut" / "motion.npz").exists()
    else:
        assert_clean_failure(proc, tmp_path / "out", "cut.mp4")


def test_directory_is_not_a_file(tmp_path):
    assert_clean_failure(generate(tmp_path, "-o", tmp_path / "out"), tmp_path / "out",
                         "input is not a file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file(tmp_path):
    locked = tmp_path / "locked.wav"
    shutil.copy(SAMPLE_WAV, locked)
    locked.chmod(0)
    assert_clean_failure(generate(locked, "-o", tmp_path / "out"), tmp_path / "out", "locked.wav")


def test_zero_length_and_too_short(tmp_path):
    zero = tmp_path / "zero.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "0", str(zero))
    assert_clean_failure(generate(zero, "-o", tmp_path / "out"), tmp_path / "out", "zero.wav")
    short = tmp_path / "short.wav"
    ffmpeg("-i", str(SAMPLE_WAV), "-t", "0.1", str(short))
    assert_clean_failure(generate(short, "-o", tmp_path / "out"), tmp_path / "out", "at least")


def test_absurd_length_is_refused(tmp_path, monkeypatch):
    from listenerctl import media
    from listenerctl.errors import ListenerctlError

    monkeypatch.setattr(media, "MAX_DURATION_S", 10.0)
    with pytest.raises(ListenerctlError, match="refused, split it first"):
        media.probe(SAMPLE_WAV)


def test_two_inputs_with_the_same_stem(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    for d in "ab":
        shutil.copy(SAMPLE_WAV, tmp_path / d / "talk.wav")
    proc = generate(tmp_path / "a/talk.wav", tmp_path / "b/talk.wav", "-o", tmp_path / "out")
    assert_clean_failure(proc, tmp_path / "out", "would both write")


def test_unknown_model(tmp_path):
    proc = generate(SAMPLE_WAV, "--model", "nosuch", "-o", tmp_path / "out")
    assert_clean_failure(proc, tmp_path / "out", "unknown model 'nosuch'")


def test_video_longer_than_its_audio_is_covered_whole_and_padding_reported(tmp_path):
    video = shared_file("video/talking_face_8s.mp4")
    clip = tmp_path / "short_audio.mp4"
    ffmpeg("-i", str(video), "-c:v", "copy", "-af", "atrim=0:6.8", "-c:a", "aac", str(clip))
    proc = generate(clip, "-k", 2, "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert listener_of(tmp_path / "out" / "short_audio")[0].shape == (2, 200, 58)
    manifest = json.loads((tmp_path / "out" / "short_audio" / "manifest.json").read_text())
    assert list(manifest["padded_s"]) == ["audio"] and 1.0 < manifest["padded_s"]["audio"] < 1.3
    assert "audio stream is" in proc.stderr and "padded with silence" in proc.stderr
    with np.load(tmp_path / "out" / "short_audio" / "speaker.npz") as speaker:
        assert not speaker["audio_vad"][175:].any() and speaker["face_found"][175:].all()


def test_audio_longer_than_its_video_is_covered_whole_and_padding_reported(tmp_path):
    video = shared_file("video/talking_face_8s.mp4")
    clip = tmp_path / "short_video.mp4"
    ffmpeg("-i", str(video), "-c:a", "copy", "-vf", "trim=0:6.5", "-c:v", "libx264", str(clip))
    proc = generate(clip, "-k", 2, "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert listener_of(tmp_path / "out" / "short_video")[0].shape == (2, 200, 58)
    manifest = json.loads((tmp_path / "out" / "short_video" / "manifest.json").read_text())
    assert list(manifest["padded_s"]) == ["video"] and 1.4 < manifest["padded_s"]["video"] < 1.6
    assert "padded with its last frame" in proc.stderr


def test_equal_streams_report_no_padding(tmp_path):
    video = shared_file("video/talking_face_8s.mp4")
    proc = generate(video, "-k", 2, "-o", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "talking_face_8s" / "manifest.json").read_text())["padded_s"] == {}
    assert "padded" not in proc.stderr


@pytest.mark.parametrize("name,args", [("still.png", []), ("still.jpg", []), ("one_frame.mp4", ["-an"])])
def test_a_still_image_is_named_as_such(tmp_path, name, args):
    video = shared_file("video/talking_face_8s.mp4")
    still = tmp_path / name
    ffmpeg("-i", str(video), "-frames:v", "1", *args, str(still))
    proc = generate(still, "-o", tmp_path / "out")
    assert_clean_failure(proc, tmp_path / "out", f"{name} is a still image (one frame)")
    assert "lasts" not in proc.stderr and "zero length" not in proc.stderr


def test_a_rerun_removes_what_an_interrupted_run_left(tmp_path):
    """A SIGKILLed run leaves its hidden working folder; the next run of the same output removes it, and
    leaves another output's working folder alone when that one is still being written."""
    out = tmp_path / "out"
    stale = out / ".talk.k3j9x_2q.partial"
    stale.mkdir(parents=True)
    (stale / "speaker.npz").write_bytes(b"half written")
    os.utime(stale, (time.time() - 60, time.time() - 60))
    busy = out / ".other.a1b2c3d4.partial"
    busy.mkdir()
    proc = generate(SAMPLE_WAV, "-k", 2, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert not stale.exists() and busy.exists()
    assert sorted(p.name for p in out.iterdir()) == [".other.a1b2c3d4.partial", "talk"]
    assert json.loads((out / "talk" / "manifest.json").read_text())["complete"]
