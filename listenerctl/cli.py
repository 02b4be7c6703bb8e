"""The `listenerctl` command line: one thin function per command; the work lives in the library."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from enum import Enum
from functools import wraps
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from listenerctl.errors import ListenerctlError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  help="Listener reactions and co-speech motion for recordings of people talking.")
err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False)


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Task(str, Enum):
    listener = "listener"
    cospeech = "cospeech"


class Render(str, Enum):
    mesh = "mesh"
    portrait = "portrait"
    pirender = "pirender"
    none = "none"


class Protocol(str, Enum):
    """Metric definitions of `evaluate` (the names of listenerctl.metrics.react.PROTOCOLS)."""
    react2024 = "react2024"
    listenerctl = "listenerctl"


class MeshBackend(str, Enum):
    moderngl = "moderngl"
    pyrender = "pyrender"


TEXT_ENCODER_HELP = ("Local text encoder folder (a BERT-style model saved by transformers; nothing is downloaded): "
                     "condition on the speaker's transcript too, with a difflistener checkpoint trained on one.")
MESH_BACKEND_HELP = ("Library drawing --render mesh: moderngl (fast), or pyrender for those who prefer it "
                     "(pip install 'listenerctl\\[pyrender]').")


def resolve_device(device: Device) -> str:
    """'auto' → 'cuda' when a CUDA GPU is usable, else 'cpu'; 'cuda' without one is an error."""
    if device is Device.cpu:
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device is Device.cuda:
        raise ListenerctlError("--device cuda was asked for but no CUDA GPU is available; use --device cpu.")
    return "cpu"


def friendly_errors(command):
    """Turn `ListenerctlError` into one sentence on stderr and exit code 2; Ctrl-C into exit code 130."""

    @wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ListenerctlError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("interrupted; unfinished outputs were removed.")
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as exc:  # a bug, not bad input: one line, the traceback on request
            if os.environ.get("LISTENERCTL_DEBUG"):
                raise
            err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} "
                      "(set LISTENERCTL_DEBUG=1 for the traceback and please report it)")
            raise typer.Exit(3) from None

    return wrapper


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True, disable=not err.is_terminal)


@app.command()
@friendly_errors
def generate(
    inputs: Annotated[list[Path], typer.Argument(help="Recordings of a person talking (video or audio).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder; one subfolder per input.")] = Path("out"),
    samples: Annotated[int, typer.Option("-k", "--samples", min=1, max=100, help="Listener reactions per input (K).")] = 10,
    model: Annotated[Optional[str], typer.Option(help="Generator name (see `listenerctl models`; default: rules, or diffsheg with --task cospeech).")] = None,
    checkpoint: Annotated[Optional[Path], typer.Option(help="Checkpoint for a learned model (default: the shipped one).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same motion.")] = 0,
    device: Annotated[Device, typer.Option(help="Where learned models run.")] = Device.auto,
    render: Annotated[Render, typer.Option(help="How to render the motion to video: shaded 3D face, animated portrait, or no video.")] = Render.mesh,
    mesh_backend: Annotated[MeshBackend, typer.Option(help=MESH_BACKEND_HELP)] = MeshBackend.moderngl,
    size: Annotated[int, typer.Option(min=64, max=1024, help="Video tile size in pixels (square).")] = 256,
    portrait: Annotated[Optional[Path], typer.Option(help="Portrait photo to animate with --render portrait (default: the input's first frame with a face, else the shipped portrait).")] = None,
    pirender_checkpoint: Annotated[Optional[Path], typer.Option(help="PIRender generator checkpoint (.pth) for --render pirender; a GPU is advised.")] = None,
    side_by_side: Annotated[bool, typer.Option("--side-by-side", help="Also write side_by_side_XX.mp4 (speaker | listener).")] = False,
    face: Annotated[str, typer.Option(help="Whose face conditions: 'auto' (whoever talks; in a dialogue the face follows the turns), 'largest', or N, the N-th person from the left (0 = leftmost).")] = "auto",
    face_at: Annotated[Optional[str], typer.Option(help="Condition on the face nearest this pixel point X,Y of the input video (overrides --face).")] = None,
    text_encoder: Annotated[Optional[Path], typer.Option(help=TEXT_ENCODER_HELP)] = None,
    transcript: Annotated[Optional[Path], typer.Option(help="Timed transcript (.srt, .vtt or Whisper-style .json) of the one input (default: INPUT's stem with one of those suffixes, beside it); needs --text-encoder.")] = None,
    task: Annotated[Task, typer.Option(help="listener: K listener reactions; cospeech: the speaker's own face and upper-body gestures from the speech (model diffsheg; skeleton video unless --render none).")] = Task.listener,
    audio_encoder: Annotated[Optional[str], typer.Option(help="cospeech: local HuBERT/wav2vec2 folder of a checkpoint trained with one, as hubert:/path or wav2vec2:/path (needs transformers).")] = None,
    smplx_model: Annotated[Optional[Path], typer.Option(help="cospeech: SMPL-X model folder; draws SMPL-X bodies (needs smplx) instead of the skeleton.")] = None,
    steps: Annotated[Optional[int], typer.Option(min=1, max=1000, help="cospeech: DDIM steps (default: the checkpoint's, 25).")] = None,
    overlap: Annotated[Optional[int], typer.Option(min=0, help="cospeech: frames shared by consecutive FOPPAS windows (default: the checkpoint's).")] = None,
) -> None:
    """Generate K listener reactions for each input: videos, motion.npz, speaker.npz and manifest.json."""
    from contextlib import nullcontext

    from listenerctl.models import DEFAULT_MODEL, load_generator

    model = model or DEFAULT_MODEL[task.value]
    if task is Task.cospeech:
        _generate_cospeech(inputs, output, samples, model, checkpoint, seed,
                           resolve_device(device), render, size, audio_encoder, smplx_model, steps, overlap)
        return

    from listenerctl.features.people import parse_face, parse_point
    from listenerctl.pipeline import GenerateOptions, check_inputs, generate_item, text_encoder_for

    check_inputs(inputs)
    parse_face(face)  # a bad --face or --face-at stops before any work
    if face_at is not None:
        parse_point(face_at)
    if transcript is not None and len(inputs) > 1:
        raise ListenerctlError("--transcript names the transcript of one input; with several inputs, put each "
                               "transcript beside its input with the same stem (talk.mp4 → talk.srt).")
    opts = GenerateOptions(samples=samples, model=model, checkpoint=str(checkpoint) if checkpoint else None,
                           seed=seed, device=resolve_device(device), render=render.value,
                           mesh_backend=mesh_backend.value, size=size,
                           portrait=str(portrait) if portrait else None, side_by_side=side_by_side,
                           face=face, face_at=face_at, text_encoder=str(text_encoder) if text_encoder else None,
                           transcript=str(transcript) if transcript else None)
    generator = load_generator(model, checkpoint, opts.device, task="listener")
    text_encoder_for(opts, generator)          # a bad encoder or a model without text stops before any work
    if render is Render.none:
        pool = nullcontext()
    else:
        from renderers.select import RendererPool

        pool = RendererPool(render.value, size, portrait, pirender_checkpoint, opts.device, opts.mesh_backend)
    with pool as renderers, _progress() as bars:
        for path in inputs:
            task = bars.add_task(f"{path.name}", total=None)

            def show(stage, done, total, task=task, name=path.name):
                bars.update(task, description=f"{name}: {stage}", completed=done, total=total)

            item = generate_item(path, output, opts, generator, report=err.print, renderers=renderers, progress=show)
            bars.remove_task(task)
            out.print(f"{path.name} → {item}/ ({samples} samples, model {model})")


def _generate_cospeech(inputs: list[Path], output: Path, samples: int, model: str, checkpoint: Optional[Path],
                       seed: int, device: str, render: Render, size: int, audio_encoder: Optional[str],
                       smplx_model: Optional[Path], steps: Optional[int], overlap: Optional[int]) -> None:
    """`generate --task cospeech`: each input's speech (a video's audio track) → `cospeech.generate_cospeech`."""
    from listenerctl.cospeech import CoSpeechOptions, generate_cospeech
    from listenerctl.models import load_generator
    from listenerctl.pipeline import check_inputs

    check_inputs(inputs)
    opts = CoSpeechOptions(samples=samples, seed=seed, checkpoint=str(checkpoint) if checkpoint else None,
                           device=device, steps=steps, overlap=overlap, size=size,
                           render="none" if render is Render.none else "smplx" if smplx_model else "skeleton",
                           smplx_folder=str(smplx_model) if smplx_model else None, audio_encoder=audio_encoder)
    generator = load_generator(model, checkpoint, device, task="cospeech")
    for path in inputs:
        folder = generate_cospeech(path, output, samples, seed, opts, generator, report=err.print)
        out.print(f"{path.name} → {folder}/ ({samples} samples, model {model})")


@app.command()
@friendly_errors
def batch(
    folder: Annotated[Path, typer.Argument(help="Folder of recordings (searched recursively).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder; mirrors the input tree.")],
    samples: Annotated[int, typer.Option("-k", "--samples", min=1, max=100, help="Listener reactions per input (K).")] = 10,
    model: Annotated[str, typer.Option(help="Generator name (see `listenerctl models`).")] = "rules",
    checkpoint: Annotated[Optional[Path], typer.Option(help="Checkpoint for a learned model.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed, the same for every item.")] = 0,
    device: Annotated[Device, typer.Option(help="Where learned models run.")] = Device.auto,
    render: Annotated[Render, typer.Option(help="Renderer, or none for motion files only.")] = Render.mesh,
    mesh_backend: Annotated[MeshBackend, typer.Option(help=MESH_BACKEND_HELP)] = MeshBackend.moderngl,
    size: Annotated[int, typer.Option(min=64, max=1024, help="Video tile size in pixels.")] = 256,
    portrait: Annotated[Optional[Path], typer.Option(help="Portrait photo for --render portrait.")] = None,
    text_encoder: Annotated[Optional[Path], typer.Option(help=TEXT_ENCODER_HELP + " Each input's transcript is the .srt, .vtt or .json beside it with its stem.")] = None,
    jobs: Annotated[Optional[int], typer.Option("-j", "--jobs", min=1, help="Items processed in parallel (default: 1 locally, one per cluster CPU or GPU on Ray).")] = None,
    glob: Annotated[Optional[str], typer.Option(help="Only files matching this pattern, e.g. '*.mp4'.")] = None,
    engine: Annotated[Literal["local", "ray"], typer.Option(help="Where items run: processes on this machine, or a Ray cluster (pip install 'listenerctl\\[ray]').")] = "local",
    address: Annotated[Optional[str], typer.Option(help="Ray cluster to join with --engine ray: 'auto', ray://HEAD:10001 or HEAD:6379 (default: a local instance). A cluster with token authentication takes its token from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token.")] = None,
) -> None:
    """Run `generate` on every recording in a folder: resumable, one failure alone, a summary at the end."""
    from listenerctl.batch import REPORT, run_batch
    from listenerctl.pipeline import GenerateOptions, text_encoder_for

    opts = GenerateOptions(samples=samples, model=model, checkpoint=str(checkpoint) if checkpoint else None,
                           seed=seed, render=render.value, mesh_backend=mesh_backend.value,
                           device=device.value if engine == "ray" else resolve_device(device), size=size,
                           portrait=str(portrait) if portrait else None,
                           text_encoder=str(text_encoder) if text_encoder else None)
    if text_encoder is not None:               # a bad encoder or a model without text stops before any item
        from listenerctl.models import load_generator

        text_encoder_for(replace(opts, device="cpu"), load_generator(model, checkpoint, "cpu", task="listener"))
    with _progress() as bars:
        task = bars.add_task("batch", total=None)

        def show(result, done, total):
            bars.update(task, completed=done, total=total, description=f"batch: {Path(result.input).name} {result.status}")

        results = run_batch(folder, output, opts, jobs=jobs, pattern=glob, on_result=show,
                            engine=engine, address=address)
    table = Table("input", "status", "seconds", "reason")
    colour = {"done": "green", "skipped": "cyan", "failed": "red"}
    for r in results:
        table.add_row(str(Path(r.input).relative_to(folder)), f"[{colour[r.status]}]{r.status}[/]",
                      f"{r.seconds:.1f}", r.reason)
    out.print(table)
    counts = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    out.print(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed; report: {output / REPORT}")
    if counts["failed"]:
        raise typer.Exit(1)


@app.command()
@friendly_errors
def render(
    motion: Annotated[Path, typer.Argument(help="A motion.npz written by `generate` (its folder's speaker.npz and manifest.json are used too).")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Folder for the videos (default: beside the motion).")] = None,
    render: Annotated[Render, typer.Option(help="Renderer.")] = Render.mesh,
    mesh_backend: Annotated[MeshBackend, typer.Option(help=MESH_BACKEND_HELP)] = MeshBackend.moderngl,
    size: Annotated[int, typer.Option(min=64, max=1024, help="Video tile size in pixels.")] = 256,
    portrait: Annotated[Optional[Path], typer.Option(help="Portrait photo for --render portrait/pirender.")] = None,
    pirender_checkpoint: Annotated[Optional[Path], typer.Option(help="PIRender checkpoint for --render pirender.")] = None,
    side_by_side: Annotated[bool, typer.Option("--side-by-side", help="Also write side_by_side_XX.mp4.")] = False,
    device: Annotated[Device, typer.Option(help="Where PIRender runs.")] = Device.auto,
) -> None:
    """Render saved motion again: per-sample MP4s and the grid, with another renderer or size."""
    from listenerctl.pipeline import rerender_item
    from renderers.select import RendererPool

    if render is Render.none:
        raise ListenerctlError("--render none renders nothing; choose mesh, portrait or pirender.")
    with RendererPool(render.value, size, portrait, pirender_checkpoint, resolve_device(device),
                      mesh_backend.value) as pool:
        names = rerender_item(motion, output or motion.parent, pool, size, side_by_side)
    out.print(f"wrote {len(names)} videos to {output or motion.parent}/")


@app.command()
@friendly_errors
def models() -> None:
    """List the registered generators and their checkpoints."""
    from listenerctl.models import REGISTRY

    table = Table("name", "task", "checkpoint", "description")
    for entry in REGISTRY.values():
        ckpt = entry.default_checkpoint()
        status = "built in" if ckpt is None else (str(ckpt.name) if ckpt.exists() else "[red]missing[/]")
        table.add_row(entry.name, entry.task, status, entry.description)
    out.print(table)


@app.command()
@friendly_errors
def doctor() -> None:
    """Check ffmpeg, EGL rendering, torch/CUDA and the face model: each found or not, with the fix."""
    from listenerctl.doctor import run_checks

    table = Table("check", "status", "detail / fix")
    failed = 0
    for check in run_checks():
        failed += not check.ok
        table.add_row(check.name, "[green]ok[/]" if check.ok else "[red]missing[/]", check.detail)
    out.print(table)
    if failed:
        raise typer.Exit(1)


@app.command()
@friendly_errors
def evaluate(
    data: Annotated[Path, typer.Option("--data", help="Corpus in REACT layout (e.g. from `listenerctl data synth`).")],
    split: Annotated[str, typer.Option(help="Split to evaluate on.")] = "test",
    model: Annotated[Optional[list[str]], typer.Option("--model", "-m", help="Models to run and score (repeatable); NAME=CHECKPOINT scores that checkpoint of a learned model (e.g. a fine-tuned one), labelled 'NAME (checkpoint stem)'.")] = None,
    predictions: Annotated[Optional[list[Path]], typer.Option("--predictions", "-p", help="Saved prediction folders to score (repeatable).")] = None,
    samples: Annotated[int, typer.Option("-k", "--samples", min=2, help="Samples per speaker clip (K).")] = 10,
    output: Annotated[Path, typer.Option("-o", "--output", help="Report folder: metrics.json, metrics.md, PNG plots.")] = Path("evaluation"),
    save_predictions: Annotated[bool, typer.Option(help="Also save each model's predictions under OUTPUT/predictions/MODEL.")] = False,
    device: Annotated[Device, typer.Option(help="Where learned models run.")] = Device.auto,
    protocol: Annotated[Protocol, typer.Option(help="Metric definitions: react2024 (the official REACT 2024 evaluation, quirks included) or listenerctl (the project's own FRDist/FRSyn variants).")] = Protocol.react2024,
    bootstrap: Annotated[int, typer.Option(min=0, help="Bootstrap draws over speaker clips for the 95 % intervals (0: none).")] = 1000,
    bootstrap_seed: Annotated[int, typer.Option(help="Seed of the bootstrap resampling.")] = 0,
    reference: Annotated[Optional[str], typer.Option(help="Also report every other model minus this one, paired by speaker clip, with intervals.")] = None,
) -> None:
    """Score listener models (default: the rules listener and the mime/random/mean baselines) with the REACT metrics."""
    from listenerctl.data.corpus import load_corpus
    from listenerctl.evaluate import (eval_frames, predict, read_predictions, report_markdown, speaker_scores,
                                      summarise, write_predictions, write_report)

    corpus = load_corpus(data, split)
    names = model if model or predictions else ["rules", "mime", "random", "mean"]
    entries = [_model_entry(entry) for entry in names or []]
    if reference is not None and reference not in [*(e[2] for e in entries), *(p.name for p in predictions or [])]:
        raise ListenerctlError(f"--reference {reference} is not one of the models scored; add it with -m or -p.")
    runs, skipped = {}, {}
    for name, checkpoint, label, folder in entries:
        if name == "mime" and any(c.cond.face is None for c in corpus.clips):
            skipped[name] = "some speaker clips have no face to copy"
            err.print(f"{name} skipped: {skipped[name]}")
            continue
        run = predict(corpus, name, samples, device=resolve_device(device),
                      checkpoint=Path(checkpoint) if checkpoint else None)
        runs[label] = replace(run, name=label)
        if save_predictions:
            write_predictions(runs[label], corpus, output / "predictions" / folder)
    for folder in predictions or []:
        loaded = read_predictions(folder, corpus)
        runs[loaded.name] = loaded
    per_speaker = {}
    for name, run in runs.items():
        per_speaker[name] = speaker_scores(run, corpus, protocol.value)
        err.print(f"scored {name}")
    summary = summarise(per_speaker, bootstrap, bootstrap_seed, reference)
    context = {"data": str(data), "split": split, "speaker_clips": len(corpus.clips), "samples": samples,
               "frames": eval_frames(corpus), "spec": corpus.spec, "skipped": skipped, "protocol": protocol.value,
               "bootstrap": bootstrap, "bootstrap_seed": bootstrap_seed, "reference": reference}
    write_report(summary, runs, corpus, output, context)
    out.print(report_markdown(summary, context), markup=False)
    out.print(f"report: {output}/metrics.json, metrics.md, metrics.png, curves.png")


def _model_entry(entry: str) -> tuple[str, str, str, str]:
    """``-m NAME[=CHECKPOINT]`` → (name, checkpoint or '', label in reports, predictions folder name)."""
    name, _, checkpoint = entry.partition("=")
    stem = Path(checkpoint).name.removesuffix(".safetensors")
    return (name, checkpoint, f"{name} ({stem})", f"{name}_{stem}") if checkpoint else (name, "", name, name)


@app.command()
@friendly_errors
def train(
    model: Annotated[str, typer.Argument(help="Learned model to train (see `listenerctl models`).")],
    data: Annotated[Path, typer.Option("--data", help="Training data (a corpus from `listenerctl data synth`, or the model's own format).")],
    steps: Annotated[int, typer.Option(min=0, help="Total optimisation steps (a resumed run continues up to this).")] = 2000,
    stem: Annotated[Optional[Path], typer.Option("--out", help="Checkpoint path stem (default: checkpoints/MODEL in the working directory).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of initialisation, batches and noise.")] = 0,
    device: Annotated[Device, typer.Option(help="cuda when available by default.")] = Device.auto,
    amp: Annotated[bool, typer.Option(help="bf16 mixed precision (CUDA only).")] = True,
    log_every: Annotated[int, typer.Option(min=1, help="Steps between log rows and saved training state.")] = 50,
    resume: Annotated[bool, typer.Option(help="Continue from the saved training state beside OUT.")] = True,
    init: Annotated[Optional[Path], typer.Option("--init", help="Fine-tune: start from this checkpoint of the same model (its config, weights and normalisation); only the last training phase runs. Default OUT: checkpoints/MODEL-finetuned in the working directory.")] = None,
) -> None:
    """Train a learned model: resumable, seeded, loss curves as CSV + PNG, held-out metrics in the card."""
    from listenerctl.checkpoint import checkpoint_paths
    from listenerctl.models import REGISTRY, train_plan_builder
    from listenerctl.training.loop import run_training

    make_train_plan = train_plan_builder(model)
    entry = REGISTRY[model]
    if init is not None and entry.task != "listener":
        raise ListenerctlError(f"--init fine-tunes listener models; {model!r} is a {entry.task} model.")
    stem = stem or Path("checkpoints") / (model if init is None else f"{model}-finetuned")
    if init is not None and checkpoint_paths(init)[0].resolve() == checkpoint_paths(stem)[0].resolve():
        raise ListenerctlError(f"--out {stem} would overwrite the --init checkpoint; name another output.")
    where = resolve_device(device)
    plan = make_train_plan(data, device=where, seed=seed, **({} if init is None else {"init": init}))
    card = run_training(plan, steps, stem, log_every=log_every, resume=resume, device=where,
                        amp=amp and where == "cuda", seed=seed)
    out.print(f"checkpoint: {stem}.safetensors (+ .json); held-out metrics: {json.dumps(card.get('metrics', {}))}")


data_app = typer.Typer(no_args_is_help=True, help="Build and inspect training corpora.")
app.add_typer(data_app, name="data")


@data_app.command("synth")
@friendly_errors
def data_synth(
    sources: Annotated[list[Path], typer.Argument(help="Folders (or files) of speech recordings and talking-face videos.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Corpus folder to write (REACT layout).")],
    personalities: Annotated[int, typer.Option("-m", "--personalities", min=1, help="Rule-listener reactions per speaker clip (M).")] = 10,
    clip_seconds: Annotated[float, typer.Option(min=1.0, help="Clip length; REACT uses 751 frames = 30.04 s.")] = 30.04,
    synth_minutes: Annotated[float, typer.Option(min=0.0, help="Also synthesise this many minutes of espeak-ng speech into OUTPUT/_speech and use it.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the split assignment, the synthetic speech and the personalities.")] = 0,
    text_encoder: Annotated[Optional[Path], typer.Option(help="Local text encoder folder: store the embeddings of each recording's transcript (the .srt, .vtt or .json beside it with its stem) with its speaker features, for models trained with transcripts.")] = None,
) -> None:
    """Build a dyadic corpus: speaker clips from your recordings, listener reactions from the rule listener."""
    from listenerctl.data.speech import synthesize_speech
    from listenerctl.data.synth import SynthOptions, build_corpus

    if synth_minutes > 0:
        speech_dir = output / "_speech"
        files = synthesize_speech(speech_dir, synth_minutes, seed=seed)
        err.print(f"synthesised {len(files)} recordings into {speech_dir}")
        sources = [*sources, speech_dir]
    options = SynthOptions(personalities=personalities, clip_frames=round(clip_seconds * 25), seed=seed)
    encoder = None
    if text_encoder is not None:
        from listenerctl.features.text import load_text_encoder

        encoder = load_text_encoder(str(text_encoder))
    card = build_corpus(sources, output, options, report=err.print, text_encoder=encoder)
    table = Table("split", "speaker clips", "pairs", "speaker minutes")
    for split, numbers in card["splits"].items():
        table.add_row(split, str(numbers["speaker_clips"]), str(numbers["pairs"]), f"{numbers['speaker_seconds'] / 60:.1f}")
    out.print(table)


@data_app.command("extract")
@friendly_errors
def data_extract(
    inputs: Annotated[list[Path], typer.Argument(help="Sessions: a folder of videos (one per person, a .wav beside a video is that person's own track), a video with everyone in view, a folder of such folders, or a CSV with columns session,person,video[,audio].")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Corpus folder to write (REACT layout; rerunning skips analysed sessions).")],
    clip_seconds: Annotated[float, typer.Option(min=1.0, help="Clip length in seconds (clips have seconds x 25 + 1 frames: 30 s = REACT's 751).")] = 30.0,
    min_found: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of a clip's frames in which each face must be found.")] = 0.8,
    min_speaker_talk: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of a clip's frames in which the speaker must talk.")] = 0.5,
    max_listener_talk: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of a clip's frames in which the listener may talk (backchannels).")] = 0.15,
    similarity: Annotated[float, typer.Option(min=0.0, help="Appropriate reactions: clips whose speaker statistics differ by at most this RMS z-score.")] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the split assignment.")] = 0,
    shared: Annotated[bool, typer.Option("--shared", help="Every video in a folder is a session of its own with everyone in view (default: a folder of videos is one session, a video per person).")] = False,
) -> None:
    """Build a corpus of real dyads from recordings of two (or more) people talking: each person in turn
    as the listener while another talks; splits by session; extract_report.json and contact sheets."""
    from listenerctl.data.dyads import DyadOptions
    from listenerctl.data.extract_inputs import extract_corpus

    options = DyadOptions(clip_frames=round(clip_seconds * 25) + 1, min_speaker_talk=min_speaker_talk,
                          max_listener_talk=max_listener_talk, min_found=min_found, similarity_threshold=similarity)
    with _progress() as bars:
        def progress_for(key: str):
            task = bars.add_task(f"tracking {key}", total=None)
            return lambda done, total: bars.update(task, completed=done, total=total)

        summary = extract_corpus(inputs, output, options, seed, report=err.print, progress_for=progress_for,
                                 shared=shared)
    table = Table("split", "sessions", "dyad minutes")
    for split, numbers in summary["splits"].items():
        table.add_row(split, str(len(numbers["sessions"])), f"{numbers['dyad_minutes']:.2f}")
    out.print(table)
    out.print(f"report: {output}/extract_report.json; contact sheets: {output}/sessions/*/contact_sheet.png")


from listenerctl.cli_study import study_app  # noqa: E402  (the study kit's sub-app)
app.add_typer(study_app, name="study")


def main() -> None:  # pragma: no cover - console entry point alias
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
