"""`listenerctl batch --engine ray`: the same outputs, failures and resumption as the local engine."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from helpers import SAMPLE_WAV, ffmpeg, run_cli, two_people_clip
from listenerctl.batch import RAY_INSTALL_HINT, _cluster_device, run_batch
from listenerctl.errors import ListenerctlError
from listenerctl.pipeline import GenerateOptions
from test_batch import motion_digest

OPTS = GenerateOptions(samples=2, render="none", device="cpu")


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory):
    """One local Ray instance (2 CPUs) for the module; yields its address for `--address`."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'listenerctl[ray]')")
    with pytest.MonkeyPatch.context() as env:  # workers inherit the environment of ray.init
        env.setenv("LISTENERCTL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recordings")
    (folder / "sub").mkdir()
    ffmpeg("-i", str(SAMPLE_WAV), "-t", "3", str(folder / "speech.wav"))
    ffmpeg("-i", str(SAMPLE_WAV), "-ss", "8", "-t", "2", str(folder / "sub" / "more speech.wav"))
    (folder / "corrupt.mp4").write_bytes(np.random.default_rng(1).bytes(20_000))
    return folder


def outcome(results):
    return {os.path.basename(r.input): (r.status, r.reason) for r in results}


def test_ray_engine_matches_local_and_rerun_skips(ray_address, small_folder, tmp_path):
    local = run_batch(small_folder, tmp_path / "local", OPTS)
    seen = []
    on_ray = run_batch(small_folder, tmp_path / "ray", OPTS, engine="ray",
                       on_result=lambda result, done, total: seen.append((done, total)))
    assert outcome(on_ray) == outcome(local)
    assert outcome(on_ray)["corrupt.mp4"][0] == "failed" and "cannot read" in outcome(on_ray)["corrupt.mp4"][1]
    assert [r.input for r in on_ray] == [r.input for r in local]  # paths as given, in input order
    assert seen == [(1, 3), (2, 3), (3, 3)]
    for item in ("speech", "sub/more speech"):
        assert motion_digest(tmp_path / "ray" / item) == motion_digest(tmp_path / "local" / item)
    report = json.loads((tmp_path / "ray" / "batch_report.json").read_text())
    assert report["engine"] == "ray" and report["jobs"] == 2
    assert report["counts"] == {"done": 2, "skipped": 0, "failed": 1}
    assert not (tmp_path / "ray" / "corrupt").exists() and not list((tmp_path / "ray").rglob(".*.partial"))

    finished = {p: p.stat().st_mtime_ns for p in (tmp_path / "ray").rglob("motion.npz")}
    rerun = run_batch(small_folder, tmp_path / "ray", OPTS, engine="ray", pattern="*.wav")
    assert [r.status for r in rerun] == ["skipped", "skipped"]
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "ray").rglob("motion.npz")} == finished


@pytest.mark.slow
def test_cli_joins_a_running_cluster_quietly(ray_address, small_folder, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("batch", small_folder, "-o", out, "-k", 2, "--render", "none", "--device", "auto",
                   "--engine", "ray", "--address", ray_address, "--glob", "*.wav")
    assert proc.returncode == 0, proc.stderr
    assert "2 done, 0 skipped, 0 failed" in proc.stdout
    assert proc.stderr.strip() == "", proc.stderr  # no Ray log lines on the terminal
    report = json.loads((out / "batch_report.json").read_text())
    assert report["options"]["device"] == "cpu"  # 'auto' resolved against a cluster without GPUs
    assert (out / "sub" / "more speech" / "motion.npz").exists()


def test_options_reach_the_items_on_ray(ray_address, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    two_people_clip(folder / "two people.mp4")
    run_batch(folder, tmp_path / "out", replace(OPTS, face="1"), engine="ray")
    manifest = json.loads((tmp_path / "out" / "two people" / "manifest.json").read_text())
    assert manifest["options"]["face"] == "1" and manifest["people"]["chosen"] == 1
    assert manifest["people"]["because"].startswith("face 1")


def test_model_that_cannot_load_stops_the_batch_with_its_reason(ray_address, small_folder, tmp_path):
    opts = GenerateOptions(samples=2, render="none", model="no_such_model")
    with pytest.raises(ListenerctlError, match="unknown model 'no_such_model'"):
        run_batch(small_folder, tmp_path / "out", opts, engine="ray", pattern="*.wav")


def test_device_resolved_against_the_cluster():
    assert _cluster_device("auto", 0.0) == "cpu" and _cluster_device("auto", 4.0) == "cuda"
    assert _cluster_device("cpu", 4.0) == "cpu" and _cluster_device("cuda", 1.0) == "cuda"
    with pytest.raises(ListenerctlError, match="no GPUs"):
        _cluster_device("cuda", 0.0)


def test_without_ray_the_engine_says_how_to_install_it(small_folder, tmp_path):
    hide_ray = ("import sys; sys.modules['ray'] = None; from listenerctl.cli import app; "
                "app(prog_name='listenerctl')")
    proc = subprocess.run([sys.executable, "-c", hide_ray, "batch", str(small_folder), "-o", str(tmp_path / "out"),
                           "--engine", "ray"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert RAY_INSTALL_HINT in proc.stderr and "pip install 'listenerctl[ray]'" in proc.stderr
    assert not (tmp_path / "out").exists()
