"""`listenerctl batch --address` against a real two-node Ray cluster started with `ray start`, with Ray's token
authentication, on loopback addresses only (tests/loopback_cluster.py): the README's cluster recipe, a worker
node killed mid-batch, bad tokens.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import SAMPLE_WAV, ffmpeg
from listenerctl.batch import run_batch
from listenerctl.errors import ListenerctlError
from listenerctl.pipeline import GenerateOptions
from listenerctl.ray_cluster import TOKEN_PATH_ENV, host_and_port, token_source
from loopback_cluster import (HEAD_IP, WORKER_IP, batch_cli, cluster_env, free_port, kill_node,
                              kill_worker_after_first_item, start_head, start_worker)

INPUTS = 16  # of 60 s at K = 10 (about 0.5 s each): when the first is done, seconds of work are still queued
needs_ray_cli = pytest.mark.skipif(shutil.which("ray") is None, reason="the ray CLI is not installed")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node with token authentication; yields its address, the environment of its user, its folder."""
    pytest.importorskip("ray", reason="ray is not installed (pip install 'listenerctl[ray]')")
    root = tmp_path_factory.mktemp("cluster")
    env = cluster_env(root)
    head, address = start_head(root, env)
    try:
        yield address, env, root
    finally:
        kill_node(head)


def motion_arrays(item: Path) -> dict[str, bytes]:
    with np.load(item / "motion.npz") as z:
        return {name: z[name].tobytes() for name in z.files}


@needs_ray_cli
def test_worker_node_killed_mid_batch_its_item_reruns_on_the_head(cluster, tmp_path):
    address, env, root = cluster
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(INPUTS):
        ffmpeg("-stream_loop", "-1", "-i", str(SAMPLE_WAV), "-ss", str(i), "-t", "60", str(folder / f"talk_{i}.wav"))
    worker = start_worker(root, address, env)
    try:
        out = tmp_path / "out"
        batch = batch_cli(folder, out, address, env, "-k", "10", "--render", "none")
        kill_worker_after_first_item(batch, out, worker)  # the worker node's actor is busy with another item
        stdout, stderr = batch.communicate(timeout=300)
    finally:
        kill_node(worker)
    assert batch.returncode == 0, stdout + stderr
    report = json.loads((out / "batch_report.json").read_text())
    assert report["counts"] == {"done": INPUTS, "skipped": 0, "failed": 0}
    items = report["items"]
    assert {item["node"] for item in items} <= {HEAD_IP, WORKER_IP}  # loopback only
    retried = [item for item in items if item["tries"] == 2]
    assert retried and all(item["node"] == HEAD_IP for item in retried)  # the killed node's item, rerun on the head
    assert not [p for p in out.rglob(".*")]  # no half-written folder of the killed worker left

    local = run_batch(folder, tmp_path / "local", GenerateOptions(samples=10, render="none", device="cpu"))
    assert [r.status for r in local] == ["done"] * INPUTS
    for i in range(INPUTS):
        assert motion_arrays(out / f"talk_{i}") == motion_arrays(tmp_path / "local" / f"talk_{i}")


@needs_ray_cli
def test_wrong_or_missing_token_is_one_sentence_and_leaves_nothing(cluster, tmp_path):
    address, env, _ = cluster
    folder = tmp_path / "in"
    folder.mkdir()
    ffmpeg("-i", str(SAMPLE_WAV), "-t", "2", str(folder / "talk.wav"))
    options = ("-k", "2", "--render", "none")
    wrong = batch_cli(folder, tmp_path / "out_wrong", address, {**env, "RAY_AUTH_TOKEN": "not-the-token"}, *options)
    missing = batch_cli(folder, tmp_path / "out_missing", address, {**env, "HOME": str(tmp_path)}, *options)
    for proc, says in ((wrong, "refused the authentication token from RAY_AUTH_TOKEN"),
                       (missing, "asks for an authentication token and none was found")):
        stdout, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 2, stdout + stderr
        assert stderr.strip().splitlines() == [f"error: the Ray cluster at {address} {says}; give the cluster's token "
                                               "(`ray get-auth-token` on its head prints it) in RAY_AUTH_TOKEN, in the "
                                               "file named by RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token."]
    assert not (tmp_path / "out_wrong").exists() and not (tmp_path / "out_missing").exists()


def test_nothing_listening_at_the_address_is_one_sentence(tmp_path, monkeypatch):
    pytest.importorskip("ray", reason="ray is not installed (pip install 'listenerctl[ray]')")
    monkeypatch.setenv("HOME", str(tmp_path))  # no token: this process's Ray configuration is left as it is
    (tmp_path / "in").mkdir()
    ffmpeg("-i", str(SAMPLE_WAV), "-t", "1", str(tmp_path / "in" / "talk.wav"))
    address = f"127.0.0.1:{free_port('127.0.0.1')}"
    with pytest.raises(ListenerctlError, match=f"no Ray cluster answers at {address}"):
        run_batch(tmp_path / "in", tmp_path / "out", GenerateOptions(samples=1), engine="ray", address=address)
    assert not (tmp_path / "out").exists()


def test_token_found_where_ray_keeps_it(tmp_path, monkeypatch):
    for name in ("RAY_AUTH_TOKEN", TOKEN_PATH_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert token_source() is None
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("secret\n")
    assert token_source() == str(tmp_path / ".ray" / "auth_token")
    monkeypatch.setenv(TOKEN_PATH_ENV, str(tmp_path / "absent"))
    with pytest.raises(ListenerctlError, match=f"{TOKEN_PATH_ENV} names .*absent, which is missing or empty"):
        token_source()
    monkeypatch.setenv("RAY_AUTH_TOKEN", "secret")
    assert token_source() == "RAY_AUTH_TOKEN"


def test_addresses_parsed():
    assert host_and_port("127.0.0.2:6390") == ("127.0.0.2", 6390)
    assert host_and_port("ray://head.example:10001") == ("head.example", 10001)
    assert host_and_port("[::1]:6379") == ("::1", 6379)
    assert host_and_port("auto") is None
