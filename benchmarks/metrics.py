"""Benchmark the REACT metrics at challenge size: seconds per metric and in total. Prints JSON.

Both protocols are timed in the same run: ``listenerctl`` (this project's variants: Euclidean-cost
FRDist, its own TLCC — the earlier figure) and ``react2024`` (the official definitions: squared-cost
DTW on float32 inputs, the official TLCC, FRDvs from its pairwise matrix), metrics shared by both
counted in each total; plus a 1000-draw bootstrap of every official metric over the clips.

Inputs are smooth random emotion25 curves (AU occurrences 0/1, valence/arousal in [-1, 1],
expression probabilities summing to 1) for N clips x K samples x T frames, with M appropriate
reactions per clip. Also reports the machine's CPUs and load, which the timings depend on, and the
first DTW call (loading numba's compiled kernel from its cache, or compiling it on a first run).

``--baseline FILE`` also times another implementation of the metrics module (e.g. an older
version saved with ``git show REV:listenerctl/metrics/react.py > old.py``) on the same inputs,
each metric right after the current one, and reports speedups and value differences.

    python benchmarks/metrics.py [--clips 60] [--samples 10] [--frames 750] [--appropriate 10]
                                 [--baseline old.py]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from types import ModuleType

import numpy as np

from listenerctl.metrics import bootstrap, react


def emotion_curves(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """[..., T, 25] smooth random emotion25 values: 15 AUs in {0, 1}, VA in [-1, 1], 8 probabilities."""
    walk = np.cumsum(rng.normal(scale=0.15, size=shape + (25,)), axis=-2)
    walk -= walk.mean(axis=-2, keepdims=True)
    aus = (walk[..., :15] > 0.5).astype(np.float64)
    va = np.tanh(walk[..., 15:17])
    logits = np.exp(walk[..., 17:] - walk[..., 17:].max(axis=-1, keepdims=True))
    return np.concatenate([aus, va, logits / logits.sum(axis=-1, keepdims=True)], axis=-1)


def load_module(path: str) -> ModuleType:
    """Import a metrics module from a file path."""
    spec = importlib.util.spec_from_file_location("baseline_react", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # numba's on-disk cache finds compiled functions' module by name
    spec.loader.exec_module(module)
    return module


LISTENERCTL = ("FRCorr", "FRDist", "FRDiv", "FRDvs", "FRVar", "FRSyn")
REACT2024 = ("FRCorr", "FRDist_official", "FRDiv", "FRDvs_pairwise", "FRVar", "FRSyn_official")


def metric_calls(module: ModuleType, pred, speaker, appropriate) -> dict:
    """Name -> zero-argument call of each REACT metric of ``module`` (the official ones where it has them)."""
    calls = {
        "FRCorr": lambda: module.fr_corr(pred, appropriate),
        "FRDist": lambda: module.fr_dist(pred, appropriate),
        "FRDiv": lambda: module.fr_div(pred),
        "FRDvs": lambda: module.fr_dvs(pred),
        "FRVar": lambda: module.fr_var(pred),
        "FRSyn": lambda: module.fr_syn(pred, speaker),
    }
    if hasattr(module, "evaluate_react_official"):
        calls |= {
            "FRDist_official": lambda: float(module.fr_dist_per_speaker(pred, appropriate, official=True).mean()),
            "FRDvs_pairwise": lambda: float(module.fr_dvs_pairwise(pred).sum() / (len(pred) * (len(pred) - 1))),
            "FRSyn_official": lambda: float(module.tlcc_offsets_official(pred, speaker)[:, 0].mean()),
        }
    return calls


def bootstrap_all(pred, speaker, appropriate, draws: int = 1000) -> dict:
    """95 % intervals of every official metric over ``draws`` resamples of the clips, from contributions
    computed once (not timed here: they are the metrics above) -> seconds of the resampling alone."""
    contributions = react.speaker_contributions(pred, speaker, appropriate, "react2024")
    wall = time.perf_counter()
    counts = bootstrap.resample_counts(len(pred), draws, seed=0)
    intervals = {name: bootstrap.interval(terms, counts) for name, terms in contributions.items()}
    return {"draws": draws, "seconds": round(time.perf_counter() - wall, 4),
            "intervals": {name: [round(v, 6) for v in bounds] for name, bounds in intervals.items()}}


def timed(compute) -> tuple[float, float, float]:
    """(value, wall seconds, CPU seconds of all threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = compute()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=60, help="N speaker clips")
    parser.add_argument("--samples", type=int, default=10, help="K generated reactions per clip")
    parser.add_argument("--frames", type=int, default=750, help="T frames per sequence (25 fps)")
    parser.add_argument("--appropriate", type=int, default=10, help="M appropriate reactions per clip")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the inputs")
    parser.add_argument("--baseline", help="file of another metrics module to time against")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    pred = emotion_curves(rng, args.clips, args.samples, args.frames)
    speaker = emotion_curves(rng, args.clips, args.frames)
    appropriate = [emotion_curves(rng, args.appropriate, args.frames) for _ in range(args.clips)]
    _, first_call_s, _ = timed(lambda: react.dtw(pred[0, :1, :2], appropriate[0][:1, :2], react.DIST_GROUPS))

    modules = {"current": react} | ({"baseline": load_module(args.baseline)} if args.baseline else {})
    calls = {name: metric_calls(module, pred, speaker, appropriate) for name, module in modules.items()}
    results = {name: {"seconds": {}, "cpu_seconds": {}, "values": {}} for name in modules}
    for metric in calls["current"]:
        for name in modules:
            if metric not in calls[name]:
                continue
            value, wall, cpu = timed(calls[name][metric])
            results[name]["values"][metric] = value
            results[name]["seconds"][metric] = round(wall, 3)
            results[name]["cpu_seconds"][metric] = round(cpu, 3)
    cells = 3 * args.clips * args.samples * args.appropriate * args.frames ** 2
    for result in results.values():
        result["total_s"] = round(sum(result["seconds"][m] for m in LISTENERCTL), 3)  # the earlier figure
        result["cpu_s"] = round(sum(result["cpu_seconds"][m] for m in LISTENERCTL), 3)
        result["dtw_cells_per_s"] = round(cells / result["seconds"]["FRDist"])
        if "FRDist_official" in result["seconds"]:
            result["react2024_total_s"] = round(sum(result["seconds"][m] for m in REACT2024), 3)
            result["react2024_cpu_s"] = round(sum(result["cpu_seconds"][m] for m in REACT2024), 3)
            result["official_dtw_cells_per_s"] = round(cells / result["seconds"]["FRDist_official"])
    report = {
        "size": {"clips": args.clips, "samples": args.samples, "frames": args.frames,
                 "appropriate": args.appropriate},
        "first_dtw_call_s": round(first_call_s, 3),
        **results,
        "bootstrap": bootstrap_all(pred, speaker, appropriate),
        "machine": {"cpus": len(os.sched_getaffinity(0)), "load_average_1min": round(os.getloadavg()[0], 2),
                    "processor": platform.processor() or platform.machine()},
    }
    if args.baseline:
        current, baseline = results["current"], results["baseline"]
        report["speedup"] = {metric: round(baseline["seconds"][metric] / max(current["seconds"][metric], 1e-6), 2)
                             for metric in baseline["seconds"]}
        report["speedup"]["total"] = round(baseline["total_s"] / current["total_s"], 2)
        report["speedup"]["cpu"] = round(baseline["cpu_s"] / current["cpu_s"], 2)
        report["relative_difference"] = {metric: abs(current["values"][metric] - baseline["values"][metric])
                                         / max(abs(baseline["values"][metric]), 1e-300)
                                         for metric in baseline["values"]}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
