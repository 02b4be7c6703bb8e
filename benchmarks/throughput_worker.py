"""One side of `benchmarks/throughput.py`: times generation with whichever listenerctl is on PYTHONPATH.

Reads one JSON request per line on stdin, answers one JSON line on stdout. Requests:
``{"model", "seconds", "samples", "seed"}`` → wall seconds of `generate`; with ``"inputs": N`` → where the
generator overrides `generate_many`, the best of ``"repeats"`` seconds for N inputs one by one and batched; with
``"windows": [...]`` → the seam ratio of lbd's motion for each window order. Each model is loaded once and
warmed up (one untimed short call) before its first timing.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from models import looped  # noqa: E402  (benchmarks/models.py: the conditioning repeated to a length)

from listenerctl.conditioning import Conditioning  # noqa: E402
from listenerctl.models import REGISTRY, load_generator  # noqa: E402
from listenerctl.models.base import Generator  # noqa: E402


def main() -> None:
    speaker, threads, device = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    torch.set_num_threads(threads)
    base = Conditioning.load_npz(speaker)
    loaded = {}

    def generator_for(name: str, **options):
        key = (name, tuple(sorted(options.items())))
        if key not in loaded:
            generator = load_generator(name, device=device)
            if options:
                generator = type(generator).from_checkpoint(REGISTRY[name].default_checkpoint(), device=device,
                                                            **options)
            generator.generate(looped(base, min(base.num_frames, 250)), 2, seed=0)  # warm-up, untimed
            loaded[key] = generator
        return loaded[key]

    def timed(call) -> tuple[float, object]:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = call()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, result

    for line in sys.stdin:
        request = json.loads(line)
        frames = int(round(request["seconds"] * base.fps))
        cond, k, seed = looped(base, frames), request["samples"], request.get("seed", 0)
        if "windows" in request:
            from listenerctl.metrics.gesture import window_join_ratio

            answer = {}
            for order in request["windows"]:
                generator = generator_for(request["model"], windows=order)
                wall, motion = timed(lambda: generator.generate(cond, k, seed))
                cfg = generator.config
                answer[order] = {"seam_ratio": round(window_join_ratio(motion.data, cfg.window, cfg.overlap), 4),
                                 "seconds": round(wall, 4)}
        elif "inputs" in request:
            generator = generator_for(request["model"])
            conds, seeds = [cond] * request["inputs"], list(range(request["inputs"]))
            answer = {"batched": type(generator).generate_many is not Generator.generate_many}  # not the base loop
            if answer["batched"]:
                best = {"one_by_one_s": float("inf"), "batched_s": float("inf")}
                for _ in range(request.get("repeats", 1)):  # in turn, the best of each kept
                    one_by_one, alone = timed(lambda: [generator.generate(c, k, s) for c, s in zip(conds, seeds)])
                    batched_s, together = timed(lambda: generator.generate_many(conds, k, seeds))
                    best = {"one_by_one_s": min(best["one_by_one_s"], one_by_one),
                            "batched_s": min(best["batched_s"], batched_s)}
                answer |= {name: round(wall, 4) for name, wall in best.items()}
                answer["max_abs_difference"] = float(max(np.abs(a.data - b.data).max() for a, b in zip(alone, together)))
        else:
            generator = generator_for(request["model"])
            wall, motion = timed(lambda: generator.generate(cond, k, seed))
            assert motion.data.shape == (k, frames, 58) and np.isfinite(motion.data).all()
            answer = {"seconds": round(wall, 4)}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
