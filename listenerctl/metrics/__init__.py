"""Published evaluation metrics: REACT (`react`), Learning2Listen (`l2l`) and co-speech gesture (`gesture`);
bootstrap intervals over speakers (`bootstrap`).

Every metric takes plain arrays, checks them with `checked` (rank, channel count, finite values) and
computes in float64. Import the module you need, e.g. ``from listenerctl.metrics.react import evaluate_react``.
"""

from __future__ import annotations

import numpy as np

from listenerctl.errors import ListenerctlError


def checked(name: str, array, layout: str, last: int | None = None) -> np.ndarray:
    """``array`` as float64 after checking it matches ``layout`` (e.g. "[N, K, T, 25]").

    The rank is the number of comma-separated axes in ``layout``; ``last`` (if given) is the required
    size of the last axis. Raises `ListenerctlError` for a wrong shape, an empty axis, or NaN/inf
    values (naming how many there are).
    """
    values = np.asarray(array, dtype=np.float64)
    ndim = layout.count(",") + 1
    if values.ndim != ndim or (last is not None and values.shape[-1] != last):
        raise ListenerctlError(f"{name} must have shape {layout}; got shape {values.shape}.")
    if values.size == 0:
        raise ListenerctlError(f"{name} has an empty axis (shape {values.shape}); metrics need data.")
    finite = np.isfinite(values)
    if not finite.all():
        nan = int(np.isnan(values).sum())
        inf = values.size - int(finite.sum()) - nan
        raise ListenerctlError(f"{name} contains {nan} NaN and {inf} infinite values; metrics need finite numbers.")
    return values
