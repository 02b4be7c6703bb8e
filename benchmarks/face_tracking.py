"""Benchmark face tracking: seconds of processing per minute of input, and peak memory against length.

Prints JSON. In one run, each measured in a fresh child process with an empty cache, as wall seconds and as
CPU seconds of that process (MediaPipe's threads included, ffmpeg's decoding not), per input minute:

- ``one_face_extract_face``: today's single-face path (`extract_face`) on the shared 512 × 512 talking face,
  the baseline, and ``one_face_track_people``: `track_people` on the same clip;
- ``two_person_1080p_track_people``: `track_people` on a 1080p split screen of the two shared talking faces,
  each face about a fifth of the frame's height, and how much of each face the single-face path finds there
  (``extract_face_found_share``, face index 0 and 1);
- ``peak_memory``: the child's peak resident memory (MiB) for `track_people` on that composite at two lengths,
  to show it is flat in recording length;
- ``speaker_detection_s_per_input_min`` (and its CPU figure): `detect_speakers` on the composite's tracked
  people and its audio features, on top of tracking (the tracking figures exclude it; the audio features,
  which `generate` computes anyway, are not counted).

    python benchmarks/face_tracking.py [--seconds 16] [--long-seconds 48]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "video"
FACE_A, FACE_B = VIDEOS / "talking_face_8s.mp4", VIDEOS / "talking_face_b_8s.mp4"
PANEL = 320  # px: the clips' faces are ~0.65 of their height, so ~0.19 of 1080


def loop_clip(seconds: float, folder: Path) -> Path:
    """The shared talking face looped to ``seconds``."""
    out = folder / f"one_{int(seconds)}s.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(FACE_A),
                    "-t", str(seconds), "-an", "-c:v", "libx264", "-preset", "veryfast", str(out)], check=True)
    return out


def split_screen(seconds: float, folder: Path) -> Path:
    """A 1920 × 1080 split screen of the two talking faces, looped to ``seconds``, with the left one's audio."""
    out = folder / f"split_{int(seconds)}s.mp4"
    graph = (f"color=c=gray:s=1920x1080:r=25:d={seconds}[bg];[0:v]scale={PANEL}:{PANEL}[a];"
             f"[1:v]scale={PANEL}:{PANEL}[b];[bg][a]overlay=400:380:shortest=1[x];[x][b]overlay=1200:380:shortest=1[v]")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(FACE_A),
                    "-stream_loop", "-1", "-i", str(FACE_B), "-filter_complex", graph, "-map", "[v]", "-map", "0:a",
                    "-t", str(seconds), "-c:a", "aac",
                    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(out)], check=True)
    return out


def _child(job: Callable[[], dict], queue) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    result = job()
    result.update(wall_s=time.perf_counter() - wall, cpu_s=time.process_time() - cpu,
                  peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    queue.put(result)


def in_child(job: Callable[[], dict]) -> dict:
    """Run ``job`` in a fresh process; its result plus wall and CPU seconds and peak resident memory."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(job, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def _rates(result: dict, seconds: float) -> dict:
    """Add seconds per input minute and the real-time multiple (input length / wall time)."""
    return {**{k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()},
            "input_s": seconds, "s_per_input_min": round(result["wall_s"] * 60 / seconds, 2),
            "cpu_s_per_input_min": round(result["cpu_s"] * 60 / seconds, 2),
            "realtime_x": round(seconds / result["wall_s"], 3)}


class ExtractFace:
    """Job: `extract_face` of a video with an empty cache (``face_index`` as given)."""

    def __init__(self, video: Path, face_index: int | None = None):
        self.video, self.face_index = video, face_index

    def __call__(self) -> dict:
        from listenerctl.errors import NoFaceError
        from listenerctl.features.face import extract_face

        with tempfile.TemporaryDirectory() as cache:
            try:
                found = extract_face(self.video, face_index=self.face_index, cache_dir=cache).found_share
            except NoFaceError:
                found = 0.0
        return {"found_share": round(float(found), 3)}


class TrackPeople:
    """Job: `track_people` of a video with an empty cache, then, with ``speakers``, `detect_speakers` on its
    audio (timed apart)."""

    def __init__(self, video: Path, speakers: bool = False):
        self.video, self.speakers = video, speakers

    def __call__(self) -> dict:
        from listenerctl.features.audio import extract_audio
        from listenerctl.features.speakers import detect_speakers
        from listenerctl.features.tracking import track_people
        from listenerctl.media import load_audio

        with tempfile.TemporaryDirectory() as cache:
            people = track_people(self.video, cache_dir=cache)
        result = {"people": len(people), "found_share": [round(float(f), 3) for f in people.found.mean(axis=1)]}
        if self.speakers:
            wall, cpu = time.perf_counter(), time.process_time()
            audio = extract_audio(load_audio(self.video), fps=people.fps, num_frames=people.num_frames)
            audio_wall, audio_cpu = time.perf_counter(), time.process_time()
            detect_speakers(people, audio)
            result.update(speaker_detection_s=time.perf_counter() - audio_wall,
                          speaker_detection_cpu_s=time.process_time() - audio_cpu,
                          after_tracking_s=time.perf_counter() - wall, after_tracking_cpu_s=time.process_time() - cpu)
        return result


def run(seconds: float = 16.0, long_seconds: float = 48.0) -> dict:
    """All figures (module docstring) for inputs of ``seconds``, memory also at ``long_seconds``."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        one, split = loop_clip(seconds, folder), split_screen(seconds, folder)
        long_split = split_screen(long_seconds, folder)
        baseline = _rates(in_child(ExtractFace(one)), seconds)
        one_tracked = _rates(in_child(TrackPeople(one)), seconds)
        measured = in_child(TrackPeople(split, speakers=True))
        measured["wall_s"] -= measured.pop("after_tracking_s")  # the tracking figures count tracking alone
        measured["cpu_s"] -= measured.pop("after_tracking_cpu_s")
        measured["speaker_detection_s_per_input_min"] = round(measured.pop("speaker_detection_s") * 60 / seconds, 2)
        measured["speaker_detection_cpu_s_per_input_min"] = round(
            measured.pop("speaker_detection_cpu_s") * 60 / seconds, 2)
        tracked = _rates(measured, seconds)
        tracked["extract_face_found_share"] = [in_child(ExtractFace(split, index))["found_share"] for index in (0, 1)]
        long_run = in_child(TrackPeople(long_split))
    return {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "one_face_extract_face": baseline,
        "one_face_track_people": one_tracked,
        "two_person_1080p_track_people": tracked,
        "cost_vs_baseline": round(tracked["s_per_input_min"] / baseline["s_per_input_min"], 2),
        "peak_memory": {"track_people_short": {"input_s": seconds, "peak_rss_mib": round(tracked["peak_rss_mib"])},
                        "track_people_long": {"input_s": long_seconds, "peak_rss_mib": round(long_run["peak_rss_mib"]),
                                              "people": long_run["people"]}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=16.0)
    parser.add_argument("--long-seconds", type=float, default=48.0)
    args = parser.parse_args()
    print(json.dumps(run(args.seconds, args.long_seconds), indent=2))


if __name__ == "__main__":
    main()
