"""`listenerctl batch`: good items finish, bad ones fail alone with reasons, reruns skip, kills resume."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import SAMPLE_WAV, ffmpeg, run_cli


def motion_digest(item):
    with np.load(item / "motion.npz") as z:
        return hashlib.sha256(z["listener"].tobytes()).hexdigest()


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recordings")
    (folder / "sub").mkdir()
    ffmpeg("-i", str(SAMPLE_WAV), "-t", "4", str(folder / "speech.wav"))
    ffmpeg("-i", str(SAMPLE_WAV), "-ss", "8", "-t", "3", str(folder / "sub" / "more speech.wav"))
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=160x120:rate=25", "-t", "2", "-pix_fmt", "yuv420p",
           str(folder / "no_face_no_audio.mp4"))
    (folder / "corrupt.mp4").write_bytes(np.random.default_rng(1).bytes(20_000))
    (folder / "empty.wav").write_bytes(b"")
    return folder


def test_batch_mixed_folder_then_rerun_does_no_work(mixed_folder, tmp_path):
    out = tmp_path / "out"
    first = run_cli("batch", mixed_folder, "-o", out, "-k", 2, "--render", "none")
    assert first.returncode == 1, first.stderr
    report = json.loads((out / "batch_report.json").read_text())
    status = {os.path.relpath(i["input"], mixed_folder): (i["status"], i["reason"]) for i in report["items"]}
    assert status["speech.wav"][0] == status["sub/more speech.wav"][0] == "done"
    assert status["corrupt.mp4"] == ("failed", status["corrupt.mp4"][1]) and "cannot read" in status["corrupt.mp4"][1]
    assert "empty" in status["empty.wav"][1]
    assert "nothing to condition on" in status["no_face_no_audio.mp4"][1]
    assert report["counts"] == {"done": 2, "skipped": 0, "failed": 3}
    assert (out / "sub" / "more speech" / "motion.npz").exists()
    assert "Traceback" not in first.stderr + first.stdout
    for name in ("corrupt", "empty", "no_face_no_audio"):
        assert not (out / name).exists()

    finished = {p: p.stat().st_mtime_ns for p in out.rglob("motion.npz")}
    second = run_cli("batch", mixed_folder, "-o", out, "-k", 2, "--render", "none")
    counts = json.loads((out / "batch_report.json").read_text())["counts"]
    assert counts == {"done": 0, "skipped": 2, "failed": 3} and second.returncode == 1
    assert {p: p.stat().st_mtime_ns for p in out.rglob("motion.npz")} == finished  # nothing was redone


def test_killed_batch_resumes_to_identical_outputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(4):
        ffmpeg("-i", str(SAMPLE_WAV), "-ss", str(4 * i), "-t", "4", str(folder / f"clip{i}.wav"))
    args = [sys.executable, "-m", "listenerctl.cli", "batch", str(folder), "-k", 3, "--size", 64]
    args = [str(a) for a in args]
    reference = tmp_path / "reference"
    subprocess.run(args + ["-o", str(reference)], check=True, capture_output=True)

    out = tmp_path / "out"
    proc = subprocess.Popen(args + ["-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "clip0" / "manifest.json").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = [d.name for d in out.iterdir() if d.is_dir() and not d.name.startswith(".")]
    assert 1 <= len(finished) < 4, finished  # killed halfway
    assert all((out / d / "manifest.json").exists() for d in finished)  # nothing half-written is visible

    rerun = subprocess.run(args + ["-o", str(out)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert not list(out.glob(".*.partial"))
    for i in range(4):
        assert motion_digest(out / f"clip{i}") == motion_digest(reference / f"clip{i}")
        assert (out / f"clip{i}" / "grid.mp4").exists()


def test_parallel_jobs_give_the_same_outputs(mixed_folder, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert run_cli("batch", mixed_folder, "-o", one, "-k", 2, "--render", "none", "--glob", "*.wav").returncode == 1
    assert run_cli("batch", mixed_folder, "-o", two, "-k", 2, "--render", "none", "--glob", "*.wav", "-j", 2).returncode == 1
    for item in ("speech", "sub/more speech"):
        assert motion_digest(one / item) == motion_digest(two / item)


def test_batch_on_a_missing_folder(tmp_path):
    proc = run_cli("batch", tmp_path / "nowhere", "-o", tmp_path / "out")
    assert proc.returncode == 2 and "input folder not found" in proc.stderr


def test_grouped_items_get_what_each_gets_alone(mixed_folder, tmp_path):
    """A worker's group (generated in one batched call) gives every item the motion a lone `generate` gives
    it, and a broken item in the group fails alone while the others are published."""
    from listenerctl.batch import Worker
    from listenerctl.pipeline import GenerateOptions, generate_item

    opts = GenerateOptions(samples=2, model="facetok", seed=3)
    items = [(mixed_folder / name, tmp_path / "grouped" / Path(name).stem)
             for name in ("speech.wav", "corrupt.mp4", "sub/more speech.wav")]
    worker = Worker(opts)
    results = worker.run_group(items)
    assert [r.status for r in results] == ["done", "failed", "done"]
    assert results[1].reason and not results[1].reason.startswith("internal error")
    for path, final in items[::2]:
        alone = generate_item(path, tmp_path / "alone", opts, worker.generator, report=lambda _: None)
        assert motion_digest(final) == motion_digest(alone)
        assert json.loads((final / "manifest.json").read_text())["complete"]


def test_local_workers_share_the_cores_out():
    """Each of ``jobs`` worker processes gets its share of the cores as torch threads (never fewer than one)."""
    from concurrent.futures import ProcessPoolExecutor

    from listenerctl.batch import _init_worker, worker_threads
    from listenerctl.pipeline import GenerateOptions

    cores = len(os.sched_getaffinity(0))
    assert worker_threads(1) == cores and worker_threads(cores + 1) == 1
    with ProcessPoolExecutor(1, initializer=_init_worker, initargs=(GenerateOptions(), worker_threads(cores))) as pool:
        assert pool.submit(torch_threads).result() == 1


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()
