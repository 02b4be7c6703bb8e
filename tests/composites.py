"""Two-person recordings with known turns, built with ffmpeg from the two real talking faces in
../shared/data/video/ (each 8 s with its own audio), for `data extract` tests and benchmarks/extract.py.

A session is a list of turns (who talks, seconds). Layout (a) gives each person a video of their own:
while they talk, a stretch of their clip with its audio; while the other talks, another stretch of their
clip with the audio muted (a staged listener: the face still moves its mouth; their own track is silent).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

CLIP_S = 8.0                    # length of each source clip
SIZE = 256                      # output frames are SIZE x SIZE


def _segments(turns: list[tuple[int, float]], person: int, offset: float) -> list[tuple[float, float, bool]]:
    """(source start, seconds, audible) of each turn for ``person``, walking through their 8 s clip from
    ``offset`` seconds in (1.3 s further each turn, back to the start where a turn would not fit)."""
    segments, cursor = [], offset
    for talker, seconds in turns:
        if cursor + seconds > CLIP_S:
            cursor = 0.0
        segments.append((cursor, seconds, talker == person))
        cursor += 1.3
    return segments


def person_video(source: Path, turns: list[tuple[int, float]], person: int, out: Path, offset: float = 0.0,
                 still: bool = False) -> Path:
    """Write ``out``: ``person``'s own video of the session ``turns`` (their audio only while they talk); with
    ``still`` they hold one frame while the other talks (a listener who keeps still) instead of moving."""
    parts, labels = [], []
    for k, (start, seconds, audible) in enumerate(_segments(turns, person, offset)):
        held = "" if audible or not still else f",trim=end_frame=1,tpad=stop_mode=clone:stop_duration={seconds}"
        parts.append(f"[0:v]trim=start={start}:duration={seconds},setpts=PTS-STARTPTS,scale={SIZE}:{SIZE},fps=25"
                     f"{held},trim=duration={seconds}[v{k}]")
        parts.append(f"[0:a]atrim=start={start}:duration={seconds},asetpts=PTS-STARTPTS,"
                     f"volume={1 if audible else 0}[a{k}]")
        labels.append(f"[v{k}][a{k}]")
    graph = ";".join(parts) + ";" + "".join(labels) + f"concat=n={len(labels)}:v=1:a=1[v][a]"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(source), "-filter_complex", graph,
                    "-map", "[v]", "-map", "[a]", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                    "-c:a", "aac", "-ar", "16000", str(out)], check=True)
    return out


def session_folder(sources: tuple[Path, Path], turns: list[tuple[int, float]], folder: Path,
                   offset: float = 0.0, still: bool = False) -> Path:
    """Layout (a): ``folder`` with person_a.mp4 and person_b.mp4 of the session ``turns``, their stretches
    taken from ``offset`` seconds into each clip on (listeners keep still with ``still``)."""
    folder.mkdir(parents=True, exist_ok=True)
    for person, (name, source) in enumerate(zip(("person_a", "person_b"), sources)):
        person_video(source, turns, person, folder / f"{name}.mp4", offset, still)
    return folder


def side_by_side(sources: tuple[Path, Path], turns: list[tuple[int, float]], out: Path) -> Path:
    """Layout (b): one video ``out`` with both people side by side and one mixed audio track; the listener
    keeps still (a talking face with its sound muted would look like a second talker to A/V synchrony)."""
    folder = session_folder(sources, turns, out.with_suffix(".parts"), still=True)
    graph = "[0:v][1:v]hstack=inputs=2[v];[0:a][1:a]amix=inputs=2:normalize=0[a]"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(folder / "person_a.mp4"),
                    "-i", str(folder / "person_b.mp4"), "-filter_complex", graph, "-map", "[v]", "-map", "[a]",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", "16000",
                    str(out)], check=True)
    return out
