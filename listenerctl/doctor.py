"""Environment checks for `listenerctl doctor`: each names what is missing and how to fix it."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from listenerctl.paths import FACE_MODEL

FACE_MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _ffmpeg(name: str) -> Check:
    path = shutil.which(name)
    if path is None:
        return Check(name, False, "not on PATH; Debian/Ubuntu: apt-get install ffmpeg")
    line = subprocess.run([path, "-version"], capture_output=True, text=True).stdout.splitlines()[:1]
    return Check(name, True, line[0].split(" Copyright")[0] if line else path)


def _egl() -> Check:
    try:
        import moderngl

        ctx = moderngl.create_context(standalone=True, backend="egl")
        renderer = ctx.info.get("GL_RENDERER", "?")
        ctx.release()
        return Check("EGL (moderngl)", True, renderer)
    except Exception as exc:  # any failure here means rendering cannot work
        return Check("EGL (moderngl)", False, f"{exc}; Debian/Ubuntu: apt-get install libegl1 libgl1 "
                     "libegl-mesa0 libgl1-mesa-dri")


def _torch() -> Check:
    try:
        import torch
    except ImportError as exc:
        return Check("torch", False, f"{exc}; pip install torch==2.9.1")
    cuda = f"CUDA {torch.version.cuda}, GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() \
        else "no CUDA GPU (CPU only; fine, just slower for learned models)"
    return Check("torch", True, f"{torch.__version__}; {cuda}")


def _face_model() -> Check:
    from listenerctl.hashing import file_sha256

    path = FACE_MODEL
    if not path.exists():
        return Check("face model", False, f"{path} missing; restore it from the repository (git checkout)")
    if file_sha256(path) != FACE_MODEL_SHA256:
        return Check("face model", False, f"{path} differs from the shipped file; restore it with git checkout")
    try:
        import mediapipe  # noqa: F401
    except ImportError as exc:
        return Check("face model", False, f"mediapipe cannot be imported ({exc}); pip install mediapipe")
    return Check("face model", True, str(path))


def run_checks() -> list[Check]:
    return [_ffmpeg("ffmpeg"), _ffmpeg("ffprobe"), _egl(), _torch(), _face_model()]
