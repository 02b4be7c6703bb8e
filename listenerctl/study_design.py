"""Trial orders of a listener study: what each participant sees, in which order, and the attention checks.

A trial shows one video (rating design) or two videos side by side (two-alternative forced choice, "2afc").
Stimuli come in cells: one (recording, sample) with a blinded stimulus name per model.

- rating: the models follow a Latin square (a balanced Williams square when their number is even), so across
  each square's participants every model appears once at every position of a block; a block shows one cell
  under every model, and the blocks' order is shuffled per participant.
- 2afc: every cell × every unordered pair of models is one trial, so all pairs are shown equally often for
  every recording. Which model of a pair appears on the left is drawn per trial with exactly half the trials
  each way, and flipped for every second participant: each trial is left/right balanced over each pair of
  participants, and each participant sees half of the trials one way round. Trials are shuffled per participant.
- attention checks: N extra trials showing real stimuli with an instruction that names the answer ("please
  rate this video 2", "please choose the left video"), the same N for every participant, each inserted at a
  random position (never the first) of every participant's order.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

DESIGNS = ("rating", "2afc")


@dataclass(frozen=True)
class Trial:
    """One screen of the study: ``trial`` id, ``videos`` (stimulus names, left first) and, for an attention
    check, the ``instruction`` shown instead of the question and the ``expected`` answer (a rating or left/right)."""

    trial: str
    videos: tuple[str, ...]
    instruction: str = ""
    expected: str = ""

    @property
    def is_check(self) -> bool:
        return bool(self.expected)


def latin_square(n: int) -> np.ndarray:
    """[n, n] rows of condition indices, each index once per row and once per column.

    Even n: balanced Williams square (each condition follows every other exactly once); odd n: cyclic square.
    """
    if n % 2:
        first = np.arange(n)
    else:
        first = np.empty(n, int)
        first[0::2] = np.arange(n // 2) * -1 % n  # 0, n-1, n-2, ...
        first[1::2] = np.arange(1, n // 2 + 1)    # 1, 2, 3, ...
    return (first[None, :] + np.arange(n)[:, None]) % n


def rating_orders(cells: dict[tuple[str, int], dict[str, str]], models: list[str], participants: int,
                  rng: np.random.Generator) -> dict[str, list[Trial]]:
    """Participant id ('1'...) → one-video trials (trial id = stimulus name) in presentation order.

    ``cells`` maps (recording, sample) → model → stimulus. Participant p shows the models of every block in
    the order of row p mod M of `latin_square`(M); the blocks come in an order shuffled per participant.
    """
    square = latin_square(len(models))
    model_of = rng.permutation(len(models))  # which model each square index stands for, drawn per study
    blocks = sorted(cells)
    orders = {}
    for p in range(participants):
        row = [models[model_of[i]] for i in square[p % len(models)]]
        orders[str(p + 1)] = [Trial(cells[blocks[b]][m], (cells[blocks[b]][m],))
                              for b in rng.permutation(len(blocks)) for m in row]
    return orders


def pair_orders(cells: dict[tuple[str, int], dict[str, str]], models: list[str], participants: int,
                rng: np.random.Generator) -> dict[str, list[Trial]]:
    """Participant id → two-video trials 'pair_001'... (every cell × model pair), left/right counterbalanced."""
    pairs = [(cells[cell][a], cells[cell][b]) for cell in sorted(cells) for a, b in combinations(models, 2)]
    flip = rng.permutation(np.arange(len(pairs)) % 2).astype(bool)  # exactly half the trials start flipped
    orders = {}
    for p in range(participants):
        trials = [Trial(f"pair_{t + 1:03d}", (b, a) if flip[t] ^ bool(p % 2) else (a, b))
                  for t, (a, b) in enumerate(pairs)]
        orders[str(p + 1)] = [trials[t] for t in rng.permutation(len(trials))]
    return orders


def attention_checks(count: int, design: str, cells: dict[tuple[str, int], dict[str, str]], scale: int,
                     rng: np.random.Generator) -> list[Trial]:
    """``count`` check trials 'check_1'...: real stimuli (two of one cell in 2afc), an instruction naming the answer."""
    blocks = sorted(cells)
    first_side = int(rng.integers(2))  # 2afc: the checks' expected sides alternate from a random start
    checks = []
    for c in range(count):
        names = list(cells[blocks[rng.integers(len(blocks))]].values())
        if design == "rating":
            answer = str(int(rng.integers(1, scale + 1)))
            checks.append(Trial(f"check_{c + 1}", (names[rng.integers(len(names))],),
                                f"Attention check: please rate this video {answer}.", answer))
        else:
            side = ("left", "right")[(c + first_side) % 2]
            videos = tuple(names[i] for i in rng.permutation(len(names))[:2])
            checks.append(Trial(f"check_{c + 1}", videos,
                                f"Attention check: please choose the {side.upper()} video.", side))
    return checks


def insert_checks(orders: dict[str, list[Trial]], checks: list[Trial],
                  rng: np.random.Generator) -> dict[str, list[Trial]]:
    """Every participant's order with ``checks`` placed at random positions other than the first (the trials'
    order kept; the checks in a random order per participant)."""
    if not checks:
        return orders
    mixed = {}
    for participant, trials in orders.items():
        total = len(trials) + len(checks)
        slots = set(rng.choice(np.arange(1, total), size=len(checks), replace=False).tolist())
        pending, checks_left = iter(trials), iter(checks[i] for i in rng.permutation(len(checks)))
        mixed[participant] = [next(checks_left) if i in slots else next(pending) for i in range(total)]
    return mixed
