"""Benchmark every registered generator on the same speaker features, on each device asked for.

Prints JSON: for each model and device, seconds to generate K samples of the input, as a multiple of
real time, and its speed relative to the same model on the CPU measured in this run (the baseline).
The input is a `speaker.npz` written by `generate` (default: made here from the shipped sample), looped
to ``--seconds``. The first call of each model and device is a warm-up (CUDA context, kernels) and is
not timed; then the best of ``--repeats`` is kept.

    python benchmarks/models.py [--speaker out/talk/speaker.npz] [--seconds 60 600] [--samples 10]
                                [--devices cpu cuda] [--models lbd sfms ...] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "talk.wav"


def sample_speaker(folder: Path) -> Path:
    """speaker.npz of the shipped sample speech (needs ffmpeg)."""
    from listenerctl.pipeline import prepare_conditioning

    path = folder / "speaker.npz"
    prepare_conditioning(SAMPLE).cond.save_npz(path)
    return path


def looped(cond, frames: int):
    """The conditioning repeated end to end to ``frames`` frames."""
    def loop(part):
        if part is None:
            return None
        return replace(part, **{f.name: np.resize(getattr(part, f.name), (frames,) + getattr(part, f.name).shape[1:])
                                for f in fields(part)})
    return replace(cond, num_frames=frames, audio=loop(cond.audio), face=loop(cond.face))


def time_generate(generator, cond, samples: int, repeats: int, device: str) -> float:
    """Best wall-clock seconds of ``repeats`` calls of generate, after one untimed warm-up call."""
    import torch

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    generator.generate(looped(cond, min(cond.num_frames, 250)), samples, seed=0)
    best = float("inf")
    for repeat in range(repeats):
        sync()
        start = time.perf_counter()
        motion = generator.generate(cond, samples, seed=repeat)
        sync()
        best = min(best, time.perf_counter() - start)
    assert motion.data.shape[0] == samples and np.isfinite(motion.data).all()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speaker", type=Path, help="speaker.npz from a generate run (default: the shipped sample's)")
    parser.add_argument("--seconds", type=float, nargs="+", default=[60.0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--devices", nargs="+", default=["cpu"], choices=("cpu", "cuda"))
    parser.add_argument("--models", nargs="+", help="default: every learned model, and rules as the spine's reference")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()

    import torch

    from listenerctl.conditioning import Conditioning
    from listenerctl.models import REGISTRY, load_generator

    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.models or ["rules"] + [n for n, e in REGISTRY.items() if e.learned]
    with tempfile.TemporaryDirectory() as tmp:
        base = Conditioning.load_npz(args.speaker or sample_speaker(Path(tmp)))
    report = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "processor": platform.processor() or platform.machine(),
                          "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
              "torch": torch.__version__, "samples": args.samples, "results": []}
    for seconds in args.seconds:
        cond = looped(base, int(round(seconds * base.fps)))
        for name in names:
            cpu_seconds = None
            for device in args.devices if REGISTRY[name].learned else ["cpu"]:
                generator = load_generator(name, device=device)
                wall = time_generate(generator, cond, args.samples, args.repeats, device)
                row = {"model": name, "device": device, "input_seconds": seconds, "seconds": round(wall, 4),
                       "times_real_time": round(seconds / wall, 2)}
                if device == "cpu":
                    cpu_seconds = wall
                elif cpu_seconds is not None:
                    row["speedup_vs_cpu"] = round(cpu_seconds / wall, 2)
                if device == "cuda":
                    row["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
                    torch.cuda.reset_peak_memory_stats()
                report["results"].append(row)
                print(json.dumps(row), flush=True, file=sys.stderr)  # progress
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
