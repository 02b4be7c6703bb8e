"""User-study kit: blinded stimuli, counterbalanced orders and a rating page; then merging the ratings.

`make_study` turns `generate`/`batch` outputs into a folder a study can run from::

    STIMULI/stimuli/s_7f3a9c.mp4 ...   videos under random names that reveal nothing
    STIMULI/key.csv                    stimulus → recording, model, sample, seed, source video
    STIMULI/orders.csv                 participant, position (1-based), stimulus
    STIMULI/study.json                 question, scale, participants, seed
    STIMULI/index.html                 self-contained page: plays a participant's order, asks ratings, saves a CSV

Orders: the models (the within-subject factor) follow a Latin square, a balanced Williams square when
their number is even, so across each square's participants every model appears once at every position
of a block; a block shows one (recording, sample) under every model, and the blocks' order is shuffled
per participant with the seeded RNG. `collect_ratings` merges the page's CSVs, applies the key, checks
them and returns per-condition means.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from listenerctl.atomic import staged_dir
from listenerctl.errors import ListenerctlError
from listenerctl.media import _ffmpeg_binary, probe
from listenerctl.pipeline import MANIFEST

PAGE_TEMPLATE = Path(__file__).with_name("study_page.html")
KEY_FIELDS = ("stimulus", "recording", "model", "sample", "seed", "source")
RATING_FIELDS = ("participant", "stimulus", "position", "rating", "response_ms")
TABLE_FIELDS = ("participant", "position", "stimulus", "recording", "model", "sample", "seed", "rating", "response_ms")
DEFAULT_QUESTION = "How natural is this listener?"
DEFAULT_LABELS = ("not at all natural", "completely natural")  # meaning of the scale's lowest and highest point


@dataclass(frozen=True)
class SourceVideo:
    """One generated sample video: which recording, model, sample index and seed made it."""

    recording: str
    model: str
    sample: int
    seed: int
    path: Path


@dataclass(frozen=True)
class StudyPlan:
    """What `make_study` wrote: stimulus name → source video, and each participant's order of stimuli."""

    stimuli: dict[str, SourceVideo]
    orders: dict[str, list[str]]
    models: list[str]
    recordings: list[str]
    notes: list[str]


@dataclass(frozen=True)
class ConditionMean:
    """Mean rating of one condition; ``recording`` is None for a model's mean over all recordings."""

    model: str
    recording: str | None
    mean: float
    std: float
    count: int


def find_videos(results: list[Path], samples_per_condition: int = 1) -> list[SourceVideo]:
    """The first ``samples_per_condition`` sample videos of every finished item under the ``results`` folders.

    Every model must cover every recording once (a full crossing), or the orders could not be balanced.
    """
    found: dict[tuple[str, str], list[SourceVideo]] = {}
    for root in results:
        if not root.is_dir():
            raise ListenerctlError(f"results folder not found: {root}")
        for manifest_path in sorted(root.rglob(MANIFEST)):
            manifest = json.loads(manifest_path.read_text())
            if not manifest.get("complete"):
                continue
            recording, model = manifest["input"]["path"], manifest["model"]["name"]
            if (recording, model) in found:
                raise ListenerctlError(f"model {model} on {recording} appears twice (second time in "
                                       f"{manifest_path.parent}); keep one result folder per condition.")
            videos = []
            for sample in range(samples_per_condition):
                video = manifest_path.parent / f"sample_{sample:02d}.mp4"
                if not video.is_file():
                    raise ListenerctlError(f"{video} is missing; --samples-per-condition {samples_per_condition} "
                                           "needs that many rendered samples in every result.")
                videos.append(SourceVideo(recording, model, sample, int(manifest["seed"]), video))
            found[recording, model] = videos
    if not found:
        raise ListenerctlError("no finished `listenerctl generate` results (manifest.json) were found in "
                               + ", ".join(map(str, results)) + ".")
    recordings = sorted({r for r, _ in found})
    models = sorted({m for _, m in found})
    for recording in recordings:
        for model in models:
            if (recording, model) not in found:
                raise ListenerctlError(f"model {model} has no result for {recording}; every model must be run on "
                                       "every recording.")
    return [video for key in sorted(found) for video in found[key]]


def latin_square(n: int) -> np.ndarray:
    """[n, n] rows of condition indices, each index once per row and once per column.

    Even n: balanced Williams square (each condition follows every other exactly once); odd n: cyclic square.
    """
    if n % 2:
        first = np.arange(n)
    else:
        first = np.empty(n, int)
        first[0::2] = np.arange(n // 2) * -1 % n  # 0, n-1, n-2, ...
        first[1::2] = np.arange(1, n // 2 + 1)    # 1, 2, 3, ...
    return (first[None, :] + np.arange(n)[:, None]) % n


def presentation_orders(cells: dict[tuple[str, int], dict[str, str]], models: list[str], participants: int,
                        rng: np.random.Generator) -> dict[str, list[str]]:
    """Participant id ('1'...) → stimulus names in presentation order.

    ``cells`` maps (recording, sample) → model → stimulus. Participant p shows the models of every block in
    the order of row p mod M of `latin_square`(M); the blocks come in an order shuffled per participant.
    """
    square = latin_square(len(models))
    model_of = rng.permutation(len(models))  # which model each square index stands for, drawn per study
    blocks = sorted(cells)
    orders = {}
    for p in range(participants):
        row = [models[model_of[i]] for i in square[p % len(models)]]
        orders[str(p + 1)] = [cells[blocks[b]][m] for b in rng.permutation(len(blocks)) for m in row]
    return orders


def blinded_names(count: int, rng: np.random.Generator) -> list[str]:
    """``count`` distinct names like 's_7f3a9c' drawn from ``rng``; they carry no information."""
    names: list[str] = []
    while len(names) < count:
        name = f"s_{int(rng.integers(0, 16 ** 6)):06x}"
        if name not in names:
            names.append(name)
    return names


def clip_video(source: Path, target: Path, seconds: float) -> None:
    """Re-encode the first ``seconds`` of ``source`` (video and audio) to ``target`` MP4, metadata stripped."""
    duration = probe(source).duration
    if duration + 1e-3 < seconds:
        raise ListenerctlError(f"{source} lasts {duration:.2f} s, shorter than --clip-seconds {seconds:g}.")
    args = [_ffmpeg_binary(), "-nostdin", "-y", "-v", "error", "-i", str(source), "-t", f"{seconds:.6f}",
            "-map", "0:v:0", "-map", "0:a?", "-map_metadata", "-1", "-c:v", "libx264", "-preset", "veryfast",
            "-crf", "20", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart",
            str(target)]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise ListenerctlError(f"ffmpeg could not cut {source} ({lines[-1] if lines else 'no message'}).")


def render_page(config: dict) -> str:
    """index.html with ``config`` (question, scale, orders, ...) embedded as JSON; no external resources."""
    payload = json.dumps(config, sort_keys=True).replace("</", "<\\/")
    return PAGE_TEMPLATE.read_text(encoding="utf-8").replace("/*STUDY_CONFIG*/{}", payload)


def _write_csv(path: Path, fields: tuple[str, ...], rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def make_study(results: list[Path], output: Path, participants: int, samples_per_condition: int = 1,
               clip_seconds: float | None = None, question: str = DEFAULT_QUESTION, scale: int = 7,
               labels: tuple[str, str] = DEFAULT_LABELS, seed: int = 0) -> StudyPlan:
    """Write the stimuli folder described in the module docstring to ``output`` (which must not exist yet).

    ``scale`` is the number of rating points (1..scale); ``labels`` say what its lowest and highest point mean.
    """
    if output.exists() and any(output.iterdir()):
        raise ListenerctlError(f"{output} already exists and is not empty; choose a new folder so no key is overwritten.")
    if participants < 1 or samples_per_condition < 1 or scale < 2:
        raise ListenerctlError("--participants and --samples-per-condition must be at least 1 and --scale at least 2.")
    videos = find_videos(results, samples_per_condition)
    rng = np.random.default_rng(seed)
    models = sorted({v.model for v in videos})
    recordings = sorted({v.recording for v in videos})
    shuffled = [videos[i] for i in rng.permutation(len(videos))]
    stimuli = dict(zip(blinded_names(len(videos), rng), shuffled))
    cells: dict[tuple[str, int], dict[str, str]] = defaultdict(dict)
    for name, video in stimuli.items():
        cells[video.recording, video.sample][video.model] = name
    orders = presentation_orders(cells, models, participants, rng)
    notes = []
    if participants % len(models):
        notes.append(f"{participants} participants do not fill whole Latin squares of {len(models)}; "
                     f"use a multiple of {len(models)} for full counterbalancing.")

    with staged_dir(output) as work:
        (work / "stimuli").mkdir()
        for name, video in stimuli.items():
            target = work / "stimuli" / f"{name}.mp4"
            if clip_seconds is None:
                shutil.copyfile(video.path, target)  # a fresh copy: no timestamps that betray the source
            else:
                clip_video(video.path, target, clip_seconds)
        _write_csv(work / "key.csv", KEY_FIELDS, [
            {"stimulus": name, "recording": v.recording, "model": v.model, "sample": v.sample, "seed": v.seed,
             "source": str(v.path.resolve())} for name, v in sorted(stimuli.items())])
        _write_csv(work / "orders.csv", ("participant", "position", "stimulus"), [
            {"participant": p, "position": i + 1, "stimulus": s} for p, order in orders.items()
            for i, s in enumerate(order)])
        config = {"question": question, "scale": scale, "low_label": labels[0], "high_label": labels[1],
                  "orders": orders}
        (work / "study.json").write_text(json.dumps({**config, "participants": participants, "seed": seed,
                                                     "clip_seconds": clip_seconds}, indent=2))
        (work / "index.html").write_text(render_page(config), encoding="utf-8")
    return StudyPlan(stimuli, orders, models, recordings, notes)


def _read_csv(path: Path, fields: tuple[str, ...]) -> list[dict]:
    if not path.is_file():
        raise ListenerctlError(f"file not found: {path}")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [f for f in fields if f not in (reader.fieldnames or [])]
        if missing:
            raise ListenerctlError(f"{path} lacks the column(s) {', '.join(missing)}.")
        return list(reader)


def collect_ratings(ratings: list[Path], key: Path, output: Path, allow_missing: bool = False) -> list[ConditionMean]:
    """Merge the page's rating CSVs, join each row with ``key`` and write one table to ``output``.

    Checks: every stimulus is in the key, no (participant, stimulus) is rated twice, ratings are integers
    on the study's scale, and (unless ``allow_missing``) every participant in orders.csv beside the key rated
    every stimulus of their order. Returns means per model × recording and per model (``recording`` None).
    """
    key_rows = {row["stimulus"]: row for row in _read_csv(key, KEY_FIELDS)}
    study_path, orders_path = key.with_name("study.json"), key.with_name("orders.csv")
    scale = json.loads(study_path.read_text())["scale"] if study_path.is_file() else None
    table: list[dict] = []
    seen: dict[tuple[str, str], Path] = {}
    for path in ratings:
        for line, row in enumerate(_read_csv(path, RATING_FIELDS), start=2):
            participant, stimulus = row["participant"].strip(), row["stimulus"].strip()
            if stimulus not in key_rows:
                raise ListenerctlError(f"{path} line {line}: stimulus {stimulus!r} is not in {key}.")
            if (participant, stimulus) in seen:
                raise ListenerctlError(f"{path} line {line}: participant {participant} rated {stimulus} twice "
                                       f"(also in {seen[participant, stimulus]}).")
            try:
                rating = int(row["rating"])
            except ValueError:
                raise ListenerctlError(f"{path} line {line}: rating {row['rating']!r} is not a whole number.") from None
            if scale is not None and not 1 <= rating <= scale:
                raise ListenerctlError(f"{path} line {line}: rating {rating} is outside the study's scale 1–{scale}.")
            seen[participant, stimulus] = path
            stim = key_rows[stimulus]
            table.append({"participant": participant, "position": int(row["position"]), "stimulus": stimulus,
                          "recording": stim["recording"], "model": stim["model"], "sample": stim["sample"],
                          "seed": stim["seed"], "rating": rating, "response_ms": row["response_ms"]})
    if not table:
        raise ListenerctlError("the rating files hold no ratings.")
    if orders_path.is_file() and not allow_missing:
        expected: dict[str, set[str]] = defaultdict(set)
        for row in _read_csv(orders_path, ("participant", "stimulus")):
            expected[row["participant"]].add(row["stimulus"])
        rated: dict[str, set[str]] = defaultdict(set)
        for participant, stimulus in seen:
            rated[participant].add(stimulus)
        absent = [p for p in expected if p not in rated]
        if absent:
            raise ListenerctlError(f"no ratings from participant(s) {', '.join(absent)} of {orders_path}; "
                                   "add their files or pass --allow-missing.")
        for participant, stimuli in rated.items():
            if participant in expected and stimuli != expected[participant]:
                raise ListenerctlError(f"participant {participant} rated {len(stimuli & expected[participant])} of "
                                       f"the {len(expected[participant])} stimuli in their order; add the missing "
                                       "ratings or pass --allow-missing.")
    table.sort(key=lambda r: (r["participant"], r["position"]))
    _write_csv(output, TABLE_FIELDS, table)
    return condition_means(table)


def condition_means(table: list[dict]) -> list[ConditionMean]:
    """Mean, population std and count of ratings per (model, recording) and per model over all recordings."""
    groups: dict[tuple[str, str | None], list[int]] = defaultdict(list)
    for row in table:
        groups[row["model"], row["recording"]].append(row["rating"])
        groups[row["model"], None].append(row["rating"])
    means = []
    for (model, recording), values in groups.items():
        arr = np.asarray(values, float)
        means.append(ConditionMean(model, recording, float(arr.mean()), float(arr.std()), arr.size))
    return sorted(means, key=lambda m: (m.model, m.recording is None, m.recording or ""))
