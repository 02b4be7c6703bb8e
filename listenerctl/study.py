"""User-study kit, first half: blinded stimuli, counterbalanced trial orders and the study page.

`make_study` turns `generate`/`batch` outputs into a folder a study can run from::

    STIMULI/stimuli/s_7f3a9c.mp4 ...   videos under random names that reveal nothing
    STIMULI/key.csv                    stimulus → recording, model, sample, seed, source video
    STIMULI/orders.csv                 participant, position (1-based), trial, videos (left first)
    STIMULI/checks.csv                 attention-check trials: videos, instruction, expected answer
    STIMULI/study.json                 design, study id, question, scale, participants, seed
    STIMULI/index.html                 self-contained page: plays a participant's trials, records answers, saves a CSV

Designs (`listenerctl.study_design`): ``rating`` (one video per trial, rated 1..scale) and ``2afc`` (two
videos of the same recording side by side: which listener looks more natural?). `listenerctl.study_collect`
reads the page's files back.
"""

from __future__ import annotations

import csv
import hashlib
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
from listenerctl.study_design import DESIGNS, Trial, attention_checks, insert_checks, pair_orders, rating_orders

PAGE_TEMPLATE = Path(__file__).with_name("study_page.html")
KEY_FIELDS = ("stimulus", "recording", "model", "sample", "seed", "source")
ORDER_FIELDS = ("participant", "position", "trial", "videos")
CHECK_FIELDS = ("trial", "videos", "instruction", "expected")
DEFAULT_QUESTION = {"rating": "How natural is this listener?", "2afc": "Which listener looks more natural?"}
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
    """What `make_study` wrote: stimulus name → source video, each participant's trials in order, the checks."""

    stimuli: dict[str, SourceVideo]
    orders: dict[str, list[Trial]]
    checks: list[Trial]
    models: list[str]
    recordings: list[str]
    notes: list[str]


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
               clip_seconds: float | None = None, question: str | None = None, scale: int = 7,
               labels: tuple[str, str] = DEFAULT_LABELS, seed: int = 0, design: str = "rating",
               checks: int = 0) -> StudyPlan:
    """Write the stimuli folder described in the module docstring to ``output`` (which must not exist yet).

    ``design`` is 'rating' or '2afc'; ``scale`` the number of rating points (1..scale) and ``labels`` what its
    lowest and highest point mean (rating design); ``checks`` the number of attention-check trials;
    ``question`` defaults to the design's `DEFAULT_QUESTION`.
    """
    if output.exists() and any(output.iterdir()):
        raise ListenerctlError(f"{output} already exists and is not empty; choose a new folder so no key is overwritten.")
    if participants < 1 or samples_per_condition < 1 or scale < 2 or checks < 0:
        raise ListenerctlError("--participants and --samples-per-condition must be at least 1, --scale at least 2 "
                               "and --attention-checks at least 0.")
    if design not in DESIGNS:
        raise ListenerctlError(f"--design {design!r} is not one of {', '.join(DESIGNS)}.")
    videos = find_videos(results, samples_per_condition)
    rng = np.random.default_rng(seed)
    models = sorted({v.model for v in videos})
    recordings = sorted({v.recording for v in videos})
    if design == "2afc" and len(models) < 2:
        raise ListenerctlError(f"--design 2afc compares models, but the results hold only {models[0]}.")
    shuffled = [videos[i] for i in rng.permutation(len(videos))]
    stimuli = dict(zip(blinded_names(len(videos), rng), shuffled))
    cells: dict[tuple[str, int], dict[str, str]] = defaultdict(dict)
    for name, video in stimuli.items():
        cells[video.recording, video.sample][video.model] = name
    notes = []
    if design == "rating":
        orders = rating_orders(cells, models, participants, rng)
        if participants % len(models):
            notes.append(f"{participants} participants do not fill whole Latin squares of {len(models)}; "
                         f"use a multiple of {len(models)} for full counterbalancing.")
    else:
        orders = pair_orders(cells, models, participants, rng)
        if participants % 2:
            notes.append(f"{participants} participants: left/right is balanced over pairs of participants; "
                         "use an even number.")
    check_trials = attention_checks(checks, design, cells, scale, rng)
    orders = insert_checks(orders, check_trials, rng)
    key_rows = [{"stimulus": name, "recording": v.recording, "model": v.model, "sample": v.sample, "seed": v.seed,
                 "source": str(v.path.resolve())} for name, v in sorted(stimuli.items())]
    order_rows = [{"participant": p, "position": i + 1, "trial": t.trial, "videos": " ".join(t.videos)}
                  for p, order in orders.items() for i, t in enumerate(order)]
    study_id = hashlib.sha256(json.dumps([key_rows, order_rows]).encode()).hexdigest()[:12]
    config = {"design": design, "study": study_id, "question": question or DEFAULT_QUESTION[design], "scale": scale,
              "low_label": labels[0], "high_label": labels[1],
              "orders": {p: [{"trial": t.trial, "videos": list(t.videos), "instruction": t.instruction,
                              "answer": t.expected} for t in order] for p, order in orders.items()}}

    with staged_dir(output) as work:
        (work / "stimuli").mkdir()
        for name, video in stimuli.items():
            target = work / "stimuli" / f"{name}.mp4"
            if clip_seconds is None:
                shutil.copyfile(video.path, target)  # a fresh copy: no timestamps that betray the source
            else:
                clip_video(video.path, target, clip_seconds)
        _write_csv(work / "key.csv", KEY_FIELDS, key_rows)
        _write_csv(work / "orders.csv", ORDER_FIELDS, order_rows)
        _write_csv(work / "checks.csv", CHECK_FIELDS, [
            {"trial": t.trial, "videos": " ".join(t.videos), "instruction": t.instruction, "expected": t.expected}
            for t in check_trials])
        settings = {k: v for k, v in config.items() if k != "orders"}
        (work / "study.json").write_text(json.dumps({**settings, "participants": participants, "seed": seed,
                                                     "attention_checks": checks, "clip_seconds": clip_seconds,
                                                     "models": models, "recordings": recordings}, indent=2))
        (work / "index.html").write_text(render_page(config), encoding="utf-8")
    return StudyPlan(stimuli, orders, check_trials, models, recordings, notes)
