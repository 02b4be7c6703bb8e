"""Choose and hold the frame renderer of a `generate` run (``--render mesh|portrait|pirender``).

The mesh renderer (moderngl, or pyrender with ``--mesh-backend pyrender``) is built once and reused
for every input; the portrait and PIRender renderers are set up per input with its reference portrait:
``--portrait IMG`` when given, else the input video's first frame with a face, else the shipped default
portrait.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from listenerctl.conditioning import Conditioning
from listenerctl.errors import ListenerctlError
from listenerctl.media import iter_video_frames
from renderers.compose import FrameRenderer

RENDERERS = ("mesh", "portrait", "pirender")
MESH_BACKENDS = ("moderngl", "pyrender")


def first_face_frame(video: Path, cond: Conditioning) -> np.ndarray | None:
    """RGB frame of ``video`` at the first motion frame where the speaker's face was found, or None."""
    if cond.face is None or not cond.face.found.any():
        return None
    index = int(np.argmax(cond.face.found))
    for i, frame in enumerate(iter_video_frames(video, fps=cond.fps, num_frames=index + 1)):
        if i == index:
            return frame.copy()
    return None


class RendererPool:
    """Hands out a renderer per input and releases them at the end (use as a context manager)."""

    def __init__(self, kind: str, size: int = 256, portrait: Path | None = None,
                 pirender_checkpoint: Path | None = None, device: str = "cpu", mesh_backend: str = "moderngl"):
        if kind not in RENDERERS:
            raise ValueError(f"unknown renderer {kind!r}; choose from {', '.join(RENDERERS)}")
        if mesh_backend not in MESH_BACKENDS:
            raise ValueError(f"unknown mesh backend {mesh_backend!r}; choose from {', '.join(MESH_BACKENDS)}")
        if kind == "mesh" and mesh_backend == "pyrender":
            from renderers.mesh_pyrender import load_pyrender

            load_pyrender()  # a missing pyrender is reported now, before any motion is generated
        if kind == "pirender" and pirender_checkpoint is None:
            raise ListenerctlError("--render pirender needs --pirender-checkpoint PATH (a PIRender generator .pth).")
        self.kind, self.size, self.portrait = kind, size, portrait
        self.pirender_checkpoint, self.device, self.mesh_backend = pirender_checkpoint, device, mesh_backend
        self._mesh = None
        self._portrait_image = None
        if kind != "mesh" and portrait is not None:
            from renderers.portrait import load_portrait

            self._portrait_image = load_portrait(portrait)

    def reference_note(self, has_reference_frame: bool) -> str:
        if self.portrait is not None:
            return f"portrait: {self.portrait.name}"
        return "portrait: the input's first frame with a face" if has_reference_frame else "portrait: the default"

    def for_input(self, source: Path, has_video: bool, cond: Conditioning) -> tuple[FrameRenderer, str | None]:
        """The renderer for one input, and a note on which portrait it uses (None for the mesh)."""
        if self.kind == "mesh":
            if self._mesh is None and self.mesh_backend == "pyrender":
                from renderers.mesh_pyrender import PyrenderMeshRenderer

                self._mesh = PyrenderMeshRenderer(self.size)
            elif self._mesh is None:
                from renderers.mesh import MeshRenderer

                self._mesh = MeshRenderer(self.size)
            return self._mesh, None
        from renderers.portrait import PortraitRenderer, default_portrait

        frame = None if self._portrait_image is not None or not has_video else first_face_frame(source, cond)
        image = self._portrait_image if self._portrait_image is not None else frame
        image = image if image is not None else default_portrait()
        if self.kind == "pirender":
            from renderers.pirender import PIRenderer

            renderer = PIRenderer(self.pirender_checkpoint, image, self.size, device=self.device)
        else:
            renderer = PortraitRenderer(image, self.size, name=self.portrait.name if self.portrait else source.name)
        return renderer, self.reference_note(frame is not None)

    def release(self, renderer: FrameRenderer) -> None:
        """Free a per-input renderer (the shared mesh renderer stays until `close`)."""
        if renderer is not self._mesh and hasattr(renderer, "release"):
            renderer.release()

    def close(self) -> None:
        if self._mesh is not None:
            self._mesh.release()
            self._mesh = None

    def __enter__(self) -> "RendererPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
