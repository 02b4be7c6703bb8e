"""The fine-tuning demo end to end: `data extract` → `train --init` → `evaluate` → `generate`, by one command.

Prints JSON. Builds six staged two-person sessions from the two real 8 s talking faces in
../shared/data/video (tests/composites.py, layout a: one 256×256 video per person with their own track; the
listener's video is another stretch of their own clip with the audio muted). Each session has eight
alternating turns of 4.4–5.8 s drawn with ``random.Random(session)``; session s starts with person s % 2
and walks through the clips from 0.9 × s seconds in (mod 3 s). Then, with OMP_NUM_THREADS=1 and every
command on the CPU:

    listenerctl data extract in -o corpus --clip-seconds 4
    listenerctl train sfms --data corpus --init checkpoints/sfms.safetensors --out ck/sfms-finetuned --steps 300
    listenerctl train lbd  --data corpus --init checkpoints/lbd.safetensors  --out ck/lbd-finetuned  --steps 300
    listenerctl evaluate --data corpus --split test -m sfms=ck/sfms-finetuned.safetensors -m sfms
        -m lbd=ck/lbd-finetuned.safetensors -m lbd -m rules -m mime -m random -m mean -k 10 --reference lbd -o ev
    listenerctl generate talking_face_8s.mp4 --model lbd --checkpoint ck/lbd-finetuned.safetensors -k 1 -o gen

Everything goes into ``--out`` (default: a new folder under /tmp); ev/metrics.md, the corpus's
extract_report.json (input paths made relative to the working folder) and the first session's contact sheet
are copied into docs/ (``--docs``).

    python benchmarks/extract_demo.py [--out FOLDER] [--steps 300] [--reference lbd] [--docs docs]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "video"
SESSIONS = 6
TURNS = 8
TURN_S = (4.4, 5.8)
MODELS = ("sfms", "lbd")
CLI = [sys.executable, "-c", "from listenerctl.cli import app; app()"]   # this checkout's listenerctl


def dialogue(session: int) -> list[tuple[int, float]]:
    """(who talks, seconds) of the ``session``-th staged dialogue: alternating turns of random length."""
    draw = random.Random(session)
    return [((k + session) % 2, round(draw.uniform(*TURN_S), 1)) for k in range(TURNS)]


def build_sessions(folder: Path) -> list[str]:
    """Write the six layout-(a) sessions under ``folder``; returns their names."""
    sys.path.insert(0, str(ROOT / "tests"))
    from composites import session_folder

    sources = (VIDEOS / "talking_face_8s.mp4", VIDEOS / "talking_face_b_8s.mp4")
    names = []
    for s in range(SESSIONS):
        session_folder(sources, dialogue(s), folder / f"dialogue{s}", offset=(0.9 * s) % 3.0)
        names.append(f"dialogue{s}")
    return names


def run_step(command: list[str], work: Path, log: Path) -> float:
    """Run ``listenerctl *command`` in ``work`` (output appended to ``log``); returns its wall seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LISTENERCTL_CACHE": str(work / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    with log.open("a") as out:
        out.write("$ listenerctl " + " ".join(command) + "\n")
        out.flush()
        subprocess.run([*CLI, *command], cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: new under /tmp)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--reference", default="lbd", help="model the others are paired against")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    work = (args.out or Path(tempfile.mkdtemp(prefix="extract_demo_"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    log = work / "commands.log"

    start = time.perf_counter()
    sessions = build_sessions(work / "in")
    seconds = {"build_sessions": time.perf_counter() - start}
    seconds["extract"] = run_step(["data", "extract", "in", "-o", "corpus", "--clip-seconds", "4"], work, log)
    for model in MODELS:
        seconds[f"train_{model}"] = run_step(
            ["train", model, "--data", "corpus", "--init", str(ROOT / "checkpoints" / f"{model}.safetensors"),
             "--out", f"ck/{model}-finetuned", "--steps", str(args.steps), "--log-every", "50", "--device", "cpu"],
            work, log)
    compared = [arg for model in MODELS for arg in ("-m", f"{model}=ck/{model}-finetuned.safetensors", "-m", model)]
    seconds["evaluate"] = run_step(
        ["evaluate", "--data", "corpus", "--split", "test", *compared,
         *(arg for model in ("rules", "mime", "random", "mean") for arg in ("-m", model)),
         "-k", "10", "--reference", args.reference, "-o", "ev", "--device", "cpu"], work, log)
    seconds["generate"] = run_step(
        ["generate", str(VIDEOS / "talking_face_8s.mp4"), "--model", MODELS[-1],
         "--checkpoint", f"ck/{MODELS[-1]}-finetuned.safetensors", "-k", "1", "-o", "gen", "--device", "cpu"],
        work, log)

    report_text = (work / "corpus" / "extract_report.json").read_text()
    report = json.loads(report_text)
    copies = {work / "ev" / "metrics.md": args.docs / "extract_demo_metrics.md",
              work / "corpus" / "sessions" / sessions[0] / "contact_sheet.png": args.docs / "extract_contact_sheet.png"}
    args.docs.mkdir(parents=True, exist_ok=True)
    for source, target in copies.items():
        shutil.copyfile(source, target)
    # the report names its input videos by absolute path; in docs/ they are given relative to the working folder
    report_copy = args.docs / "extract_report_demo.json"
    report_copy.write_text(report_text.replace(f"{work}{os.sep}", ""))
    copies[work / "corpus" / "extract_report.json"] = report_copy
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "load_1min": os.getloadavg()[0], "python": platform.python_version()},
        "work": str(work), "log": str(log),
        "turns": {s: " ".join(f"{'AB'[who]}{sec}" for who, sec in dialogue(k)) for k, s in enumerate(sessions)},
        "dyad_minutes": {split: value["dyad_minutes"] for split, value in report["splits"].items()},
        "sessions_per_split": {split: value.get("sessions") for split, value in report["splits"].items()},
        "seconds": {step: round(value, 1) for step, value in seconds.items()},
        "generated": sorted(str(p.relative_to(work)) for p in (work / "gen").rglob("*") if p.is_file()),
        "copied_to_docs": {str(s.relative_to(work)): str(t) for s, t in copies.items()},
    }, indent=2))


if __name__ == "__main__":
    main()
