"""Seeded motion of every registered generator, hashed: the check that a refactor changed no output.

For the shipped sample video (speaker face and audio through the real feature spine) and its audio alone,
every registered model generates K samples with a fixed seed; the SHA-256 of each motion array (float32
bytes, shape and spec included) and of the speaker features is printed as JSON. ``--check FILE`` compares
against hashes written earlier and exits 1 listing what differs. Hashes are exact only on the same
machine and torch build (float reductions may differ elsewhere).

    python scripts/motion_hashes.py > before.json
    python scripts/motion_hashes.py --check before.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def digest(array: np.ndarray, label: str = "") -> str:
    """SHA-256 of a float32 array's bytes, its shape and a label (e.g. the motion spec)."""
    data = np.ascontiguousarray(array, dtype=np.float32)
    return hashlib.sha256(f"{label}{data.shape}".encode() + data.tobytes()).hexdigest()


def hashes(samples: int, seed: int) -> dict[str, str]:
    """{'<input>/<model>': motion hash, '<input>/speaker': speaker-feature hash} for both inputs."""
    from listenerctl.errors import ListenerctlError
    from listenerctl.models import REGISTRY, load_generator
    from listenerctl.pipeline import prepare_conditioning

    out: dict[str, str] = {}
    for path in (ROOT / "samples" / "talk.mp4", ROOT / "samples" / "talk.wav"):
        cond = prepare_conditioning(path).cond
        parts = [p for p in (cond.audio, cond.face) if p is not None]
        out[f"{path.name}/speaker"] = hashlib.sha256(
            b"".join(np.ascontiguousarray(a).tobytes() for p in parts for a in vars(p).values()
                     if isinstance(a, np.ndarray))).hexdigest()
        for name in REGISTRY:
            generator = load_generator(name)
            try:
                motion = generator.generate(generator.usable(cond), samples, seed)
            except ListenerctlError as error:  # e.g. mime without a face: record the refusal itself
                out[f"{path.name}/{name}"] = f"refused: {error}"
                continue
            out[f"{path.name}/{name}"] = digest(motion.data, motion.spec)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--check", type=Path, help="JSON written earlier by this script")
    args = parser.parse_args()
    current = hashes(args.samples, args.seed)
    if args.check is None:
        print(json.dumps(current, indent=2))
        return
    before = json.loads(args.check.read_text())
    differing = sorted(k for k in before.keys() | current.keys() if before.get(k) != current.get(k))
    print(json.dumps({"compared": len(before), "differing": differing}, indent=2))
    sys.exit(1 if differing else 0)


if __name__ == "__main__":
    main()
