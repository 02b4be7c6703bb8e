"""Benchmark DiffSHEG co-speech generation: speed, FOPPAS seams on a long input, rendering speed.

Prints JSON. The input is the shared BEAT speech (68 s) followed by the shared BEAT training clip's
speech (64 s): about 2 minutes.

- generation: motion frames per second (15 fps motion; 15/s is real time) at 25 DDIM steps, for one
  sample and for K samples batched;
- FOPPAS: `window_join_ratio` (velocity jump at window joins / within windows; <= 1.5 passes) for
  expression and gesture, plus the same ratio with the pinning turned off (overlap 0, plain
  concatenation) for comparison;
- memory: peak resident memory added by generating one sample of the first minute and of the whole
  input, each in a fresh process (flat in T: only the output grows, by 0.8 KB per frame);
- rendering: skeleton + face video frames per second (25 fps video).

    python benchmarks/cospeech.py [--samples 10] [--threads 2] [--render-seconds 10]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPEECH = [ROOT.parent / "shared" / "data" / "speech" / "beat_scott_68s.wav",
          ROOT.parent / "shared" / "data" / "beat" / "2_scott_0_1_1.wav"]


def _rss_mb() -> float:
    """Resident memory of this process in MB (Linux /proc)."""
    import os

    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def generation_memory_mb(seconds: float, threads: int | None) -> float:
    """Peak resident memory (MB) added while generating one sample for the first ``seconds`` of the input,
    polled every 2 ms in a fresh process after loading the model, computing the audio features and one
    warm-up window."""
    import threading

    import torch

    from listenerctl.media import load_audio
    from listenerctl.models import load_generator

    if threads:
        torch.set_num_threads(threads)
    generator = load_generator("diffsheg")
    speech = np.concatenate([load_audio(p) for p in SPEECH])[:int(seconds * 16_000)]
    features = generator.audio_features(speech)
    generator.sample(features[:generator.config.window], 1, seed=0)  # warm-up: allocator pools, kernels
    baseline, peak, running = _rss_mb(), [0.0], [True]

    def poll() -> None:
        while running[0]:
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.002)

    watcher = threading.Thread(target=poll)
    watcher.start()
    generator.sample(features, 1, seed=0)
    running[0] = False
    watcher.join()
    return peak[0] - baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--render-seconds", type=float, default=10.0)
    args = parser.parse_args()

    import torch

    from listenerctl.cospeech import CoSpeechOptions, write_videos
    from listenerctl.data.beat import skeleton_from_card
    from listenerctl.media import load_audio, write_wav
    from listenerctl.metrics.gesture import window_join_ratio
    from listenerctl.models import load_generator

    if args.threads:
        torch.set_num_threads(args.threads)
    generator = load_generator("diffsheg")
    config = generator.config
    speech = np.concatenate([load_audio(p) for p in SPEECH])
    features = generator.audio_features(speech)
    frames = len(features)
    report = {"input_s": round(len(speech) / 16_000, 1), "motion_frames": frames, "fps_motion": generator.fps,
              "ddim_steps": config.steps, "window": config.window, "overlap": config.overlap,
              "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}

    timings = {}
    for k in (1, args.samples):
        start = time.perf_counter()
        motion = generator.sample(features, k, seed=0)
        elapsed = time.perf_counter() - start
        timings[k] = motion
        report[f"generate_K{k}_s"] = round(elapsed, 2)
        report[f"motion_frames_per_s_K{k}"] = round(frames / elapsed, 1)
        report[f"sample_frames_per_s_K{k}"] = round(k * frames / elapsed, 1)
        report[f"x_real_time_K{k}"] = round(frames / elapsed / generator.fps, 2)
    motion = timings[args.samples]
    for part in ("expression", "gesture"):
        report[f"join_ratio_{part}"] = round(window_join_ratio(getattr(motion, part).data, config.window,
                                                               config.overlap), 3)
    unpinned = generator.sample(features, args.samples, seed=0, overlap=0)
    for part in ("expression", "gesture"):
        report[f"join_ratio_{part}_no_foppas"] = round(window_join_ratio(getattr(unpinned, part).data,
                                                                         config.window, 0), 3)

    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        for seconds in (60.0, report["input_s"]):
            added = pool.apply(generation_memory_mb, (seconds, args.threads))
            report[f"peak_rss_added_mb_{int(seconds)}s"] = round(added, 1)

    with tempfile.TemporaryDirectory() as tmp:
        n = int(args.render_seconds * generator.fps)
        wav = Path(tmp) / "speech.wav"
        write_wav(wav, speech[:int(args.render_seconds * 16_000)])
        clip = generator.sample(features[:n], 1, seed=0)
        start = time.perf_counter()
        write_videos(Path(tmp), clip.expression, clip.gesture, skeleton_from_card(generator.card), wav,
                     CoSpeechOptions(samples=1))
        elapsed = time.perf_counter() - start
        report["render_video_frames_per_s"] = round(args.render_seconds * 25 / elapsed, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
