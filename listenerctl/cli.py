"""The `listenerctl` command line: one thin function per command that parses and prints; the work and its
defaults live in the job modules."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer
from rich.table import Table

from listenerctl.cli_common import Device, err, friendly_errors, out, progress_bars, resolve_device
from listenerctl.cli_options import ListenerArgs, Render, RenderArgs, generate_options, with_option_groups
from listenerctl.errors import ListenerctlError
from listenerctl.metrics.protocols import PROTOCOLS

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  help="Listener reactions and co-speech motion for recordings of people talking.")


class Task(str, Enum):
    listener = "listener"
    cospeech = "cospeech"


Protocol = Enum("Protocol", {name: name for name in PROTOCOLS}, type=str)  # `evaluate --protocol`'s choices


@app.command()
@friendly_errors
@with_option_groups
def generate(
    inputs: Annotated[list[Path], typer.Argument(help="Recordings of a person talking (video or audio).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder; one subfolder per input.")] = Path("out"),
    listener: ListenerArgs = ListenerArgs(),
    render: RenderArgs = RenderArgs(),
    transcript: Annotated[Optional[Path], typer.Option(help="Timed transcript (.srt, .vtt or Whisper-style .json) of the one input (default: INPUT's stem with one of those suffixes, beside it); needs --text-encoder.")] = None,
    task: Annotated[Task, typer.Option(help="listener: K listener reactions; cospeech: the speaker's own face and upper-body gestures from the speech (model diffsheg; skeleton video unless --render none).")] = Task.listener,
    audio_encoder: Annotated[Optional[str], typer.Option(help="cospeech: local HuBERT/wav2vec2 folder of a checkpoint trained with one, as hubert:/path or wav2vec2:/path (needs transformers).")] = None,
    smplx_model: Annotated[Optional[Path], typer.Option(help="cospeech: SMPL-X model folder; draws SMPL-X bodies (needs smplx) instead of the skeleton.")] = None,
    steps: Annotated[Optional[int], typer.Option(min=1, max=1000, help="cospeech: DDIM steps (default: the checkpoint's, 25).")] = None,
    overlap: Annotated[Optional[int], typer.Option(min=0, help="cospeech: frames shared by consecutive FOPPAS windows (default: the checkpoint's).")] = None,
) -> None:
    """Generate K listener reactions for each input: videos, motion.npz, speaker.npz and manifest.json."""
    from contextlib import nullcontext

    from listenerctl.pipeline import check_inputs, check_options, generate_item, load_listener, renderer_pool

    check_inputs(inputs)
    if task is Task.cospeech:
        _generate_cospeech(inputs, output, listener, render, audio_encoder, smplx_model, steps, overlap)
        return
    if transcript is not None and len(inputs) > 1:
        raise ListenerctlError("--transcript names the transcript of one input; with several inputs, put each "
                               "transcript beside its input with the same stem (talk.mp4 → talk.srt).")
    opts = generate_options(render, resolve_device(render.device), listener, transcript)
    generator = load_listener(opts)
    check_options(opts, generator)             # bad options stop before any work
    with renderer_pool(opts) or nullcontext() as renderers, progress_bars() as bars:
        for path in inputs:
            task_bar = bars.add_task(f"{path.name}", total=None)

            def show(stage, done, total, task_bar=task_bar, name=path.name):
                bars.update(task_bar, description=f"{name}: {stage}", completed=done, total=total)

            item = generate_item(path, output, opts, generator, report=err.print, renderers=renderers, progress=show)
            bars.remove_task(task_bar)
            out.print(f"{path.name} → {item}/ ({opts.samples} samples, model {opts.model})")


def _generate_cospeech(inputs: list[Path], output: Path, listener: ListenerArgs, render: RenderArgs,
                       audio_encoder: Optional[str], smplx_model: Optional[Path], steps: Optional[int],
                       overlap: Optional[int]) -> None:
    """`generate --task cospeech`: each input's speech (a video's audio track) → `cospeech.generate_cospeech`."""
    from listenerctl.cospeech import CoSpeechOptions, generate_cospeech, load_cospeech

    opts = CoSpeechOptions(samples=listener.samples, seed=listener.seed, model=listener.model or CoSpeechOptions.model,
                           checkpoint=str(listener.checkpoint) if listener.checkpoint else None,
                           device=resolve_device(render.device), steps=steps, overlap=overlap, size=render.size,
                           render="none" if render.render is Render.none else "smplx" if smplx_model else "skeleton",
                           smplx_folder=str(smplx_model) if smplx_model else None, audio_encoder=audio_encoder)
    generator = load_cospeech(opts)
    for path in inputs:
        folder = generate_cospeech(path, output, opts.samples, opts.seed, opts, generator, report=err.print)
        out.print(f"{path.name} → {folder}/ ({opts.samples} samples, model {opts.model})")


@app.command()
@friendly_errors
@with_option_groups
def batch(
    folder: Annotated[Path, typer.Argument(help="Folder of recordings (searched recursively).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output folder; mirrors the input tree.")],
    listener: ListenerArgs = ListenerArgs(),
    render: RenderArgs = RenderArgs(),
    jobs: Annotated[Optional[int], typer.Option("-j", "--jobs", min=1, help="Items processed in parallel (default: 1 locally, one per cluster CPU or GPU on Ray).")] = None,
    glob: Annotated[Optional[str], typer.Option(help="Only files matching this pattern, e.g. '*.mp4'.")] = None,
    engine: Annotated[Literal["local", "ray"], typer.Option(help="Where items run: processes on this machine, or a Ray cluster (pip install 'listenerctl\\[ray]').")] = "local",
    address: Annotated[Optional[str], typer.Option(help="Ray cluster to join with --engine ray: 'auto', ray://HEAD:10001 or HEAD:6379 (default: a local instance). A cluster with token authentication takes its token from RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token.")] = None,
) -> None:
    """Run `generate` on every recording in a folder: resumable, one failure alone, a summary at the end."""
    from listenerctl.batch import REPORT, run_batch

    device = render.device.value if engine == "ray" else resolve_device(render.device)  # Ray: the cluster's
    opts = generate_options(render, device, listener)
    with progress_bars() as bars:
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
@with_option_groups
def render(
    motion: Annotated[Path, typer.Argument(help="A motion.npz written by `generate` (its folder's speaker.npz and manifest.json are used too).")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Folder for the videos (default: beside the motion).")] = None,
    render: RenderArgs = RenderArgs(),
) -> None:
    """Render saved motion again: per-sample MP4s and the grid, with another renderer or size."""
    from listenerctl.pipeline import renderer_pool, rerender_item

    if render.render is Render.none:
        raise ListenerctlError("--render none renders nothing; choose mesh, portrait or pirender.")
    opts = generate_options(render, resolve_device(render.device))
    with renderer_pool(opts) as pool:
        names = rerender_item(motion, output or motion.parent, pool, opts.size, opts.side_by_side)
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
    protocol: Annotated[Protocol, typer.Option(help="Metric definitions: " + "; ".join(f"{name}, {label}" for name, label in PROTOCOLS.items()) + ".")] = Protocol.react2024,
    bootstrap: Annotated[int, typer.Option(min=0, help="Bootstrap draws over speaker clips for the 95 % intervals (0: none).")] = 1000,
    bootstrap_seed: Annotated[int, typer.Option(help="Seed of the bootstrap resampling.")] = 0,
    reference: Annotated[Optional[str], typer.Option(help="Also report every other model minus this one, paired by speaker clip, with intervals.")] = None,
) -> None:
    """Score listener models (default: the rules listener and the mime/random/mean baselines) with the REACT metrics."""
    from listenerctl.data.corpus import load_corpus
    from listenerctl.evaluate import eval_frames, report_markdown, score_models, write_report

    corpus = load_corpus(data, split)
    summary, runs, skipped = score_models(corpus, model or [], predictions or [], samples, resolve_device(device),
                                          protocol.value, bootstrap, bootstrap_seed, reference,
                                          output / "predictions" if save_predictions else None, report=err.print)
    context = {"data": str(data), "split": split, "speaker_clips": len(corpus.clips), "samples": samples,
               "frames": eval_frames(corpus), "spec": corpus.spec, "skipped": skipped, "protocol": protocol.value,
               "bootstrap": bootstrap, "bootstrap_seed": bootstrap_seed, "reference": reference}
    write_report(summary, runs, corpus, output, context)
    out.print(report_markdown(summary, context), markup=False)
    out.print(f"report: {output}/metrics.json, metrics.md, metrics.png, curves.png")


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
    with progress_bars() as bars:
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
