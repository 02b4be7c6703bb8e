"""Probe, decode and encode media with ffmpeg (always argument lists, never a shell).

Audio comes out as 16 kHz mono float32; video frames stream as RGB uint8 [H, W, 3] at a fixed
frame rate (25 fps by default) whatever the source rate, variable frame rate included.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import ffmpeg
import numpy as np

from listenerctl.atomic import atomic_file
from listenerctl.errors import ListenerctlError

SAMPLE_RATE = 16_000   # Hz: every waveform is decoded to 16 kHz mono
MAX_DURATION_S = 6 * 3600.0  # longer inputs are refused as absurd rather than ground through


def _ffmpeg_binary(name: str = "ffmpeg") -> str:
    path = shutil.which(name)
    if path is None:
        raise ListenerctlError(f"{name} was not found on PATH; install it (Debian/Ubuntu: apt-get install ffmpeg).")
    return path


@dataclass(frozen=True)
class MediaInfo:
    """What ffprobe says about a file. ``duration`` in seconds; ``fps`` is the average video rate."""

    path: Path
    duration: float
    has_video: bool
    has_audio: bool
    width: int = 0
    height: int = 0
    fps: float = 0.0
    video_frames: int = 0
    audio_rate: int = 0
    audio_channels: int = 0
    variable_frame_rate: bool = False
    video_duration: float = 0.0  # seconds of the video stream alone (0 without one)


def _rate(text: str | None) -> float:
    if not text or text in ("0/0", "N/A"):
        return 0.0
    num, _, den = text.partition("/")
    return float(num) / float(den or 1) if float(den or 1) else 0.0


def _clock(text: str | None) -> float:
    """Seconds of a "HH:MM:SS.fraction" duration tag (Matroska), 0 when absent or unreadable."""
    try:
        hours, minutes, seconds = (text or "").split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return 0.0


def _stream_duration(stream: dict, fps: float) -> float:
    """Seconds of one ffprobe stream: its duration, its DURATION tag, or its frame count at ``fps``; 0 if none."""
    for value in (stream.get("duration"), _clock(stream.get("tags", {}).get("DURATION"))):
        try:
            if float(value or 0.0) > 0:
                return float(value)
        except ValueError:
            continue
    frames = int(stream.get("nb_frames") or 0)
    return frames / fps if frames and fps else 0.0


def _is_still_image(info: dict, video: dict, fps: float) -> bool:
    """An image file (png, jpg, …) or a video stream holding one frame."""
    container = info.get("format", {}).get("format_name", "")
    image_format = container == "image2" or container.endswith("_pipe")  # png_pipe, jpeg_pipe, webp_pipe, …
    one_frame = int(video.get("nb_frames") or 0) == 1
    return image_format or one_frame or 0 < _stream_duration(video, fps) * (fps or 25.0) <= 1.5


def probe(path: str | Path) -> MediaInfo:
    """Probe ``path``; raise `ListenerctlError` with one sentence when it is missing or not media, or a still
    image without sound."""
    path = Path(path)
    if not path.exists():
        raise ListenerctlError(f"input file not found: {path}")
    if not path.is_file():
        raise ListenerctlError(f"input is not a file: {path}")
    if path.stat().st_size == 0:
        raise ListenerctlError(f"input file is empty (0 bytes): {path}")
    try:
        info = ffmpeg.probe(str(path), cmd=_ffmpeg_binary("ffprobe"))
    except ffmpeg.Error as exc:
        detail = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        reason = detail[-1] if detail else "ffprobe failed"
        raise ListenerctlError(f"cannot read {path.name} as audio or video ({reason}).") from None
    except PermissionError:
        raise ListenerctlError(f"input file is not readable (permission denied): {path}") from None
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"
                  and not s.get("disposition", {}).get("attached_pic")), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None and audio is None:
        raise ListenerctlError(f"{path.name} holds no audio or video stream.")
    avg, nominal = (_rate(video.get("avg_frame_rate")), _rate(video.get("r_frame_rate"))) if video else (0.0, 0.0)
    if video is not None and audio is None and _is_still_image(info, video, avg or nominal):
        raise ListenerctlError(f"{path.name} is a still image (one frame); give a recording of someone talking "
                               "(a video with sound, or an audio file).")
    duration = float(info.get("format", {}).get("duration") or 0.0)
    if duration <= 0:
        duration = max(float(s.get("duration") or 0.0) for s in (video, audio) if s is not None)
    if duration <= 0:
        raise ListenerctlError(f"{path.name} has zero length.")
    if duration > MAX_DURATION_S:
        raise ListenerctlError(f"{path.name} lasts {duration / 3600:.1f} h; inputs longer than "
                               f"{MAX_DURATION_S / 3600:.0f} h are refused, split it first.")
    kw: dict = {}
    if video is not None:
        kw.update(width=int(video.get("width", 0)), height=int(video.get("height", 0)),
                  fps=avg or nominal, video_frames=int(video.get("nb_frames") or 0),
                  video_duration=_stream_duration(video, avg or nominal) or duration,
                  variable_frame_rate=bool(avg and nominal and abs(avg - nominal) > 0.01 * nominal))
    if audio is not None:
        kw.update(audio_rate=int(audio.get("sample_rate") or 0), audio_channels=int(audio.get("channels") or 0))
    return MediaInfo(path, duration, video is not None, audio is not None, **kw)


def _run(args: list[str], what: str, path: Path) -> bytes:
    proc = subprocess.run(args, capture_output=True)
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        raise ListenerctlError(f"ffmpeg could not {what} {path.name} ({lines[-1] if lines else 'no message'}).")
    return proc.stdout


def load_audio(path: str | Path, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode the first audio stream to mono float32 samples in [-1, 1] at ``rate`` Hz: [N]."""
    path = Path(path)
    args = [_ffmpeg_binary(), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0",
            "-ac", "1", "-ar", str(rate), "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1"]
    samples = np.frombuffer(_run(args, "decode the audio of", path), dtype=np.float32)
    if samples.size == 0:
        raise ListenerctlError(f"the audio track of {path.name} is empty.")
    return np.nan_to_num(samples.copy(), nan=0.0, posinf=0.0, neginf=0.0)


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """16-bit PCM mono WAV of float ``samples`` [N] in [-1, 1] at ``rate`` Hz, written atomically."""
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with atomic_file(path) as fh, wave.open(fh, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())


def iter_video_frames(path: str | Path, fps: float = 25.0, size: tuple[int, int] | None = None,
                      num_frames: int | None = None, letterbox: bool = False) -> Iterator[np.ndarray]:
    """Stream RGB uint8 frames [H, W, 3] resampled to a constant ``fps`` (frames dropped/duplicated by
    timestamp, so variable-frame-rate sources come out evenly spaced). ``size`` = (width, height)
    rescales (``letterbox`` keeps the aspect ratio and pads with black); ``num_frames`` pads with the
    last frame or stops early so exactly that many come out. Only one frame is held in memory at a time.
    """
    path = Path(path)
    info = probe(path)
    if not info.has_video:
        raise ListenerctlError(f"{path.name} has no video stream.")
    width, height = size or (info.width, info.height)
    vf = f"fps={fps}"
    if size:
        vf += f",scale={width}:{height}" + (":force_original_aspect_ratio=decrease,"
                                            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2" if letterbox else "")
    args = [_ffmpeg_binary(), "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0",
            "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    frame_bytes = width * height * 3
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    count, last = 0, None
    try:
        while num_frames is None or count < num_frames:
            buf = proc.stdout.read(frame_bytes)
            if len(buf) < frame_bytes:
                break
            last = np.frombuffer(buf, np.uint8).reshape(height, width, 3)
            count += 1
            yield last
    finally:
        proc.stdout.close()
        proc.kill() if proc.poll() is None else None
        stderr = proc.stderr.read().decode(errors="replace").strip()
        proc.stderr.close()
        proc.wait()
    if last is None:
        raise ListenerctlError(f"no video frame could be decoded from {path.name}"
                               + (f" ({stderr.splitlines()[-1]})." if stderr else "."))
    while num_frames is not None and count < num_frames:
        count += 1
        yield last


class VideoWriter:
    """Pipe RGB uint8 frames [H, W, 3] into an H.264 (yuv420p) MP4 at ``fps``. With ``audio``, the first
    audio track of that file is muxed as AAC, padded with silence or cut to ``num_frames / fps`` seconds so
    audio and video end together. Use as a context manager; frames stream, nothing accumulates in memory.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float = 25.0,
                 audio: str | Path | None = None, num_frames: int | None = None, crf: int = 20,
                 preset: str = "veryfast"):
        self.path = Path(path)
        self.frame_shape = (height, width, 3)
        args = [_ffmpeg_binary(), "-nostdin", "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
                "-s", f"{width}x{height}", "-r", str(fps), "-i", "pipe:0"]
        if audio is not None:
            if num_frames is None:
                raise ValueError("muxing audio needs num_frames, the video's length")
            args += ["-i", str(audio), "-map", "0:v:0", "-map", "1:a:0", "-af", "apad", "-c:a", "aac",
                     "-b:a", "128k", "-ar", "48000", "-t", f"{num_frames / fps:.6f}"]
        args += ["-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
                 "-movflags", "+faststart", "-f", "mp4", str(self.path)]
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        self.frames_written = 0

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != self.frame_shape or frame.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 {self.frame_shape}, got {frame.dtype} {frame.shape}")
        self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        self.frames_written += 1

    def close(self) -> None:
        self._proc.stdin.close()
        stderr = self._proc.stderr.read().decode(errors="replace").strip()
        self._proc.stderr.close()
        if self._proc.wait() != 0:
            raise ListenerctlError(f"ffmpeg failed to encode {self.path.name}: {stderr.splitlines()[-1] if stderr else ''}")

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._proc.kill()
            self._proc.wait()


def probe_streams(path: str | Path) -> dict:
    """Raw ffprobe JSON (streams with frame counts) for checking outputs in tests and `doctor`."""
    args = [_ffmpeg_binary("ffprobe"), "-v", "error", "-count_frames", "-show_streams", "-show_format",
            "-of", "json", str(path)]
    return json.loads(_run(args, "probe", Path(path)))
