"""Synthetic conversational speech with espeak-ng, for training corpora when real recordings are scarce.

Each recording is a monologue of everyday sentences drawn from a small seeded grammar, spoken by one
espeak-ng voice (accent + variant, speaking rate, pitch) with pauses of natural lengths between
clauses and sentences, then converted to 16 kHz mono WAV. The same seed gives the same files.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from listenerctl.errors import ListenerctlError
from listenerctl.media import SAMPLE_RATE, load_audio, write_wav

ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan")
VARIANTS = ("m1", "m2", "m3", "m4", "m7", "f1", "f2", "f3", "f4", "f5")

OPENERS = ("So", "Well", "You know", "Anyway", "Honestly", "Right", "And then", "Actually", "Okay so", "I mean")
PEOPLE = ("my sister", "our neighbour", "the new manager", "an old friend of mine", "my grandfather",
          "the teacher", "a guy from work", "my cousin", "the landlord", "the doctor")
PLACES = ("at the market", "on the train", "in the park", "at the station", "near the harbour",
          "in the library", "at the office", "by the river", "in the kitchen", "at the bakery")
EVENTS = ("told me a story about the war", "lost the keys again", "started learning the piano",
          "decided to move to the coast", "bought a very old bicycle", "forgot about the meeting",
          "found a letter from nineteen eighty", "painted the whole house yellow",
          "adopted two small cats", "won a prize for her garden", "missed the last bus home",
          "cooked dinner for twenty people")
FEELINGS = ("which was a bit strange", "and I could not stop laughing", "and honestly I was worried",
            "which made everyone happy", "and nobody believed it", "and it was really lovely",
            "so we just sat there", "and that was the end of it")
QUESTIONS = ("Can you imagine that?", "Have you ever done something like that?", "Does that sound familiar?",
             "What would you have done?", "Isn't that funny?", "Do you remember that place?")
TIMES = ("Last week", "Yesterday", "A few years ago", "On Sunday morning", "Back in the summer",
         "Earlier today", "One evening")


def _sentence(rng: np.random.Generator) -> str:
    """One sentence of a monologue, with SSML pauses inside and after it."""
    pick = lambda options: options[rng.integers(len(options))]  # noqa: E731
    kind = rng.random()
    if kind < 0.55:
        text = (f"{pick(TIMES)}, {pick(PEOPLE)} {pick(EVENTS)} {pick(PLACES)}"
                f'<break time="{int(rng.uniform(150, 450))}ms"/> {pick(FEELINGS)}.')
    elif kind < 0.8:
        text = f"{pick(OPENERS)}, {pick(PEOPLE)} {pick(EVENTS)}."
    else:
        text = pick(QUESTIONS)
    return text + f'<break time="{int(rng.lognormal(np.log(650), 0.45))}ms"/>'


def monologue(rng: np.random.Generator, sentences: int) -> str:
    """SSML text of ``sentences`` sentences."""
    return "<speak>" + " ".join(_sentence(rng) for _ in range(sentences)) + "</speak>"


def synthesize_speech(folder: Path, minutes: float, seed: int = 0, recording_minutes: float = 2.0) -> list[Path]:
    """Write about ``minutes`` of speech as 16 kHz mono WAVs of ~``recording_minutes`` each into ``folder``.

    Returns the files written. Needs espeak-ng and ffmpeg.
    """
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise ListenerctlError("espeak-ng was not found; install it (Debian/Ubuntu: apt-get install espeak-ng).")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written, total_s, index = [], 0.0, 0
    while total_s < minutes * 60:
        voice = f"{ACCENTS[rng.integers(len(ACCENTS))]}+{VARIANTS[rng.integers(len(VARIANTS))]}"
        rate, pitch = int(rng.uniform(135, 185)), int(rng.uniform(25, 75))
        sentences = max(4, int(recording_minutes * 60 / 4.5))  # ~4.5 s per sentence with its pause
        raw = folder / f".espeak_{index:03d}.wav"
        subprocess.run([espeak, "-m", "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", str(raw),
                        monologue(rng, sentences)], check=True, capture_output=True)
        samples = load_audio(raw)
        raw.unlink()
        target = folder / f"synth_{seed:02d}_{index:03d}.wav"
        write_wav(target, samples)
        written.append(target)
        total_s += len(samples) / SAMPLE_RATE
        index += 1
    return written
