"""`listenerctl evaluate`: score listener models or saved predictions on a corpus split with the REACT
metrics (DESIGN §9), and write a JSON, a Markdown table and PNG plots.

Metrics follow a protocol (`listenerctl.metrics.protocols.PROTOCOLS`): ``react2024``, the official REACT 2024
definitions, or ``listenerctl``, the project's own FRDist/FRSyn variants. Every metric is computed per
speaker clip once; 95 % intervals and paired differences between models come from a seeded bootstrap over
speaker clips (`listenerctl.metrics.bootstrap`).

Predictions are evaluated on emotion25 over the first ``EVAL_FRAMES`` frames of each clip (REACT: 750;
corpora of shorter clips are evaluated over their whole clips).
A prediction folder holds one sub-folder per speaker clip, named by its clip path with '/' replaced by
'__' (as `write_predictions` writes them), each with a `generate`-style motion.npz.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from listenerctl.atomic import atomic_file
from listenerctl.data.corpus import Corpus
from listenerctl.emotion import emotion_from_arkit
from listenerctl.errors import ListenerctlError
from listenerctl.metrics.protocols import PROTOCOLS, check_protocol
from listenerctl.motion import Motion

EVAL_FRAMES = 750
EVAL_SEED = 900_001  # personalities/noise of evaluated models never coincide with the corpus seeds
# FRCorr_other: the speaker-shuffle control (see `score`); a control, not a score, so no better direction.
METRIC_ORDER = ("FRCorr", "FRDist", "FRDiv", "FRDvs", "FRVar", "FRSyn", "FRSyn_all", "FRCorr_other")
HIGHER_IS_BETTER = {"FRCorr": True, "FRDist": False, "FRDiv": True, "FRDvs": True, "FRVar": True, "FRSyn": False,
                    "FRSyn_all": False, "FRCorr_other": None}
DEFAULT_MODELS = ("rules", "mime", "random", "mean")  # scored unless models or predictions are named


def eval_frames(corpus: Corpus) -> int:
    """Frames scored per clip: REACT's 750, or the corpus' clip length when shorter."""
    return min(EVAL_FRAMES, min(c.cond.num_frames for c in corpus.clips))


def prediction_key(clip_key: str) -> str:
    return clip_key.replace("/", "__")


@dataclass
class Predictions:
    """Listener motion for every speaker clip of a corpus split: ``motion`` [N, K, T, 58]."""

    name: str
    motion: np.ndarray

    def emotion(self, frames: int) -> np.ndarray:
        """emotion25 of the first ``frames`` frames: [N, K, frames, 25] float64."""
        return emotion_from_arkit(self.motion[:, :, :frames]).astype(np.float64)


def predict(corpus: Corpus, model: str, samples: int, seed: int = EVAL_SEED, device: str = "cpu",
            checkpoint: Path | None = None) -> Predictions:
    """Run a registered generator on every speaker clip of ``corpus``."""
    from listenerctl.models import load_generator

    return generate_predictions(load_generator(model, checkpoint, device, task="listener"), corpus, samples, seed)


def generate_predictions(generator, corpus: Corpus, samples: int, seed: int = EVAL_SEED,
                         conds: list | None = None) -> Predictions:
    """``samples`` motions of a loaded ``generator`` for every speaker clip of ``corpus``, clip i seeded
    ``seed + i``; ``conds`` (one per clip, e.g. the clips' speakers shuffled) replace the clips' own."""
    conds = [clip.cond for clip in corpus.clips] if conds is None else conds
    motion = [generator.generate(generator.usable(cond), samples, seed + i).data for i, cond in enumerate(conds)]
    return Predictions(generator.name, np.stack(motion))


def write_predictions(predictions: Predictions, corpus: Corpus, folder: Path) -> None:
    """One motion.npz per speaker clip under ``folder`` (layout of the module docstring)."""
    from listenerctl.pipeline import write_motion

    for clip, motion in zip(corpus.clips, predictions.motion):
        item = folder / prediction_key(clip.key)
        item.mkdir(parents=True, exist_ok=True)
        write_motion(item / "motion.npz", Motion(motion, "arkit58", corpus.fps))


def read_predictions(folder: Path, corpus: Corpus) -> Predictions:
    """Predictions saved under ``folder`` for every clip of ``corpus``; missing or extra items are errors."""
    from listenerctl.pipeline import read_motion

    if not folder.is_dir():
        raise ListenerctlError(f"prediction folder not found: {folder}")
    wanted = {prediction_key(c.key): c for c in corpus.clips}
    present = {p.parent.name for p in folder.glob("*/motion.npz")}
    missing, extra = sorted(set(wanted) - present), sorted(present - set(wanted))
    if missing or extra:
        raise ListenerctlError(
            f"{folder} does not match split {corpus.split}: {len(missing)} of {len(wanted)} speaker clips have no "
            f"prediction ({', '.join(missing[:3])}{'…' if len(missing) > 3 else ''}) and {len(extra)} items match "
            "no clip.")
    motions = [read_motion(folder / key / "motion.npz") for key in wanted]
    shapes = {m.data.shape for m in motions}
    if len(shapes) > 1:
        raise ListenerctlError(f"predictions in {folder} differ in shape ({', '.join(map(str, sorted(shapes)))}).")
    motion = np.stack([m.data for m in motions])
    if motion.shape[2] < eval_frames(corpus):
        raise ListenerctlError(f"predictions in {folder} hold {motion.shape[2]} frames; "
                               f"{eval_frames(corpus)} are evaluated.")
    return Predictions(folder.name, motion)


@dataclass(frozen=True)
class ModelRequest:
    """A model to run and score, from ``-m NAME[=CHECKPOINT]``: ``label`` names it in the reports, ``folder``
    its saved predictions (NAME alone for the model's shipped or built-in form)."""

    name: str
    checkpoint: Path | None
    label: str
    folder: str

    @classmethod
    def parse(cls, entry: str) -> "ModelRequest":
        name, _, checkpoint = entry.partition("=")
        if not checkpoint:
            return cls(name, None, name, name)
        stem = Path(checkpoint).name.removesuffix(".safetensors")
        return cls(name, Path(checkpoint), f"{name} ({stem})", f"{name}_{stem}")


def skip_reason(model: str, corpus: Corpus) -> str | None:
    """Why ``model`` cannot run on ``corpus`` (mime copies the speaker's face: every clip needs one), or None."""
    if model == "mime" and any(c.cond.face is None for c in corpus.clips):
        return "some speaker clips have no face to copy"
    return None


def check_reference(reference: str | None, scored: list[str], draws: int) -> None:
    """One sentence, before any scoring, when a paired comparison against ``reference`` cannot be made: it is
    not one of the ``scored`` labels, or there are no bootstrap ``draws``."""
    if reference is None:
        return
    if reference not in scored:
        raise ListenerctlError(f"--reference {reference} is not one of the models scored "
                               f"({', '.join(scored) or 'none'}); add it with -m or -p.")
    if draws == 0:
        raise ListenerctlError("a paired comparison with --reference needs bootstrap draws (--bootstrap above 0).")


def score_models(corpus: Corpus, models: list[str], prediction_folders: list[Path], samples: int, device: str,
                 protocol: str, draws: int, draw_seed: int, reference: str | None = None,
                 save_to: Path | None = None, report: Callable[[str], None] = lambda _: None
                 ) -> tuple[dict[str, dict], dict[str, Predictions], dict[str, str]]:
    """The `evaluate` job on a loaded corpus split: run each of ``models`` (``NAME[=CHECKPOINT]``; none named
    and no ``prediction_folders``: `DEFAULT_MODELS`) ``samples`` times per clip, read the saved predictions,
    score them all under ``protocol`` and summarise (`summarise`). Options that cannot work (an unknown
    protocol, a ``reference`` not scored or without draws) stop before any model runs. With ``save_to``, each
    run's predictions are written under ``save_to/<folder>``. Returns the summary, the predictions by label
    and the skipped models with the reason; ``report`` hears what was skipped and scored."""
    check_protocol(protocol)
    requests = [ModelRequest.parse(m) for m in models or ([] if prediction_folders else DEFAULT_MODELS)]
    skipped = {r.name: reason for r in requests if (reason := skip_reason(r.name, corpus))}
    requests = [r for r in requests if r.name not in skipped]
    check_reference(reference, [*(r.label for r in requests), *(f.name for f in prediction_folders)], draws)
    for name, reason in skipped.items():
        report(f"{name} skipped: {reason}")
    runs: dict[str, Predictions] = {}
    for request in requests:
        runs[request.label] = replace(predict(corpus, request.name, samples, device=device,
                                              checkpoint=request.checkpoint), name=request.label)
        if save_to is not None:
            write_predictions(runs[request.label], corpus, save_to / request.folder)
    for folder in prediction_folders:
        loaded = read_predictions(folder, corpus)
        runs[loaded.name] = loaded
    per_speaker = {}
    for name, run in runs.items():
        per_speaker[name] = speaker_scores(run, corpus, protocol)
        report(f"scored {name}")
    return summarise(per_speaker, draws, draw_seed, reference), runs, skipped


def speaker_scores(predictions: Predictions, corpus: Corpus, protocol: str = "react2024") -> dict[str, np.ndarray]:
    """Each metric of ``protocol`` by speaker clip (`speaker_contributions`: [N] values, [N, N] for FRDvs), and
    FRCorr_other: FRCorr of each clip's predictions against the next clip's appropriate reactions (the
    speaker-shuffle control; a model that responds to its speaker scores below its FRCorr there, one blind
    to it the same)."""
    from listenerctl.metrics.react import fr_corr_per_speaker, speaker_contributions

    frames = eval_frames(corpus)
    speaker = np.stack([c.speaker_emotion[:frames] for c in corpus.clips]).astype(np.float64)
    appropriate = [c.reaction_emotion[:, :frames].astype(np.float64) for c in corpus.clips]
    pred = predictions.emotion(frames)
    scores = speaker_contributions(pred, speaker, appropriate, protocol)
    scores["FRCorr_other"] = fr_corr_per_speaker(pred, appropriate[1:] + appropriate[:1])
    return scores


def score(predictions: Predictions, corpus: Corpus, protocol: str = "react2024") -> dict[str, float]:
    """The REACT metrics of ``predictions`` under ``protocol`` and FRCorr_other (see `speaker_scores`)."""
    from listenerctl.metrics.bootstrap import point_estimate

    return {name: point_estimate(terms) for name, terms in speaker_scores(predictions, corpus, protocol).items()}


def summarise(per_speaker: dict[str, dict[str, np.ndarray]], draws: int, seed: int,
              reference: str | None = None) -> dict[str, dict]:
    """Point estimates, bootstrap intervals and paired comparisons of models scored on the same clips.

    ``per_speaker``: model -> `speaker_scores`. Returns ``results`` (model -> metric -> value),
    ``intervals`` (model -> metric -> [low, high], 95 %, empty when ``draws`` is 0) and ``comparisons``
    (model -> metric -> difference, low, high of the model minus ``reference``, every model but the
    reference; empty without one). All models and metrics share the same ``draws`` resamples of clips.
    ``reference`` must be one of the models with ``draws`` above 0 (`check_reference`, before scoring).
    """
    from listenerctl.metrics.bootstrap import interval, paired_difference, point_estimate, resample_counts

    results = {model: {name: point_estimate(terms) for name, terms in scores.items()}
               for model, scores in per_speaker.items()}
    intervals, comparisons = {}, {}
    if draws and per_speaker:  # nothing scored (every model skipped): no clips to resample
        speakers = len(next(iter(next(iter(per_speaker.values())).values())))
        counts = resample_counts(speakers, draws, seed)
        intervals = {model: {name: list(interval(terms, counts)) for name, terms in scores.items()}
                     for model, scores in per_speaker.items()}
        if reference is not None:
            base = per_speaker[reference]
            comparisons = {model: {name: paired_difference(terms, base[name], counts) for name, terms in scores.items()}
                           for model, scores in per_speaker.items() if model != reference}
    return {"results": results, "intervals": intervals, "comparisons": comparisons}


def _metric_names(results: dict[str, dict]) -> list[str]:
    return [m for m in METRIC_ORDER if any(m in r for r in results.values())]


def markdown_table(results: dict[str, dict[str, float]], intervals: dict[str, dict[str, list[float]]] | None = None
                   ) -> str:
    """Rows = models, columns = metrics (arrow = better direction); each value with its [low, high]
    interval where ``intervals`` holds one."""
    names = _metric_names(results)
    arrows = {True: " ↑", False: " ↓", None: ""}
    head = "| model | " + " | ".join(f"{m}{arrows[HIGHER_IS_BETTER[m]]}" for m in names) + " |"
    rule = "|---|" + "---:|" * len(names)

    def cell(model: str, metric: str) -> str:
        bounds = (intervals or {}).get(model, {}).get(metric)
        return f"{results[model][metric]:.4f}" + (f" [{bounds[0]:.4f}, {bounds[1]:.4f}]" if bounds else "")

    rows = [f"| {model} | " + " | ".join(cell(model, m) for m in names) + " |" for model in results]
    return "\n".join([head, rule, *rows]) + "\n"


def comparison_table(comparisons: dict[str, dict[str, dict[str, float]]], reference: str) -> str:
    """Rows = models, columns = metrics: the paired difference model − ``reference`` with its interval;
    ``*`` marks an interval that excludes 0."""
    names = _metric_names(comparisons)
    head = "| model − " + reference + " | " + " | ".join(names) + " |"
    rule = "|---|" + "---:|" * len(names)

    def cell(diff: dict[str, float]) -> str:
        mark = " *" if diff["low"] > 0 or diff["high"] < 0 else ""
        return f"{diff['difference']:+.4f} [{diff['low']:+.4f}, {diff['high']:+.4f}]{mark}"

    rows = [f"| {model} | " + " | ".join(cell(diffs[m]) for m in names) + " |" for model, diffs in comparisons.items()]
    return "\n".join([head, rule, *rows]) + "\n"


def plot_metrics(results: dict[str, dict[str, float]], path: Path,
                 intervals: dict[str, dict[str, list[float]]] | None = None, title: str = "") -> None:
    """One bar chart per metric, models side by side, with interval whiskers where given; ``title``
    above them all (the protocol)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = _metric_names(results)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.4))
    for ax, metric in zip(np.atleast_1d(axes), names):
        models = list(results)
        values = np.array([results[m][metric] for m in models])
        bounds = [(intervals or {}).get(m, {}).get(metric) for m in models]
        whiskers = None
        if all(b is not None for b in bounds):
            whiskers = np.abs(np.array(bounds).T - values)
        ax.bar(range(len(models)), values, yerr=whiskers, capsize=3, color="#4c72b0")
        ax.set_xticks(range(len(models)), models, rotation=45, ha="right", fontsize=8)
        better = {True: "higher is better", False: "lower is better", None: "control"}[HIGHER_IS_BETTER[metric]]
        ax.set_title(f"{metric} ({better})", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_curves(predictions: dict[str, Predictions], corpus: Corpus, path: Path,
                channels: tuple[str, ...] = ("headPitch", "mouthSmileLeft", "eyeBlinkLeft", "browInnerUp")) -> None:
    """Speaker energy / smile vs the first sample of each model on the first test clip, a few channels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from listenerctl.motion import get_spec

    spec, clip = get_spec("arkit58"), corpus.clips[0]
    t = np.arange(eval_frames(corpus)) / corpus.fps
    fig, axes = plt.subplots(len(channels) + 1, 1, figsize=(10, 1.8 * (len(channels) + 1)), sharex=True)
    if clip.cond.audio is not None:
        axes[0].plot(t, clip.cond.audio.energy[:len(t)], color="k", lw=0.8)
        axes[0].fill_between(t, -100, 0, where=clip.cond.audio.vad[:len(t)], color="0.85")
        axes[0].set_ylim(-90, 0)
    axes[0].set_ylabel("speaker dBFS", fontsize=8)
    axes[0].set_title(f"clip {clip.key}: speaker energy (grey = speech) and listener channels, sample 0", fontsize=9)
    for ax, channel in zip(axes[1:], channels):
        ax.plot(t, clip.reactions[0, :len(t), spec.index(channel)], color="0.5", lw=1, label="corpus reaction 0")
        for name, pred in predictions.items():
            ax.plot(t, pred.motion[0, 0, :len(t), spec.index(channel)], lw=1, label=name)
        ax.set_ylabel(channel, fontsize=8)
    axes[-1].set_xlabel("seconds")
    axes[1].legend(fontsize=7, ncol=len(predictions) + 1, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report_caption(protocol: str, speakers: int, draws: int, seed: int) -> str:
    """One line saying which metric definitions and which intervals a table shows."""
    bootstrap = (f"value [95 % bootstrap interval over the {speakers} speaker clips, {draws} draws, seed {seed}]"
                 if draws else "no intervals (bootstrap off)")
    return f"Protocol `{protocol}`: {PROTOCOLS[protocol]}; {bootstrap}."


def write_report(summary: dict[str, dict], predictions: dict[str, Predictions], corpus: Corpus,
                 folder: Path, context: dict) -> None:
    """metrics.json, metrics.md, metrics.png and curves.png under ``folder``. ``summary`` is `summarise`'s;
    ``context`` holds at least protocol, speaker_clips, bootstrap, bootstrap_seed and reference."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_file(folder / "metrics.json", "w") as fh:
        json.dump({**context, **summary}, fh, indent=2)
    with atomic_file(folder / "metrics.md", "w") as fh:
        fh.write(report_markdown(summary, context))
    plot_metrics(summary["results"], folder / "metrics.png", summary["intervals"],
                 f"{context['protocol']}: {PROTOCOLS[context['protocol']]}")
    plot_curves(predictions, corpus, folder / "curves.png")


def report_markdown(summary: dict[str, dict], context: dict) -> str:
    """The caption, the metrics table and, with a reference model, the paired comparison table."""
    text = (report_caption(context["protocol"], context["speaker_clips"], context["bootstrap"],
                           context["bootstrap_seed"]) + "\n\n" + markdown_table(summary["results"], summary["intervals"]))
    if summary["comparisons"]:
        text += ("\nPaired differences against " + context["reference"] + " (same resampled clips for both models; "
                 "* = interval excludes 0):\n\n" + comparison_table(summary["comparisons"], context["reference"]))
    return text
