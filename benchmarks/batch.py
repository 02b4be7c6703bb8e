"""Benchmark `batch`: input-minutes processed per wall-minute with --jobs 1 and 2, the cost of a rerun
(everything already complete) relative to the first run, and peak memory on one long input.

Prints JSON. Baseline in the same run: --jobs 1. Memory: peak RSS of `generate` on a long input and on one
1/12 as long (motion only, K as given), and with rendering on for a few short lengths (K = 2): equal peaks
at different lengths show which stages stream.

    python benchmarks/batch.py [--inputs 10] [--seconds 30] [--samples 10] [--render mesh] [--long-minutes 60] [--render-minutes 1 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "talk.wav"


def make_inputs(folder: Path, count: int, seconds: float) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-stream_loop", "-1", "-i", str(SAMPLE), "-ss", str(i),
                        "-t", str(seconds), str(folder / f"talk_{i:02d}.wav")], check=True)


def timed_batch(folder: Path, out: Path, jobs: int, samples: int, render: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "listenerctl.cli", "batch", str(folder), "-o", str(out), "-k", str(samples),
                    "--render", render, "-j", str(jobs)], check=True, capture_output=True)
    return time.perf_counter() - start


def peak_rss_of_generate(folder: Path, minutes: float, samples: int, render: str) -> dict:
    """Wall time and peak resident memory (GB) of `generate` on a ``minutes``-long input. A wrapper process
    runs it and reports its children's ru_maxrss, so each measurement sees only its own run."""
    long_input = folder / f"long_{minutes:g}min.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(SAMPLE), "-t",
                    str(minutes * 60), str(long_input)], check=True)
    wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "listenerctl.cli", "generate",
                           str(long_input), "-o", str(folder / f"out_{minutes:g}_{render}"), "-k", str(samples),
                           "--render", render], check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return {"minutes": minutes, "samples": samples, "render": render, "seconds": seconds,
            "peak_rss_gb": int(done.stdout.split()[-1]) / 1024 ** 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--render", default="mesh")
    parser.add_argument("--long-minutes", type=float, default=60.0,
                        help="length of the long input for peak memory (also measured at 1/12 of it), --render none")
    parser.add_argument("--render-minutes", type=float, nargs="*", default=[1.0, 4.0],
                        help="input lengths whose peak memory is measured with rendering on (K = 2)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        make_inputs(folder, args.inputs, args.seconds)
        input_minutes = args.inputs * args.seconds / 60
        runs = {}
        for jobs in (1, 2):
            seconds = timed_batch(folder, Path(tmp) / f"out{jobs}", jobs, args.samples, args.render)
            runs[f"jobs_{jobs}"] = {"seconds": seconds, "input_minutes_per_wall_minute": input_minutes / (seconds / 60)}
        rerun_s = timed_batch(folder, Path(tmp) / "out1", 1, args.samples, args.render)
        long = [peak_rss_of_generate(Path(tmp), minutes, args.samples, "none") for minutes in (args.long_minutes / 12,
                                                                                          args.long_minutes)]
        rendered = [peak_rss_of_generate(Path(tmp), minutes, 2, args.render) for minutes in args.render_minutes]
    print(json.dumps({
        "machine": {"cpus": os.cpu_count()},
        "inputs": args.inputs, "seconds_each": args.seconds, "samples": args.samples, "render": args.render,
        **runs,
        "jobs_2_speedup_vs_jobs_1": runs["jobs_1"]["seconds"] / runs["jobs_2"]["seconds"],
        "rerun_seconds": rerun_s, "rerun_fraction_of_first_run": rerun_s / runs["jobs_1"]["seconds"],
        "long_input_generate": long,
        "rendered_input_generate": rendered,
    }, indent=2))


if __name__ == "__main__":
    main()
