"""A two-node Ray cluster on loopback addresses, started as the README's cluster recipe does (`ray start` with
token authentication), for tests and benchmarks/batch.py.

Each node is a `ray start --block` child process, stopped by killing its process tree by pid (never `ray stop`,
which stops every Ray instance on the machine); the cluster's files and token live under one folder.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"  # loopback; Ray turns 127.0.0.1 into the machine's external address
NODE_LIMITS = ["--num-cpus=1", "--memory=2000000000", "--object-store-memory=100000000", "--disable-usage-stats"]


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo.extend(children.get(tree[-1], []))
    return tree


def kill_node(node: subprocess.Popen) -> None:
    """SIGKILL a `ray start --block` process and every process of its node (raylet, GCS, workers), by pid;
    nothing when it has already been stopped (its pid may belong to another process by now)."""
    if node.poll() is not None:
        return
    for pid in process_tree(node.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    node.wait(timeout=30)


def cluster_env(root: Path) -> dict[str, str]:
    """The environment of the cluster's user: HOME under ``root`` (so ~/.ray/auth_token is this cluster's),
    no Ray address, token or authentication mode from outside."""
    env = {**os.environ, "HOME": str(root / "home"), "LISTENERCTL_CACHE": str(root / "cache")}
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        env.pop(name, None)
    return env


def start_node(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    """`RAY_AUTH_MODE=token ray start ARGS --block` in the background, its output in ``log``."""
    with open(log, "w") as out:
        return subprocess.Popen(["ray", "start", *args, "--block"], env={**env, "RAY_AUTH_MODE": "token"}, stdout=out,
                                stderr=subprocess.STDOUT)


def wait_for_cpus(node: subprocess.Popen, log: Path, env: dict, address: str, cpus: int, timeout: float = 120) -> None:
    """Wait until `ray status` shows ``cpus`` CPUs in the cluster at ``address``; stop ``node`` and raise with
    its ``log`` when it exits or the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        if node.poll() is not None:
            raise RuntimeError(f"ray start exited with code {node.returncode}: {log.read_text()[-2000:]}")
        status = subprocess.run(["ray", "status", f"--address={address}"], env={**env, "RAY_AUTH_MODE": "token"},
                                capture_output=True, text=True, timeout=60)
        if f"/{cpus}.0 CPU" in status.stdout:
            return
        if time.monotonic() > deadline:
            kill_node(node)
            raise RuntimeError(f"the cluster at {address} did not reach {cpus} CPUs: {status.stdout}{status.stderr}"
                               f"{log.read_text()[-2000:]}")
        time.sleep(1)


def start_head(root: Path, env: dict) -> tuple[subprocess.Popen, str]:
    """A token (`ray get-auth-token --generate`) and a head node on HEAD_IP; returns it and its address."""
    subprocess.run(["ray", "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=60)
    port = free_port(HEAD_IP)
    log = root / "head.log"
    head = start_node(["--head", f"--node-ip-address={HEAD_IP}", f"--port={port}", *NODE_LIMITS,
                       f"--temp-dir={root / 'ray'}", "--include-dashboard=false"], env, log)
    address = f"{HEAD_IP}:{port}"
    try:
        wait_for_cpus(head, log, env, address, 1)
    except BaseException:
        kill_node(head)
        raise
    return head, address


def start_worker(root: Path, address: str, env: dict) -> subprocess.Popen:
    """A second node on WORKER_IP joining the cluster at ``address``; returns once the cluster has 2 CPUs."""
    log = root / "worker.log"
    worker = start_node([f"--address={address}", f"--node-ip-address={WORKER_IP}", *NODE_LIMITS], env, log)
    try:
        wait_for_cpus(worker, log, env, address, 2)
    except BaseException:
        kill_node(worker)
        raise
    return worker


def batch_cli(folder: Path, out: Path, address: str, env: dict, *options: str) -> subprocess.Popen:
    """`listenerctl batch FOLDER -o OUT --engine ray --address ADDRESS OPTIONS` as the README's recipe runs it
    (RAY_AUTH_MODE unset: the token is found in ~/.ray/auth_token)."""
    return subprocess.Popen([sys.executable, "-m", "listenerctl.cli", "batch", str(folder), "-o", str(out), *options,
                             "--engine", "ray", "--address", address], env={**env, "LISTENERCTL_DEBUG": ""},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_worker_after_first_item(batch: subprocess.Popen, out: Path, worker: subprocess.Popen,
                                 timeout: float = 300) -> None:
    """SIGKILL the worker node as soon as the batch writing to ``out`` has finished its first item."""
    deadline = time.monotonic() + timeout
    while not list(out.glob("**/motion.npz")) and batch.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    kill_node(worker)
