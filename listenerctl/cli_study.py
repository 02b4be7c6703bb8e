"""`listenerctl study make|collect`: the user-study kit's commands; the work lives in `listenerctl.study`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich import box
from rich.table import Table

from listenerctl.cli_common import err, friendly_errors, out
from listenerctl.study import DEFAULT_LABELS

study_app = typer.Typer(no_args_is_help=True, help="Blinded listener studies of generated videos: ratings or two-alternative forced choice.")


class Design(str, Enum):
    rating = "rating"
    twoafc = "2afc"


@study_app.command("make")
@friendly_errors
def make(
    results: Annotated[list[Path], typer.Argument(help="`generate`/`batch` output folders (one or several, e.g. one per model).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Stimuli folder to create: stimuli/, key.csv, orders.csv, checks.csv, index.html.")],
    participants: Annotated[int, typer.Option("-p", "--participants", min=1, help="Participants to make orders for (rating: a multiple of the number of models balances fully; 2afc: an even number).")] = 12,
    design: Annotated[Design, typer.Option(help="rating: one video per trial, rated 1..SCALE; 2afc: two videos of one recording side by side, choose one.")] = Design.rating,
    attention_checks: Annotated[int, typer.Option(min=0, help="Attention-check trials per participant (an instruction names the answer), mixed into every order.")] = 0,
    samples_per_condition: Annotated[int, typer.Option(min=1, help="Sample videos per model and recording (sample_00 upwards).")] = 1,
    clip_seconds: Annotated[Optional[float], typer.Option(min=0.1, help="Cut every stimulus to this many seconds (audio kept).")] = None,
    question: Annotated[Optional[str], typer.Option(help="Question shown with each trial (default: the design's own).")] = None,
    scale: Annotated[int, typer.Option(min=2, max=11, help="Rating points (1..SCALE), rating design.")] = 7,
    low_label: Annotated[str, typer.Option(help="Meaning of rating 1.")] = DEFAULT_LABELS[0],
    high_label: Annotated[str, typer.Option(help="Meaning of the highest rating.")] = DEFAULT_LABELS[1],
    seed: Annotated[int, typer.Option(help="Seed of the blinded names, the orders and the checks.")] = 0,
) -> None:
    """Copy chosen videos under blinded names, write the key, counterbalanced orders and the study page."""
    from listenerctl.study import make_study

    plan = make_study(results, output, participants, samples_per_condition, clip_seconds, question, scale,
                      (low_label, high_label), seed, design.value, attention_checks)
    for note in plan.notes:
        err.print(f"note: {note}")
    trials = len(next(iter(plan.orders.values())))
    out.print(f"{design.value} study: {len(plan.stimuli)} stimuli ({len(plan.models)} models × {len(plan.recordings)} "
              f"recordings × {samples_per_condition} samples), {trials} trials each ({attention_checks} attention "
              f"checks), {participants} participants → {output}/")
    out.print(f"open {output / 'index.html'}?participant=1 (keep key.csv and checks.csv away from participants)")


def _interval(e) -> str:
    return f"{e.value:.2f} [{e.low:.2f}, {e.high:.2f}]"


def _p(p: float, p_holm: float) -> str:
    return f"{p:.3f} ({p_holm:.3f})"


@study_app.command("collect")
@friendly_errors
def collect(
    answers: Annotated[list[Path], typer.Argument(help="Answer CSVs downloaded from the study page.")],
    key: Annotated[Path, typer.Option("--key", help="key.csv written by `study make` (study.json, orders.csv and checks.csv beside it are read too).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for trials.csv, participants.csv, conditions.csv, comparisons.csv, summary.json, plot.png.")] = Path("study_results"),
    allow_missing: Annotated[bool, typer.Option("--allow-missing", help="Accept participants who are absent or did not finish.")] = False,
    max_failed_checks: Annotated[int, typer.Option(min=0, help="Exclude a participant who fails more than this many attention checks.")] = 0,
    bootstrap: Annotated[int, typer.Option(min=100, help="Bootstrap replicates (participants and recordings resampled).")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
) -> None:
    """Merge answer files, un-blind them, apply attention checks; intervals, paired tests and a plot."""
    from listenerctl.study_analysis import analyse, write_outputs
    from listenerctl.study_collect import read_answers

    collected = read_answers(answers, key, allow_missing, max_failed_checks)
    analysis = analyse(collected, bootstrap, seed)
    write_outputs(analysis, output)
    out.print(f"{collected.design} study {collected.study['study']}: {len(analysis.participants)} participants "
              f"analysed; {collected.rule}.")
    if collected.excluded:
        out.print(f"excluded (failed attention checks): {', '.join(collected.excluded)}")
    if collected.incomplete:
        out.print(f"absent or incomplete: {', '.join(collected.incomplete)}")
    if collected.design == "rating":
        table = Table("model", "mean rating [95 % CI]", "n", title="ratings per model", box=box.SIMPLE)
        for c in analysis.conditions:
            table.add_row(c.model, _interval(c.mean), str(c.ratings))
        pairs = Table("a − b", "difference [95 % CI]", "d_z", "p (Holm)", "", box=box.SIMPLE,
                      title="paired comparisons (a − b, per participant × recording)")
        for c in analysis.comparisons:
            pairs.add_row(f"{c.a} − {c.b}", _interval(c.difference), f"{c.d_z:.2f}", _p(c.difference.p, c.p_holm),
                          "significant" if c.significant else "")
    else:
        table = Table("model", "win share [95 % CI]", "p vs 50 %", title="share of trials each model was chosen",
                      box=box.SIMPLE)
        for model, e in analysis.conditions.items():
            table.add_row(model, _interval(e), f"{e.p:.4f}")
        pairs = Table("a over b", "share [95 % CI]", "h", "p (Holm)", "", box=box.SIMPLE,
                      title="preference per pair: share of trials a was chosen (test against 50 %)")
        for c in analysis.comparisons:
            pairs.add_row(f"{c.a} over {c.b}", _interval(c.share), f"{c.cohens_h:.2f}", _p(c.share.p, c.p_holm),
                          "significant" if c.significant else "")
        out.print(f"left video chosen in {_interval(analysis.left_share)} of trials")
    out.print(table)
    out.print(pairs)
    for note in analysis.notes:
        err.print(f"note: {note}")
    out.print(f"results: {output}/ (bootstrap {bootstrap} replicates over participants and recordings, seed {seed})")
