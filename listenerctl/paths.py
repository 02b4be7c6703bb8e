"""Where the shipped, read-only assets live: the trained checkpoints and the MediaPipe face model.

The repository keeps them in its top-level ``checkpoints/`` folder. A wheel (``pip install .``) installs
that folder as ``listenerctl/checkpoints/`` inside the package (pyproject ``package-dir``); a source tree or
an editable install reads the repository folder. Nothing at run time writes here: ``train`` saves new
checkpoints under the working directory (``checkpoints/MODEL`` there) unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def shipped_dir() -> Path:
    """The folder holding the shipped checkpoints and ``face_landmarker.task``."""
    installed = _PACKAGE_DIR / "checkpoints"
    return installed if installed.is_dir() else _PACKAGE_DIR.parent / "checkpoints"


SHIPPED_DIR = shipped_dir()
FACE_MODEL = SHIPPED_DIR / "face_landmarker.task"
