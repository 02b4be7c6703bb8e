"""Best state path with a cost per change of state (Viterbi), shared by speaker detection and diarization."""

from __future__ import annotations

import numpy as np


def viterbi(emission: np.ndarray, switch_cost: float) -> np.ndarray:
    """The state path [N] int maximising Σ emission[state, n] − switch_cost × (number of changes), from
    emissions [S, N] (−inf = impossible; every column needs one finite entry)."""
    states, steps = emission.shape
    path = np.zeros(steps, np.int64)
    if steps == 0:
        return path
    back = np.zeros((steps, states), np.int64)
    total = emission[:, 0].copy()
    for n in range(1, steps):
        stay, leave_from = total, int(np.argmax(total))
        switch = total[leave_from] - switch_cost
        take_switch = switch > stay
        back[n] = np.where(take_switch, leave_from, np.arange(states))
        total = np.where(take_switch, switch, stay) + emission[:, n]
    path[-1] = int(np.argmax(total))
    for n in range(steps - 1, 0, -1):
        path[n - 1] = back[n, path[n]]
    return path
