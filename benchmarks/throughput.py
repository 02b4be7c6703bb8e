"""Generation throughput before and after a change, timed in the same run: real-time multiples per model.

The "before" code is a git revision (default 9a7b5cd, main before the issue-23 speed-ups) unpacked with
``git archive`` into a temporary folder; each side runs in its own worker process
(`throughput_worker.py`, with that side's listenerctl on PYTHONPATH), and the two are asked in turn, model by
model and repeat by repeat, so load from other work on the machine falls on both alike. Prints JSON:

- ``generate``: per model and input length, best seconds of K samples before and after, real-time multiples
  and the speed-up;
- ``batch``: for the models that batch inputs (override `Generator.generate_many`), ``--inputs`` inputs of
  ``--batch-seconds`` each generated one by one against batched (after only), with the largest difference;
- ``seams``: lbd's window-join ratio (`metrics.gesture.window_join_ratio`; 1 = no seam) on a ``--seam-seconds``
  input with its windows sampled in parallel (two passes) and sequentially (outpainting), and whether
  parallel is within 10 % of sequential.

``--readme README.md`` also writes the table between the README's ``throughput`` markers.

    python benchmarks/throughput.py [--before 9a7b5cd] [--seconds 60 600] [--samples 10] [--threads 1]
                                    [--models lbd difflistener sfms facetok rules] [--inputs 10]
                                    [--device cpu] [--readme README.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MARKERS = ("<!-- throughput:start -->", "<!-- throughput:end -->")


class Side:
    """A worker process timing generation with the listenerctl under ``root``."""

    def __init__(self, root: Path, speaker: Path, threads: int, device: str):
        env = {**os.environ, "PYTHONPATH": str(root)}
        self.process = subprocess.Popen([sys.executable, str(HERE / "throughput_worker.py"), str(speaker),
                                         str(threads), device], cwd=root, env=env, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)

    def ask(self, **request) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker stopped on {request}")
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def unpack(revision: str, folder: Path) -> Path:
    """The tree of ``revision`` (code and shipped checkpoints) under ``folder``."""
    archive = folder / "before.tar"
    subprocess.run(["git", "archive", "-o", str(archive), revision], cwd=ROOT, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "before", filter="data")
    return folder / "before"


def markdown(report: dict) -> str:
    """The README table: real-time multiples before → after per model and input length, and the batch rows."""
    lengths = sorted({row["input_seconds"] for row in report["generate"]})
    label = lambda s: f"{s / 60:.3g} min" if s >= 60 else f"{s:g} s"  # noqa: E731
    lines = ["| model | " + " | ".join(f"{label(s)}: before → after (×real time)" for s in lengths) + " |",
             "|---|" + "---:|" * len(lengths)]
    for model in dict.fromkeys(row["model"] for row in report["generate"]):
        cells = []
        for seconds in lengths:
            row = next(r for r in report["generate"] if r["model"] == model and r["input_seconds"] == seconds)
            cells.append(f"{row['before_x']:g} → {row['after_x']:g} ({row['speedup']:g}x)")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    machine = report["machine"]
    lines.append("")
    lines.append(f"{machine['cpus']} CPU cores, {report['threads']} torch thread(s), K = {report['samples']}, "
                 f"load average {machine['load_average_1min']} at the start; before = {report['before']}.")
    for row in report["batch"]:
        if row["batched"]:
            lines.append(f"{row['model']}: {row['inputs']} inputs of {label(row['input_seconds'])} one by one "
                         f"{row['one_by_one_input_min_per_min']:g} input-min/min, batched "
                         f"{row['batched_input_min_per_min']:g} (max difference {row['max_abs_difference']:.1e}).")
    for row in report["seams"]:
        lines.append(f"{row['model']} seam ratio on {label(row['input_seconds'])}: parallel "
                     f"{row['parallel']['seam_ratio']:g}, sequential {row['sequential']['seam_ratio']:g} "
                     f"(within 10 %: {row['parallel_within_10_percent']}).")
    return "\n".join(lines)


def write_readme(path: Path, table: str) -> None:
    text = path.read_text()
    start, end = (text.index(m) for m in MARKERS)
    path.write_text(text[:start + len(MARKERS[0])] + "\n" + table + "\n" + text[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="9a7b5cd", help="git revision timed as the baseline")
    parser.add_argument("--seconds", type=float, nargs="+", default=[60.0, 600.0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--models", nargs="+", default=["lbd", "difflistener", "sfms", "facetok", "rules"])
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per side (best kept); 1 above 5 min")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each worker")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--inputs", type=int, default=10, help="inputs in the batch section")
    parser.add_argument("--batch-seconds", type=float, default=60.0)
    parser.add_argument("--seam-seconds", type=float, default=120.4, help="lbd: a whole number of windows")
    parser.add_argument("--readme", type=Path, help="write the table between the throughput markers of this file")
    args = parser.parse_args()

    sys.path.insert(0, str(HERE))
    from models import sample_speaker

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        speaker = sample_speaker(folder)
        revision = subprocess.run(["git", "rev-parse", "--short", args.before], cwd=ROOT, check=True,
                                  capture_output=True, text=True).stdout.strip()
        sides = {"before": Side(unpack(args.before, folder), speaker, args.threads, args.device),
                 "after": Side(ROOT, speaker, args.threads, args.device)}
        report = {"before": revision, "threads": args.threads, "samples": args.samples, "device": args.device,
                  "machine": {"cpus": len(os.sched_getaffinity(0)), "load_average_1min": round(os.getloadavg()[0], 2),
                              "processor": platform.processor() or platform.machine()},
                  "generate": [], "batch": [], "seams": []}
        try:
            for seconds in args.seconds:
                for model in args.models:
                    best = {name: float("inf") for name in sides}
                    for repeat in range(1 if seconds > 300 else args.repeats):
                        for name, side in sides.items():
                            answer = side.ask(model=model, seconds=seconds, samples=args.samples, seed=repeat)
                            best[name] = min(best[name], answer["seconds"])
                    row = {"model": model, "input_seconds": seconds, "before_s": best["before"],
                           "after_s": best["after"], "before_x": round(seconds / best["before"], 1),
                           "after_x": round(seconds / best["after"], 1),
                           "speedup": round(best["before"] / best["after"], 2)}
                    report["generate"].append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
            for model in args.models:
                answer = sides["after"].ask(model=model, seconds=args.batch_seconds, samples=args.samples,
                                            inputs=args.inputs, repeats=args.repeats)  # others: the base loop
                input_min = args.inputs * args.batch_seconds / 60
                row = {"model": model, "inputs": args.inputs, "input_seconds": args.batch_seconds, **answer}
                if answer["batched"]:
                    row |= {"one_by_one_input_min_per_min": round(input_min / (answer["one_by_one_s"] / 60), 1),
                            "batched_input_min_per_min": round(input_min / (answer["batched_s"] / 60), 1),
                            "batching_speedup": round(answer["one_by_one_s"] / answer["batched_s"], 2)}
                report["batch"].append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
            answer = sides["after"].ask(model="lbd", seconds=args.seam_seconds, samples=args.samples,
                                        windows=["parallel", "sequential"])
            report["seams"].append({"model": "lbd", "input_seconds": args.seam_seconds, **answer,
                                    "parallel_within_10_percent": answer["parallel"]["seam_ratio"]
                                    <= 1.1 * answer["sequential"]["seam_ratio"]})
        finally:
            for side in sides.values():
                side.close()
    report["markdown"] = markdown(report)
    if args.readme:
        write_readme(args.readme, report["markdown"])
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
