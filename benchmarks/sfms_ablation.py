"""SFMS reconstruction ablation (the paper's Table III): dense per-frame FSQ vs static (uniformly spaced)
keyframes vs learned keyframes at k = 3, 7, 10 per 48-frame window.

Every variant is the sfms tokenizer (same encoder, FSQ levels, inpainter, seed and batches) trained for
the same number of steps with the shared trainer; only the keyframe selection differs. The score is the
reconstruction MSE of the normalised arkit58 frames of every whole 48-frame window of the held-out test
split's reactions. Writes a Markdown table (default docs/sfms_ablation.md) and prints it.

    OMP_NUM_THREADS=1 python benchmarks/sfms_ablation.py --data /work/corpus --steps 400 --batch-size 32
"""

from __future__ import annotations

import argparse
import tempfile
import time
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
    from listenerctl.models.lbd import WindowSource, feature_statistics
    from listenerctl.models.sfms import ARKIT_DIM

    stats = feature_statistics(load_corpus(data, "train"))
    tiles = WindowSource.from_corpus(load_corpus(data, "test"), stats, "cpu").tiles(window)
    return tiles[..., :ARKIT_DIM].flatten(0, 1)


def test_mse(model, frames: torch.Tensor) -> float:
    """Reconstruction MSE of ``model``'s tokenizer over ``frames`` [N, w, 58]."""
    model.eval()
    with torch.no_grad():
        errors = [(model.tokenizer.reconstruct(chunk) - chunk).pow(2).sum() for chunk in frames.split(512)]
    return float(sum(errors) / frames.numel())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/corpus"))
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "sfms_ablation.md")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from listenerctl.models.sfms import make_train_plan
    from listenerctl.train import run_training

    frames = test_windows(args.data, 48)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, selection, k in variants():
            plan = make_train_plan(args.data, seed=0, selection=selection, keyframes=k, tokenizer_steps=args.steps,
                                   batch_size=args.batch_size)
            began = time.perf_counter()
            run_training(plan, args.steps, Path(tmp) / f"{selection}{k}", log_every=max(1, args.steps // 4))
            seconds = time.perf_counter() - began
            mse = test_mse(plan.model, frames)
            results.append((label, k, mse, seconds))
            print(f"{label}: test MSE {mse:.4f} ({seconds:.0f} s)", flush=True)

    by_label = {label: mse for label, _, mse, _ in results}
    lines = [
        "# SFMS reconstruction ablation (cf. the paper's Table III)",
        "",
        f"Produced by `OMP_NUM_THREADS=1 python benchmarks/sfms_ablation.py --data {args.data} --steps {args.steps} "
        f"--batch-size {args.batch_size}` (one CPU thread on a shared, loaded 2-core machine: the seconds are "
        "indicative only).",
        "",
        f"Each row trains the sfms keyframe tokenizer for {args.steps} steps (batches of {args.batch_size} windows "
        "of 48 frames, seed 0, same architecture, batches and annealing) on the train split and reports the reconstruction "
        "MSE of the normalised arkit58 frames (per-channel z-scores of the training set) over every whole "
        "48-frame window of the held-out test split's reactions. Lower is better; the ratio compares learned "
        "with static keyframes at equal k.",
        "",
        "| tokenizer | keyframes / 48 frames | test MSE ↓ | learned / static | training s |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, k, mse, seconds in results:
        ratio = f"{mse / by_label[f'static k={k}']:.3f}" if label.startswith("learned") else ""
        lines.append(f"| {label} | {k} | {mse:.4f} | {ratio} | {seconds:.0f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
