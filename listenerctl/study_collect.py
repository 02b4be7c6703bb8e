"""User-study kit, second half: read the study page's answer files back, check them, apply the attention checks.

`read_answers` takes the CSVs the page saved and the study folder `study make` wrote (key.csv with
study.json, orders.csv and checks.csv beside it) and returns one un-blinded row per answered trial plus each
participant's attention-check record. Every problem in the files is one sentence naming file and line.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from listenerctl.errors import ListenerctlError
from listenerctl.study import CHECK_FIELDS, KEY_FIELDS, ORDER_FIELDS

ANSWER_FIELDS = {"rating": ("participant", "study", "trial", "position", "rating", "response_ms"),
                 "2afc": ("participant", "study", "trial", "position", "left", "right", "choice", "response_ms")}
TRIAL_FIELDS = {"rating": ("participant", "position", "trial", "recording", "sample", "model", "rating",
                           "response_ms", "excluded"),
                "2afc": ("participant", "position", "trial", "recording", "sample", "left", "right", "left_model",
                         "right_model", "choice", "chosen_model", "response_ms", "excluded")}


@dataclass(frozen=True)
class CheckRecord:
    """One participant's attention checks: how many were answered, which were failed, and the verdict."""

    participant: str
    answered: int
    failed: list[str]
    excluded: bool


@dataclass(frozen=True)
class Answers:
    """Everything collected: ``trials`` holds one dict per answered real trial (fields `TRIAL_FIELDS`[design])."""

    design: str
    study: dict
    models: list[str]
    recordings: list[str]
    trials: list[dict]
    checks: list[CheckRecord]
    incomplete: list[str]
    rule: str

    @property
    def excluded(self) -> list[str]:
        return [c.participant for c in self.checks if c.excluded]


def read_csv(path: Path, fields: tuple[str, ...], hint: str = "") -> list[tuple[int, dict]]:
    """(line number, row) for every row of ``path``, which must have ``fields`` and well-formed rows."""
    if not path.is_file():
        raise ListenerctlError(f"file not found: {path}")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [f for f in fields if f not in (reader.fieldnames or [])]
        if missing:
            raise ListenerctlError(f"{path} lacks the column(s) {', '.join(missing)}{hint}.")
        rows = []
        for row in reader:
            if None in row or any(row[f] is None for f in fields):
                raise ListenerctlError(f"{path} line {reader.line_num} is malformed: it has "
                                       f"{'more' if None in row else 'fewer'} fields than the header.")
            rows.append((reader.line_num, {f: row[f].strip() for f in fields}))
        return rows


def load_study(key: Path) -> tuple[dict, dict[str, dict], dict[str, dict[str, tuple[str, ...]]], dict[str, dict]]:
    """study.json, key rows by stimulus, each participant's trial → videos, and check rows by trial id."""
    folder = key.parent
    study_path = folder / "study.json"
    if not study_path.is_file():
        raise ListenerctlError(f"{study_path} not found; --key must be the key.csv inside a folder `study make` wrote.")
    study = json.loads(study_path.read_text())
    if "study" not in study or "design" not in study:
        raise ListenerctlError(f"{study_path} was written by an older `study make` without a study id and design; "
                               "make the study again.")
    stimuli = {row["stimulus"]: row for _, row in read_csv(key, KEY_FIELDS)}
    orders: dict[str, dict[str, tuple[str, ...]]] = defaultdict(dict)
    for _, row in read_csv(folder / "orders.csv", ORDER_FIELDS):
        orders[row["participant"]][row["trial"]] = tuple(row["videos"].split())
    checks = {row["trial"]: row for _, row in read_csv(folder / "checks.csv", CHECK_FIELDS)}
    return study, stimuli, dict(orders), checks


def read_answers(files: list[Path], key: Path, allow_missing: bool = False, max_failed_checks: int = 0) -> Answers:
    """Merge the page's answer files for the study of ``key``, un-blind them and apply the attention checks.

    Checks: each row belongs to this study (its study id), its participant and trial are in orders.csv with
    the same videos, no trial is answered twice, answers are valid (a whole rating on the scale, or left /
    right), and (unless ``allow_missing``) every participant answered every trial. A participant failing
    more than ``max_failed_checks`` attention checks is excluded (their rows stay, marked ``excluded``).
    """
    study, stimuli, orders, checks = load_study(key)
    design = study["design"]
    other = "2afc" if design == "rating" else "rating"
    hint = f" (is it from a {other} study? {key} belongs to a {design} study)"
    trials: list[dict] = []
    check_answers: dict[str, dict[str, str]] = defaultdict(dict)
    seen: dict[tuple[str, str], Path] = {}
    for path in files:
        for line, row in read_csv(path, ANSWER_FIELDS[design], hint):
            where = f"{path} line {line}"
            participant, trial = row["participant"], row["trial"]
            if row["study"] != study["study"]:
                raise ListenerctlError(f"{where}: the answers are for study {row['study']!r}, but {key} belongs to "
                                       f"study {study['study']!r}; use the key of the study that made them.")
            if participant not in orders:
                raise ListenerctlError(f"{where}: participant {participant!r} is not in {key.parent / 'orders.csv'}.")
            videos = orders[participant].get(trial)
            if videos is None or (design == "2afc" and videos != (row["left"], row["right"])):
                showing = f" showing {row['left']} | {row['right']}" if design == "2afc" else ""
                raise ListenerctlError(f"{where}: trial {trial}{showing} is not in participant {participant}'s order.")
            if (participant, trial) in seen:
                raise ListenerctlError(f"{where}: participant {participant} answered trial {trial} twice (also in "
                                       f"{seen[participant, trial]}).")
            seen[participant, trial] = path
            answer = _valid_answer(row, design, study["scale"], where)
            if not row["position"].isdigit():
                raise ListenerctlError(f"{where}: position {row['position']!r} is not a whole number.")
            if trial in checks:
                check_answers[participant][trial] = answer
                continue
            trials.append(_unblind(row, answer, design, stimuli))
    if not trials:
        raise ListenerctlError("the answer files hold no answers to real trials.")
    incomplete = _incomplete(orders, seen, allow_missing)
    records = []
    for p in sorted({p for p, _ in seen}, key=participant_order):
        failed = sorted(t for t, a in check_answers[p].items() if a != checks[t]["expected"])
        records.append(CheckRecord(p, len(check_answers[p]), failed, len(failed) > max_failed_checks))
    excluded = {r.participant for r in records if r.excluded}
    for row in trials:
        row["excluded"] = int(row["participant"] in excluded)
    trials.sort(key=lambda r: (participant_order(r["participant"]), int(r["position"])))
    rule = (f"a participant who fails more than {max_failed_checks} of the {len(checks)} attention checks is "
            "excluded" if checks else "no attention checks in this study; nobody is excluded")
    return Answers(design, study, study["models"], study["recordings"], trials, records, incomplete, rule)


def _valid_answer(row: dict, design: str, scale: int, where: str) -> str:
    """The row's answer as text ('1'..'scale' or 'left'/'right'), or one sentence saying what is wrong."""
    if design == "2afc":
        if row["choice"] not in ("left", "right"):
            raise ListenerctlError(f"{where}: choice {row['choice']!r} is neither 'left' nor 'right'.")
        return row["choice"]
    if not row["rating"].isdigit():
        raise ListenerctlError(f"{where}: rating {row['rating']!r} is not a whole number.")
    if not 1 <= int(row["rating"]) <= scale:
        raise ListenerctlError(f"{where}: rating {row['rating']} is outside the study's scale 1–{scale}.")
    return str(int(row["rating"]))


def _unblind(row: dict, answer: str, design: str, stimuli: dict[str, dict]) -> dict:
    """The trial row with recording, sample and model(s) from the key."""
    base = {"participant": row["participant"], "position": int(row["position"]), "trial": row["trial"],
            "response_ms": row["response_ms"]}
    if design == "rating":
        stim = stimuli[row["trial"]]
        return {**base, "recording": stim["recording"], "sample": stim["sample"], "model": stim["model"],
                "rating": int(answer)}
    left, right = stimuli[row["left"]], stimuli[row["right"]]
    return {**base, "recording": left["recording"], "sample": left["sample"], "left": row["left"],
            "right": row["right"], "left_model": left["model"], "right_model": right["model"], "choice": answer,
            "chosen_model": (left if answer == "left" else right)["model"]}


def _incomplete(orders: dict[str, dict], seen: dict[tuple[str, str], Path], allow_missing: bool) -> list[str]:
    """Participants of orders.csv who are absent or did not answer every trial; an error unless allowed."""
    answered: dict[str, int] = defaultdict(int)
    for participant, _ in seen:
        answered[participant] += 1
    absent = [p for p in orders if p not in answered]
    short = [p for p in orders if 0 < answered[p] < len(orders[p])]
    if not allow_missing and absent:
        raise ListenerctlError(f"no answers from participant(s) {', '.join(absent)} of orders.csv; add their files "
                               "or pass --allow-missing.")
    if not allow_missing and short:
        p = short[0]
        raise ListenerctlError(f"participant {p} answered {answered[p]} of the {len(orders[p])} trials in their "
                               "order; add the missing answers or pass --allow-missing.")
    return sorted(absent + short, key=participant_order)


def participant_order(participant: str) -> tuple[int, str]:
    """Sort key: numeric ids by value ('2' before '10'), then any others by name."""
    return (int(participant), "") if participant.isdigit() else (1 << 62, participant)
