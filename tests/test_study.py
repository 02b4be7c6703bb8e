"""The user-study kit: blinded stimuli, counterbalanced orders, the rating page in Chromium, collecting ratings."""

from __future__ import annotations

import csv
import functools
import json
import queue
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from collections import Counter
from itertools import combinations
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from helpers import SAMPLE_WAV, ffmpeg, run_cli
from test_study_stats import expected_rating, simulate_ratings
from listenerctl.errors import ListenerctlError
from listenerctl.media import probe
from listenerctl.study import make_study
from listenerctl.study_analysis import analyse
from listenerctl.study_collect import read_answers
from listenerctl.study_design import latin_square, pair_orders

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")  # on PATH, wherever it is installed
MODELS = ("random", "rules")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> list[Path]:
    """Tiny `listenerctl generate` outputs: two 2-second recordings × models rules and random, K=2, 64 px."""
    root = tmp_path_factory.mktemp("study_results")
    clips = []
    for name, start in (("talk_a", 0), ("talk_b", 2)):
        clips.append(root / f"{name}.wav")
        ffmpeg("-i", str(SAMPLE_WAV), "-ss", str(start), "-t", "2", str(clips[-1]))
    with ThreadPoolExecutor(len(MODELS)) as pool:  # the two CLI runs overlap their start-up
        procs = list(pool.map(lambda m: run_cli("generate", *clips, "-o", root / m, "--model", m, "--size", "64",
                                                "-k", "2"), MODELS))
    assert all(proc.returncode == 0 for proc in procs), [proc.stderr for proc in procs]
    return [root / model for model in MODELS]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write_answers(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def answers_from_orders(stimuli: Path, answer) -> dict[str, list[dict]]:
    """Participant → the rows the page would write for their order; answer(participant, trial row, check row or
    None) gives the rating (rating design) or 'left'/'right' (2afc)."""
    study = json.loads((stimuli / "study.json").read_text())
    checks = {row["trial"]: row for row in read_csv(stimuli / "checks.csv")}
    rows: dict[str, list[dict]] = {}
    for row in read_csv(stimuli / "orders.csv"):
        p = row["participant"]
        out = {"participant": p, "study": study["study"], "trial": row["trial"], "position": row["position"]}
        value = answer(p, row, checks.get(row["trial"]))
        if study["design"] == "2afc":
            left, right = row["videos"].split()
            out.update(left=left, right=right, choice=value)
        else:
            out["rating"] = value
        rows.setdefault(p, []).append({**out, "response_ms": 500 + int(row["position"])})
    return rows


def write_answer_files(stimuli: Path, answer, folder: Path) -> list[Path]:
    """`answers_from_orders` written as one answers_P.csv per participant in ``folder``; returns their paths."""
    files = []
    for p, rows in answers_from_orders(stimuli, answer).items():
        files.append(folder / f"answers_{p}.csv")
        write_answers(files[-1], rows)
    return files


@pytest.mark.parametrize("n", [2, 3, 4, 5, 6])
def test_latin_square_is_latin_and_williams_balanced_when_even(n):
    square = latin_square(n)
    assert all(sorted(row) == list(range(n)) for row in square)
    assert all(sorted(col) == list(range(n)) for col in square.T)
    if n % 2 == 0:  # every ordered pair of distinct conditions is adjacent exactly once
        pairs = Counter((a, b) for row in square for a, b in zip(row[:-1], row[1:]))
        assert len(pairs) == n * (n - 1) and set(pairs.values()) == {1}


def test_make_blinds_names_and_key_maps_back_exactly(results, tmp_path):
    proc = run_cli("study", "make", *results, "-o", tmp_path / "st", "-p", "4", "--samples-per-condition", "2")
    assert proc.returncode == 0, proc.stderr
    st = tmp_path / "st"
    key = read_csv(st / "key.csv")
    assert len(key) == 2 * 2 * 2  # models × recordings × samples
    names = {row["stimulus"] for row in key}
    assert {p.stem for p in (st / "stimuli").iterdir()} == names
    for name in names:
        assert name.startswith("s_") and len(name) == 8
        assert not any(word in name for word in ("rules", "random", "talk", "sample"))
    page = (st / "index.html").read_text()
    assert "rules" not in page and "talk_a" not in page and "<script src" not in page and "http" not in page
    for row in key:  # the key names the exact source bytes, recording, model and sample
        source = Path(row["source"])
        assert source.parent.parent.name == row["model"] and source.parent.name == Path(row["recording"]).stem
        assert source.name == f"sample_{int(row['sample']):02d}.mp4"
        assert (st / "stimuli" / f"{row['stimulus']}.mp4").read_bytes() == source.read_bytes()
    manifest = json.loads((Path(key[0]["source"]).parent / "manifest.json").read_text())
    assert int(key[0]["seed"]) == manifest["seed"]


def test_orders_are_latin_over_models_and_seeded(results, tmp_path):
    plans = [make_study(results, tmp_path / name, participants=4, samples_per_condition=2, seed=seed)
             for name, seed in (("a", 3), ("b", 3), ("c", 4))]
    a, b, c = plans
    assert (tmp_path / "a" / "orders.csv").read_bytes() == (tmp_path / "b" / "orders.csv").read_bytes()
    assert (tmp_path / "a" / "key.csv").read_bytes() == (tmp_path / "b" / "key.csv").read_bytes()
    assert a.orders != c.orders or a.stimuli.keys() != c.stimuli.keys()
    model_of = {name: video.model for name, video in a.stimuli.items()}
    orders = {p: [t.videos[0] for t in trials] for p, trials in a.orders.items()}
    assert all(t.trial == t.videos[0] for trials in a.orders.values() for t in trials)
    for order in orders.values():
        assert sorted(order) == sorted(a.stimuli)  # everyone sees every stimulus once
    for square_start in (0, 2):  # each pair of participants is one 2×2 square over the models
        rows = [[model_of[s] for s in orders[str(square_start + p + 1)]] for p in range(2)]
        for position in range(len(rows[0])):
            assert sorted(r[position] for r in rows) == sorted(MODELS)
    blocks = {tuple((a.stimuli[s].recording, a.stimuli[s].sample) for s in order[::2]) for order in orders.values()}
    assert len(blocks) > 1  # the recording order differs between participants


def test_pair_orders_show_every_pair_per_recording_with_sides_counterbalanced():
    models = ["m0", "m1", "m2", "m3"]
    cells = {(f"rec{r}", 0): {m: f"s_{r}{m}" for m in models} for r in range(3)}
    model_of = {name: m for cell in cells.values() for m, name in cell.items()}
    orders = pair_orders(cells, models, 6, np.random.default_rng(0))
    pairs_per_recording = {(r, frozenset(p)) for r in range(3) for p in combinations(models, 2)}
    sides = {}
    for participant, trials in orders.items():
        shown = [(t.videos[0][2], frozenset(model_of[v] for v in t.videos)) for t in trials]
        assert len(trials) == 18 and {(int(r), p) for r, p in shown} == pairs_per_recording
        first_on_left = [model_of[t.videos[0]] < model_of[t.videos[1]] for t in trials]
        assert sum(first_on_left) == 9  # half of each participant's trials one way round
        sides[participant] = {t.trial: t.videos for t in trials}
    for p in range(1, 6, 2):  # participants 2k+1 and 2k+2 see every trial mirrored
        odd, even = sides[str(p)], sides[str(p + 1)]
        assert all(odd[t] == even[t][::-1] for t in odd)
    left_count = Counter(model_of[t.videos[0]] for trials in orders.values() for t in trials)
    right_count = Counter(model_of[t.videos[1]] for trials in orders.values() for t in trials)
    assert left_count == right_count  # every model as often on the left as on the right
    assert [t.trial for t in orders["1"]] != [t.trial for t in orders["3"]]  # shuffled per participant


@pytest.mark.parametrize("design", ["rating", "2afc"])
def test_attention_checks_are_mixed_in_and_recorded_in_the_key(results, tmp_path, design):
    plan = make_study(results, tmp_path / "st", participants=4, samples_per_condition=2, design=design, checks=3,
                      scale=5)
    checks = {row["trial"]: row for row in read_csv(tmp_path / "st" / "checks.csv")}
    assert sorted(checks) == ["check_1", "check_2", "check_3"]
    for row in checks.values():
        videos = row["videos"].split()
        assert all(v in plan.stimuli for v in videos) and len(videos) == (1 if design == "rating" else 2)
        if design == "rating":
            assert 1 <= int(row["expected"]) <= 5 and row["instruction"].endswith(f"rate this video {row['expected']}.")
        else:
            assert row["expected"] in ("left", "right") and row["expected"].upper() in row["instruction"]
            assert len({(plan.stimuli[v].recording, plan.stimuli[v].sample) for v in videos}) == 1
    if design == "2afc":
        assert sorted(row["expected"] for row in checks.values())[0:3] in (["left", "left", "right"],
                                                                           ["left", "right", "right"])
    positions = []
    for trials in plan.orders.values():
        ids = [t.trial for t in trials]
        assert sorted(i for i in ids if i in checks) == sorted(checks) and ids[0] not in checks
        positions.append(tuple(ids.index(c) for c in sorted(checks)))
    assert len(set(positions)) > 1  # placed per participant
    page = (tmp_path / "st" / "index.html").read_text()
    assert "Attention check: please" in page


def test_clip_seconds_cuts_video_and_keeps_audio(results, tmp_path):
    make_study(results, tmp_path / "st", participants=2, clip_seconds=1.2)
    for video in (tmp_path / "st" / "stimuli").glob("*.mp4"):
        info = probe(video)
        assert info.has_video and info.has_audio
        assert abs(info.duration - 1.2) < 0.1, info.duration
    with pytest.raises(ListenerctlError, match="shorter than --clip-seconds"):
        make_study(results, tmp_path / "too_long", participants=2, clip_seconds=5)
    assert not (tmp_path / "too_long").exists()


def collect_cli(files, key, output, *options):
    return run_cli("study", "collect", *files, "--key", key, "-o", output, "--bootstrap", "500", *options)


def test_collect_rating_study_means_intervals_comparison_and_outputs(results, tmp_path):
    st = tmp_path / "st"
    make_study(results, st, participants=4)
    model_of = {row["stimulus"]: row["model"] for row in read_csv(st / "key.csv")}
    files = write_answer_files(st, lambda p, row, check: 6 if model_of[row["trial"]] == "rules" else 1 + int(p),
                               tmp_path)
    proc = collect_cli(files, st / "key.csv", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["comparisons.csv", "conditions.csv", "participants.csv",
                                                     "plot.png", "summary.json", "trials.csv"]
    assert (out / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    trials = read_csv(out / "trials.csv")
    assert len(trials) == 4 * 2 * 2 and all(row["model"] == model_of[row["trial"]] for row in trials)
    conditions = {(row["model"], row["recording"]): row for row in read_csv(out / "conditions.csv")}
    assert float(conditions["rules", "all"]["mean"]) == 6 and float(conditions["random", "all"]["mean"]) == 3.5
    low, high = float(conditions["random", "all"]["ci_low"]), float(conditions["random", "all"]["ci_high"])
    assert 2 <= low < 3.5 < high <= 5  # participants' means 2..5, resampled
    (comparison,) = read_csv(out / "comparisons.csv")
    assert (comparison["a"], comparison["b"]) == ("random", "rules")
    assert float(comparison["mean_difference"]) == -2.5 and float(comparison["ci_high"]) < 0
    assert comparison["significant"] == "1" and float(comparison["p_holm"]) < 0.05
    summary = json.loads((out / "summary.json").read_text())
    assert summary["excluded"] == [] and summary["bootstrap"] == 500 and "two-way bootstrap" in summary["method"]
    assert "random − rules" in proc.stdout and "significant" in proc.stdout and "3.50 [" in proc.stdout
    assert "rough" in proc.stderr  # 4 participants and 2 recordings: the intervals are flagged as rough
    again = collect_cli(files, st / "key.csv", tmp_path / "again")
    assert again.returncode == 0 and (tmp_path / "again" / "comparisons.csv").read_bytes() == \
        (out / "comparisons.csv").read_bytes()  # seeded


def test_collect_excludes_participants_who_fail_attention_checks(results, tmp_path):
    st = tmp_path / "st"
    make_study(results, st, participants=4, checks=2)
    model_of = {row["stimulus"]: row["model"] for row in read_csv(st / "key.csv")}

    def answer(p, row, check):
        if check:  # participant 3 gets the first check wrong
            return (int(check["expected"]) % 7) + 1 if p == "3" and check["trial"] == "check_1" else check["expected"]
        return 7 if p == "3" else (5 if model_of[row["trial"]] == "rules" else 3)

    files = write_answer_files(st, answer, tmp_path)
    proc = collect_cli(files, st / "key.csv", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "excluded (failed attention checks): 3" in proc.stdout and "more than 0 of the 2" in proc.stdout
    people = {row["participant"]: row for row in read_csv(tmp_path / "out" / "participants.csv")}
    assert people["3"]["excluded"] == "1" and people["3"]["checks_failed"] == "check_1"
    assert all(people[p]["excluded"] == "0" and people[p]["checks_answered"] == "2" for p in "124")
    conditions = {(row["model"], row["recording"]): row for row in read_csv(tmp_path / "out" / "conditions.csv")}
    assert float(conditions["rules", "all"]["mean"]) == 5 and float(conditions["random", "all"]["mean"]) == 3
    trials = read_csv(tmp_path / "out" / "trials.csv")
    assert {r["excluded"] for r in trials if r["participant"] == "3"} == {"1"} and len(trials) == 16
    assert not any(r["trial"].startswith("check") for r in trials)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(),
                         parse_constant=lambda token: pytest.fail(f"summary.json is not strict JSON: {token}"))
    assert summary["excluded"] == ["3"] and summary["participants_analysed"] == ["1", "2", "4"]
    assert summary["comparisons"][0]["d_z"] is None  # every difference is -2: no spread, d_z undefined
    lenient = read_answers(files, st / "key.csv", max_failed_checks=1)
    assert lenient.excluded == [] and "more than 1 of the 2" in lenient.rule


def test_collect_2afc_preference_shares(results, tmp_path):
    st = tmp_path / "st"
    made = run_cli("study", "make", *results, "-o", st, "-p", "4", "--design", "2afc", "--attention-checks", "1",
                   "--samples-per-condition", "2")
    assert made.returncode == 0, made.stderr
    assert "2afc study: 8 stimuli" in made.stdout and "5 trials each (1 attention checks)" in made.stdout
    key = {row["stimulus"]: row for row in read_csv(st / "key.csv")}

    def answer(p, row, check):  # everyone prefers rules, except participant 4 on sample 1
        if check:
            return check["expected"]
        left, right = row["videos"].split()
        choose_rules = "left" if key[left]["model"] == "rules" else "right"
        sample = key[left]["sample"]
        return choose_rules if not (p == "4" and sample == "1") else {"left": "right", "right": "left"}[choose_rules]

    files = write_answer_files(st, answer, tmp_path)
    proc = collect_cli(files, st / "key.csv", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    (pair,) = read_csv(tmp_path / "out" / "comparisons.csv")
    assert (pair["a"], pair["b"]) == ("random", "rules")
    assert float(pair["share_a"]) == pytest.approx(2 / 16) and pair["trials"] == "16"  # 4 people × 2 rec × 2 samples
    assert float(pair["ci_low"]) <= 2 / 16 <= float(pair["ci_high"]) < 0.5
    wins = {row["model"]: float(row["win_share"]) for row in read_csv(tmp_path / "out" / "conditions.csv")}
    assert wins == pytest.approx({"random": 2 / 16, "rules": 14 / 16})
    trials = read_csv(tmp_path / "out" / "trials.csv")
    assert Counter(r["chosen_model"] for r in trials) == {"rules": 14, "random": 2}
    assert Counter(r["left_model"] for r in trials) == {"rules": 8, "random": 8}  # sides counterbalanced
    assert "random over rules" in proc.stdout and "left video chosen in" in proc.stdout


def fake_results(root: Path, recordings: int, models: tuple[str, ...]) -> list[Path]:
    """`generate`-shaped result folders (manifest + a few bytes as sample_00.mp4) for statistics-only tests:
    `make_study` copies the videos without decoding them."""
    for model in models:
        for r in range(recordings):
            item = root / model / f"talk_{r}"
            item.mkdir(parents=True)
            (item / "manifest.json").write_text(json.dumps({"complete": True, "seed": 0, "model": {"name": model},
                                                            "input": {"path": f"/data/talk_{r}.wav"}}))
            (item / "sample_00.mp4").write_bytes(f"{model} {r}".encode())
    return [root / model for model in models]


def simulated_study_answers(study: Path, tmp: Path, effects, seed: int) -> list[Path]:
    """Answer files of a simulated rating study (the generative model of test_study_stats), one per participant."""
    key = {row["stimulus"]: row for row in read_csv(study / "key.csv")}
    config = json.loads((study / "study.json").read_text())
    models, recordings = config["models"], config["recordings"]
    *_, ratings = simulate_ratings(np.random.default_rng(seed), config["participants"], len(recordings), effects)
    table = ratings.reshape(config["participants"], len(recordings), len(models))

    def answer(p, row, check):
        stim = key[row["trial"]]
        return int(table[int(p) - 1, recordings.index(stim["recording"]), models.index(stim["model"])])

    return write_answer_files(study, answer, tmp)


def test_collect_on_simulated_rating_files_covers_a_known_effect_and_keeps_null_effects_rare(tmp_path):
    """End to end (make → answer files → collect) on 24 participants × 8 recordings; the 200-study calibration
    of the same statistics is in test_study_stats."""
    results = fake_results(tmp_path / "results", 8, ("good", "plain"))
    true = expected_rating(0.5) - expected_rating(0.0)
    studies, covered, false = 25, 0, 0
    for seed in range(studies):
        for effects in ((0.5, 0.0), (0.0, 0.0)):
            folder = tmp_path / f"s{seed}_{effects[0]}"
            make_study(results, folder / "study", participants=24, seed=seed)
            files = simulated_study_answers(folder / "study", folder, effects, seed)
            (comparison,) = analyse(read_answers(files, folder / "study" / "key.csv"), bootstrap=500,
                                    seed=seed).comparisons
            assert (comparison.a, comparison.b) == ("good", "plain") and comparison.pairs == 24 * 8
            if effects[0]:
                covered += comparison.difference.low <= true <= comparison.difference.high
            else:
                false += comparison.significant
            shutil.rmtree(folder)
    assert covered >= 22  # nominal 95 % of 25
    assert false <= 4  # nominal 5 % of 25 is 1.25; P(more than 4) < 1 % at the nominal rate


def test_collect_refuses_bad_answers_in_one_sentence(results, tmp_path):
    st, other = tmp_path / "st", tmp_path / "other"
    make_study(results, st, participants=2)
    make_study(results, other, participants=2, seed=1)
    make_study(results, tmp_path / "pairs", participants=2, design="2afc")
    rows = answers_from_orders(st, lambda p, row, check: 4)
    key = st / "key.csv"

    def collect(all_rows, **kw):
        path = tmp_path / "r.csv"
        write_answers(path, all_rows)
        return read_answers([path], key, **kw)

    foreign = answers_from_orders(other, lambda p, row, check: 4)
    with pytest.raises(ListenerctlError, match="answers are for study .* but .* belongs to study"):
        collect(foreign["1"] + foreign["2"])
    pair_rows = answers_from_orders(tmp_path / "pairs", lambda p, row, check: "left")
    with pytest.raises(ListenerctlError, match="lacks the column.*rating .is it from a 2afc study"):
        collect(pair_rows["1"])
    with pytest.raises(ListenerctlError, match="trial s_zzzzzz is not in participant 1's order"):
        collect(rows["1"] + rows["2"] + [{**rows["1"][0], "trial": "s_zzzzzz"}])
    with pytest.raises(ListenerctlError, match="participant '9' is not in"):
        collect(rows["1"] + [{**rows["1"][0], "participant": "9"}])
    with pytest.raises(ListenerctlError, match="answered trial .* twice"):
        collect(rows["1"] + rows["2"] + [rows["2"][1]])
    with pytest.raises(ListenerctlError, match="no answers from participant.* 2"):
        collect(rows["1"])
    with pytest.raises(ListenerctlError, match="participant 2 answered 3 of the 4"):
        collect(rows["1"] + rows["2"][:3])
    with pytest.raises(ListenerctlError, match="outside the study's scale 1–7"):
        collect(rows["1"] + rows["2"][:3] + [{**rows["2"][3], "rating": 9}])
    with pytest.raises(ListenerctlError, match="rating '4.5' is not a whole number"):
        collect(rows["1"] + [{**rows["2"][0], "rating": "4.5"}])
    assert len(collect(rows["1"], allow_missing=True).trials) == 4
    pair_key = tmp_path / "pairs" / "key.csv"
    first = pair_rows["1"][0]
    write_answers(tmp_path / "p.csv", [{**first, "left": first["right"], "right": first["left"]}])
    with pytest.raises(ListenerctlError, match=f"trial {first['trial']} showing {first['right']} | .* is not in"):
        read_answers([tmp_path / "p.csv"], pair_key, allow_missing=True)
    write_answers(tmp_path / "p.csv", [{**first, "choice": "both"}])
    with pytest.raises(ListenerctlError, match="choice 'both' is neither 'left' nor 'right'"):
        read_answers([tmp_path / "p.csv"], pair_key, allow_missing=True)
    lines = (tmp_path / "r.csv").read_text().splitlines()
    for broken, word in ((lines[:2] + [lines[2].rsplit(",", 1)[0]], "fewer"), (lines[:2] + [lines[2] + ",x"], "more")):
        (tmp_path / "broken.csv").write_text("\n".join(broken) + "\n")
        proc = collect_cli([tmp_path / "broken.csv"], key, tmp_path / "out", "--allow-missing")
        assert proc.returncode == 2 and f"line 3 is malformed: it has {word} fields" in proc.stderr
        assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()
    proc = run_cli("study", "collect", tmp_path / "missing.csv", "--key", key)
    assert proc.returncode == 2 and "file not found" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("study", "collect", tmp_path / "r.csv", "--key", tmp_path / "r.csv")
    assert proc.returncode == 2 and "study.json not found" in proc.stderr


def test_make_refuses_incomplete_crossing(results, tmp_path):
    partial = tmp_path / "partial"
    rules, random = (next(r for r in results if r.name == m) for m in ("rules", "random"))
    shutil.copytree(rules, partial / "rules")
    shutil.copytree(random / "talk_a", partial / "random" / "talk_a")
    with pytest.raises(ListenerctlError, match="model random has no result for .*talk_b"):
        make_study([partial], tmp_path / "st", participants=2)
    proc = run_cli("study", "make", *results, "-o", tmp_path / "st", "--samples-per-condition", "3")
    assert proc.returncode == 2 and "sample_02.mp4 is missing" in proc.stderr


class _StudyHandler(SimpleHTTPRequestHandler):
    """Serves the stimuli folder; the page's autotest mode POSTs its result, which lands in ``results``."""

    results: queue.Queue

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.results.put(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("design", ["rating", "2afc"])
def test_page_plays_answers_and_feeds_collect_in_headless_chromium(results, tmp_path, design):
    if CHROMIUM is None:
        pytest.skip("headless page test needs Chromium on PATH (Debian package: chromium)")
    st = tmp_path / "st"
    plan = make_study(results, st, participants=2, clip_seconds=1.0, scale=5, design=design, checks=2)
    handler = type("Handler", (_StudyHandler,), {"results": queue.Queue()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(st)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html?participant=2&autotest=1"
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--autoplay-policy=no-user-gesture-required",
         "--remote-debugging-port=0", url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        result = handler.results.get(timeout=90)
    finally:
        browser.kill()
        browser.wait()
        server.shutdown()
        server.server_close()
    order = plan.orders["2"]
    real = 2 * (2 if design == "rating" else 1)  # 2 recordings × (2 models, or their 1 pair)
    assert len(order) == real + 2  # plus 2 attention checks
    ended = [e for e in result["events"] if e["event"] == "ended"]
    videos_per_trial = 1 if design == "rating" else 2
    assert sorted((e["trial"], e["video"]) for e in ended) == sorted(
        (t.trial, v) for t in order for v in range(videos_per_trial)), result["events"]
    assert all(e["readyState"] >= 2 and abs(e["duration"] - 1.0) < 0.1 for e in ended)
    (tmp_path / "page.csv").write_text(result["csv"])
    rows = read_csv(tmp_path / "page.csv")
    assert [r["trial"] for r in rows] == [t.trial for t in order] and {r["study"] for r in rows} == {
        json.loads((st / "study.json").read_text())["study"]}
    expected = [t.expected or (str(i % 5 + 1) if design == "rating" else ("right" if i % 2 else "left"))
                for i, t in enumerate(order)]
    assert [r["rating" if design == "rating" else "choice"] for r in rows] == expected
    if design == "2afc":
        assert [(r["left"], r["right"]) for r in rows] == [t.videos for t in order]
    assert all(0 <= int(r["response_ms"]) < 5000 for r in rows)
    answers = read_answers([tmp_path / "page.csv"], st / "key.csv", allow_missing=True)
    assert answers.excluded == [] and [c.answered for c in answers.checks] == [2] and answers.incomplete == ["1"]
    assert len(answers.trials) == real
