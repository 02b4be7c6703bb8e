"""Speaker diarization of one mixed audio track: which voice is heard at each speech frame (DESIGN §2).

Descriptors: over the speech frames (`AudioFeatures.vad`) the static MFCCs 1–12 (c0, the level, is left
out so a loud and a quiet stretch of one voice look alike) are mean/variance-normalised over the clip's
speech frames, and the log F0 of voiced frames is z-scored the same way. Each speech run is cut into
segments of about `SEGMENT_S`; a segment's descriptor [13] is its mean normalised MFCC 1–12 and its mean
log-F0 z-score (0, the clip's mean, where it holds no voiced frame).

Clustering for K voices: Ward agglomeration of the segment descriptors into K groups (of at most
`WARD_MAX_SEGMENTS` evenly spaced ones in long recordings), then resegmentation of all segments
by hard EM: each voice a Gaussian with its own mean and a variance per dimension pooled over the voices,
every segment's log-likelihood under each voice, and a Viterbi path over the segments (in time order)
where a change of voice costs `VOICE_SWITCH_COST` (log-likelihood units), repeated until the labels stop
changing (at most `REFINE_ROUNDS` times).

How many voices: each K = 2 … ``max_voices`` is clustered; K voices qualify when every voice holds at least
`MIN_SEGMENTS` segments and every pair of voices is at least `MIN_SEPARATION` apart (Mahalanobis distance
between the two means under the pooled variance, in segment standard deviations); of those the K whose
closest pair is farthest apart wins (so a voice split in two, whose halves lie close, loses to the whole).
One voice when no K qualifies.

Constants: 0.5 s segments hold one or two syllables, short enough to sit inside 2 s turns; a voice needs 1.5 s
of speech. The separation threshold was set, leaning to splitting, from recordings whose voices we know: one
voice over 64–68 s (the two BEAT recordings) is 3.2 apart when forced into two, two voices in 4 s turns over
64 s (BEAT against either test clip) are 4.3–5.6 apart, and two voices in 1.5–3 s turns over 8 s (the test
clips, also with one or both shifted 3 semitones in pitch) are 6.2–11. On 8 s of one voice (the test clips,
radio_8s, stretches of BEAT) a forced split reaches 4.1–7.9, above the 4.0 bar: so short a clip cannot tell
one voice from two by these descriptors, and such a clip is often returned as two or three voices. That error
is the cheap one: `speakers.voice_owners` leaves a part of a voice undecided where it follows another person
better than the owner it was assigned, while a missed second voice would lose the voices' help altogether. The
same happens to the benchmark's dialogue looped from the same 8 s (3–4 'voices', its repeated phrases forming
tight groups). The switch cost (3, set) makes a single segment change voice only when it lies clearly nearer
the other voice's mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from listenerctl.conditioning import AudioFeatures
from listenerctl.features.audio import bool_runs
from listenerctl.features.switching import viterbi

SEGMENT_S = 0.5          # length of a diarization segment, seconds
MIN_SEPARATION = 4.0     # least Mahalanobis distance between two voices' mean descriptors, segment std units
MIN_SEGMENTS = 3         # least segments a voice must hold (1.5 s of its speech)
VOICE_SWITCH_COST = 3.0  # cost of a change of voice between segments, log-likelihood units
REFINE_ROUNDS = 10       # most resegmentation rounds
WARD_MAX_SEGMENTS = 1000 # most segments clustered by Ward (its distance table is quadratic in them)
VARIANCE_FLOOR = 1e-3    # added to the pooled per-dimension variance (descriptors are z-scores)


@dataclass
class Voices:
    """Voices heard in a clip of T frames: label [T] int32 the voice at each frame (0 … count − 1; −1 where
    there is no speech), count the number of voices, separation the least distance between two voices
    (`MIN_SEPARATION` units; 0 with fewer than two)."""

    label: np.ndarray
    count: int
    separation: float


def speech_segments(speech: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Start and end frames (exclusive) [S] of the segments: each speech run of ``speech`` [T] bool cut
    into round(length / `SEGMENT_S`) (at least one) near-equal parts."""
    starts, ends = [], []
    for start, end in zip(*bool_runs(speech)):
        parts = max(1, int(round((end - start) / (SEGMENT_S * fps))))
        edges = np.linspace(start, end, parts + 1).round().astype(np.int64)
        starts.append(edges[:-1])
        ends.append(edges[1:])
    if not starts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(starts), np.concatenate(ends)


def segment_descriptors(audio: AudioFeatures, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Voice descriptors [S, 13] of the segments (module docstring): mean normalised MFCC 1–12 and mean
    log-F0 z-score, normalised over the clip's speech frames."""
    speech = np.asarray(audio.vad, bool)
    mfcc = np.asarray(audio.mfcc[:, 1:13], np.float64)
    mfcc = (mfcc - mfcc[speech].mean(axis=0)) / (mfcc[speech].std(axis=0) + 1e-9)
    voiced = np.asarray(audio.voiced, bool) & speech & (np.asarray(audio.f0) > 0)
    log_f0 = np.log(np.maximum(np.asarray(audio.f0, np.float64), 1.0))
    pitch = np.zeros(len(log_f0))
    if voiced.sum() > 1:
        pitch[voiced] = (log_f0[voiced] - log_f0[voiced].mean()) / (log_f0[voiced].std() + 1e-9)
    out = np.empty((len(starts), 13))
    for s, (a, b) in enumerate(zip(starts, ends)):
        out[s, :12] = mfcc[a:b].mean(axis=0)
        out[s, 12] = pitch[a:b][voiced[a:b]].mean() if voiced[a:b].any() else 0.0
    return out


def cluster_segments(descriptors: np.ndarray, count: int) -> tuple[np.ndarray, float]:
    """Labels [S] (0 … count − 1, some possibly unused) of ``descriptors`` [S, D] in ``count`` voices and
    the least pairwise separation of the voices that were used (module docstring: Ward on at most
    `WARD_MAX_SEGMENTS` evenly spaced segments, so memory stays linear in the recording's length, then
    hard-EM resegmentation of all segments with a Viterbi path)."""
    sample = descriptors[::-(-len(descriptors) // WARD_MAX_SEGMENTS)]
    sample_labels = fcluster(linkage(sample, "ward"), count, "maxclust") - 1
    means, variance = voice_models(sample, sample_labels, count)
    labels = np.full(len(descriptors), -1)
    for _ in range(REFINE_ROUNDS):
        loglik = -0.5 * (((descriptors[None] - means[:, None]) ** 2) / variance).sum(axis=-1)
        refined = viterbi(loglik, VOICE_SWITCH_COST)
        if np.array_equal(refined, labels):
            break
        labels = refined
        means, variance = voice_models(descriptors, labels, count)
    used = np.unique(labels)
    gaps = [np.sqrt((((means[i] - means[j]) ** 2) / variance).sum()) for i in used for j in used if i < j]
    return labels, float(min(gaps)) if gaps else 0.0


def voice_models(descriptors: np.ndarray, labels: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-voice mean descriptors [count, D] (an unused voice gets the overall mean) and the per-dimension
    within-voice variance [D] pooled over the voices, plus `VARIANCE_FLOOR`."""
    means = np.stack([descriptors[labels == k].mean(axis=0) if (labels == k).any() else descriptors.mean(axis=0)
                      for k in range(count)])
    residual = descriptors - means[labels]
    return means, (residual ** 2).mean(axis=0) + VARIANCE_FLOOR


def diarize(audio: AudioFeatures, fps: float, max_voices: int) -> Voices:
    """The voices of ``audio`` (frames at ``fps``), at most ``max_voices`` (module docstring)."""
    speech = np.asarray(audio.vad, bool)
    label = np.full(len(speech), -1, np.int32)
    starts, ends = speech_segments(speech, fps)
    if len(starts) == 0:
        return Voices(label, 0, 0.0)
    descriptors = segment_descriptors(audio, starts, ends)
    best, count, separation = np.zeros(len(starts), np.int64), 1, 0.0
    for voices in range(2, min(max_voices, len(starts) // MIN_SEGMENTS) + 1):
        labels, gap = cluster_segments(descriptors, voices)
        large_enough = np.bincount(labels, minlength=voices).min() >= MIN_SEGMENTS
        if large_enough and gap >= max(MIN_SEPARATION, separation):
            best, count, separation = labels, voices, gap
    for s, (a, b) in enumerate(zip(starts, ends)):
        label[a:b] = best[s]
    return Voices(label, count, separation)
