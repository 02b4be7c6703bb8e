"""Renderer throughput: frames per second, rendering alone and with H.264 encoding.

``python benchmarks/render.py [--frames N] [--renderer R]`` prints JSON. Mesh (moderngl), mesh through
pyrender (``mesh_pyrender``, when installed, with its speed relative to moderngl's from the same run)
and portrait renderers at 256 and 512 px:
poses rendered one per call and in batches of 16 (the K-samples-per-frame case), and the same stream
piped through `listenerctl.media.VideoWriter` (libx264 veryfast). Each figure is the best of three runs;
besides wall-clock frames per second it reports CPU milliseconds per frame (rasteriser threads and
ffmpeg included), which other load on a shared machine does not inflate. Poses vary smoothly.
Without ffmpeg on PATH only rendering is timed (and ``"ffmpeg": false`` is reported).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from listenerctl.media import VideoWriter
from renderers.face_rig import ARKIT58_DIM, NUM_SHAPES
from renderers.gl import renderer_name
from renderers.mesh import MeshRenderer
from renderers.portrait import PortraitRenderer, default_portrait

SIZES = (256, 512)
BATCHES = (1, 16)
REPEATS = 3


def smooth_poses(num_frames: int, seed: int = 0) -> np.ndarray:
    """arkit58 [T, 58]: blendshapes in [0, 0.6] and head angles within +-0.3 rad, each a sine of its own
    random frequency (0.1-1.5 Hz) and phase."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames)[:, None] / 25.0
    freq, phase = rng.uniform(0.1, 1.5, (1, ARKIT58_DIM)), rng.uniform(0, 2 * np.pi, (1, ARKIT58_DIM))
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * freq * t + phase)
    poses = np.zeros((num_frames, ARKIT58_DIM), np.float32)
    poses[:, :NUM_SHAPES] = 0.6 * wave[:, :NUM_SHAPES]
    poses[:, NUM_SHAPES:NUM_SHAPES + 3] = 0.6 * (wave[:, NUM_SHAPES:NUM_SHAPES + 3] - 0.5)
    return poses


def _cpu_seconds() -> float:
    """CPU time used so far by this process (all threads, the rasteriser's included) and its
    finished children (ffmpeg)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _measure(run, num_frames: int) -> tuple[float, float]:
    """(frames per second of wall time, CPU milliseconds per frame), each the best of REPEATS runs.
    The CPU figure does not depend on other load: on an idle machine with C cores the wall rate lies
    between 1000 / cpu_ms and C x 1000 / cpu_ms."""
    best_wall = best_cpu = float("inf")
    for _ in range(REPEATS):
        wall, cpu = time.perf_counter(), _cpu_seconds()
        run()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, _cpu_seconds() - cpu)
    return round(num_frames / best_wall, 1), round(1000 * best_cpu / num_frames, 2)


def bench_renderer(open_renderer, num_frames: int) -> dict:
    """Time a renderer at each of SIZES: ``open_renderer(size)`` returns one (a context manager)."""
    poses = smooth_poses(num_frames)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            with open_renderer(size) as renderer:
                renderer.render_batch(poses[:16])  # warm-up: shader compilation, first allocations
                results["gl_renderer"] = getattr(renderer, "gl_renderer", None) or renderer_name(renderer.ctx)
                if hasattr(renderer, "samples"):
                    results["msaa_samples"] = renderer.samples
                row = {}
                for batch in BATCHES:
                    def render_only():
                        for i in range(0, num_frames, batch):
                            renderer.render_batch(poses[i:i + batch])

                    def render_and_encode():
                        with VideoWriter(Path(tmp) / "bench.mp4", size, size, fps=25.0) as writer:
                            for i in range(0, num_frames, batch):
                                for frame in renderer.render_batch(poses[i:i + batch]):
                                    writer.write(frame)

                    timed = [("render", render_only)]
                    if shutil.which("ffmpeg"):
                        timed.append(("render_encode", render_and_encode))
                    for name, run in timed:
                        fps, cpu_ms = _measure(run, num_frames)
                        row[f"{name}_fps_batch{batch}"] = fps
                        row[f"{name}_cpu_ms_per_frame_batch{batch}"] = cpu_ms
                results[f"{size}x{size}"] = row
    return results


def bench_mesh(num_frames: int) -> dict:
    return bench_renderer(MeshRenderer, num_frames)


def bench_mesh_pyrender(num_frames: int) -> dict:
    """The pyrender backend of the mesh renderer (one pass per pose, 4x MSAA), or why it was skipped."""
    from listenerctl.errors import ListenerctlError
    from renderers.mesh_pyrender import PyrenderMeshRenderer, load_pyrender

    try:
        load_pyrender()
    except ListenerctlError as exc:
        return {"skipped": str(exc)}
    return bench_renderer(PyrenderMeshRenderer, num_frames)


def speed_ratio(candidate: dict, reference: dict) -> dict:
    """candidate / reference frames per second, per size and measurement (both from `bench_renderer`)."""
    return {size: {name: round(value / reference[size][name], 3) for name, value in row.items() if "_fps_" in name}
            for size, row in candidate.items() if isinstance(row, dict) and size in reference}


def bench_portrait(num_frames: int) -> dict:
    """The portrait renderer on the default portrait (fitted once per size, outside the timing)."""
    portrait = default_portrait()
    return bench_renderer(lambda size: PortraitRenderer(portrait, size), num_frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=250, help="frames per timed run (default 250 = 10 s at 25 fps)")
    parser.add_argument("--renderer", choices=("all", "mesh", "mesh_pyrender", "portrait"), default="all",
                        help="which renderer to time (default: all; mesh_pyrender times mesh too, to compare)")
    args = parser.parse_args()
    report = {"cpu_count": os.cpu_count(), "frames": args.frames, "ffmpeg": shutil.which("ffmpeg") is not None}
    wanted = {"all": ("mesh", "mesh_pyrender", "portrait"), "mesh_pyrender": ("mesh", "mesh_pyrender")}
    for name, bench in (("mesh", bench_mesh), ("mesh_pyrender", bench_mesh_pyrender), ("portrait", bench_portrait)):
        if name in wanted.get(args.renderer, (args.renderer,)):
            report[name] = bench(args.frames)
    if "skipped" not in report.get("mesh_pyrender", {"skipped": ""}):
        report["mesh_pyrender"]["speed_vs_moderngl"] = speed_ratio(report["mesh_pyrender"], report["mesh"])
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
