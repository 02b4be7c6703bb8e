"""SFMS reconstruction ablation (the paper's Table III): dense per-frame FSQ vs static (uniformly spaced)
keyframes vs learned keyframes at k = 3, 7, 10 per 48-frame window.

Every variant is the sfms tokenizer (same encoder, FSQ levels, inpainter, seed and batches) trained for
the same number of steps with the shared trainer; only the keyframe selection differs. The score is the
reconstruction MSE of the normalised arkit58 frames of every whole 48-frame window of the held-out test
split's reactions. With several ``--seeds`` every variant is trained once per seed (initialisation,
batches and Gumbel noise) and the table gives the mean MSE and, per k, the learned / static ratio of every
seed. ``--jobs`` trains that many variants at once, each in its own process on one CPU thread.
Writes a Markdown table (default docs/sfms_ablation.md) and prints it.

    python benchmarks/sfms_ablation.py --data /work/corpus --steps 2000 --seeds 0 1 2 --jobs 2
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
KEYFRAMES = (3, 7, 10)


def variants() -> list[tuple[str, str, int]]:
    """(label, selection, k) of every row: dense first, then static and learned at each k."""
    rows = [("dense (every frame)", "dense", 48)]
    for k in KEYFRAMES:
        rows += [(f"static k={k}", "static", k), (f"learned k={k}", "learned", k)]
    return rows


def test_windows(data: Path, window: int) -> torch.Tensor:
    """Every whole ``window``-frame window of the test reactions, normalised with the training set's
    statistics as the models see them: [N, w, 58]."""
    from listenerctl.data.corpus import load_corpus
    from listenerctl.training.listener_windows import WindowSource, feature_statistics
    from listenerctl.motion import ARKIT58_DIM

    stats = feature_statistics(load_corpus(data, "train"))
    tiles = WindowSource.from_corpus(load_corpus(data, "test"), stats, "cpu").tiles(window)
    return tiles[..., :ARKIT58_DIM].flatten(0, 1)


def test_mse(model, frames: torch.Tensor, uniform: bool = False) -> float:
    """Reconstruction MSE of ``model``'s tokenizer over ``frames`` [N, w, 58]: through its own keyframes, or
    with ``uniform`` through the static selection's uniformly spaced ones instead."""
    tokenizer = model.tokenizer.eval()
    errors = []
    with torch.no_grad():
        for chunk in frames.split(512):
            mask = tokenizer.static_mask.expand(len(chunk), -1) if uniform else None
            errors.append((tokenizer.reconstruct(chunk, mask) - chunk).pow(2).sum())
    return float(sum(errors) / frames.numel())


def train_variant(data: Path, steps: int, batch_size: int, seed: int, selection: str,
                  k: int) -> tuple[float, float, float]:
    """Train one tokenizer variant on one CPU thread; return its test MSE, the test MSE of the same model
    through uniformly spaced keyframes, and the training seconds."""
    from listenerctl.training.loop import run_training
    from listenerctl.training.sfms import make_train_plan

    torch.set_num_threads(1)
    plan = make_train_plan(data, seed=seed, selection=selection, keyframes=k, tokenizer_steps=steps,
                           batch_size=batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        run_training(plan, steps, Path(tmp) / "tokenizer", log_every=max(1, steps // 4), seed=seed)
        seconds = time.perf_counter() - began
    frames = test_windows(data, 48)
    return test_mse(plan.model, frames), test_mse(plan.model, frames, uniform=True), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/corpus"))
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--jobs", type=int, default=1, help="variants trained at once, one CPU thread each")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "sfms_ablation.md")
    args = parser.parse_args()

    runs = [(seed, label, selection, k) for seed in args.seeds for label, selection, k in variants()]
    mse: dict[tuple[str, int], float] = {}          # (label, seed) → test MSE
    uniform: dict[tuple[str, int], float] = {}      # (label, seed) → test MSE through uniform keyframes
    seconds: dict[str, list[float]] = {}
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(train_variant, args.data, args.steps, args.batch_size, seed, selection, k)
                   for seed, _, selection, k in runs]
        for (seed, label, _, _), future in zip(runs, futures):
            mse[label, seed], uniform[label, seed], took = future.result()
            seconds.setdefault(label, []).append(took)
            print(f"seed {seed} {label}: test MSE {mse[label, seed]:.4f}, through uniform keyframes "
                  f"{uniform[label, seed]:.4f} ({took:.0f} s)", flush=True)

    seeds = ", ".join(map(str, args.seeds))
    lines = [
        "# SFMS reconstruction ablation (cf. the paper's Table III)",
        "",
        f"Produced by `python benchmarks/sfms_ablation.py --data {args.data} --steps {args.steps} "
        f"--batch-size {args.batch_size} --seeds {' '.join(map(str, args.seeds))} --jobs {args.jobs}` (each "
        f"variant on one CPU thread, {args.jobs} at once: the seconds are indicative only).",
        "",
        f"Each row trains the sfms keyframe tokenizer for {args.steps} steps (batches of {args.batch_size} windows "
        f"of 48 frames, same architecture, batches and annealing for every row of a seed; seeds {seeds}) on the "
        "train split and reports the reconstruction MSE of the normalised arkit58 frames (per-channel z-scores of "
        "the training set) over every whole 48-frame window of the held-out test split's reactions, averaged over "
        "the seeds. Lower is better; the ratio compares learned with static keyframes at equal k and equal seed, "
        "one value per seed. The last MSE column feeds each learned model uniformly spaced keyframes instead of "
        "its own: how much its selection matters to its own encoder and inpainter.",
        "",
        "| tokenizer | keyframes / 48 frames | test MSE ↓ | learned / static, per seed "
        "| same model, uniform keyframes: test MSE | training s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, selection, k in variants():
        ratio, through_uniform = "", ""
        if selection == "learned":
            ratio = ", ".join(f"{mse[label, seed] / mse[f'static k={k}', seed]:.3f}" for seed in args.seeds)
            through_uniform = f"{statistics.fmean(uniform[label, seed] for seed in args.seeds):.4f}"
        mean = statistics.fmean(mse[label, seed] for seed in args.seeds)
        lines.append(f"| {label} | {k} | {mean:.4f} | {ratio} | {through_uniform} "
                     f"| {statistics.fmean(seconds[label]):.0f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
