"""Active speaker detection: who of the people in view is talking at each frame (DESIGN §2).

With one mixed audio track the evidence is audio–visual synchrony. Per person p and frame t:

    mouth motion  m_p(t) = Σ_c |a_c(t) − a_c(t−1)| over the mouth and jaw arkit58 channels `MOUTH_CHANNELS`
                  (blendshape weights, so the unit is weight change per frame; a talking mouth moves about
                  0.1–0.3 per frame, a listener's far less); defined where the person is found in t and t−1.
    audio envelope e(t) = the frame level in dB (`AudioFeatures.energy`, held at or above the clip's noise
                  floor) minus its running mean over `LEVEL_WINDOW_S`: syllabic modulation, alike for a
                  quiet and a loud voice, with no step where the speaker changes.
    sync score    s_p(t) = max over lags d in ±`MAX_LAG_S` of the Pearson correlation of m_p(u) with e(u + d)
                  over the pairs in a `WINDOW_S` window centred on t (frames where p is not found are left
                  out; fewer than `MIN_PAIRS_SHARE` of the window → no score: p cannot be talking there),
                  times a motion gate min(1, mean m_p over the window / `TALKING_MOTION`) so a face that
                  barely moves (a still listener) scores near 0 whatever chance correlation its jitter has.

The lag search absorbs audio/video offsets of real recordings (a few frames either way). The decision
runs over speech frames only (`AudioFeatures.vad`; no speech → nobody talks): a Viterbi path over the
states "person p talks" (emission s_p) and "nobody in view talks" (emission `NOBODY_SCORE`, e.g. an
off-screen voice), a person not found at a frame being impossible there, and every change of state
costing `SWITCH_COST` (score × frames). Pauses carry the current state over, so a speaker stays the
speaker through their own pauses. Turns are the runs of one speaker, pauses inside a turn included.

Voices (mixed track only): window sync alone is too noisy to decide 2–3 s turns when a non-talker's mouth
keeps moving, but two people in a dialogue have different voices. The speech frames are diarized
(`voices.diarize`, at most one voice more than the people in view, for an off-screen voice); with two voices
or more, each voice gets an owner from the whole recording's evidence: evidence[v, p] = the mean of s_p over
all frames of voice v, and the one-to-one assignment of voices to people or "nobody in view" (worth
`NOBODY_EVIDENCE`, open to any number of voices) with the largest evidence summed over frames, so a voice
heard longer weighs more (scipy.optimize.linear_sum_assignment); a voice heard in under `MIN_VOICE_SHARE` of
the speech takes no part. A voice keeps its owner only if that owner is also the one it follows best, and if
giving it any other owner loses at least `VOICE_MARGIN` per frame of that voice; otherwise it is undecided
(a voice split in two by mistake, both halves following one mouth, ends so). The owner's emission (a
person's, or "nobody in view") is raised by `VOICE_WEIGHT` at the frames of its voice, then the same Viterbi
runs. One voice, or no voice with an owner: exactly the sync-only decision above.

Where each person has their own audio track (``person_audio``), the track's voice activity decides
instead: s_p = 1 where p's track has speech and is the loudest of the tracks with speech, 0.5 where it
has speech but another track is louder (crosstalk), 0 elsewhere; speech is present where any track has
it, and the same Viterbi smoothing applies.

Constants: windows of 1.2 s hold about five syllables (4–5 per s) and are shorter than most turns, the 0.6 s
running level two or three; these two were picked from 1.2/1.6/2.4 s and 0.6/1.0/no running level on
dialogues built from the two test clips (shorter was better throughout), the others were set, not fitted.
±0.32 s covers usual A/V offsets and the looser timing of lips and loudness: searching it per window agreed
with the turns far better than one offset for the whole recording. 0.1 weight per frame is about half of a
talking mouth's mean motion; a switch needs the new speaker to out-score the old by 0.1 on average over
about 1 s. The voice term was set, not fitted: 0.3 is near a talker's mean window score (0.35–0.5 on the
test clips), enough for the voice to overrule window noise inside a turn, while a person not found stays
impossible; on the constructed moving-mouth dialogues weights of 0.2–0.5 gave the same agreement (0.1:
0.85–0.98). 0.05 per frame is half the smallest loss, per frame of a voice, from swapping the two owners
seen there (0.11). `MIN_VOICE_SHARE` is the share a second talker needs to count as one in `speaker_choice`:
a rarer voice is more often a piece of another voice than a person (in the benchmark's looped dialogue, a
repeated phrase). `NOBODY_EVIDENCE` 0.25 lies between a nearly still listener's mean score over another's
voice (0.08–0.20 there) and a talker's over their own (0.38–0.58); a moving mouth that does not talk scores
0.29–0.39, so a voice is only ever given to one of several moving mouths by comparison, never by this bar.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from listenerctl.conditioning import AudioFeatures
from listenerctl.features.audio import bool_runs
from listenerctl.features.people import People
from listenerctl.features.switching import viterbi
from listenerctl.features.voices import diarize
from listenerctl.motion import ARKIT52

MOUTH_CHANNELS = tuple(ARKIT52.index(name) for name in (
    "jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthUpperUpLeft", "mouthUpperUpRight", "mouthRollLower", "mouthRollUpper"))
WINDOW_S = 1.2          # sliding correlation window, seconds
MAX_LAG_S = 0.32        # audio/video offsets searched, ± seconds
LEVEL_WINDOW_S = 0.6    # window of the running level the audio envelope is taken relative to, seconds
MIN_PAIRS_SHARE = 0.5   # share of a window's frames with the person found needed to score them
TALKING_MOTION = 0.1    # mouth motion (Σ |Δ weight| per frame) at and above which the gate is fully open
NOBODY_SCORE = 0.1      # emission of "nobody in view talks" (a sync score below this is no evidence)
SWITCH_COST = 2.5       # cost of a change of speaker, in score × frames
OWN_TRACK_LOUDEST, OWN_TRACK_CROSSTALK = 1.0, 0.5  # scores with per-person audio tracks
VOICE_WEIGHT = 0.3      # added to the emission of a voice's owner at that voice's frames, score units
VOICE_MARGIN = 0.05     # least loss in summed evidence if a voice changed owner, for the owner to stand
NOBODY_EVIDENCE = 0.25  # evidence of "nobody in view" for a voice: mean sync score a person must beat
MIN_VOICE_SHARE = 0.1   # share of the speech frames a voice needs to be given an owner
NOBODY, UNDECIDED = -1, -2  # voice owners that are not a person in view


@dataclass
class Turn:
    """One person talking from ``start_s`` to ``end_s`` (seconds, end exclusive), pauses inside included."""

    start_s: float
    end_s: float
    person: int


@dataclass
class Speakers:
    """Who talks when, for P people through T frames at ``fps``.

    score [P, T] float32 evidence that each person talks (sync score or own-track score; NaN where they
    cannot be judged); active [T] int32 the person talking, −1 where nobody in view talks or there is no
    speech; speech [T] bool speech present; share [P] float share of the speech frames attributed to each
    person (the rest went to nobody in view); turns in time order. From the mixed track's diarization:
    voice [T] int32 the voice heard (−1 where there is no speech or no mixed track) and voice_owner [V] int
    the person each voice was given to (`NOBODY` = nobody in view, `UNDECIDED` = not used; empty with
    fewer than two voices, where sync alone decides).
    """

    score: np.ndarray
    active: np.ndarray
    speech: np.ndarray
    share: np.ndarray
    turns: list[Turn]
    fps: float
    voice: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    voice_owner: list[int] = field(default_factory=list)

    @property
    def voices_heard(self) -> int:
        """How many voices the mixed track was diarized into that hold at least `MIN_VOICE_SHARE` of the
        speech frames (0 without a mixed track or without speech)."""
        heard = self.voice[self.voice >= 0]
        return len(heard_voices(np.bincount(heard))) if len(heard) else 0

    @property
    def talkers(self) -> list[int]:
        """The people with at least one turn, most speech first."""
        people = {turn.person for turn in self.turns}
        return sorted(people, key=lambda p: -self.share[p])


def heard_voices(frames: np.ndarray) -> np.ndarray:
    """Indices of the voices, of lengths ``frames`` [V] (speech frames each), that hold at least
    `MIN_VOICE_SHARE` of the speech."""
    return np.flatnonzero(frames >= MIN_VOICE_SHARE * frames.sum())


def mouth_motion(arkit: np.ndarray, found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mouth motion [T] (Σ |Δ| of `MOUTH_CHANNELS` from the previous frame) and where it is defined [T] bool
    (found in this frame and the previous one), from one person's raw arkit [T, 58] and found [T]."""
    mouth = np.nan_to_num(arkit[:, MOUTH_CHANNELS].astype(np.float64))
    motion = np.zeros(len(arkit))
    valid = np.zeros(len(arkit), bool)
    if len(arkit) > 1:
        motion[1:] = np.abs(np.diff(mouth, axis=0)).sum(axis=1)
        valid[1:] = found[1:] & found[:-1]
    return np.where(valid, motion, 0.0), valid


def audio_envelope(audio: AudioFeatures, fps: float) -> np.ndarray:
    """Syllabic level modulation per frame [T] in dB: the frame level (dBFS, held at or above the clip's
    10th percentile, its noise floor) minus its mean over the centred `LEVEL_WINDOW_S` window, so that two
    voices of different loudness modulate alike and a change of speaker is no step in level."""
    level = np.asarray(audio.energy, np.float64)
    if len(level) == 0:
        return level
    level = np.maximum(level, np.percentile(level, 10))
    half = max(1, int(round(LEVEL_WINDOW_S * fps / 2)))
    return level - _window_sums(level, half) / _window_sums(np.ones(len(level)), half)


def _window_sums(values: np.ndarray, half: int) -> np.ndarray:
    """Sums over the centred windows [t − half, t + half] (clipped at the ends) of ``values`` [..., T]."""
    cum = np.concatenate([np.zeros(values.shape[:-1] + (1,)), np.cumsum(values, axis=-1)], axis=-1)
    t = np.arange(values.shape[-1])
    return cum[..., np.minimum(t + half + 1, values.shape[-1])] - cum[..., np.maximum(t - half, 0)]


def lagged_correlations(motion: np.ndarray, valid: np.ndarray, envelope: np.ndarray, fps: float) -> np.ndarray:
    """Windowed Pearson correlations [L, T] of ``motion`` [T] (defined where ``valid`` [T]) with ``envelope``
    [T] shifted by each lag d = −`MAX_LAG_S` … +`MAX_LAG_S` (pairs m(u), e(u + d)); 0 where either is flat."""
    frames = len(motion)
    half = max(1, int(round(WINDOW_S * fps / 2)))
    max_lag = int(round(MAX_LAG_S * fps))
    out = np.zeros((2 * max_lag + 1, frames))
    for k, lag in enumerate(range(-max_lag, max_lag + 1)):
        shifted = np.zeros(frames)
        inside = np.zeros(frames, bool)
        lo, hi = max(0, -lag), min(frames, frames - lag)
        shifted[lo:hi] = envelope[lo + lag:hi + lag]
        inside[lo:hi] = True
        w = (valid & inside).astype(np.float64)
        x, y = motion * w, shifted * w
        n, sx, sy, sxy, sxx, syy = _window_sums(np.stack([w, x, y, x * shifted, x * motion, y * shifted]), half)
        n_safe = np.maximum(n, 1.0)
        cov = sxy - sx * sy / n_safe
        var = np.maximum(sxx - sx * sx / n_safe, 0.0) * np.maximum(syy - sy * sy / n_safe, 0.0)
        out[k] = np.where(var > 1e-18, cov / np.sqrt(np.maximum(var, 1e-36)), 0.0)
    return out


def motion_gate(motion: np.ndarray, valid: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """The motion gate [T] in [0, 1] (mean mouth motion over the window / `TALKING_MOTION`) and whether the
    window holds enough valid frames to judge [T] bool (`MIN_PAIRS_SHARE`)."""
    half = max(1, int(round(WINDOW_S * fps / 2)))
    n_valid, moved = _window_sums(np.stack([valid.astype(np.float64), motion]), half)
    gate = np.minimum(1.0, moved / np.maximum(n_valid, 1.0) / TALKING_MOTION)
    return gate, n_valid >= MIN_PAIRS_SHARE * _window_sums(np.ones(len(motion)), half)


def sync_scores(people: People, audio: AudioFeatures) -> np.ndarray:
    """Sync scores [P, T] float32 (module docstring): each person's best windowed correlation over the lags,
    times their motion gate; NaN where a window has too few frames with them found."""
    count, frames, fps = len(people), people.num_frames, people.fps
    if count == 0:
        return np.zeros((0, frames), np.float32)
    envelope = audio_envelope(audio, fps)
    motions = [mouth_motion(people.arkit[p], people.found[p]) for p in range(count)]
    scores = np.empty((count, frames), np.float32)
    for p, (motion, valid) in enumerate(motions):
        gate, judged = motion_gate(motion, valid, fps)
        best = lagged_correlations(motion, valid, envelope, fps).max(axis=0)
        scores[p] = np.where(judged, best * gate, np.nan)
    return scores


def own_track_scores(person_audio: list[AudioFeatures]) -> tuple[np.ndarray, np.ndarray]:
    """Scores [P, T] from per-person audio tracks (module docstring) and speech present [T] bool."""
    vad = np.stack([np.asarray(a.vad, bool) for a in person_audio])
    level = np.where(vad, np.stack([np.asarray(a.energy, np.float64) for a in person_audio]), -np.inf)
    loudest = vad & (level == level.max(axis=0, keepdims=True))
    score = np.where(loudest, OWN_TRACK_LOUDEST, np.where(vad, OWN_TRACK_CROSSTALK, 0.0))
    return score.astype(np.float32), vad.any(axis=0)


def turns_of(active: np.ndarray, fps: float) -> list[Turn]:
    """Turns from the per-frame speaker [T] (−1 = nobody): runs of one person, pauses (−1) between two runs
    of the same person included."""
    turns: list[Turn] = []
    for person in np.unique(active[active >= 0]):
        starts, ends = bool_runs(active == person)
        turns += [Turn(float(s / fps), float(e / fps), int(person)) for s, e in zip(starts, ends)]
    turns.sort(key=lambda turn: turn.start_s)
    merged: list[Turn] = []
    for turn in turns:
        if merged and merged[-1].person == turn.person:
            merged[-1].end_s = turn.end_s
        else:
            merged.append(turn)
    return merged


def voice_evidence(score: np.ndarray, voice: np.ndarray, voices: int) -> np.ndarray:
    """Evidence [V, P] that person p is voice v: the mean of p's sync scores [P, T] over the frames of v
    (``voice`` [T]); −inf where p has no score at any of them."""
    evidence = np.full((voices, len(score)), -np.inf)
    for v in range(voices):
        frames = score[:, voice == v]
        judged = ~np.isnan(frames)
        sums = np.where(judged, frames, 0.0).sum(axis=1)
        evidence[v] = np.where(judged.any(axis=1), sums / np.maximum(judged.sum(axis=1), 1), -np.inf)
    return evidence


def voice_owners(evidence: np.ndarray, frames: np.ndarray) -> list[int]:
    """Owner of each voice from evidence [V, P] (`voice_evidence`) and the voices' lengths ``frames`` [V]:
    voices holding under `MIN_VOICE_SHARE` of the speech are `UNDECIDED`; the others get the one-to-one
    assignment to people or `NOBODY` (worth `NOBODY_EVIDENCE`, open to every voice) with the most evidence
    summed over frames (a voice heard longer weighs more); a voice is `UNDECIDED` where its owner is not the
    one it follows best, or where a change of its owner would lose less than `VOICE_MARGIN` per frame of it."""
    frames = np.asarray(frames, np.float64)
    owners = [UNDECIDED] * len(frames)
    kept = heard_voices(frames)
    count = evidence.shape[1]
    table = np.concatenate([evidence[kept], np.full((len(kept), len(kept)), NOBODY_EVIDENCE)], axis=1)
    impossible = -1e9 * max(1.0, float(frames.sum()))
    weighted = np.where(np.isfinite(table), table * frames[kept, None], impossible)

    def best(values: np.ndarray) -> tuple[float, np.ndarray]:
        rows, cols = linear_sum_assignment(values, maximize=True)
        return float(values[rows, cols].sum()), cols[np.argsort(rows)]

    total, cols = best(weighted)
    for row, (v, col) in enumerate(zip(kept, cols)):
        changed = weighted.copy()
        changed[row, col if col < count else slice(count, None)] = impossible
        possible = np.isfinite(table[row])
        follows_best = possible[col] and table[row, col] >= table[row, possible].max()
        if follows_best and total - best(changed)[0] >= VOICE_MARGIN * frames[v]:
            owners[v] = int(col) if col < count else NOBODY
    return owners


def detect_speakers(people: People, audio: AudioFeatures | None = None,
                    person_audio: list[AudioFeatures] | None = None) -> Speakers:
    """Who of ``people`` talks when: from audio–visual synchrony with the mixed ``audio`` track, or from
    ``person_audio`` (one track per person, in `People` order) when given. Every audio feature has
    ``people.num_frames`` rows at ``people.fps``. Without any audio nobody is found talking."""
    count, frames, fps = len(people), people.num_frames, people.fps
    if person_audio is not None:
        if len(person_audio) != count:
            raise ValueError(f"{len(person_audio)} audio tracks for {count} people")
        score, speech = own_track_scores(person_audio)
    elif audio is not None:
        score, speech = sync_scores(people, audio), np.asarray(audio.vad, bool)
    else:
        score, speech = np.full((count, frames), np.nan, np.float32), np.zeros(frames, bool)
    emission = np.where(people.found & ~np.isnan(score), score, -np.inf)
    emission = np.concatenate([emission, np.full((1, frames), NOBODY_SCORE)])
    voice, owners = np.full(frames, -1, np.int32), []
    if audio is not None and person_audio is None and count > 0:
        voices = diarize(audio, fps, count + 1)
        voice = voices.label
        if voices.count > 1:
            lengths = np.bincount(voice[voice >= 0], minlength=voices.count)
            owners = voice_owners(voice_evidence(score, voice, voices.count), lengths)
        for v, owner in enumerate(owners):
            if owner != UNDECIDED:
                emission[count if owner == NOBODY else owner, voice == v] += VOICE_WEIGHT
    path = viterbi(emission[:, speech], SWITCH_COST)
    active = np.full(frames, -1, np.int32)
    active[speech] = np.where(path == count, -1, path)
    speech_frames = max(int(speech.sum()), 1)
    share = np.array([(active == p).sum() / speech_frames for p in range(count)], np.float64)
    return Speakers(score.astype(np.float32), active, speech, share, turns_of(active, fps), fps, voice, owners)
