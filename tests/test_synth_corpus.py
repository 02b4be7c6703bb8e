"""`listenerctl data synth`: a dyadic corpus in REACT layout, split by recording, M reactions per clip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import SAMPLE_WAV, run_cli
from listenerctl.data.corpus import load_corpus
from listenerctl.data.react import ReactDataset, read_split_csv
from listenerctl.data.speech import synthesize_speech
from listenerctl.data.synth import SynthOptions, assign_splits, build_corpus, reaction_seed
from listenerctl.errors import ListenerctlError
from listenerctl.features.audio import extract_audio
from listenerctl.media import load_audio
from listenerctl.models.rules import RuleListener


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Four ~25 s espeak-ng recordings plus the shipped sample."""
    folder = tmp_path_factory.mktemp("speech")
    synthesize_speech(folder, minutes=1.5, seed=3, recording_minutes=0.4)
    (folder / "talk.wav").write_bytes(SAMPLE_WAV.read_bytes())
    return folder


@pytest.fixture(scope="module")
def corpus_root(speech, tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    build_corpus([speech], root, SynthOptions(personalities=3, clip_frames=125, seed=1), report=lambda _: None)
    return root


def test_synthetic_speech_is_reproducible_and_has_pauses(speech, tmp_path):
    again = synthesize_speech(tmp_path, minutes=1.5, seed=3, recording_minutes=0.4)
    assert again and all((speech / f.name).read_bytes() == f.read_bytes() for f in again)
    vad = extract_audio(load_audio(again[0])).vad
    assert 0.4 < vad.mean() < 0.95  # speech with real pauses


def test_corpus_layout_and_splits(corpus_root):
    card = json.loads((corpus_root / "corpus.json").read_text())
    assert card["spec"] == "arkit58" and card["personalities"] == 3
    split_of = {r["key"]: r["split"] for r in card["recordings"]}
    assert set(split_of.values()) == {"train", "val", "test"}
    for split in ("train", "val", "test"):
        rows = read_split_csv(corpus_root, split)
        recordings = {speaker.split("/")[1] for speaker, _ in rows}
        assert all(split_of[r] == split for r in recordings), "a recording leaks across splits"
        data = ReactDataset(corpus_root, split)
        assert data.neighbours is not None and len(data) == len(rows)
        same = np.array([[a[0] == b[0] for b in rows] for a in rows])
        assert np.array_equal(data.neighbours, same)


def test_corpus_reactions_are_the_rule_listener_personalities(corpus_root):
    corpus = load_corpus(corpus_root, "train")
    clip = corpus.clips[0]
    assert clip.reactions.shape == (3, 125, 58) and clip.reaction_emotion.shape == (3, 125, 25)
    assert clip.cond.audio is not None and clip.cond.num_frames == 125
    flat = clip.reactions.reshape(3, -1)
    assert min(np.abs(flat[i] - flat[j]).mean() for i in range(3) for j in range(i)) > 1e-3
    # the stored reactions are exactly the rule listener's output on the stored speaker conditioning
    card = json.loads((corpus_root / "corpus.json").read_text())
    _, key, _, number = clip.key.split("/")
    index = [r["key"] for r in card["recordings"]].index(key)
    seed = reaction_seed(card["seed"], index, int(number))
    regenerated = RuleListener().generate(clip.cond, 3, seed=seed).data
    np.testing.assert_allclose(regenerated, clip.reactions, atol=1e-6)


def test_split_assignment_covers_every_split_and_is_seeded():
    durations = {f"r{i}": 60.0 + i for i in range(10)}
    first = assign_splits(durations, seed=0)
    assert first == assign_splits(durations, seed=0)
    assert set(first.values()) == {"train", "val", "test"}
    assert sum(durations[k] for k, s in first.items() if s == "train") > 0.5 * sum(durations.values())


def test_too_few_long_recordings_is_a_clear_error(speech, tmp_path):
    with pytest.raises(ListenerctlError, match="at least 3"):
        build_corpus([speech / "talk.wav"], tmp_path, SynthOptions(clip_frames=125), report=lambda _: None)


def test_synth_cli_reports_short_recordings(speech, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for f in list(speech.glob("*.wav"))[:3]:
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "tiny.wav").write_bytes((speech / "talk.wav").read_bytes()[:40_000])
    proc = run_cli("data", "synth", folder, "-o", tmp_path / "corpus", "-m", 2, "--clip-seconds", 5)
    assert proc.returncode == 0, proc.stderr
    assert "skipped tiny.wav" in proc.stderr
    card = json.loads((tmp_path / "corpus" / "corpus.json").read_text())
    assert [s["source"].endswith("tiny.wav") for s in card["skipped"]] == [True]


def test_evaluate_scores_models_and_saved_predictions(corpus_root, tmp_path):
    report = tmp_path / "report"
    proc = run_cli("evaluate", "--data", corpus_root, "--split", "test", "-m", "rules", "-m", "random",
                   "-m", "mean", "-k", 3, "-o", report, "--save-predictions", "--reference", "random")
    assert proc.returncode == 0, proc.stderr
    written = json.loads((report / "metrics.json").read_text())
    result, intervals = written["results"], written["intervals"]
    assert written["protocol"] == "react2024" and written["bootstrap"] == 1000
    assert set(result) == set(intervals) == {"rules", "random", "mean"}
    metrics = {"FRCorr", "FRDist", "FRDiv", "FRDvs", "FRVar", "FRSyn", "FRSyn_all", "FRCorr_other"}
    assert all(set(r) == metrics for r in result.values())
    for model, values in result.items():
        for name, value in values.items():
            low, high = intervals[model][name]
            assert low - 1e-12 <= value <= high + 1e-12, (model, name)
    assert result["rules"]["FRCorr"] > result["rules"]["FRCorr_other"]  # it listens to its own speaker
    assert result["mean"]["FRDiv"] == 0.0 and result["random"]["FRDiv"] > result["rules"]["FRDiv"] > 0
    # paired comparison against the reference: every other model, rules clearly beats random on FRDist
    comparisons = written["comparisons"]
    assert set(comparisons) == {"rules", "mean"}
    rules_vs_random = comparisons["rules"]["FRDist"]
    assert rules_vs_random["difference"] == pytest.approx(result["rules"]["FRDist"] - result["random"]["FRDist"])
    assert rules_vs_random["high"] < 0
    table = (report / "metrics.md").read_text()
    assert "Protocol `react2024`" in table and "| rules |" in table and "| model − random |" in table
    assert (report / "metrics.png").stat().st_size > 10_000 and (report / "curves.png").exists()

    # saved predictions score exactly like the run that made them, intervals included (same seed)
    again = run_cli("evaluate", "--data", corpus_root, "--split", "test", "-p", report / "predictions" / "rules",
                    "-k", 3, "-o", tmp_path / "again")
    assert again.returncode == 0, again.stderr
    rescored = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert rescored["results"]["rules"] == pytest.approx(result["rules"], rel=1e-5)
    assert rescored["intervals"]["rules"] == pytest.approx(intervals["rules"], rel=1e-5)

    # the project's own variants, labelled as such; no intervals with --bootstrap 0
    own = run_cli("evaluate", "--data", corpus_root, "--split", "test", "-p", report / "predictions" / "rules",
                  "-k", 3, "-o", tmp_path / "own", "--protocol", "listenerctl", "--bootstrap", 0)
    assert own.returncode == 0, own.stderr
    variants = json.loads((tmp_path / "own" / "metrics.json").read_text())
    assert variants["protocol"] == "listenerctl" and variants["intervals"] == {}
    assert "FRSyn_all" not in variants["results"]["rules"]
    assert variants["results"]["rules"]["FRDist"] > 2 * result["rules"]["FRDist"]  # Euclidean path sums
    assert "not comparable with REACT 2024" in (tmp_path / "own" / "metrics.md").read_text()


@pytest.mark.parametrize("args,phrase", [
    (["-m", "mean", "--reference", "rules"], "--reference rules is not one of the models scored (mean)"),
    (["-m", "mean", "-m", "rules", "--reference", "rules", "--bootstrap", "0"], "needs bootstrap draws")])
def test_evaluate_refuses_a_reference_it_cannot_compare_before_scoring(corpus_root, tmp_path, args, phrase):
    proc = run_cli("evaluate", "--data", corpus_root, *args, "-o", tmp_path / "r")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert phrase in proc.stderr
    assert not [line for line in proc.stderr.splitlines() if line.startswith("scored ")]  # refused before scoring
    assert not (tmp_path / "r").exists()


def test_evaluate_rejects_predictions_that_do_not_match_the_split(corpus_root, tmp_path):
    folder = tmp_path / "preds"
    (folder / "not_a_clip").mkdir(parents=True)
    proc = run_cli("evaluate", "--data", corpus_root, "-p", folder, "-o", tmp_path / "r")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "have no prediction" in proc.stderr and "do not match" not in proc.stdout
