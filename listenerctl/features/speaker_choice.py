"""Whom the listener reacts to (`generate --face auto`, the default, or a fixed person), from the people in
view and who talks when (`features.speakers`).

``auto``: the person who talks most while speech is present. In a dialogue (a second person holds at
least `DIALOGUE_MIN_SHARE` of the speech frames) the speaker face instead follows the active speaker:
per frame the active speaker's face, a linear crossfade over `CROSSFADE_S` seconds at each change, and
frames where nobody talks keep the last speaker (before the first turn: the first speaker). When nobody
in view talks (silent audio, no audio, an off-screen voice) the largest face (median box area) is used,
and the note says so. A fixed person index is used as given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from listenerctl.conditioning import FaceFeatures
from listenerctl.emotion import emotion_from_arkit
from listenerctl.errors import ListenerctlError, NoFaceError
from listenerctl.features.people import People
from listenerctl.features.speakers import Speakers, Turn

DIALOGUE_MIN_SHARE = 0.1  # share of speech frames a second talker needs for the face to follow turns
CROSSFADE_S = 0.2         # length of the blend from one speaker's face to the next, seconds


@dataclass
class SpeakerChoice:
    """The speaker face [T] to condition on and why: ``person`` the one chosen (the main talker when
    ``follows`` the active speaker, else the fixed face), ``turns`` for the manifest, ``notes`` for the
    terminal (one line each)."""

    face: FaceFeatures
    person: int
    follows: bool
    reason: str
    share: list[float]
    turns: list[Turn]
    notes: list[str] = field(default_factory=list)

    def manifest(self, people: int) -> dict:
        """What manifest.json records: people seen, whom and why, speech share per person, the turns."""
        return {"people_seen": people, "person": self.person, "follows_active_speaker": self.follows,
                "reason": self.reason, "speech_share": [round(s, 3) for s in self.share],
                "turns": [asdict(t) for t in self.turns]}


def largest_person(people: People) -> int:
    """The person whose face box has the largest median area over the frames they are found in."""
    width, height = people.boxes[..., 2] - people.boxes[..., 0], people.boxes[..., 3] - people.boxes[..., 1]
    area = np.where(people.found, width * height, np.nan)
    seen = people.found.any(axis=1)
    median = np.array([np.nanmedian(a) if s else -1.0 for a, s in zip(area, seen)])
    return int(np.argmax(np.nan_to_num(median, nan=0.0)))


def following_face(people: People, follow: np.ndarray) -> FaceFeatures:
    """Speaker face that is person ``follow[t]``'s face at each frame [T], crossfaded over `CROSSFADE_S`
    after each change of person."""
    faces = np.zeros((len(people),) + people.arkit.shape[1:], np.float32)
    for person in np.unique(follow):
        faces[person] = people.face(int(person)).arkit
    frames = np.arange(len(follow))
    arkit = faces[follow, frames]
    steps = max(1, int(round(CROSSFADE_S * people.fps)))
    for change in np.flatnonzero(np.diff(follow)) + 1:
        span = frames[change:change + steps]
        weight = ((span - change + 1) / (steps + 1))[:, None]
        arkit[span] = (1 - weight) * faces[follow[change - 1], span] + weight * faces[follow[change], span]
    return FaceFeatures(arkit=arkit, emotion=emotion_from_arkit(arkit).astype(np.float32),
                        found=people.found[follow, frames])


def held_speaker(active: np.ndarray) -> np.ndarray:
    """Per frame [T] the last person talking (−1 frames take the previous speaker, leading ones the first)."""
    talking = np.flatnonzero(active >= 0)
    last = np.maximum(np.searchsorted(talking, np.arange(len(active)), side="right") - 1, 0)
    return active[talking[last]]


def choose_speaker(people: People, speakers: Speakers, face: int | str = "auto") -> SpeakerChoice:
    """The speaker face to condition on: ``face`` a person index (fixed) or "auto" (module docstring).
    Raises `ListenerctlError` for an index out of range, `NoFaceError` when nobody is in view."""
    count = len(people)
    if count == 0 or not people.found.any():
        raise NoFaceError("no face found in any frame.")
    share = [float(s) for s in speakers.share]
    shares = ", ".join(f"person {p} {100 * s:.0f}%" for p, s in enumerate(share))
    seen = f"{count} {'person' if count == 1 else 'people'} in view"
    if face != "auto":
        if not isinstance(face, int) or not 0 <= face < count:
            raise ListenerctlError(f"face {face} asked for, but {seen}: choose 0 to {count - 1} (0 = leftmost).")
        reason = f"face {face} asked for"
        return SpeakerChoice(people.face(face), face, False, reason, share, speakers.turns,
                             [f"{seen}; conditioning on person {face} as asked (speech: {shares})"])
    talkers = [p for p in speakers.talkers if share[p] > 0]
    if not talkers:
        person = largest_person(people)
        why = "there is no speech" if not speakers.speech.any() else "nobody in view is seen talking"
        reason = f"{why}: the largest face is used"
        return SpeakerChoice(people.face(person), person, False, reason, share, [],
                             [f"{seen}; {why}, so conditioning on the largest face (person {person})"])
    main = talkers[0]
    dialogue = [p for p in talkers if share[p] >= DIALOGUE_MIN_SHARE]
    if len(dialogue) >= 2:
        reason = f"dialogue: the face follows whoever talks (speech: {shares})"
        return SpeakerChoice(following_face(people, held_speaker(speakers.active)), main, True, reason, share,
                             speakers.turns, [f"{seen}; {reason}; {len(speakers.turns)} turns"])
    reason = f"person {main} talks most (speech: {shares})"
    return SpeakerChoice(people.face(main), main, False, reason, share, speakers.turns,
                         [f"{seen}; conditioning on person {main}, who talks most (speech: {shares})"])
