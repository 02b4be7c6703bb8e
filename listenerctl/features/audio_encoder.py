"""A pretrained speech encoder (HuBERT or wav2vec2) from a local folder as per-frame audio features.

``spec`` strings name one: "none", "hubert:/folder" or "wav2vec2:/folder" (`parse_audio_encoder`); the
weights are read through `pretrained.load_local_model` and never downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from listenerctl.errors import ListenerctlError
from listenerctl.features.audio import SAMPLE_RATE
from listenerctl.features.pretrained import load_local_model
from listenerctl.motion import fit_length, resample

ENCODER_KINDS = ("hubert", "wav2vec2")
ENCODER_CHUNK_S = 20.0   # audio seconds per pretrained-encoder forward


def parse_audio_encoder(spec: str) -> tuple[str, Path] | None:
    """"none" → None; "hubert:/folder" or "wav2vec2:/folder" → (kind, folder), checked to exist."""
    if spec == "none":
        return None
    kind, sep, folder = spec.partition(":")
    if not sep or kind not in ENCODER_KINDS or not folder:
        raise ListenerctlError(f"audio encoder {spec!r} is not understood; use 'none', 'hubert:/folder' "
                               f"or 'wav2vec2:/folder'.")
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise ListenerctlError(f"the {kind} audio encoder folder {path} does not exist.")
    return kind, path


class PretrainedAudioEncoder:
    """HuBERT / wav2vec2 weights from a local folder through `transformers` (never downloaded).

    ``__call__(samples [N] 16 kHz, num_frames) -> [num_frames, hidden]`` last-layer features at ``fps``.
    """

    def __init__(self, kind: str, folder: Path, fps: float, device: str = "cpu"):
        self.extractor, self.model = load_local_model(
            folder, "AutoFeatureExtractor", f"{kind} audio encoder", device,
            " (pip install transformers), or use audio_encoder='none'")
        self.fps = fps
        self.device = device
        self.dim = int(self.model.config.hidden_size)

    @torch.no_grad()
    def __call__(self, samples: np.ndarray, num_frames: int) -> np.ndarray:
        chunk = int(ENCODER_CHUNK_S * SAMPLE_RATE)
        parts = []
        for start in range(0, max(len(samples), 1), chunk):
            piece = samples[start:start + chunk]
            inputs = self.extractor(piece, sampling_rate=SAMPLE_RATE, return_tensors="pt")
            hidden = self.model(inputs["input_values"].to(self.device)).last_hidden_state[0].float().cpu().numpy()
            parts.append(resample(hidden, len(hidden) * SAMPLE_RATE / max(len(piece), 1), self.fps, axis=0))
        return fit_length(np.concatenate(parts), num_frames)
