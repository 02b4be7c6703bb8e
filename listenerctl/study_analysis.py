"""Analyse collected study answers (`listenerctl.study_collect.Answers`) and write the result folder.

    OUT/trials.csv         every answered real trial, un-blinded, with an ``excluded`` flag
    OUT/participants.csv   per participant: trials answered, attention checks answered and failed, excluded
    OUT/conditions.csv     rating: mean rating per model (recording "all", with 95 % interval) and per model ×
                           recording (mean, sd, n);
                           2afc: each model's win share (95 % interval, p against 50 %)
    OUT/comparisons.csv    rating: paired differences per model pair; 2afc: preference share per pair
    OUT/summary.json       all of the above plus design, exclusion rule, bootstrap settings and method
    OUT/plot.png           rating: individual ratings with means and intervals; 2afc: shares with intervals

Statistics: `listenerctl.study_stats` (two-way bootstrap over participants and recordings, Holm).
Only participants who pass the attention checks are analysed. Each file is written atomically.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from listenerctl.atomic import atomic_file
from listenerctl.errors import ListenerctlError
from listenerctl.study_collect import TRIAL_FIELDS, Answers, participant_order
from listenerctl.study_stats import (Comparison, ConditionSummary, Estimate, Preference, Resamples,
                                     preference_statistics, rating_statistics, share_statistics)

FEW_RECORDINGS, FEW_PARTICIPANTS = 5, 10
METHOD = ("95 % percentile intervals from a two-way bootstrap (participants and recordings resampled "
          "independently, with replacement; {bootstrap} replicates, seed {seed}); two-sided bootstrap p-values "
          "(p < 0.05 when the interval excludes the null value, up to one replicate), Holm-adjusted over all pairs; "
          "rating design: paired differences per participant × recording, Cohen's d_z over participants' mean "
          "differences; 2afc: preference shares tested against 50 %, Cohen's h.")


@dataclass(frozen=True)
class Analysis:
    """What `analyse` found: ``conditions`` and ``comparisons`` per design, plus who was analysed and notes."""

    answers: Answers
    participants: list[str]
    conditions: list[ConditionSummary] | dict[str, Estimate]
    comparisons: list[Comparison] | list[Preference]
    per_recording: list[dict]
    left_share: Estimate | None
    bootstrap: int
    seed: int
    notes: list[str]


def analyse(answers: Answers, bootstrap: int = 2000, seed: int = 0) -> Analysis:
    """Statistics over the included participants' trials (see module docstring)."""
    rows = [r for r in answers.trials if not r["excluded"]]
    if not rows:
        raise ListenerctlError("every participant was excluded by the attention checks; nothing is left to analyse.")
    if bootstrap < 100:
        raise ListenerctlError(f"--bootstrap {bootstrap} is too few replicates for a 95 % interval; use at least 100.")
    participants = sorted({r["participant"] for r in rows}, key=participant_order)
    p_index = {p: i for i, p in enumerate(participants)}
    r_index = {r: i for i, r in enumerate(answers.recordings)}
    m_index = {m: i for i, m in enumerate(answers.models)}
    participant = np.array([p_index[r["participant"]] for r in rows])
    recording = np.array([r_index[r["recording"]] for r in rows])
    resamples = Resamples.draw(len(participants), len(answers.recordings), bootstrap, seed)
    notes = []
    if len(answers.recordings) < FEW_RECORDINGS or len(participants) < FEW_PARTICIPANTS:
        notes.append(f"only {len(participants)} participants and {len(answers.recordings)} recordings: a bootstrap "
                     f"over fewer than {FEW_PARTICIPANTS} participants or {FEW_RECORDINGS} recordings gives intervals "
                     "that are too narrow; treat them as rough.")
    if answers.design == "rating":
        model = np.array([m_index[r["model"]] for r in rows])
        rating = np.array([r["rating"] for r in rows], float)
        conditions, comparisons = rating_statistics(participant, recording, model, rating, answers.models, resamples)
        per_recording = []  # plain descriptives per model, over all recordings ("all") and per recording
        for m, name in enumerate(answers.models):
            for i, rec in [(None, "all"), *enumerate(answers.recordings)]:
                cell = (model == m) & ((recording == i) if i is not None else True)
                if cell.any():
                    values = rating[cell]
                    per_recording.append({"model": name, "recording": rec, "mean": float(values.mean()),
                                          "sd": float(values.std(ddof=1)) if values.size > 1 else float("nan"),
                                          "n": int(values.size), "participants": np.unique(participant[cell]).size})
        return Analysis(answers, participants, conditions, comparisons, per_recording, None, bootstrap, seed, notes)
    left = np.array([m_index[r["left_model"]] for r in rows])
    right = np.array([m_index[r["right_model"]] for r in rows])
    chose_left = np.array([r["choice"] == "left" for r in rows])
    preferences, win_share = preference_statistics(participant, recording, left, right, chose_left, answers.models,
                                                   resamples)
    left_share = share_statistics(participant, recording, chose_left, resamples)
    if left_share.p < 0.05:
        notes.append(f"participants chose the left video in {left_share.value:.0%} of trials (p = {left_share.p:.3f}): "
                     "a side bias, balanced out by the counterbalanced sides but worth reporting.")
    return Analysis(answers, participants, win_share, preferences, [], left_share, bootstrap, seed, notes)


def _estimate_fields(name: str, e: Estimate, test: bool = True) -> dict:
    fields = {name: e.value, "ci_low": e.low, "ci_high": e.high}
    return {**fields, "p": e.p} if test else fields


def condition_rows(analysis: Analysis) -> list[dict]:
    """Rows of conditions.csv (see module docstring)."""
    if analysis.answers.design == "rating":
        interval = {c.model: c.mean for c in analysis.conditions}  # over all recordings only
        rows = [{"model": r["model"], "recording": r["recording"], "mean": r["mean"],
                 "ci_low": interval[r["model"]].low if r["recording"] == "all" else "",
                 "ci_high": interval[r["model"]].high if r["recording"] == "all" else "",
                 "sd": r["sd"], "n": r["n"], "participants": r["participants"]} for r in analysis.per_recording]
        return sorted(rows, key=lambda r: r["recording"] != "all")  # the models' overall rows first
    return [{"model": m, **_estimate_fields("win_share", e)} for m, e in analysis.conditions.items()]


def comparison_rows(analysis: Analysis) -> list[dict]:
    """Rows of comparisons.csv (see module docstring)."""
    if analysis.answers.design == "rating":
        return [{"a": c.a, "b": c.b, **_estimate_fields("mean_difference", c.difference), "d_z": c.d_z,
                 "pairs": c.pairs, "p_holm": c.p_holm, "significant": int(c.significant)} for c in analysis.comparisons]
    return [{"a": c.a, "b": c.b, **_estimate_fields("share_a", c.share), "cohens_h": c.cohens_h, "trials": c.trials,
             "p_holm": c.p_holm, "significant": int(c.significant)} for c in analysis.comparisons]


def participant_rows(analysis: Analysis) -> list[dict]:
    """Rows of participants.csv: one per participant who answered anything."""
    counts: dict[str, int] = {}
    for row in analysis.answers.trials:
        counts[row["participant"]] = counts.get(row["participant"], 0) + 1
    return [{"participant": c.participant, "trials": counts.get(c.participant, 0), "checks_answered": c.answered,
             "checks_failed": " ".join(c.failed), "excluded": int(c.excluded),
             "incomplete": int(c.participant in analysis.answers.incomplete)} for c in analysis.answers.checks]


def summary(analysis: Analysis) -> dict:
    """summary.json's content."""
    a = analysis.answers
    return {"design": a.design, "study": a.study["study"], "models": a.models, "recordings": a.recordings,
            "participants_analysed": analysis.participants, "excluded": a.excluded, "incomplete": a.incomplete,
            "exclusion_rule": a.rule, "bootstrap": analysis.bootstrap, "seed": analysis.seed,
            "method": METHOD.format(bootstrap=analysis.bootstrap, seed=analysis.seed),
            "conditions": condition_rows(analysis), "comparisons": comparison_rows(analysis),
            "left_share": asdict(analysis.left_share) if analysis.left_share else None, "notes": analysis.notes}


def write_outputs(analysis: Analysis, folder: Path) -> list[Path]:
    """Write the files of the module docstring into ``folder`` (created if needed); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    tables = {"trials.csv": (TRIAL_FIELDS[analysis.answers.design], analysis.answers.trials),
              "participants.csv": (None, participant_rows(analysis)),
              "conditions.csv": (None, condition_rows(analysis)),
              "comparisons.csv": (None, comparison_rows(analysis))}
    contents = {name: _csv_text(fields or (list(rows[0]) if rows else []), rows)
                for name, (fields, rows) in tables.items()}
    contents["summary.json"] = json.dumps(_json_safe(summary(analysis)), indent=2, allow_nan=False) + "\n"
    figure = plot(analysis)
    written = []
    for name, text in contents.items():
        with atomic_file(folder / name, "w") as fh:
            fh.write(text)
        written.append(folder / name)
    with atomic_file(folder / "plot.png") as fh:
        figure.savefig(fh, format="png", dpi=120)
    import matplotlib.pyplot as plt

    plt.close(figure)
    written.append(folder / "plot.png")
    return written


def _json_safe(value):
    """``value`` with every NaN float replaced by None (JSON null), so the file is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return None if isinstance(value, float) and np.isnan(value) else value


def _csv_text(fields, rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def plot(analysis: Analysis):
    """A matplotlib Figure: rating — every included rating (jittered dots) with each model's mean and 95 %
    interval; 2afc — each pair's preference share with its interval, each participant's share as dots, 50 % line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in analysis.answers.trials if not r["excluded"]]
    rng = np.random.default_rng(0)  # jitter only
    if analysis.answers.design == "rating":
        scale = analysis.answers.study["scale"]
        fig, ax = plt.subplots(figsize=(max(4.5, 1.6 + 1.2 * len(analysis.conditions)), 4))
        for x, c in enumerate(analysis.conditions):
            values = np.array([r["rating"] for r in rows if r["model"] == c.model], float)
            ax.scatter(x + rng.uniform(-0.25, 0.25, values.size), values + rng.uniform(-0.15, 0.15, values.size),
                       s=8, alpha=0.5, color="0.5", linewidths=0)
            ax.errorbar(x, c.mean.value, [[c.mean.value - c.mean.low], [c.mean.high - c.mean.value]], fmt="o",
                        color="C0", capsize=6, markersize=8, linewidth=2)
        ax.set_xticks(range(len(analysis.conditions)), [c.model for c in analysis.conditions])
        ax.set_yticks(range(1, scale + 1))
        ax.set_ylim(0.5, scale + 0.5)
        ax.set_ylabel(f"rating (1–{scale})")
        ax.set_title("ratings per model\nmean with 95 % interval; grey: individual ratings", fontsize=10)
    else:
        fig, ax = plt.subplots(figsize=(6.5, 1.8 + 0.6 * len(analysis.comparisons)))
        for y, c in enumerate(analysis.comparisons):
            per_participant = []
            for p in analysis.participants:
                mine = [r for r in rows if r["participant"] == p and {r["left_model"], r["right_model"]} == {c.a, c.b}]
                if mine:
                    per_participant.append(np.mean([r["chosen_model"] == c.a for r in mine]))
            ax.scatter(per_participant, y + rng.uniform(-0.2, 0.2, len(per_participant)), s=10, alpha=0.5,
                       color="0.5", linewidths=0)
            ax.errorbar(c.share.value, y, xerr=[[c.share.value - c.share.low], [c.share.high - c.share.value]],
                        fmt="o", color="C0", capsize=6, markersize=8, linewidth=2)
        ax.axvline(0.5, color="0.3", linestyle="--", linewidth=1)
        ax.set_yticks(range(len(analysis.comparisons)), [f"{c.a} over {c.b}" for c in analysis.comparisons])
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(len(analysis.comparisons) - 0.5, -0.5)
        ax.set_xlabel("share of trials in which the first model was chosen")
        ax.set_title("preference per pair\nshare with 95 % interval; grey: each participant's share", fontsize=10)
    fig.tight_layout()
    return fig
