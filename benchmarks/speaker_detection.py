"""Benchmark active speaker detection: seconds per minute of input, peak memory, against audio features.

Prints JSON. Input: a dialogue of the two real talking faces in ../shared/data/video (their arkit58 from
`extract_face`, their own audio at alternating 4 s turns), looped to each length and given 2 or 4 people
(the extra ones are the same faces shifted in time; every non-talker shows a moving mouth from another moment,
the hard case, whose agreement with the turns is reported too, with the owner of each voice the mixed
track was diarized into). The baseline timed in the same run is
`extract_audio` on the same mixed audio, a stage every generate run already pays; the speaker detection
overhead is given per input minute and as a multiple of it. Peak memory (tracemalloc, Python + numpy
allocations) is reported per length to show it grows with the recording only as the arrays do.

    python benchmarks/speaker_detection.py [--minutes 1 5] [--people 2 4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = [ROOT.parent / "shared" / "data" / "video" / name for name in ("talking_face_8s.mp4", "talking_face_b_8s.mp4")]
FPS, HOP, TURN_FRAMES = 25.0, 640, 100


def sources() -> list[tuple[np.ndarray, np.ndarray]]:
    """arkit [T, 58] and 16 kHz audio of each real talking face."""
    from listenerctl.features.face import extract_face
    from listenerctl.media import load_audio

    out = []
    for video in VIDEOS:
        face = extract_face(video, fps=FPS)
        out.append((face.arkit, load_audio(video)[:len(face.arkit) * HOP]))
    return out


def dialogue(parts, frames: int, people: int):
    """People [P, frames] and mixed audio samples of alternating 4 s turns looped to ``frames``."""
    from listenerctl.features.people import People

    length = min(len(arkit) for arkit, _ in parts)
    t = np.arange(frames)
    talker = (t // TURN_FRAMES) % 2
    samples = np.zeros(frames * HOP, np.float32)
    for p, (_, audio) in enumerate(parts):
        for f in np.flatnonzero(talker == p):
            samples[f * HOP:(f + 1) * HOP] = audio[(f % length) * HOP:(f % length + 1) * HOP]
    arkit = np.stack([parts[p % 2][0][(t + 37 * (p // 2)) % length] for p in range(people)]).astype(np.float32)
    boxes = np.tile(np.array([0.1, 0.1, 0.3, 0.3], np.float32), (people, frames, 1))
    return People(arkit, np.ones((people, frames), bool), boxes, np.zeros((people, 8, 8, 3), np.uint8), FPS), samples


def timed(call) -> tuple[float, float, object]:
    """Seconds and peak traced MiB of one ``call()``, and its result."""
    tracemalloc.start()
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    return seconds, peak, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 5.0])
    parser.add_argument("--people", type=int, nargs="+", default=[2, 4])
    args = parser.parse_args()

    from listenerctl.features.audio import extract_audio
    from listenerctl.features.speakers import detect_speakers

    parts = sources()
    runs = []
    for minutes in args.minutes:
        frames = int(minutes * 60 * FPS)
        for people in args.people:
            crowd, samples = dialogue(parts, frames, people)
            audio_s, audio_mib, audio = timed(lambda: extract_audio(samples, FPS, frames))
            detect_s, detect_mib, speakers = timed(lambda: detect_speakers(crowd, audio))
            truth = (np.arange(frames) // TURN_FRAMES) % 2
            runs.append({
                "minutes": minutes, "people": people,
                "baseline_audio_features_s_per_min": round(audio_s / minutes, 3),
                "speaker_detection_s_per_min": round(detect_s / minutes, 3),
                "speaker_detection_vs_baseline": round(detect_s / audio_s, 3),
                "peak_mib_audio_features": round(audio_mib, 1), "peak_mib_speaker_detection": round(detect_mib, 1),
                "agreement_hard_case": round(float(np.mean(speakers.active[speakers.speech]
                                                                  == truth[speakers.speech])), 3),
                "voice_owners": speakers.voice_owner,
            })
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "load_1min": os.getloadavg()[0],
                                  "python": platform.python_version()}, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
