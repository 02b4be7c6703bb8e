"""`listenerctl batch`: every recording under a folder through `generate`, resumable, one failure alone.

Outputs mirror the input tree: ``IN/a/b/talk.mp4`` → ``OUT/a/b/talk/``. An item whose manifest says it
is complete is skipped, so an interrupted run (Ctrl-C, a killed process) continues where it stopped:
unfinished items only ever exist as hidden ``.*.partial`` folders, which the next run removes.
With ``jobs`` > 1, items run in that many worker processes, each loading the model (and renderer) once.
Workers take items in groups (up to `GROUP_SIZE`): features are extracted item by item, the group's motion is
generated in one batched call (`Generator.generate_many`, each item getting what it would alone), and each
item is published on its own.
With ``engine="ray"`` they run on a Ray cluster instead: one actor per CPU (or per GPU when the model runs
on CUDA), each loading the model once, writing straight into the output folder, which must therefore be
storage that every node shares. An item whose worker dies (its node lost) is tried once more on another
worker; the dead worker is not replaced, so the rest of the batch runs on the workers left.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from listenerctl.atomic import atomic_file, remove_stale_partials
from listenerctl.errors import ListenerctlError
from listenerctl.pipeline import (GenerateOptions, check_options, is_complete, load_listener, prepare_item,
                                  publish_item, renderer_pool)
from listenerctl.ray_cluster import connect

MEDIA_GLOBS = ("*.mp4", "*.mov", "*.mkv", "*.avi", "*.webm", "*.wav", "*.mp3", "*.flac", "*.m4a", "*.ogg", "*.aac")
REPORT = "batch_report.json"
RAY_INSTALL_HINT = "--engine ray needs Ray; install it with: pip install 'listenerctl[ray]'."
RAY_ITEM_TRIES = 2  # an item whose Ray worker died runs once more on another one
GROUP_SIZE = 8  # inputs a worker generates in one batched call (`Generator.generate_many`)


@dataclass
class ItemResult:
    """What happened to one input: status is 'done', 'skipped' or 'failed'; on Ray, the node that ran it
    (its IP address) and how many workers it was given (more than 1 when a worker died under it)."""

    input: str
    output: str
    status: str
    seconds: float = 0.0
    reason: str = ""
    node: str = ""
    tries: int = 1


def find_inputs(folder: Path, pattern: str | None = None) -> list[Path]:
    """Media files under ``folder`` (recursively; ``pattern`` is a glob like '*.mp4'), sorted, hidden skipped."""
    if not folder.is_dir():
        raise ListenerctlError(f"input folder not found: {folder}")
    found = set()
    for glob in [pattern] if pattern else MEDIA_GLOBS:
        found.update(p for p in folder.rglob(glob) if p.is_file()
                     and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    return sorted(found)


def item_dir(path: Path, in_root: Path, out_root: Path) -> Path:
    """OUT/<relative folder>/<stem> for an input under ``in_root``."""
    return out_root / path.relative_to(in_root).parent / path.stem


def remove_unfinished(out_root: Path) -> int:
    """Delete hidden working folders left by an interrupted run; returns how many."""
    stale = [p for p in out_root.rglob(".*.partial") if p.is_dir()] if out_root.exists() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)


class Worker:
    """Holds a loaded generator (and renderer pool) and runs items; one per process."""

    def __init__(self, opts: GenerateOptions):
        self.opts = opts
        self.generator = load_listener(opts)
        self.renderers = renderer_pool(opts)

    def run(self, path: Path, final: Path) -> ItemResult:
        return self.run_group([(path, final)])[0]

    def run_group(self, items: list[tuple[Path, Path]]) -> list[ItemResult]:
        """Items (input, output folder) prepared one by one, generated together (`Generator.generate_many`:
        each gets what it would alone) and published one by one; a failing item fails alone."""
        results: dict[int, ItemResult] = {}
        prepared = []
        for index, (path, final) in enumerate(items):
            start, start_wall = time.perf_counter(), time.time()
            try:
                prepared.append((index, prepare_item(path, self.opts, self.generator, report=lambda _: None),
                                 start, start_wall))
            except Exception as exc:  # one broken item must not stop the batch; the reason is kept
                results[index] = _failed(path, final, start, exc)
        try:
            start = time.perf_counter()
            listeners = self.generator.generate_many([item.cond for _, item, _, _ in prepared], self.opts.samples,
                                                     [self.opts.seed] * len(prepared)) if prepared else []
            share = (time.perf_counter() - start) / max(len(prepared), 1)
        except Exception as exc:
            results |= {index: _failed(*items[index], started, exc) for index, _, started, _ in prepared}
            listeners = []
        for (index, item, started, started_wall), listener in zip(prepared, listeners):
            path, final = items[index]
            item.timings["generate_s"] = share
            try:
                publish_item(path, final.parent, self.opts, self.generator, item, listener, report=lambda _: None,
                             renderers=self.renderers, output_name=final.name, started=started,
                             started_wall=started_wall)
            except Exception as exc:
                results[index] = _failed(path, final, started, exc)
                continue
            results[index] = ItemResult(str(path), str(final), "done", time.perf_counter() - started)
        return [results[index] for index in range(len(items))]


def _failed(path: Path, final: Path, started: float, exc: Exception) -> ItemResult:
    """The failed `ItemResult` for ``exc``: its sentence for a `ListenerctlError`, else marked internal."""
    reason = str(exc) if isinstance(exc, ListenerctlError) else f"internal error: {type(exc).__name__}: {exc}"
    return ItemResult(str(path), str(final), "failed", time.perf_counter() - started, reason)


def groups_of(todo: list, workers: int) -> list[list]:
    """``todo`` cut into consecutive groups of at most `GROUP_SIZE`, small enough that ``workers`` all get one."""
    size = max(1, min(GROUP_SIZE, -(-len(todo) // max(workers, 1))))
    return [todo[i:i + size] for i in range(0, len(todo), size)]


_worker: Worker | None = None


def worker_threads(jobs: int) -> int:
    """Torch threads for each of ``jobs`` local worker processes: this machine's cores shared out (at least
    one), so that the workers' threads do not outnumber the cores (each process would otherwise take all
    of them, and small per-step operations then wait on descheduled threads: measured 10-30x slower)."""
    return max(1, len(os.sched_getaffinity(0)) // max(jobs, 1))


def _init_worker(opts: GenerateOptions, threads: int) -> None:
    import torch

    global _worker
    torch.set_num_threads(threads)
    _worker = Worker(opts)


def _run_in_worker(group: list[tuple[Path, Path]]) -> list[ItemResult]:
    return _worker.run_group(group)


class _RayWorker:
    """Ray actor around a `Worker`, built on its first item so a loading error reaches the driver as that error."""

    def __init__(self, opts: GenerateOptions):
        self.opts = opts
        self.worker: Worker | None = None

    def node(self) -> str:
        """The IP address of the node this actor runs on."""
        import ray

        return ray.util.get_node_ip_address()

    def run_group(self, group: list[tuple[Path, Path]]) -> list[ItemResult]:
        if self.worker is None:
            self.worker = Worker(self.opts)
        node = self.node()
        return [replace(result, node=node) for result in self.worker.run_group(group)]


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ListenerctlError(RAY_INSTALL_HINT) from None
    return ray


def _cluster_device(requested: str, cluster_gpus: float) -> str:
    """'auto' → 'cuda' when the cluster has GPUs, else 'cpu'; 'cuda' on a cluster without GPUs is an error."""
    if requested == "auto":
        return "cuda" if cluster_gpus > 0 else "cpu"
    if requested.startswith("cuda") and cluster_gpus <= 0:
        raise ListenerctlError("--device cuda was asked for but the Ray cluster has no GPUs; use --device cpu.")
    return requested


def _run_local(todo: list[tuple[Path, Path]], opts: GenerateOptions, jobs: int,
               emit: Callable[[ItemResult], None]) -> None:
    """Items in this process (jobs <= 1) or in ``jobs`` worker processes."""
    if jobs <= 1 or len(todo) <= 1:
        worker = Worker(opts) if todo else None
        for group in groups_of(todo, 1):
            for result in worker.run_group(group):
                emit(result)
        return
    with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker,
                             initargs=(opts, worker_threads(jobs))) as pool:
        futures = [pool.submit(_run_in_worker, group) for group in groups_of(todo, jobs)]
        for future in as_completed(futures):
            for result in future.result():
                emit(result)


def _run_on_ray(todo: list[tuple[Path, Path]], opts: GenerateOptions, jobs: int | None, address: str | None,
                emit: Callable[[ItemResult], None]) -> tuple[GenerateOptions, int]:
    """Items as Ray actor calls, in groups (`groups_of`), each actor given its next group as soon as it
    finishes one (gathered by ray.wait).

    Connects to ``address`` (``auto``, ``ray://host:10001``, ``host:6379``; see `ray_cluster.connect`),
    reuses an already initialised Ray, or starts a local instance with ``jobs`` (default 2) CPUs. A group
    whose actor dies is given to another actor (``RAY_ITEM_TRIES`` in all) after its half-written folder is
    removed (its items published before it died are reported done); the dead actor is dropped. Returns the
    options as run (device resolved against the cluster) and the number of actors started; starts nothing
    when ``todo`` is empty.
    """
    if not todo:
        return opts, 0
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        if address:
            connect(ray, address)
        else:
            ray.init(num_cpus=jobs or 2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    actors = []
    try:
        resources = ray.cluster_resources()
        opts = replace(opts, device=_cluster_device(opts.device, resources.get("GPU", 0.0)))
        on_gpu = opts.device.startswith("cuda")
        capacity = int(resources.get("GPU" if on_gpu else "CPU", 1))
        actor_class = ray.remote(_RayWorker).options(num_cpus=1, num_gpus=1 if on_gpu else 0, max_restarts=0)
        actors = [actor_class.remote(opts) for _ in range(max(1, min(jobs or capacity, len(todo))))]
        nodes = dict(zip(map(id, actors), ray.get([actor.node.remote() for actor in actors])))
        queue = [(group, 1) for group in groups_of(todo, len(actors))]
        running = {}  # object ref → (actor, its group of (input path, output folder) as given, try number)

        alive = list(actors)

        def dispatch() -> None:
            """The next queued groups to the live actors that have none."""
            busy = {id(entry[0]) for entry in running.values()}
            for actor in alive:
                if queue and id(actor) not in busy:
                    group, tries = queue.pop(0)
                    ref = actor.run_group.remote([(path.resolve(), final.resolve()) for path, final in group])
                    running[ref] = (actor, group, tries)

        dispatch()
        while running:
            [ref], _ = ray.wait(list(running), num_returns=1)
            actor, group, tries = running.pop(ref)
            try:
                for result in _ray_results(ray, ref, group):
                    emit(replace(result, tries=tries))
            except ray.exceptions.RayActorError as exc:
                alive.remove(actor)
                for _, final in group:  # its worker is gone: nothing writes there
                    remove_stale_partials(final.resolve(), time.time())
                published = [is_complete(final.resolve()) for _, final in group]
                for (path, final), done in zip(group, published):  # items it published before it died
                    if done:
                        emit(ItemResult(str(path), str(final), "done", node=nodes[id(actor)], tries=tries,
                                        reason="published before its ray worker died"))
                group = [item for item, done in zip(group, published) if not done]
                reason = f"ray worker died: {str(exc).splitlines()[0]}"
                if group and tries < RAY_ITEM_TRIES and alive:
                    queue.insert(0, (group, tries + 1))
                else:
                    for path, final in group:
                        emit(ItemResult(str(path), str(final), "failed", reason=reason, tries=tries))
                if not alive:  # nothing left to run on: the rest waits for a rerun
                    for left_group, left_tries in queue:
                        for left, left_final in left_group:
                            emit(ItemResult(str(left), str(left_final), "failed", tries=left_tries,
                                            reason="every ray worker died; a rerun of the batch processes it"))
                    queue.clear()
            dispatch()
        return opts, len(actors)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()


def _ray_results(ray, ref, group: list[tuple[Path, Path]]) -> list[ItemResult]:
    """The `ItemResult`s behind ``ref`` with the paths as the caller gave them; raises RayActorError when its
    worker died."""
    try:
        results = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:  # the model or renderer could not load: stop, as locally
        raise exc.cause from None
    return [replace(result, input=str(path), output=str(final)) for result, (path, final) in zip(results, group)]


def run_batch(in_root: Path, out_root: Path, opts: GenerateOptions, jobs: int | None = None,
              pattern: str | None = None, on_result: Callable[[ItemResult, int, int], None] | None = None,
              engine: str = "local", address: str | None = None) -> list[ItemResult]:
    """Process every input under ``in_root``; returns one result per input and writes batch_report.json.

    ``engine`` 'local' runs ``jobs`` (default 1) processes here; 'ray' runs on the Ray cluster at ``address``
    (default: a local instance), ``jobs`` actors (default: one per cluster CPU, or GPU for CUDA). With 'ray',
    ``opts.device`` may be 'auto'; it is resolved against the cluster's GPUs. Options no item could run with
    (`pipeline.check_options`) stop the batch before anything is written.
    """
    if engine not in ("local", "ray"):
        raise ListenerctlError(f"unknown engine {engine!r}; use 'local' or 'ray'.")
    if engine == "ray":
        _import_ray()
    check_options(opts)
    inputs = find_inputs(in_root, pattern)
    if not inputs:
        raise ListenerctlError(f"no audio or video files found under {in_root}"
                               + (f" matching {pattern!r}." if pattern else "."))
    remove_unfinished(out_root)
    results: list[ItemResult] = []

    def emit(result: ItemResult) -> None:
        results.append(result)
        if on_result:
            on_result(result, len(results), len(inputs))

    todo = []
    for path in inputs:
        final = item_dir(path, in_root, out_root)
        if is_complete(final):
            emit(ItemResult(str(path), str(final), "skipped", reason="already complete"))
        else:
            todo.append((path, final))
    if engine == "ray":
        opts, jobs = _run_on_ray(todo, opts, jobs, address, emit)
    else:
        jobs = jobs or 1
        _run_local(todo, opts, jobs, emit)
    order = {str(p): i for i, p in enumerate(inputs)}
    results.sort(key=lambda r: order[r.input])
    report = {"input": str(in_root), "output": str(out_root), "options": asdict(opts), "engine": engine,
              "jobs": jobs, "counts": {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")},
              "items": [asdict(r) for r in results]}
    out_root.mkdir(parents=True, exist_ok=True)  # only now: a run stopped before any item leaves no folder
    with atomic_file(out_root / REPORT, "w") as fh:
        json.dump(report, fh, indent=2)
    return results
