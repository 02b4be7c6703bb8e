"""The `generate` job: input recording → speaker features → K listener motions → files (DESIGN §2, §10).

Everything an item writes goes to a hidden working folder first and is renamed into place at the end,
so an interrupted or failed item leaves nothing under its final name.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from listenerctl import __version__
from listenerctl.atomic import partial_dir, remove_stale_partials, staged_dir
from listenerctl.conditioning import Conditioning, FaceFeatures
from listenerctl.errors import ListenerctlError
from listenerctl.hashing import file_sha256
from listenerctl.media import SAMPLE_RATE, MediaInfo, load_audio, probe
from listenerctl.models import DEFAULT_MODEL
from listenerctl.motion import Motion, num_frames

MOTION_FPS = 25.0
MIN_DURATION_S = 0.2
PAD_NOTE_S = 0.1  # streams whose lengths differ by more than this are padded and the padding reported
MANIFEST = "manifest.json"

Report = Callable[[str], None]


@dataclass
class GenerateOptions:
    """Options of one `generate` run (recorded verbatim in each manifest); `batch` gives every item the same."""

    samples: int = 10
    model: str = DEFAULT_MODEL["listener"]
    checkpoint: str | None = None
    seed: int = 0
    device: str = "cpu"
    render: str = "none"
    mesh_backend: str = "moderngl"
    size: int = 256
    portrait: str | None = None
    pirender_checkpoint: str | None = None  # PIRender generator .pth, needed by render "pirender"
    side_by_side: bool = False
    face: str = "auto"                 # whose face conditions: 'auto' (who talks), 'largest' or N (N-th from the left)
    face_at: str | None = None         # or the face nearest a pixel point "X,Y" of the input video
    cache_dir: str | None = None
    text_encoder: str | None = None   # local text encoder folder: condition on transcripts too
    transcript: str | None = None     # the input's transcript (default: a sidecar beside the input)


@dataclass
class Prepared:
    """Speaker conditioning of one input, with what the terminal and manifest should say about it."""

    info: MediaInfo
    cond: Conditioning
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    transcript: Path | None = None
    padding: dict[str, float] = field(default_factory=dict)
    people: dict | None = None  # for videos: who was seen, whom the face is of and why, who talks when


def prepare_conditioning(path: Path, face: str = "auto", cache_dir: str | None = None,
                         progress: Callable[[int, int], None] | None = None, text_encoder=None,
                         transcript: Path | None = None, face_at: str | None = None) -> Prepared:
    """Probe ``path`` and extract speaker audio and face features at 25 fps.

    Audio-only inputs condition on audio; videos without audio on the face; a video whose face is never
    found falls back to audio. In a video every person is tracked (`features.tracking.track_people`), who
    talks when is detected (`features.speakers`) and the speaker face is chosen: the one nearest the pixel
    point ``face_at`` ("X,Y") when given, else by ``face``: 'auto' (who talks most; in a dialogue the face
    follows whoever talks, `features.speaker_choice`), 'largest', or N (the N-th from the left).
    ``progress(frames_done, frames_total)`` follows face tracking.
    With a ``text_encoder`` (`features.text.TextEncoder`), the ``transcript`` (default: the sidecar
    transcript beside ``path``, if any) is embedded too. Raises `ListenerctlError` when nothing usable remains.
    """
    from listenerctl.features.audio import extract_audio

    info = probe(path)
    notes: list[str] = []
    timings: dict[str, float] = {}
    samples = None
    if info.has_audio:
        start = time.perf_counter()
        samples = load_audio(path)
        timings["decode_audio_s"] = time.perf_counter() - start
    audio_s = len(samples) / SAMPLE_RATE if samples is not None else 0.0
    video_s = info.video_duration if info.has_video else 0.0
    duration = max(audio_s, video_s)
    if duration < MIN_DURATION_S:
        raise ListenerctlError(f"{path.name} lasts {duration:.2f} s; at least {MIN_DURATION_S} s is needed.")
    frames = num_frames(duration, MOTION_FPS)
    padding = stream_padding(audio_s, video_s) if info.has_audio and info.has_video else {}
    for stream, seconds in padding.items():
        filler = "silence" if stream == "audio" else "its last frame"
        notes.append(f"the {stream} stream is {seconds:.2f} s shorter than the recording: padded with {filler}")

    audio = None
    if samples is not None:
        start = time.perf_counter()
        audio = extract_audio(samples, fps=MOTION_FPS, num_frames=frames)
        timings["audio_features_s"] = time.perf_counter() - start
        if not info.has_video:
            notes.append("audio-only input: conditioning on audio alone")
    else:
        notes.append("no audio track: conditioning on the speaker's face alone")
    speaker_face, people = None, None
    if info.has_video:
        speaker_face, people = _speaker_face(path, frames, audio, face, face_at, cache_dir, progress, notes, timings)
        if speaker_face is None and audio is None:
            raise ListenerctlError(f"{path.name} has no audio track and no face in any frame; "
                                   "there is nothing to condition on.")
    text = None
    if text_encoder is not None:
        from listenerctl.features.text import read_transcript, sidecar_transcript, text_features

        transcript = transcript or sidecar_transcript(path)
        if transcript is None:
            notes.append("no transcript beside the input: conditioning without text")
        else:
            start = time.perf_counter()
            units = read_transcript(transcript)
            text = text_features(units, text_encoder, MOTION_FPS, frames)
            timings["text_features_s"] = time.perf_counter() - start
            notes.append(f"transcript {transcript.name}: {len(units)} units, words in "
                         f"{100 * float(np.mean(text.unit >= 0)):.0f}% of frames")
    return Prepared(info, Conditioning(MOTION_FPS, frames, audio=audio, face=speaker_face, text=text),
                    notes, timings, transcript if text is not None else None, padding, people)


def _speaker_face(path: Path, frames: int, audio, face: str, face_at: str | None, cache_dir: str | None,
                  progress: Callable[[int, int], None] | None, notes: list[str],
                  timings: dict[str, float]) -> tuple[FaceFeatures | None, dict | None]:
    """Track every person in the video, find who talks when and pick the speaker face (`prepare_conditioning`'s
    ``face``/``face_at``); returns the face [T] and the manifest's "people" entry, (None, None) when no face is
    ever found. Appends the terminal notes and timings."""
    from listenerctl.features.people import parse_face, parse_point
    from listenerctl.features.speaker_choice import choose_speaker
    from listenerctl.features.speakers import detect_speakers
    from listenerctl.features.tracking import track_people

    point = None if face_at is None else parse_point(face_at)
    parse_face(face)
    start = time.perf_counter()
    tracked = track_people(path, fps=MOTION_FPS, num_frames=frames, cache_dir=cache_dir,
                           progress=None if progress is None else lambda done: progress(done, frames))
    timings["face_features_s"] = time.perf_counter() - start
    if len(tracked) == 0:
        notes.append("no face found in any frame: conditioning on audio alone")
        return None, None
    start = time.perf_counter()
    speakers = detect_speakers(tracked, audio)
    timings["speaker_detection_s"] = time.perf_counter() - start
    fixed = None if face == "auto" and point is None else tracked.choose(face, point)
    choice = choose_speaker(tracked, speakers, fixed)
    if len(tracked) > 1 or choice.follows:
        notes.append(choice.note)
    if choice.face.found_share < 1.0:
        notes.append(f"face lost in {100 * (1 - choice.face.found_share):.1f}% of frames: interpolated")
    return choice.face, choice.manifest(tracked)


def stream_padding(audio_s: float, video_s: float) -> dict[str, float]:
    """Seconds of padding the shorter of the audio and video streams gets so the output covers the whole
    recording: {"audio": s} or {"video": s}, empty when they differ by at most `PAD_NOTE_S`."""
    if abs(audio_s - video_s) <= PAD_NOTE_S:
        return {}
    return {"audio": round(video_s - audio_s, 3)} if audio_s < video_s else {"video": round(audio_s - video_s, 3)}


def load_listener(opts: GenerateOptions, device: str | None = None):
    """The listener generator ``opts`` names (its checkpoint, or the shipped one), on ``device`` (default:
    ``opts.device``)."""
    from listenerctl.models import load_generator

    return load_generator(opts.model, Path(opts.checkpoint) if opts.checkpoint else None, device or opts.device,
                          task="listener")


def check_options(opts: GenerateOptions, generator=None) -> None:
    """Stop before any work, in one sentence, on options no input can satisfy: a malformed ``face`` or
    ``face_at``, a renderer that cannot be set up (pirender without its checkpoint, a missing mesh backend),
    a transcript without a text encoder, or a text encoder ``generator`` cannot take (``generator``: the loaded
    listener; default: ``opts``'s loaded on the CPU, only when a text encoder is named)."""
    from listenerctl.features.people import parse_face, parse_point

    parse_face(opts.face)
    if opts.face_at is not None:
        parse_point(opts.face_at)
    pool = renderer_pool(opts)
    if pool is not None:
        pool.close()
    if opts.text_encoder or opts.transcript:
        if generator is None:  # a copy on the CPU only for the check (`batch`: its workers load their own)
            generator, opts = load_listener(opts, "cpu"), replace(opts, device="cpu")
        text_encoder_for(opts, generator)


def renderer_pool(opts: GenerateOptions):
    """The `renderers.select.RendererPool` of ``opts``'s render settings (a context manager), None for
    render "none"."""
    if opts.render == "none":
        return None
    from renderers.select import RendererPool

    return RendererPool(opts.render, opts.size, Path(opts.portrait) if opts.portrait else None,
                        Path(opts.pirender_checkpoint) if opts.pirender_checkpoint else None, opts.device,
                        opts.mesh_backend)


def text_encoder_for(opts: GenerateOptions, generator):
    """The text encoder ``opts`` names (loaded once per process) after checking ``generator`` takes its
    embeddings, or None; one sentence when a transcript is named without an encoder."""
    if opts.transcript and not opts.text_encoder:
        raise ListenerctlError("a transcript is embedded by a text encoder; name its local folder with "
                               "--text-encoder DIR.")
    if not opts.text_encoder:
        return None
    from listenerctl.features.text import load_text_encoder

    generator.check_text_dim()
    encoder = load_text_encoder(opts.text_encoder, opts.device)
    generator.check_text_dim(encoder.dim)
    return encoder


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"listenerctl": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "torch", "torchaudio", "mediapipe", "moderngl"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return out


def write_motion(path: Path, listener: Motion) -> None:
    """motion.npz: listener [K, T, 58], emotion [K, T, 25] (derived from it), fps, spec."""
    from listenerctl.emotion import emotion_from_arkit

    with open(path, "wb") as fh:
        np.savez_compressed(fh, listener=listener.data, emotion=emotion_from_arkit(listener.data).astype(np.float32),
                            fps=np.float32(listener.fps), spec=np.str_(listener.spec))


def read_motion(path: Path) -> Motion:
    """The listener motion saved by `write_motion`."""
    with np.load(path) as z:
        return Motion(z["listener"], str(z["spec"]), float(z["fps"]))


def is_complete(item_dir: Path) -> bool:
    """True when ``item_dir`` holds a manifest that says the item finished."""
    try:
        return bool(json.loads((item_dir / MANIFEST).read_text()).get("complete"))
    except (OSError, ValueError):
        return False


def render_item(folder: Path, path: Path, prepared: Prepared, listener: Motion, opts: GenerateOptions,
                renderers, report: Report, progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Write the item's videos (DESIGN §10) into ``folder``; returns their file names."""
    from renderers.compose import speaker_tiles, write_item_videos

    renderer, note = renderers.for_input(path, prepared.info.has_video, prepared.cond)
    if note:
        prepared.notes.append(note)
    try:
        return write_item_videos(
            folder, listener, renderer, speaker_tiles(path, prepared.cond, prepared.info.has_video, opts.size),
            audio_source=path if prepared.info.has_audio else None, side_by_side=opts.side_by_side,
            progress=None if progress is None else lambda done: progress(done, listener.num_frames))
    finally:
        renderers.release(renderer)


def rerender_item(motion_path: Path, out_dir: Path, renderers, size: int = 256, side_by_side: bool = False) -> list[str]:
    """Render a saved motion.npz again (another renderer or size) into ``out_dir``; returns the file names.

    The speaker tile and audio come from the original input named in the manifest beside the motion
    when it still exists, else the loudness envelope in speaker.npz.
    """
    import os

    from renderers.compose import speaker_tiles, waveform_tiles, write_item_videos

    if not motion_path.is_file():
        raise ListenerctlError(f"motion file not found: {motion_path}")
    listener = read_motion(motion_path)
    manifest_path, speaker_path = motion_path.with_name(MANIFEST), motion_path.with_name("speaker.npz")
    source = Path(json.loads(manifest_path.read_text())["input"]["path"]) if manifest_path.is_file() else None
    cond = Conditioning.load_npz(speaker_path) if speaker_path.is_file() else None
    info = probe(source) if source is not None and source.is_file() else None
    if cond is None:
        raise ListenerctlError(f"{speaker_path} is missing; it holds the speaker features rendering needs.")
    renderer, _ = renderers.for_input(source, info is not None and info.has_video, cond)
    if info is not None:
        tiles = speaker_tiles(source, cond, info.has_video, size)
    elif cond.audio is not None:
        tiles = waveform_tiles(cond.audio.energy, cond.fps, size)
    else:
        tiles = (np.zeros((size, size, 3), np.uint8) for _ in range(listener.num_frames))
    work = partial_dir(out_dir / ".render")
    try:
        names = write_item_videos(work, listener, renderer, tiles,
                                  audio_source=source if info is not None and info.has_audio else None,
                                  side_by_side=side_by_side)
        out_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            os.replace(work / name, out_dir / name)
    finally:
        renderers.release(renderer)
        shutil.rmtree(work, ignore_errors=True)
    return names


def generate_item(path: Path, out_root: Path, opts: GenerateOptions, generator, report: Report,
                  renderers=None, progress: Callable[[str, int, int], None] | None = None,
                  output_name: str | None = None) -> Path:
    """Run one input end to end and publish ``out_root/<output_name or stem>``; returns that folder.

    ``renderers`` (a `renderers.select.RendererPool`) is needed unless ``opts.render`` is 'none';
    ``progress(stage, done, total)`` follows face extraction and rendering. Working folders of this output
    left by an interrupted earlier run are removed once this one is published.
    """
    started, started_wall = time.perf_counter(), time.time()
    prepared = prepare_item(path, opts, generator, report, progress)
    start = time.perf_counter()
    listener = generator.generate(prepared.cond, opts.samples, opts.seed)
    prepared.timings["generate_s"] = time.perf_counter() - start
    return publish_item(path, out_root, opts, generator, prepared, listener, report, renderers, progress,
                        output_name, started, started_wall)


def prepare_item(path: Path, opts: GenerateOptions, generator, report: Report,
                 progress: Callable[[str, int, int], None] | None = None) -> Prepared:
    """`generate_item`'s first stage: the speaker conditioning of ``path`` (its notes reported)."""
    prepared = prepare_conditioning(path, opts.face, opts.cache_dir,
                                    None if progress is None else lambda d, t: progress("face", d, t),
                                    text_encoder_for(opts, generator),
                                    Path(opts.transcript) if opts.transcript else None, opts.face_at)
    for note in prepared.notes:
        report(f"{path.name}: {note}")
    return prepared


def publish_item(path: Path, out_root: Path, opts: GenerateOptions, generator, prepared: Prepared, listener: Motion,
                 report: Report, renderers=None, progress: Callable[[str, int, int], None] | None = None,
                 output_name: str | None = None, started: float | None = None,
                 started_wall: float | None = None) -> Path:
    """`generate_item`'s last stage: render ``listener`` (generated from ``prepared``) and publish the item
    folder with its manifest; ``started``/``started_wall`` (perf_counter and wall clock) time the whole item."""
    started = time.perf_counter() if started is None else started
    started_wall = time.time() if started_wall is None else started_wall
    final = out_root / (output_name or path.stem)
    with staged_dir(final) as work:
        prepared.cond.save_npz(work / "speaker.npz")
        write_motion(work / "motion.npz", listener)
        if opts.render != "none":
            start = time.perf_counter()
            render_item(work, path, prepared, listener, opts, renderers, report,
                        None if progress is None else lambda d, t: progress("render", d, t))
            prepared.timings["render_s"] = time.perf_counter() - start
        prepared.timings["total_s"] = time.perf_counter() - started
        manifest = {
            "complete": True,
            "input": {"path": str(path), "sha256": file_sha256(path), "duration_s": prepared.info.duration,
                      "has_audio": prepared.info.has_audio, "has_video": prepared.info.has_video,
                      "transcript": None if prepared.transcript is None else str(prepared.transcript)},
            "conditioning": prepared.cond.modalities,
            "face_found_share": None if prepared.cond.face is None else prepared.cond.face.found_share,
            "padded_s": prepared.padding,
            "people": prepared.people,
            "notes": prepared.notes,
            "model": {"name": generator.name, **generator.describe()},
            "seed": opts.seed,
            "options": asdict(opts),
            "motion": {"spec": listener.spec, "fps": listener.fps, "samples": listener.num_samples,
                       "frames": listener.num_frames},
            "outputs": sorted(p.name for p in work.iterdir()) + [MANIFEST],
            "timings": prepared.timings,
            "versions": _versions(),
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2))
    removed = remove_stale_partials(final, started_wall)
    if removed:
        report(f"{path.name}: removed {removed} unfinished folder(s) left by an interrupted run")
    return final


def check_inputs(inputs: list[Path]) -> None:
    """Fail before any work when an input is missing or two inputs would write the same folder."""
    stems: dict[str, Path] = {}
    for path in inputs:
        if not path.exists():
            raise ListenerctlError(f"input file not found: {path}")
        if path.stem in stems:
            raise ListenerctlError(f"{stems[path.stem]} and {path} would both write to '{path.stem}/'; "
                                   "rename one or run them separately.")
        stems[path.stem] = path
