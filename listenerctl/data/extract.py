"""Write a training corpus of real dyads (``listenerctl data extract``), however the tracks were obtained.

Layout under ROOT (what `train` and `evaluate` read, as from `data synth`):

- ``sessions/<key>/`` — one folder per analysed session, published whole (`atomic.staged_dir`): its tracks
  (``tracks.npz``: arkit [P, T, 58], emotion [P, T, 25], found [P, T], talker [T], per audio track its
  features, ``audio_of`` [P] the track heard when each person speaks, thumbnails [P, S, S, 3]),
  ``session.json`` (key, fps, sources, audio sources) and ``contact_sheet.png``. A rerun skips sessions
  whose folder exists.
- ``{split}/`` REACT files per clip (`react.write_react_clip`: speaker and listener arkit58 as 3D_FV_files,
  emotion25, the speaker's audio), ``{split}/Speaker_features/<rel>.npz`` (the speaker's Conditioning),
  ``{split}.csv`` and ``neighbour_emotion_{split}.npy`` (appropriate reactions, `dyads.appropriate_matrix`);
  all three are written in a hidden working folder first and moved in together, without a corpus.json
  until they are all in place.
- ``corpus.json`` (written last) and ``extract_report.json``: per session minutes, people, found share,
  speaking shares, clips kept and dropped (and why), split; skipped sessions and why.

Splits are by session (`synth.assign_splits` over the seconds of kept clips): a session is never in two.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np

from listenerctl.atomic import atomic_file, partial_dir, publish_dir, staged_dir
from listenerctl.conditioning import AudioFeatures, Conditioning, FaceFeatures
from listenerctl.data.dyads import (DyadClip, DyadCut, DyadOptions, Session, appropriate_matrix, cut_dyads,
                                    session_problem, speaker_descriptor)
from listenerctl.data.react import (SAMPLES_PER_FRAME, SPLITS, neighbours_path, split_csv_path, write_neighbours,
                                   write_react_clip, write_split_csv)
from listenerctl.data.synth import CORPUS_CARD, SPEAKER_FEATURES, assign_splits
from listenerctl.errors import ListenerctlError
from listenerctl.media import load_audio

REPORT = "extract_report.json"
SESSIONS = "sessions"
STAGING = "splits"            # name of the hidden working folder the splits are written in first
AUDIO_FIELDS = tuple(f.name for f in fields(AudioFeatures))


@dataclass
class SessionRecord:
    """An analysed session as stored: its `Session`, face ``thumbnails`` [P, S, S, 3] uint8, the media each
    person was seen in (``sources``) and the audio file of each track (``audio_sources``, one per distinct
    track; ``audio_of`` [P] maps people to tracks, −1 none)."""

    session: Session
    thumbnails: np.ndarray
    sources: list[str]
    audio_sources: list[str]
    audio_of: list[int]


def session_folder(root: Path, key: str) -> Path:
    return Path(root) / SESSIONS / key


def save_session(root: Path, record: SessionRecord) -> Path:
    """Publish ``record`` as ``sessions/<key>/`` (tracks, card, contact sheet) in one rename."""
    session = record.session
    tracks = {"arkit": np.stack([f.arkit for f in session.faces]), "found": np.stack([f.found for f in session.faces]),
              "emotion": np.stack([f.emotion for f in session.faces]), "talker": session.talker,
              "audio_of": np.asarray(record.audio_of, np.int32), "thumbnails": record.thumbnails}
    for track in range(len(record.audio_sources)):
        audio = session.speaker_audio[record.audio_of.index(track)]
        tracks.update({f"audio{track}_{name}": getattr(audio, name) for name in AUDIO_FIELDS})
    final = session_folder(root, session.key)
    with staged_dir(final) as work:
        with atomic_file(work / "tracks.npz") as fh:
            np.savez_compressed(fh, **tracks)
        card = {"key": session.key, "fps": session.fps, "sources": record.sources,
                "audio_sources": record.audio_sources}
        (work / "session.json").write_text(json.dumps(card, indent=2) + "\n")
        contact_sheet(work / "contact_sheet.png", record.thumbnails, session.speaking_shares(),
                      [float(np.mean(f.found)) for f in session.faces], session.key)
    return final


def load_session(folder: Path) -> SessionRecord:
    """The `SessionRecord` saved in ``folder`` by `save_session`."""
    card = json.loads((folder / "session.json").read_text(encoding="utf-8"))
    with np.load(folder / "tracks.npz") as z:
        faces = [FaceFeatures(z["arkit"][p], z["emotion"][p], z["found"][p]) for p in range(len(z["arkit"]))]
        tracks = [AudioFeatures(**{name: z[f"audio{t}_{name}"] for name in AUDIO_FIELDS})
                  for t in range(len(card["audio_sources"]))]
        audio_of = [int(t) for t in z["audio_of"]]
        session = Session(card["key"], float(card["fps"]), faces, z["talker"].astype(np.int32),
                          [tracks[t] if t >= 0 else None for t in audio_of])
        return SessionRecord(session, z["thumbnails"], card["sources"], card["audio_sources"], audio_of)


def contact_sheet(path: Path, thumbnails: np.ndarray, shares: list[float], found: list[float], title: str) -> None:
    """A PNG with each person's face crop, titled with their speaking share and found share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = max(len(thumbnails), 1)
    fig, axes = plt.subplots(1, count, figsize=(2.4 * count, 2.9), squeeze=False)
    for p, ax in enumerate(axes[0]):
        if p < len(thumbnails):
            ax.imshow(thumbnails[p])
            ax.set_title(f"person {p}\ntalks {shares[p]:.0%} · found {found[p]:.0%}", fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_file(path) as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)


def _clip_conditioning(session: Session, clip: DyadClip) -> Conditioning:
    face = session.faces[clip.speaker]
    audio = session.speaker_audio[clip.speaker]
    cond = Conditioning(session.fps, session.num_frames, audio=audio, face=face)
    return cond.slice(clip.start, clip.stop)


def _session_report(record: SessionRecord, cut: DyadCut | None, problem: str | None) -> dict:
    session = record.session
    entry = {"key": session.key, "minutes": round(session.num_frames / session.fps / 60, 3),
             "people": len(session.faces), "sources": record.sources,
             "found_share": [round(float(np.mean(f.found)), 3) for f in session.faces],
             "speaking_share": [round(s, 3) for s in session.speaking_shares()],
             "contact_sheet": f"{SESSIONS}/{session.key}/contact_sheet.png"}
    if problem is not None:
        return {**entry, "skipped": problem}
    clip_s = [(c.stop - c.start) / session.fps for c in cut.kept]
    return {**entry, "clips_kept": len(cut.kept), "dyad_minutes": round(sum(clip_s) / 60, 3),
            "clips_dropped": dict(cut.dropped), "quiet_seconds_shorter_than_a_clip": round(cut.short_quiet_s, 1)}


def write_corpus(root: Path, records: list[SessionRecord], options: DyadOptions, seed: int = 0,
                 report: Callable[[str], None] = print, failed: dict[str, str] | None = None) -> dict:
    """Cut, split and write the dyads of ``records`` under ``root``; return the extract report (also saved),
    which lists the sessions that ``failed`` to be analysed (key → why) too. Fewer than three sessions
    with clips (one per split) is one sentence, after the report is written."""
    root = Path(root)
    cuts, entries = {}, []
    for record in records:
        problem = session_problem(record.session)
        cut = None if problem else cut_dyads(record.session, options)
        if cut is not None and not cut.kept:
            problem = "no clip passed the checks: " + ", ".join(f"{n} × {why}" for why, n in cut.dropped.items()) \
                if cut.dropped else "no quiet stretch of the listener lasts a whole clip"
        entries.append(_session_report(record, cut, problem))
        if problem is None:
            cuts[record.session.key] = (record, cut)
            report(f"{record.session.key}: {len(cut.kept)} clips")
        else:
            report(f"{record.session.key}: skipped ({problem})")
    summary = {"options": asdict(options), "seed": seed, "sessions": entries, "failed": dict(failed or {})}
    root.mkdir(parents=True, exist_ok=True)
    if len(cuts) < 3:
        _write_json(root / REPORT, summary)
        raise ListenerctlError(f"only {len(cuts)} sessions gave dyad clips; a corpus needs at least 3 (one per "
                               f"split); see {root / REPORT}.")
    seconds = {key: sum(c.stop - c.start for c in cut.kept) / record.session.fps for key, (record, cut) in cuts.items()}
    split_of = assign_splits(seconds, seed)
    for entry in entries:
        entry["split"] = split_of.get(entry["key"])
    staging = partial_dir(root / STAGING)     # every split is written here first, then moved in at once
    try:
        for split in SPLITS:
            _write_split(staging, split, [cuts[k] for k in sorted(cuts) if split_of[k] == split], options)
        (root / CORPUS_CARD).unlink(missing_ok=True)      # no card while the splits are swapped
        for split in SPLITS:
            publish_dir(staging / split, root / split)
            for path in (split_csv_path(staging, split), neighbours_path(staging, split)):
                os.replace(path, root / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    summary["splits"] = {s: {"sessions": sorted(k for k in cuts if split_of[k] == s),
                             "dyad_minutes": round(sum(v for k, v in seconds.items() if split_of[k] == s) / 60, 3)}
                         for s in SPLITS}
    _write_json(root / REPORT, summary)
    card = {"spec": "arkit58", "fps": float(records[0].session.fps), "clip_frames": options.clip_frames,
            "teacher": "recorded listeners", "source": "listenerctl data extract", "seed": seed,
            "splits": {s: {"sessions": summary["splits"][s]["sessions"],
                           "speaker_seconds": round(60 * summary["splits"][s]["dyad_minutes"], 1)} for s in SPLITS},
            "recordings": [{"key": k, "split": split_of[k], "clips": len(cuts[k][1].kept),
                            "seconds": round(seconds[k], 1)} for k in sorted(cuts)]}
    _write_json(root / CORPUS_CARD, card)
    return summary


def _write_json(path: Path, value: dict) -> None:
    with atomic_file(path, "w") as fh:
        json.dump(value, fh, indent=2)
        fh.write("\n")


def _write_split(root: Path, split: str, cuts: list[tuple[SessionRecord, DyadCut]], options: DyadOptions) -> None:
    """One split's REACT files, Speaker_features, CSV and appropriate-reaction matrix under ``root``."""
    rows, descriptors = [], []
    (root / split).mkdir()
    for record, cut in cuts:
        session = record.session
        samples = {}
        for number, clip in enumerate(cut.kept):
            base = f"real/{session.key}/p{clip.speaker}_to_p{clip.listener}"
            speaker_rel, listener_rel = f"{base}/speaker/{number:03d}", f"{base}/listener/{number:03d}"
            cond = _clip_conditioning(session, clip)
            track = record.audio_of[clip.speaker]
            if track >= 0 and track not in samples:    # padded with silence as its features were
                wave = load_audio(record.audio_sources[track])[:session.num_frames * SAMPLES_PER_FRAME]
                samples[track] = np.pad(wave, (0, session.num_frames * SAMPLES_PER_FRAME - len(wave)))
            audio = samples[track][clip.start * SAMPLES_PER_FRAME:clip.stop * SAMPLES_PER_FRAME] \
                if track >= 0 else None
            write_react_clip(root, split, speaker_rel, cond.face.arkit, cond.face.emotion, audio=audio)
            listener = session.faces[clip.listener]
            write_react_clip(root, split, listener_rel, listener.arkit[clip.start:clip.stop],
                             listener.emotion[clip.start:clip.stop])
            features = root / split / SPEAKER_FEATURES / f"{speaker_rel}.npz"
            features.parent.mkdir(parents=True, exist_ok=True)
            cond.save_npz(features)
            rows.append((speaker_rel, listener_rel))
            descriptors.append(speaker_descriptor(cond.face.emotion, cond.audio))
    write_split_csv(root, split, rows)
    write_neighbours(root, split, appropriate_matrix(np.array(descriptors).reshape(len(rows), -1),
                                                     options.similarity_threshold))
