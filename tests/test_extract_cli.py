"""`listenerctl data extract` on two-person sessions built from the real talking faces (../shared/data/video),
and the whole path a researcher takes: extract → train --init (fine-tune a shipped checkpoint) → evaluate →
generate with the fine-tuned checkpoint. Bad sessions are reported and skipped; inputs that are no
layout are one sentence; a rerun reuses analysed sessions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from composites import session_folder
from helpers import ROOT, ffmpeg, run_cli, shared_file
from listenerctl.data.corpus import load_corpus
from listenerctl.errors import ListenerctlError

TURNS = ([(0, 4.4), (1, 4.4), (0, 4.4)], [(1, 4.4), (0, 4.4), (1, 4.4)], [(0, 5.0), (1, 4.4), (0, 4.4)],
         [(1, 5.0), (0, 4.4), (1, 4.4)])


def test_inputs_that_are_no_session_layout_are_one_sentence(tmp_path):
    (tmp_path / "empty").mkdir()
    bad_csv = tmp_path / "people.csv"
    bad_csv.write_text("session,who\ns1,a\n")
    for args, message in (((tmp_path / "missing",), "input not found"),
                          ((tmp_path / "empty",), "is not a session"),
                          ((bad_csv,), "needs a header with the columns session, person, video")):
        result = run_cli("data", "extract", *args, "-o", tmp_path / "corpus")
        assert result.returncode == 2 and message in result.stdout + result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_session_layouts_are_recognised(tmp_path):
    from listenerctl.data.extract_inputs import find_sessions

    for name in ("lab/s1/ann.mp4", "lab/s1/ann.wav", "lab/s1/bob.mp4", "lab/s2/two_shot.mp4", "calls/a.mp4",
                 "calls/b.mp4", "mix/ann.mp4", "mix/bob.mp4", "mix/room.wav"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    (tmp_path / "mixed.csv").write_text("session,person,video,audio\nm,ann,mix/ann.mp4,mix/room.wav\n"
                                        "m,bob,mix/bob.mp4,mix/room.wav\n")
    s1, s2 = find_sessions([tmp_path / "lab"])
    assert (s1.key, [(p.name, p.audio and p.audio.name) for p in s1.people]) == ("s1", [("ann", "ann.wav"),
                                                                                        ("bob", None)])
    assert not s1.mixed_audio and (s2.key, s2.video.name, s2.mixed_audio) == ("s2", "two_shot.mp4", True)
    assert [s.key for s in find_sessions([tmp_path / "calls"], shared=True)] == ["a", "b"]
    assert [len(s.people) for s in find_sessions([tmp_path / "calls"])] == [2]
    (mixed,) = find_sessions([tmp_path / "mixed.csv"])
    assert mixed.mixed_audio and [p.name for p in mixed.people] == ["ann", "bob"]
    with pytest.raises(ListenerctlError, match="session s1 is given more than once"):
        find_sessions([tmp_path / "lab", tmp_path / "lab" / "s1"])


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    """Four dialogues with alternating turns (layout a: one video per person, each with their own track), a
    session where nobody talks, and a CSV session where only one of the two people is ever seen."""
    sources = (shared_file("video/talking_face_8s.mp4"), shared_file("video/talking_face_b_8s.mp4"))
    root = tmp_path_factory.mktemp("dialogues")
    for i, turns in enumerate(TURNS):
        session_folder(sources, turns, root / "sessions" / f"dialogue{i}")
    session_folder(sources, [(-1, 6.0)], root / "sessions" / "silence")
    lonely = session_folder(sources, [(0, 6.0)], root / "lonely")
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=256x256:r=25:d=6", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           str(lonely / "nobody.mp4"))
    (root / "lonely.csv").write_text("session,person,video,audio\nlonely,a,lonely/person_a.mp4,\n"
                                     "lonely,b,lonely/nobody.mp4,lonely/person_b.mp4\n")
    return root


def test_extract_then_fine_tune_evaluate_and_generate(sessions, tmp_path):
    corpus = tmp_path / "corpus"
    result = run_cli("data", "extract", sessions / "sessions", sessions / "lonely.csv", "-o", corpus,
                     "--clip-seconds", "4", timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((corpus / "extract_report.json").read_text())
    by_key = {entry["key"]: entry for entry in report["sessions"]}
    assert by_key["silence"]["skipped"] == "nobody talks"
    assert by_key["lonely"]["skipped"] == "only 1 person is ever seen; a dyad needs two"
    for i, turns in enumerate(TURNS):
        entry = by_key[f"dialogue{i}"]
        assert entry["people"] == 2 and min(entry["found_share"]) > 0.95
        truth = [sum(s for p, s in turns if p == person) / sum(s for _, s in turns) for person in (0, 1)]
        assert np.allclose(entry["speaking_share"], truth, atol=0.12)          # own tracks decide who talks
        assert entry["clips_kept"] == 3 and entry["dyad_minutes"] == pytest.approx(3 * 101 / 25 / 60, abs=1e-3)
        assert (corpus / entry["contact_sheet"]).stat().st_size > 5000
    splits = {split: set(v["sessions"]) for split, v in report["splits"].items()}
    assert sorted(k for keys in splits.values() for k in keys) == [f"dialogue{i}" for i in range(4)]
    for split, keys in splits.items():
        loaded = load_corpus(corpus, split)
        assert {clip.key.split("/")[1] for clip in loaded.clips} == keys        # splits by session
        assert all(clip.reactions.shape[1:] == (101, 58) for clip in loaded.clips)

    again = run_cli("data", "extract", sessions / "sessions", sessions / "lonely.csv", "-o", corpus,
                    "--clip-seconds", "4")
    assert again.returncode == 0 and "dialogue0: analysed before" in again.stderr
    assert json.loads((corpus / "extract_report.json").read_text())["splits"] == report["splits"]

    tuned = tmp_path / "sfms-real"
    result = run_cli("train", "sfms", "--data", corpus, "--init", ROOT / "checkpoints" / "sfms.safetensors",
                     "--out", tuned, "--steps", "4", "--log-every", "2", "--device", "cpu")
    assert result.returncode == 0, result.stdout + result.stderr
    card = json.loads(tuned.with_name("sfms-real.json").read_text())
    shipped = json.loads((ROOT / "checkpoints" / "sfms.json").read_text())
    assert card["init"]["sha256"] == shipped["sha256"] and card["steps"] == 4
    assert card["training_data"]["corpus"] == str(corpus)

    evaluation = tmp_path / "evaluation"
    result = run_cli("evaluate", "--data", corpus, "--split", "test", "-m", f"sfms={tuned}.safetensors",
                     "-m", "sfms", "-m", "mean", "-k", "3", "-o", evaluation, "--device", "cpu")
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = json.loads((evaluation / "metrics.json").read_text())
    assert {"sfms (sfms-real)", "sfms", "mean"} <= set(json.dumps(metrics).split('"'))

    result = run_cli("generate", shared_file("video/talking_face_8s.mp4"), "--model", "sfms", "--checkpoint",
                     f"{tuned}.safetensors", "-o", tmp_path / "generated", "--render", "none", "--device", "cpu")
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((tmp_path / "generated" / "talking_face_8s" / "manifest.json").read_text())
    assert json.dumps(manifest).count(card["sha256"]) >= 1


def test_one_video_with_both_people_in_view(tmp_path):
    """Layout (b): side by side, one mixed track; the people are found by the multi-person tracker and who
    talks comes from audio-visual synchrony."""
    from composites import side_by_side

    sources = (shared_file("video/talking_face_8s.mp4"), shared_file("video/talking_face_b_8s.mp4"))
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i, turns in enumerate(TURNS[:3]):
        side_by_side(sources, turns, tmp_path / "parts" / f"two_shot{i}.mp4").rename(inputs / f"two_shot{i}.mp4")
    corpus = tmp_path / "corpus"
    result = run_cli("data", "extract", inputs, "--shared", "-o", corpus, "--clip-seconds", "4", timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((corpus / "extract_report.json").read_text())
    for entry, turns in zip(report["sessions"], TURNS):
        assert entry["people"] == 2 and entry["clips_kept"] >= 2
        truth = [sum(s for p, s in turns if p == person) / sum(s for _, s in turns) for person in (0, 1)]
        assert np.allclose(entry["speaking_share"], truth, atol=0.15)


def test_videos_per_person_with_one_mixed_track_follow_the_turns(tmp_path):
    """Layout (a) with one room microphone (the CSV names the same audio file for both): who talks comes from
    audio-visual synchrony of each person's own video with the mixed track."""
    from listenerctl.data.extract_inputs import analyse_session, find_sessions

    sources = (shared_file("video/talking_face_8s.mp4"), shared_file("video/talking_face_b_8s.mp4"))
    turns = TURNS[2]
    folder = session_folder(sources, turns, tmp_path / "s", still=True)
    ffmpeg("-i", str(folder / "person_a.mp4"), "-i", str(folder / "person_b.mp4"), "-filter_complex",
           "[0:a][1:a]amix=inputs=2:normalize=0[a]", "-map", "[a]", str(folder / "room.wav"))
    (tmp_path / "room.csv").write_text("session,person,video,audio\nroom,a,s/person_a.mp4,s/room.wav\n"
                                       "room,b,s/person_b.mp4,s/room.wav\n")
    (session,) = find_sessions([tmp_path / "room.csv"])
    record = analyse_session(session)
    assert session.mixed_audio and record.audio_of == [0, 0] and record.audio_sources == [str(folder / "room.wav")]
    talker, start = record.session.talker, 0
    for person, seconds in turns:                     # the person heard most in each turn is its talker
        stop = start + int(seconds * 25)
        heard = talker[start:stop][talker[start:stop] >= 0]
        assert np.bincount(heard, minlength=2).argmax() == person
        start = stop
