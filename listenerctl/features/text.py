"""Transcript embeddings (DESIGN §4, features.text): timed transcripts → text-encoder embeddings per frame.

A transcript is a list of timed units — words when the file times words, else its segments — read from
SubRip (.srt), WebVTT (.vtt) or JSON (.json: a list of {"start", "end", "text"} objects in seconds, or
Whisper's {"segments": [...]} whose segments may hold timed "words"). Each unit's text is embedded once
by a BERT-style encoder loaded from a local folder through `transformers` (never downloaded): the mean of
its last hidden states over the unit's tokens. Frames map to the unit being spoken at their centre.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from listenerctl.conditioning import TextFeatures
from listenerctl.errors import ListenerctlError
from listenerctl.features.pretrained import load_local_model

TRANSCRIPT_SUFFIXES = (".srt", ".vtt", ".json")
EMBED_BATCH = 64                      # units per encoder call
MAX_UNIT_TOKENS = 128                 # a unit's tokens past this are cut (segments are a few seconds)
_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})")
_CUE = re.compile(rf"^\s*({_TIME.pattern})\s*-->\s*({_TIME.pattern})")
_TAG = re.compile(r"<[^>]*>")


@dataclass(frozen=True)
class TranscriptUnit:
    """A word or segment said from ``start`` to ``end`` (seconds from the start of the recording)."""

    start: float
    end: float
    text: str


def _seconds(stamp: str) -> float:
    hours, minutes, seconds, fraction = _TIME.fullmatch(stamp.strip()).groups()
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(fraction.ljust(3, "0")) / 1000


def _read_cues(path: Path, text: str) -> list[TranscriptUnit]:
    """SubRip / WebVTT cues: a 'start --> end' line, then text lines up to a blank line."""
    units, lines = [], text.replace("\r\n", "\n").split("\n")
    for i, line in enumerate(lines):
        match = _CUE.match(line)
        if match is None:
            continue
        body = []
        for follow in lines[i + 1:]:
            if not follow.strip():
                break
            body.append(_TAG.sub("", follow).strip())
        units.append(TranscriptUnit(_seconds(match.group(1)), _seconds(match.group(6)), " ".join(body)))
    return units


def _read_json(path: Path, text: str) -> list[TranscriptUnit]:
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ListenerctlError(f"transcript {path} is not valid JSON ({error}).") from None
    segments = data.get("segments") if isinstance(data, dict) else data
    if not isinstance(segments, list):
        raise ListenerctlError(f"transcript {path} holds neither a list of segments nor {{\"segments\": [...]}}.")
    units = []
    try:
        for segment in segments:
            words = segment.get("words") or []
            for part in words if words and all("start" in w and "end" in w for w in words) else [segment]:
                units.append(TranscriptUnit(float(part["start"]), float(part["end"]),
                                            str(part.get("text", part.get("word", ""))).strip()))
    except (AttributeError, KeyError, TypeError, ValueError):
        raise ListenerctlError(f"transcript {path} has a segment without numeric start, end and text; each needs "
                               "{\"start\": s, \"end\": s, \"text\": ...}.") from None
    return units


def read_transcript(path: Path) -> list[TranscriptUnit]:
    """The timed units of the transcript at ``path`` (.srt, .vtt or .json), sorted by start; one sentence
    when the file is missing, of another kind, holds no timed text or has a unit that ends before it starts."""
    path = Path(path)
    if path.suffix.lower() not in TRANSCRIPT_SUFFIXES:
        raise ListenerctlError(f"transcript {path.name} is not .srt, .vtt or .json; a transcript needs timings.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ListenerctlError(f"transcript not found: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ListenerctlError(f"transcript {path} could not be read ({error}).") from None
    units = (_read_json if path.suffix.lower() == ".json" else _read_cues)(path, text)
    units = [u for u in units if u.text]
    if not units:
        raise ListenerctlError(f"transcript {path} holds no timed text.")
    for unit in units:
        if unit.end < unit.start or unit.start < 0:
            raise ListenerctlError(f"transcript {path}: '{unit.text[:40]}' runs from {unit.start:.3f} s to "
                                   f"{unit.end:.3f} s; times must be non-negative and end after start.")
    return sorted(units, key=lambda u: u.start)


def sidecar_transcript(media: Path) -> Path | None:
    """The transcript beside ``media`` with its stem (talk.mp4 → talk.srt, talk.vtt or talk.json), if any."""
    for suffix in TRANSCRIPT_SUFFIXES:
        candidate = media.with_suffix(suffix)
        if candidate.is_file() and candidate != media:
            return candidate
    return None


class TextEncoder:
    """A BERT-style encoder from the local folder ``folder`` (tokenizer + model files, as saved by
    `transformers`' save_pretrained). ``embed(texts)`` → [N, E] float32 mean-pooled last hidden states."""

    def __init__(self, folder: str | Path, device: str = "cpu"):
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise ListenerctlError(f"the text encoder folder {folder} does not exist.")
        self.tokenizer, self.model = load_local_model(folder, "AutoTokenizer", "text encoder", device,
                                                      " (pip install 'listenerctl[text]')")
        self.folder = folder
        self.device = device
        self.dim = int(self.model.config.hidden_size)

    def embed(self, texts: list[str]) -> np.ndarray:
        """[len(texts), E] float32: per text, the mean of the encoder's last hidden states over its tokens."""
        import torch

        rows = []
        with torch.no_grad():
            for start in range(0, len(texts), EMBED_BATCH):
                batch = self.tokenizer(texts[start:start + EMBED_BATCH], padding=True, truncation=True,
                                       max_length=MAX_UNIT_TOKENS, return_tensors="pt").to(self.device)
                hidden = self.model(**batch).last_hidden_state.float()
                mask = batch["attention_mask"][..., None].float()
                rows.append(((hidden * mask).sum(1) / mask.sum(1).clamp_min(1)).cpu().numpy())
        return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, self.dim), np.float32)


@lru_cache(maxsize=2)
def load_text_encoder(folder: str, device: str = "cpu") -> TextEncoder:
    """`TextEncoder` for ``folder``, loaded once per process (batch items share it)."""
    return TextEncoder(folder, device)


def text_features(units: list[TranscriptUnit], encoder: TextEncoder, fps: float, num_frames: int) -> TextFeatures:
    """Embeddings of ``units`` and, per frame of ``num_frames`` at ``fps``, the unit spoken at the frame's
    centre (the later one where units overlap; −1 between them)."""
    centres = (np.arange(num_frames) + 0.5) / fps
    unit = np.full(num_frames, -1, np.int32)
    for index, u in enumerate(units):
        unit[(centres >= u.start) & (centres < u.end)] = index
    return TextFeatures(encoder.embed([u.text for u in units]), unit)
