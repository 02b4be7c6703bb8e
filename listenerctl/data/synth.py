"""Build a dyadic training corpus in REACT layout from any folder of speech recordings (DESIGN §8).

For every recording: speaker features from the project's front-end, cut into clips of ``clip_frames``
(REACT: 751 frames = 30 s at 25 fps); for every clip, M listener reactions from the rule-based
listener with M different personalities — these M are the clip's appropriate reactions. Splits are
made by recording, so no speaker recording is in two splits.

Written beside the REACT files:
- ``ROOT/{split}/Speaker_features/<rel>.npz`` — the exact `Conditioning` each speaker clip was made
  from (audio features; face features when the recording has a face; transcript embeddings when built
  with a text encoder and the recording has a transcript beside it), so training needs no re-extraction.
- ``ROOT/corpus.json`` — spec, fps, clip length, M, seeds, and per recording its source and split.

Speaker clips of audio-only recordings store a neutral face (zeros) in 3D_FV_files and say so in
corpus.json (``has_face``); their Speaker_features hold audio only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from listenerctl.atomic import atomic_file
from listenerctl.data.react import SPLITS, write_neighbours, write_react_clip, write_split_csv
from listenerctl.emotion import emotion_from_arkit
from listenerctl.errors import ListenerctlError
from listenerctl.media import load_audio
from listenerctl.models.rules import RuleListener

MEDIA_SUFFIXES = {".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".mp4", ".mov", ".mkv", ".avi", ".webm"}
CLIP_FRAMES = 751
SPLIT_SHARES = {"train": 0.7, "val": 0.15, "test": 0.15}
SPEAKER_FEATURES = "Speaker_features"
CORPUS_CARD = "corpus.json"


@dataclass(frozen=True)
class SynthOptions:
    personalities: int = 10
    clip_frames: int = CLIP_FRAMES
    seed: int = 0


def find_recordings(folders: list[Path]) -> list[Path]:
    """Audio and video files under ``folders`` (recursively), sorted, hidden files skipped."""
    found = []
    for folder in folders:
        if not folder.exists():
            raise ListenerctlError(f"folder not found: {folder}")
        paths = [folder] if folder.is_file() else folder.rglob("*")
        found += [p for p in paths if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES
                  and not any(part.startswith(".") for part in p.parts[len(folder.parts):])]
    return sorted(set(found))


def assign_splits(durations: dict[str, float], seed: int) -> dict[str, str]:
    """Recording → split, filling test, then val, then train to their shares of the total duration.

    Every split gets at least one recording when there are three or more.
    """
    names = sorted(durations)
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    total = sum(durations.values())
    split_of, filled = {}, {s: 0.0 for s in SPLITS}
    for name in order:
        pending = [s for s in ("test", "val") if filled[s] == 0.0 and len(order) - len(split_of) > 1]
        split = next((s for s in pending), None) or next(
            (s for s in ("test", "val") if filled[s] < SPLIT_SHARES[s] * total - durations[name] / 2), "train")
        split_of[name] = split
        filled[split] += durations[name]
    return split_of


def reaction_seed(corpus_seed: int, recording_index: int, clip: int) -> int:
    """Seed of the rule listener for clip ``clip`` of the ``recording_index``-th recording (sorted by key)."""
    return corpus_seed * 1_000_003 + recording_index * 1000 + clip


def _recording_key(path: Path, taken: set[str]) -> str:
    """A clip-path-safe, unique session name for a recording."""
    base = "".join(c if c.isalnum() or c in "-_" else "_" for c in path.stem) or "recording"
    key, n = base, 1
    while key in taken:
        n += 1
        key = f"{base}_{n}"
    taken.add(key)
    return key


def build_corpus(sources: list[Path], root: Path, options: SynthOptions = SynthOptions(),
                 report: Callable[[str], None] = print, text_encoder=None) -> dict:
    """Write the corpus under ``root``; returns the corpus card (also saved as corpus.json). With a
    ``text_encoder`` (`features.text.TextEncoder`), recordings with a transcript beside them keep its
    embeddings in their Speaker_features (the rule listener itself does not read them)."""
    from listenerctl.pipeline import prepare_conditioning

    recordings = find_recordings(sources)
    if not recordings:
        raise ListenerctlError(f"no audio or video files found under {', '.join(map(str, sources))}.")
    listener = RuleListener()
    taken: set[str] = set()
    prepared, skipped = {}, []
    for path in recordings:
        try:
            item = prepare_conditioning(path, text_encoder=text_encoder)
        except ListenerctlError as exc:
            skipped.append({"source": str(path), "reason": str(exc)})
            report(f"skipped {path.name}: {exc}")
            continue
        if item.cond.num_frames < options.clip_frames:
            reason = f"shorter than one clip ({item.cond.num_frames} < {options.clip_frames} frames)"
            skipped.append({"source": str(path), "reason": reason})
            report(f"skipped {path.name}: {reason}")
            continue
        prepared[_recording_key(path, taken)] = (path, item)
    if len(prepared) < 3:
        raise ListenerctlError(f"only {len(prepared)} recordings are long enough for a {options.clip_frames}-frame "
                               "clip; a corpus needs at least 3 (one per split).")
    splits = assign_splits({k: p.cond.num_frames / p.cond.fps for k, (_, p) in prepared.items()}, options.seed)
    rows: dict[str, list[tuple[str, str]]] = {s: [] for s in SPLITS}
    card_recordings = []
    for index, (key, (path, item)) in enumerate(sorted(prepared.items())):
        split, cond = splits[key], item.cond
        has_face = cond.face is not None
        audio = load_audio(path) if cond.audio is not None else None
        clips = cond.num_frames // options.clip_frames
        for c in range(clips):
            start, stop = c * options.clip_frames, (c + 1) * options.clip_frames
            clip = cond.slice(start, stop)
            speaker_rel = f"synth/{key}/speaker/{c:03d}"
            face = clip.face.arkit if has_face else np.zeros((options.clip_frames, 58), np.float32)
            clip_audio = None if audio is None else audio[start * 640:stop * 640]
            write_react_clip(root, split, speaker_rel, face, emotion_from_arkit(face), audio=clip_audio)
            feature_path = root / split / SPEAKER_FEATURES / f"{speaker_rel}.npz"
            feature_path.parent.mkdir(parents=True, exist_ok=True)
            clip.save_npz(feature_path)
            reactions = listener.generate(listener.usable(clip), options.personalities, seed=reaction_seed(options.seed, index, c)).data
            for m, reaction in enumerate(reactions):
                listener_rel = f"synth/{key}/listener_{m:02d}/{c:03d}"
                write_react_clip(root, split, listener_rel, reaction, emotion_from_arkit(reaction))
                rows[split].append((speaker_rel, listener_rel))
        card_recordings.append({"key": key, "source": str(path), "split": split, "clips": clips,
                                "seconds": cond.num_frames / cond.fps, "has_face": has_face,
                                "conditioning": cond.modalities})
        report(f"{path.name}: {clips} clips → {split}")
    for split in SPLITS:
        write_split_csv(root, split, rows[split])
        write_neighbours(root, split, _same_speaker_matrix(rows[split]))
    card = {
        "spec": "arkit58", "fps": 25.0, "clip_frames": options.clip_frames,
        "personalities": options.personalities, "seed": options.seed, "teacher": "rules",
        "text_encoder": None if text_encoder is None else {"folder": str(text_encoder.folder), "dim": text_encoder.dim},
        "splits": {s: {"speaker_clips": len({r[0] for r in rows[s]}), "pairs": len(rows[s]),
                       "speaker_seconds": sum(r["seconds"] for r in card_recordings if r["split"] == s)}
                   for s in SPLITS},
        "recordings": card_recordings, "skipped": skipped,
    }
    with atomic_file(root / CORPUS_CARD, "w") as fh:
        json.dump(card, fh, indent=2)
    return card


def _same_speaker_matrix(rows: list[tuple[str, str]]) -> np.ndarray:
    """[N, N] bool: row i's appropriate listeners are the listener clips of every row with i's speaker clip."""
    speakers = np.array([s for s, _ in rows])
    return speakers[:, None] == speakers[None, :]
