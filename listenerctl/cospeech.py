"""The cospeech `generate` job: a speech recording → K samples of speaker expression and gestures → files.

Per input, ``OUT/<stem>/`` receives (written in a hidden working folder, renamed into place at the end):

    motion.npz               expression [K, T, 51] beatface51, gesture [K, T, 141] beat141, fps 15, specs
    sample_XX.bvh            the gesture over the checkpoint's BEAT skeleton (Blender-importable), 15 fps
    sample_XX_face.json      the expression as BEAT face JSON, 15 fps
    sample_XX_livelink.csv   the expression as a Live Link Face CSV, 15 fps
    sample_XX.mp4            capsule skeleton with the face rig on its head, 25 fps, the input's audio muxed
    manifest.json            model, checkpoint sha256, seed, options, notes, timings, versions
"""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from listenerctl.atomic import staged_dir
from listenerctl.errors import ListenerctlError
from listenerctl.media import SAMPLE_RATE, VideoWriter, load_audio, probe
from listenerctl.models import DEFAULT_MODEL
from listenerctl.motion import Motion

VIDEO_FPS = 25.0
MIN_DURATION_S = 0.2
SILENCE_DBFS = -60.0  # an input whose RMS level stays below this is reported as silent
MANIFEST = "manifest.json"


@dataclass
class CoSpeechOptions:
    """Options of one cospeech run (recorded verbatim in the manifest).

    ``model``: a registered co-speech generator; ``styles``: style ids or names cycled over the K samples
    (None: the 'any' style); ``steps`` DDIM steps and ``overlap`` FOPPAS frames (None: the checkpoint's);
    ``render``: "skeleton", "smplx" (needs ``smplx_folder``) or "none"; ``size``: video side in pixels;
    ``audio_encoder``: where the checkpoint's HuBERT/wav2vec2 weights are ("hubert:/folder"; None: the folder
    named in its card).
    """

    samples: int = 10
    seed: int = 0
    model: str = DEFAULT_MODEL["cospeech"]
    checkpoint: str | None = None
    device: str = "cpu"
    styles: list[int | str] | None = None
    steps: int | None = None
    overlap: int | None = None
    render: str = "skeleton"
    size: int = 384
    smplx_folder: str | None = None
    audio_encoder: str | None = None


def _load_speech(path: Path, notes: list[str]) -> np.ndarray:
    """16 kHz mono samples of ``path``, or one sentence saying why there are none worth using."""
    if not path.is_file():
        raise ListenerctlError(f"input file not found: {path}")
    info = probe(path)
    if not info.has_audio:
        raise ListenerctlError(f"{path.name} has no audio track; co-speech motion is generated from speech.")
    samples = load_audio(path)
    duration = len(samples) / SAMPLE_RATE
    if duration < MIN_DURATION_S:
        raise ListenerctlError(f"{path.name} lasts {duration:.2f} s; at least {MIN_DURATION_S} s of audio is needed.")
    level = 20 * np.log10(max(float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))), 1e-10))
    if level < SILENCE_DBFS:
        notes.append(f"the audio is silent ({level:.0f} dBFS): expect little motion")
    return samples


def load_cospeech(opts: CoSpeechOptions):
    """The co-speech generator ``opts`` names (its checkpoint, or the shipped one) on ``opts.device``."""
    from listenerctl.models import load_generator

    return load_generator(opts.model, Path(opts.checkpoint) if opts.checkpoint else None, opts.device,
                          task="cospeech")


def generate_cospeech(audio_path: str | Path, out_dir: str | Path, samples: int = 10, seed: int = 0,
                      options: CoSpeechOptions | None = None, generator=None,
                      report: Callable[[str], None] = lambda _: None) -> Path:
    """Run the cospeech job on ``audio_path`` (any audio or video file with speech) and publish
    ``out_dir/<stem>/``; returns that folder. ``samples``/``seed`` override ``options``; ``generator`` is
    a loaded `DiffSheg` (default: `load_cospeech` of the options)."""
    from listenerctl.data.beat import skeleton_from_card
    from listenerctl.pipeline import _versions, file_sha256

    opts = CoSpeechOptions(**{**asdict(options or CoSpeechOptions()), "samples": samples, "seed": seed})
    if opts.render not in ("skeleton", "smplx", "none"):
        raise ListenerctlError(f"unknown cospeech renderer {opts.render!r}; use skeleton, smplx or none.")
    if opts.render == "smplx" and not opts.smplx_folder:
        raise ListenerctlError("rendering SMPL-X bodies needs the folder holding the SMPL-X model files.")
    if opts.render == "smplx":
        from renderers.skeleton import require_smplx

        require_smplx(opts.smplx_folder)
    audio_path = Path(audio_path)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    notes: list[str] = []
    speech = _load_speech(audio_path, notes)
    if generator is None:
        generator = load_cospeech(opts)
    if opts.audio_encoder:
        generator.use_audio_encoder(opts.audio_encoder)
    skeleton = skeleton_from_card(generator.card)
    start = time.perf_counter()
    features = generator.audio_features(speech)
    timings["audio_features_s"] = time.perf_counter() - start
    if len(features) < generator.config.window:
        notes.append(f"shorter than one {generator.config.window / generator.fps:.1f} s window: generated as one "
                     f"window of {len(features)} frames")
    start = time.perf_counter()
    motion = generator.sample(features, opts.samples, opts.seed, opts.styles, opts.steps, opts.overlap)
    timings["generate_s"] = time.perf_counter() - start
    for note in notes:
        report(f"{audio_path.name}: {note}")

    final = Path(out_dir) / audio_path.stem
    with staged_dir(final) as work:
        start = time.perf_counter()
        write_motion_files(work, motion.expression, motion.gesture, skeleton)
        timings["motion_files_s"] = time.perf_counter() - start
        if opts.render != "none":
            start = time.perf_counter()
            write_videos(work, motion.expression, motion.gesture, skeleton, audio_path, opts)
            timings["render_s"] = time.perf_counter() - start
        timings["total_s"] = time.perf_counter() - started
        manifest = {
            "complete": True, "task": "cospeech",
            "input": {"path": str(audio_path), "sha256": file_sha256(audio_path),
                      "duration_s": len(speech) / SAMPLE_RATE},
            "notes": notes,
            "model": {"name": generator.name, **generator.describe()},
            "seed": opts.seed, "options": asdict(opts),
            "motion": {"styles": [generator.styles[i] for i in generator.style_ids(opts.styles, opts.samples)],
                       "expression_spec": motion.expression.spec, "gesture_spec": motion.gesture.spec,
                       "fps": motion.gesture.fps, "samples": motion.gesture.num_samples,
                       "frames": motion.gesture.num_frames, "video_fps": VIDEO_FPS},
            "outputs": sorted(p.name for p in work.iterdir()) + [MANIFEST],
            "timings": timings, "versions": _versions(),
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return final


def write_motion_files(folder: Path, expression: Motion, gesture: Motion, skeleton) -> None:
    """motion.npz plus, per sample, BVH, BEAT face JSON and Live Link Face CSV into ``folder``."""
    from listenerctl.data.beat import write_beat_bvh, write_beat_face_json, write_live_link_csv

    with open(folder / "motion.npz", "wb") as fh:
        np.savez_compressed(fh, expression=expression.data, gesture=gesture.data, fps=np.float32(gesture.fps),
                            expression_spec=np.str_(expression.spec), gesture_spec=np.str_(gesture.spec))
    for k in range(gesture.num_samples):
        write_beat_bvh(folder / f"sample_{k:02d}.bvh", gesture, skeleton, sample=k)
        write_beat_face_json(folder / f"sample_{k:02d}_face.json", expression, sample=k)
        write_live_link_csv(folder / f"sample_{k:02d}_livelink.csv", expression, sample=k)


def read_cospeech_motion(path: Path) -> tuple[Motion, Motion]:
    """(expression, gesture) saved in a cospeech motion.npz."""
    with np.load(path) as z:
        fps = float(z["fps"])
        return Motion(z["expression"], str(z["expression_spec"]), fps), Motion(z["gesture"], str(z["gesture_spec"]), fps)


def write_videos(folder: Path, expression: Motion, gesture: Motion, skeleton, audio_path: Path,
                 opts: CoSpeechOptions) -> None:
    """sample_XX.mp4 per sample at 25 fps (motion resampled from 15 fps), the input's audio muxed."""
    if opts.render == "smplx":
        from renderers.skeleton import SmplxRenderer

        renderer = SmplxRenderer(Path(opts.smplx_folder), size=opts.size, device=opts.device)
    else:
        from renderers.skeleton import SkeletonRenderer

        renderer = SkeletonRenderer(skeleton, size=opts.size)
    face, body = expression.resampled(VIDEO_FPS).data, gesture.resampled(VIDEO_FPS).data
    k, frames = body.shape[:2]
    with ExitStack() as stack:
        stack.callback(renderer.release)
        writers = [stack.enter_context(VideoWriter(folder / f"sample_{i:02d}.mp4", opts.size, opts.size, VIDEO_FPS,
                                                   audio_path, frames)) for i in range(k)]
        for t in range(frames):
            for writer, image in zip(writers, renderer.render_batch(body[:, t], face[:, t])):
                writer.write(image)
