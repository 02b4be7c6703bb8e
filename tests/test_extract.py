"""Real-dyad corpora: which stretches become clips (constructed turns), appropriate reactions by speaker
similarity, splits by session, the report, and a corpus `train`/`evaluate` read (`data.dyads`, `data.extract`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import synthetic_audio
from listenerctl.conditioning import FaceFeatures
from listenerctl.data.corpus import load_corpus
from listenerctl.data.dyads import (DyadOptions, Session, appropriate_matrix, cut_dyads, listening_mask,
                                    session_problem, speaker_descriptor)
from listenerctl.data.extract import SessionRecord, load_session, save_session, write_corpus
from listenerctl.emotion import emotion_from_arkit
from listenerctl.errors import ListenerctlError
from listenerctl.media import write_wav

FPS = 25.0
CLIP = 101  # 4 s


def face(frames: int, seed: int, found: np.ndarray | None = None) -> FaceFeatures:
    arkit = np.clip(np.random.default_rng(seed).normal(0.2, 0.05, (frames, 58)), 0, 1).astype(np.float32)
    return FaceFeatures(arkit, emotion_from_arkit(arkit), np.ones(frames, bool) if found is None else found)


def turns(*spans: tuple[int, float]) -> np.ndarray:
    """talker [T] from (person, seconds) spans in order."""
    return np.concatenate([np.full(int(s * FPS), p, np.int32) for p, s in spans])


def session(key: str, talker: np.ndarray, seed: int = 0, found=None) -> Session:
    frames = len(talker)
    faces = [face(frames, seed + p, None if found is None else found[p]) for p in range(2)]
    return Session(key, FPS, faces, talker, [synthetic_audio(frames, seed + p) for p in range(2)])


def test_turns_become_clips_for_each_listener():
    # 0 talks 10 s, 1 talks 9 s, 0 talks 4.5 s: whole 4 s clips of each quiet stretch, leftovers counted
    talker = turns((0, 10), (1, 9), (0, 4.5))
    cut = cut_dyads(session("s", talker), DyadOptions(clip_frames=CLIP))
    listener1 = [c for c in cut.kept if c.listener == 1]
    listener0 = [c for c in cut.kept if c.listener == 0]
    assert [(c.start, c.stop, c.speaker) for c in listener1] == [(0, 101, 0), (101, 202, 0), (475, 576, 0)]
    assert [(c.start, c.stop, c.speaker) for c in listener0] == [(250, 351, 1), (351, 452, 1)]
    assert not cut.dropped and cut.short_quiet_s == pytest.approx((48 + 23 + 11) / FPS)


def test_short_backchannels_still_count_as_listening():
    talker = turns((0, 3), (1, 0.6), (0, 3), (1, 2), (0, 1))
    mask = listening_mask(talker, 1, FPS)
    assert mask[:int(6.6 * FPS)].all() and not mask[int(6.6 * FPS):int(8.6 * FPS)].any()
    cut = cut_dyads(session("s", talker), DyadOptions(clip_frames=CLIP))
    assert [(c.start, c.listener) for c in cut.kept] == [(0, 1)]  # 0.6 s "mm-hm" inside: 15 of 101 frames


def test_clips_failing_the_checks_are_dropped_with_their_reason():
    talker = turns((0, 4.04), (-1, 4.04), (0, 4.04))
    found = [np.ones(len(talker), bool), np.ones(len(talker), bool)]
    found[1][2 * CLIP:2 * CLIP + 40] = False                         # listener lost for 40 of 101 frames
    cut = cut_dyads(session("s", talker, found=found), DyadOptions(clip_frames=CLIP))
    assert [c.start for c in cut.kept if c.listener == 1] == [0]
    assert cut.dropped == {"the speaker talks in under 50% of the clip": 2,   # the pause, for each listener
                           "the listener's face is found in under 80% of the clip": 1}


def test_sessions_with_one_person_or_no_talk_are_refused():
    talker = turns((0, 10))
    lonely = session("s", talker, found=[np.ones(len(talker), bool), np.zeros(len(talker), bool)])
    assert session_problem(lonely) == "only 1 person is ever seen; a dyad needs two"
    assert not cut_dyads(lonely, DyadOptions(clip_frames=CLIP)).kept
    assert session_problem(session("s", turns((-1, 10)))) == "nobody talks"


def test_appropriate_reactions_are_the_clips_with_similar_speakers():
    rng = np.random.default_rng(0)
    calm, lively = rng.normal(0, 1, 58), rng.normal(0, 1, 58) + 3
    descriptors = np.stack([calm, calm + 0.01, lively, lively - 0.01, rng.normal(0, 1, 58) - 3])
    matrix = appropriate_matrix(descriptors)
    assert matrix.tolist() == [[True, True, False, False, False], [True, True, False, False, False],
                               [False, False, True, True, False], [False, False, True, True, False],
                               [False, False, False, False, True]]
    emotion = emotion_from_arkit(face(50, 0).arkit)
    assert speaker_descriptor(emotion, synthetic_audio(50)).shape == (58,)
    assert speaker_descriptor(emotion, None)[25:29].tolist() == [0, 0, 0, 0]


def record_of(sess: Session, folder) -> SessionRecord:
    wavs = []
    for p in range(2):
        wavs.append(str(folder / f"{sess.key}_{p}.wav"))
        samples = sess.num_frames * 640 - 8000                    # audio 0.5 s shorter than the video
        write_wav(wavs[-1], np.random.default_rng(p).normal(0, 0.1, samples).astype(np.float32))
    return SessionRecord(sess, np.zeros((2, 8, 8, 3), np.uint8), ["a.mp4", "b.mp4"], wavs, [0, 1])


def test_corpus_splits_by_session_and_reads_back(tmp_path):
    records = [record_of(session(f"s{i}", turns((0, 8.1), (1, 8.1)), seed=i), tmp_path) for i in range(4)]
    records.append(record_of(session("silent", turns((-1, 10))), tmp_path))
    root = tmp_path / "corpus"
    for record in records:
        save_session(root, record)
    loaded = [load_session(root / "sessions" / r.session.key) for r in records]
    assert np.array_equal(loaded[0].session.faces[1].arkit, records[0].session.faces[1].arkit)
    assert (root / "sessions" / "s0" / "contact_sheet.png").stat().st_size > 1000

    summary = write_corpus(root, loaded, DyadOptions(clip_frames=CLIP), report=lambda line: None)
    report = json.loads((root / "extract_report.json").read_text())
    assert report == json.loads(json.dumps(summary))
    by_key = {e["key"]: e for e in report["sessions"]}
    assert by_key["silent"]["skipped"] == "nobody talks" and by_key["silent"]["split"] is None
    assert by_key["s0"]["clips_kept"] == 4 and by_key["s0"]["dyad_minutes"] == pytest.approx(4 * CLIP / FPS / 60,
                                                                                               abs=1e-3)
    assert by_key["s0"]["speaking_share"] == [0.5, 0.5] and by_key["s0"]["people"] == 2
    splits = {s: set(v["sessions"]) for s, v in report["splits"].items()}
    assert set().union(*splits.values()) == {"s0", "s1", "s2", "s3"} and all(splits.values())
    assert sum(map(len, splits.values())) == 4                       # no session in two splits
    for split, keys in splits.items():
        corpus = load_corpus(root, split)
        assert {c.key.split("/")[1] for c in corpus.clips} == keys
        assert all(c.cond.num_frames == CLIP and c.reactions.shape[1:] == (CLIP, 58) for c in corpus.clips)
        assert all(c.cond.audio is not None and c.cond.face is not None for c in corpus.clips)
    assert not [p for p in root.iterdir() if p.name.startswith(".")]   # no staging left behind


def test_fewer_than_three_usable_sessions_is_one_sentence(tmp_path):
    records = [record_of(session(f"s{i}", turns((0, 8.1), (1, 8.1)), seed=i), tmp_path) for i in range(2)]
    with pytest.raises(ListenerctlError, match="only 2 sessions gave dyad clips"):
        write_corpus(tmp_path / "corpus", records, DyadOptions(clip_frames=CLIP), report=lambda line: None)
    assert (tmp_path / "corpus" / "extract_report.json").is_file()


def test_an_interrupted_write_leaves_nothing_half_written(tmp_path, monkeypatch):
    import listenerctl.data.extract as extract

    records = [record_of(session(f"s{i}", turns((0, 8.1), (1, 8.1)), seed=i), tmp_path) for i in range(3)]
    root = tmp_path / "corpus"
    monkeypatch.setattr(extract, "contact_sheet", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        save_session(root, records[0])
    assert not list((root / "sessions").iterdir())                   # no session folder, no staging
    monkeypatch.undo()

    calls = []
    real_write = extract.write_react_clip

    def killed_in_the_last_split(*args, **kwargs):
        calls.append(args)
        if args[1] == "test":
            raise KeyboardInterrupt()
        return real_write(*args, **kwargs)

    monkeypatch.setattr(extract, "write_react_clip", killed_in_the_last_split)
    with pytest.raises(KeyboardInterrupt):
        write_corpus(root, records, DyadOptions(clip_frames=CLIP), report=lambda line: None)
    assert sorted(p.name for p in root.iterdir()) == ["sessions"]    # no split, CSV, card or staging folder
