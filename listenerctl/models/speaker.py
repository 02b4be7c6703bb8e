"""The speaker's conditioning as the arrays / tensors the learned listeners (lbd, difflistener, sfms) take:
audio features [T, 123] (`AudioFeatures.matrix`) and face [T, 83] (arkit58 then emotion25)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from listenerctl.conditioning import Conditioning

def speaker_arrays(cond: Conditioning) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The speaker's audio features [T, 123] and face [T, 83] (arkit58 + emotion25) as float32, or None."""
    audio = None if cond.audio is None else cond.audio.matrix()
    face = None if cond.face is None else np.concatenate(
        [np.asarray(cond.face.arkit, np.float32), np.asarray(cond.face.emotion, np.float32)], axis=1)
    return audio, face


def speaker_tensors(cond: Conditioning, device: torch.device | str) -> tuple[Tensor | None, Tensor | None]:
    """`speaker_arrays` as tensors on ``device``: audio [T, 123] and face [T, 83] float32, or None."""
    return tuple(None if x is None else torch.from_numpy(x).to(device) for x in speaker_arrays(cond))
