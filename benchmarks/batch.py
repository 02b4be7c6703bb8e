"""Benchmark `batch`: input-minutes processed per wall-minute with --jobs 1 and 2, the cost of a rerun
(everything already complete) relative to the first run, peak memory on one long input, and the local engine
against a two-node Ray cluster on loopback addresses with a worker node killed mid-batch.

Prints JSON. Baseline in the same run: --jobs 1. Memory: peak RSS of `generate` on a long input and on one
1/12 as long (motion only, K as given), and with rendering on for a few short lengths (K = 2): equal peaks
at different lengths show which stages stream. Cluster (``--sections cluster``): the same inputs with
``--engine local -j 2`` (baseline) and ``--engine ray`` on a head and a worker node of 1 CPU each started with
`ray start` and token authentication (tests/loopback_cluster.py, as the README's recipe), then again on a fresh
cluster with the worker node SIGKILLed after the first finished item: counts, retried items, and whether every
motion.npz equals the local run's.

    python benchmarks/batch.py [--inputs 10] [--seconds 30] [--samples 10] [--render mesh] [--long-minutes 60] [--render-minutes 1 4] [--sections jobs memory cluster]
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "talk.wav"
sys.path.insert(0, str(ROOT / "tests"))
import loopback_cluster as cluster  # noqa: E402  (the cluster the tests start, started the same way)


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


def motion_equal(out: Path, reference: Path) -> bool:
    """Whether every item's motion.npz under ``reference`` has byte-identical arrays under ``out``."""
    for ref in sorted(reference.glob("**/motion.npz")):
        with np.load(ref) as a, np.load(out / ref.relative_to(reference)) as b:
            if a.files != b.files or any(a[n].tobytes() != b[n].tobytes() for n in a.files):
                return False
    return True


def cluster_batch(folder: Path, out: Path, root: Path, samples: int, render: str, kill_worker: bool) -> dict:
    """`batch --engine ray` on a fresh two-node loopback cluster under ``root``; with ``kill_worker``, the
    worker node is SIGKILLed once the first item is finished. Wall time excludes starting the cluster."""
    env = cluster.cluster_env(root)
    head, address = cluster.start_head(root, env)
    worker = None
    try:
        worker = cluster.start_worker(root, address, env)
        start = time.perf_counter()
        batch = cluster.batch_cli(folder, out, address, env, "-k", str(samples), "--render", render)
        if kill_worker:
            cluster.kill_worker_after_first_item(batch, out, worker)
        stdout, stderr = batch.communicate(timeout=3600)
        seconds = time.perf_counter() - start
    finally:
        if worker is not None:
            cluster.kill_node(worker)
        cluster.kill_node(head)
    if batch.returncode not in (0, 1):
        raise RuntimeError(f"batch on the cluster failed: {stderr}")
    report = json.loads((out / "batch_report.json").read_text())
    return {"seconds": seconds, "counts": report["counts"],
            "items_per_node": {node: sum(i["node"] == node for i in report["items"])
                               for node in sorted({i["node"] for i in report["items"]})},
            "items_retried": sum(i["tries"] > 1 for i in report["items"]),
            "half_written_left": len([p for p in out.rglob(".*")])}


def cluster_section(folder: Path, tmp: Path, input_minutes: float, samples: int, render: str) -> dict:
    """Local engine (-j 2, timed before and after, as the shared machine's load drifts) against the two-node
    loopback Ray cluster, and the same with a node killed; each with the 1-minute load average it started at."""
    def measured(run) -> dict:
        load = os.getloadavg()[0]
        return {**run(), "load_average": load}

    local_out = tmp / "cluster_local"
    local = [measured(lambda: {"seconds": timed_batch(folder, local_out, 2, samples, render)})]
    ray_run = measured(lambda: cluster_batch(folder, tmp / "cluster_ray", tmp / "ray_cluster", samples, render,
                                             kill_worker=False))
    killed = measured(lambda: cluster_batch(folder, tmp / "cluster_killed", tmp / "ray_cluster_killed", samples,
                                            render, kill_worker=True))
    local.append(measured(lambda: {"seconds": timed_batch(folder, tmp / "cluster_local_after", 2, samples, render)}))
    per_wall_minute = {"local_jobs_2_before": input_minutes / (local[0]["seconds"] / 60),
                       "local_jobs_2_after": input_minutes / (local[1]["seconds"] / 60),
                       "ray_two_nodes": input_minutes / (ray_run["seconds"] / 60),
                       "ray_two_nodes_worker_killed": input_minutes / (killed["seconds"] / 60)}
    return {"local_jobs_2": local, "ray_two_nodes": ray_run, "ray_worker_killed": killed,
            "input_minutes_per_wall_minute": per_wall_minute,
            "ray_motion_equal_to_local": motion_equal(tmp / "cluster_ray", local_out),
            "killed_motion_equal_to_local": motion_equal(tmp / "cluster_killed", local_out)}


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
    parser.add_argument("--sections", nargs="*", choices=["jobs", "memory", "cluster"],
                        default=["jobs", "memory", "cluster"], help="which measurements to run")
    args = parser.parse_args()

    result = {"machine": {"cpus": os.cpu_count()}, "inputs": args.inputs, "seconds_each": args.seconds,
              "samples": args.samples, "render": args.render}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        make_inputs(folder, args.inputs, args.seconds)
        input_minutes = args.inputs * args.seconds / 60
        if "jobs" in args.sections:
            runs = {}
            for jobs in (1, 2):
                seconds = timed_batch(folder, Path(tmp) / f"out{jobs}", jobs, args.samples, args.render)
                runs[f"jobs_{jobs}"] = {"seconds": seconds,
                                        "input_minutes_per_wall_minute": input_minutes / (seconds / 60)}
            rerun_s = timed_batch(folder, Path(tmp) / "out1", 1, args.samples, args.render)
            result.update(runs, jobs_2_speedup_vs_jobs_1=runs["jobs_1"]["seconds"] / runs["jobs_2"]["seconds"],
                          rerun_seconds=rerun_s, rerun_fraction_of_first_run=rerun_s / runs["jobs_1"]["seconds"])
        if "memory" in args.sections:
            result["long_input_generate"] = [peak_rss_of_generate(Path(tmp), minutes, args.samples, "none")
                                             for minutes in (args.long_minutes / 12, args.long_minutes)]
            result["rendered_input_generate"] = [peak_rss_of_generate(Path(tmp), minutes, 2, args.render)
                                                 for minutes in args.render_minutes]
        if "cluster" in args.sections:
            result["cluster"] = cluster_section(folder, Path(tmp), input_minutes, args.samples, args.render)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
