"""Benchmark `listenerctl data extract`: input minutes per wall minute, against plain face tracking.

Prints JSON. Input: ``--sessions`` two-person dialogues of ``--minutes`` each, built from the two real
talking faces in ../shared/data/video (turns of 5 s alternating; tests/composites.py), in both layouts:
(a) one 256×256 video per person with their own audio track; (b) one 512×256 side-by-side video per
session with one mixed track (the listener keeps still). Timed in the same run, each with an empty cache:

- extract: the whole command (`extract_corpus`: face tracking, audio features, who talks, session
  folders and contact sheets, clips, splits, report) with 4 s clips;
- baseline: the face tracking alone on the same videos — `extract_face` per video for (a), the tracking
  `generate` does for one input; `track_people` per video for (b).

Rates are session minutes per wall minute (in layout a a session of m minutes has one video per person).

    python benchmarks/extract.py [--sessions 3] [--minutes 0.5] [--layouts a b]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "video"
TURN_S = 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=0.5)
    parser.add_argument("--layouts", nargs="+", choices=("a", "b"), default=["a", "b"])
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    from composites import session_folder, side_by_side

    from listenerctl.data.dyads import DyadOptions
    from listenerctl.data.extract_inputs import extract_corpus
    from listenerctl.features.face import extract_face
    from listenerctl.features.tracking import track_people

    sources = (VIDEOS / "talking_face_8s.mp4", VIDEOS / "talking_face_b_8s.mp4")
    turns = int(round(args.minutes * 60 / TURN_S))
    session_minutes = args.sessions * turns * TURN_S / 60
    runs = []
    for layout in args.layouts:
        with tempfile.TemporaryDirectory() as work:
            work = Path(work)
            (work / "in").mkdir()
            for s in range(args.sessions):
                dialogue = [((k + s) % 2, TURN_S) for k in range(turns)]
                if layout == "a":
                    session_folder(sources, dialogue, work / "in" / f"session{s}")
                else:
                    side_by_side(sources, dialogue, work / "parts" / f"session{s}.mp4")
                    (work / "parts" / f"session{s}.mp4").rename(work / "in" / f"session{s}.mp4")
            videos = sorted((work / "in").rglob("*.mp4"))
            os.environ["LISTENERCTL_CACHE"] = str(work / "cache_extract")
            start = time.perf_counter()
            summary = extract_corpus([work / "in"], work / "corpus", DyadOptions(clip_frames=101),
                                     report=lambda line: None, shared=layout == "b")
            extract_s = time.perf_counter() - start
            track = extract_face if layout == "a" else track_people
            start = time.perf_counter()
            for video in videos:
                track(video, cache_dir=work / "cache_baseline")
            baseline_s = time.perf_counter() - start
        runs.append({
            "layout": layout, "videos": len(videos), "extract_s": round(extract_s, 1),
            "baseline_face_tracking_s": round(baseline_s, 1),
            "extract_session_minutes_per_wall_minute": round(session_minutes / (extract_s / 60), 2),
            "baseline_session_minutes_per_wall_minute": round(session_minutes / (baseline_s / 60), 2),
            "extract_vs_baseline_time": round(extract_s / baseline_s, 2),
            "dyad_minutes": {s: v["dyad_minutes"] for s, v in summary["splits"].items()},
        })
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "load_1min": os.getloadavg()[0], "python": platform.python_version()},
        "sessions": args.sessions, "session_minutes": round(session_minutes, 2), "runs": runs,
    }, indent=2))


if __name__ == "__main__":
    main()
