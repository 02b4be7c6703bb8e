"""The range of a plausible listener's arkit58 motion: the highest weight the rule listener gives each
blendshape and the symmetric limits of its head pose, shared by the rule listener (which clips to it)
and the baselines (which wander within it)."""

from __future__ import annotations

import numpy as np

from listenerctl.motion import get_spec

SPEC = get_spec("arkit58")
CH = {name: i for i, name in enumerate(SPEC.channels)}   # arkit58 channel name → index
DEG = np.pi / 180.0

# Highest weight the rule listener gives each blendshape (all others stay 0); pose limits are symmetric.
BLENDSHAPE_LIMITS = {
    "eyeBlinkLeft": 1.0, "eyeBlinkRight": 1.0, "eyeSquintLeft": 0.6, "eyeSquintRight": 0.6,
    "eyeWideLeft": 0.4, "eyeWideRight": 0.4, "browInnerUp": 0.9, "browOuterUpLeft": 0.8,
    "browOuterUpRight": 0.8, "browDownLeft": 0.15, "browDownRight": 0.15, "mouthSmileLeft": 1.0,
    "mouthSmileRight": 1.0, "cheekSquintLeft": 0.5, "cheekSquintRight": 0.5, "mouthDimpleLeft": 0.3,
    "mouthDimpleRight": 0.3, "mouthClose": 0.1, "mouthPressLeft": 0.15, "mouthPressRight": 0.15,
    "mouthFrownLeft": 0.1, "mouthFrownRight": 0.1, "jawOpen": 0.05,
    **{f"eyeLook{d}{s}": 0.6 for d in ("Up", "Down", "In", "Out") for s in ("Left", "Right")},
}
POSE_LIMITS = {"headPitch": 20.0 * DEG, "headYaw": 15.0 * DEG, "headRoll": 10.0 * DEG,
               "headTx": 2.0, "headTy": 2.0, "headTz": 2.0}


def value_range() -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest value [58] each arkit58 channel takes under the rule listener."""
    high = np.zeros(SPEC.dim, np.float32)
    for name, limit in {**BLENDSHAPE_LIMITS, **POSE_LIMITS}.items():
        high[CH[name]] = limit
    low = np.zeros_like(high)
    for name, limit in POSE_LIMITS.items():
        low[CH[name]] = -limit
    return low, high
