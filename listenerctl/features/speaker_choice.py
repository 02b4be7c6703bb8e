"""Whom the listener reacts to (`generate --face auto`, the default, or a fixed person), from the people in
view and who talks when (`features.speakers`).

``auto``: the person who talks most while speech is present. In a dialogue (a second person holds at
least `DIALOGUE_MIN_SHARE` of the speech frames, and the mixed track, where there is one, was not diarized
into a single voice) the speaker face instead follows the active speaker:
per frame the active speaker's face, a linear crossfade over `CROSSFADE_S` seconds at each change, and
frames where nobody talks keep the last speaker (before the first turn: the first speaker). When nobody
in view talks (silent audio, no audio, an off-screen voice) the largest face (median box area) is used,
and the note says so. A fixed person index is used as given.

One voice heard means one talker: on a short clip, window sync against a moving but silent mouth is near
chance (on 3–4 s composites of the two test faces it gave the non-talker 15–46 % of the speech), while
diarization errs the other way (it splits one voice more often than it merges two, `features.voices`), so a
single voice is the stronger evidence. Two talkers whose voices the diarization cannot tell apart are then
conditioned on the one who talks most, without following the turns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from listenerctl.conditioning import FaceFeatures
from listenerctl.emotion import emotion_from_arkit
from listenerctl.errors import NoFaceError
from listenerctl.features.people import People
from listenerctl.features.speakers import MIN_VOICE_SHARE, Speakers, Turn

DIALOGUE_MIN_SHARE = MIN_VOICE_SHARE  # share of speech frames a second talker needs for the face to follow turns
CROSSFADE_S = 0.2         # length of the blend from one speaker's face to the next, seconds


@dataclass
class SpeakerChoice:
    """The speaker face [T] to condition on and why: ``person`` the one chosen (the main talker when
    ``follows`` the active speaker, else the fixed face), ``share`` of the speech frames per person,
    ``turns`` for the manifest, ``note`` one line for the terminal."""

    face: FaceFeatures
    person: int
    follows: bool
    reason: str
    share: list[float]
    turns: list[Turn]
    note: str

    def manifest(self, people: People) -> dict:
        """What manifest.json records under "people": how many were seen, each one's found share, whom the
        face is of and why, the speech share per person and the turns."""
        return {"seen": len(people), "found_share": [round(float(s), 4) for s in people.found.mean(axis=1)],
                "chosen": self.person, "because": self.reason, "follows_active_speaker": self.follows,
                "speech_share": [round(s, 3) for s in self.share], "turns": [asdict(t) for t in self.turns]}


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


def choose_speaker(people: People, speakers: Speakers, fixed: tuple[int, str] | None = None) -> SpeakerChoice:
    """The speaker face to condition on: ``fixed`` (person, why) as `People.choose` gives it, or, when None,
    the ``auto`` policy of the module docstring. Raises `NoFaceError` when nobody is in view."""
    count = len(people)
    if count == 0 or not people.found.any():
        raise NoFaceError("no face found in any frame.")
    share = [float(s) for s in speakers.share]
    shares = ", ".join(f"person {p} {100 * s:.0f}%" for p, s in enumerate(share))
    seen = "1 person seen" if count == 1 else f"{count} people seen (numbered from the left)"

    def chosen(face: FaceFeatures, person: int, follows: bool, reason: str, turns: list[Turn]) -> SpeakerChoice:
        return SpeakerChoice(face, person, follows, reason, share, turns,
                             f"{seen}: conditioning on person {person}, {reason}")

    if fixed is not None:
        person, why = fixed
        return chosen(people.face(person), person, False, f"{why} (speech: {shares})", speakers.turns)
    talkers = speakers.talkers
    if not talkers:
        why = "there is no speech" if not speakers.speech.any() else "nobody in view is seen talking"
        return chosen(people.face(people.largest()), people.largest(), False, f"the largest face, as {why}", [])
    main = talkers[0]
    second_talker = sum(share[p] >= DIALOGUE_MIN_SHARE for p in talkers) >= 2
    if second_talker and speakers.voices_heard == 1:
        return chosen(people.face(main), main, False,
                      f"who talks most (one voice is heard, so not a dialogue; speech: {shares})", speakers.turns)
    if second_talker:
        reason = (f"who talks most, and the face follows whoever talks (a dialogue: speech {shares}; "
                  f"{len(speakers.turns)} turns)")
        return chosen(following_face(people, held_speaker(speakers.active)), main, True, reason, speakers.turns)
    return chosen(people.face(main), main, False, f"who talks most (speech: {shares})", speakers.turns)
