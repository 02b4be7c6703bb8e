"""The pyrender mesh backend: same interface and look as the moderngl renderer, wired through the CLI."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import SAMPLE_WAV, ffmpeg, run_cli
from listenerctl.errors import ListenerctlError
from listenerctl.media import probe_streams
from listenerctl.motion import ARKIT52
from renderers.face_rig import ARKIT58_DIM
from renderers.mesh import BACKGROUND, MeshRenderer
from renderers.select import RendererPool
from test_generate_videos import check_video

SIZE = 128
needs_pyrender = pytest.mark.skipif(importlib.util.find_spec("pyrender") is None,
                                    reason="pyrender is not installed (pip install 'listenerctl[pyrender]')")


def _pose(**weights: float) -> np.ndarray:
    row = np.zeros(ARKIT58_DIM, np.float32)
    for name, value in weights.items():
        row[ARKIT52.index(name) if name in ARKIT52 else 52 + ("headPitch", "headYaw").index(name)] = value
    return row


POSES = np.stack([_pose(), _pose(jawOpen=1.0), _pose(headYaw=0.35), _pose(headPitch=0.3, jawOpen=0.5),
                  _pose(eyeBlinkLeft=1, eyeBlinkRight=1, mouthSmileLeft=1, mouthSmileRight=1)])


@pytest.fixture(scope="module")
def renderer():
    from renderers.mesh_pyrender import PyrenderMeshRenderer

    with PyrenderMeshRenderer(SIZE) as r:
        yield r


def _foreground(images: np.ndarray) -> np.ndarray:
    """[..., H, W] bool: pixels that are not the backdrop colour."""
    return np.abs(images.astype(int) - np.round(np.asarray(BACKGROUND) * 255)).sum(axis=-1) > 6


def _face_centre_x(image: np.ndarray) -> float:
    """Mean column of warm skin pixels above the chin line (the neck and shoulders do not turn)."""
    skin = image[..., 0].astype(int) > image[..., 2].astype(int) + 30
    skin[int(SIZE * 0.62):] = False
    return float(np.nonzero(skin)[1].mean())


@needs_pyrender
def test_renders_k_poses_as_uint8_frames(renderer):
    batch = renderer.render_batch(POSES)
    assert batch.shape == (len(POSES), SIZE, SIZE, 3) and batch.dtype == np.uint8
    np.testing.assert_allclose(renderer.render(POSES[2]), batch[2], atol=1)
    assert renderer.render_batch(np.zeros((0, ARKIT58_DIM))).shape == (0, SIZE, SIZE, 3)
    assert renderer.gl_renderer  # the OpenGL renderer's name, e.g. llvmpipe
    with pytest.raises(ValueError, match="58"):
        renderer.render(np.zeros(52))
    with pytest.raises(ValueError, match="NaN"):
        renderer.render_batch(np.full((1, ARKIT58_DIM), np.nan))


@needs_pyrender
def test_looks_like_the_moderngl_renderer(renderer):
    with MeshRenderer(SIZE) as moderngl:
        reference = moderngl.render_batch(POSES).astype(int)
    images = renderer.render_batch(POSES).astype(int)
    for ref, img in zip(reference, images):
        ref_mask, mask = _foreground(ref), _foreground(img)
        assert (ref_mask & mask).sum() / (ref_mask | mask).sum() > 0.9          # same silhouette
        assert np.abs(img - ref).mean() < 4.0                                    # measured ~1.5
        both = ref_mask & mask
        assert np.abs(img[both].mean(axis=0) - ref[both].mean(axis=0)).max() < 6  # same lighting level


@needs_pyrender
def test_jaw_open_changes_the_mouth_not_the_eyes(renderer):
    neutral, opened = renderer.render_batch(POSES[:2]).astype(int)
    changed = np.abs(opened - neutral).sum(axis=-1) > 30
    assert changed.sum() > 100
    assert np.flatnonzero(changed.any(axis=1)).min() > SIZE * 0.45


@needs_pyrender
def test_head_yaw_turns_the_face_as_moderngl_does(renderer):
    poses = np.stack([_pose(headYaw=-0.35), _pose(headYaw=0.35)])
    left, right = (_face_centre_x(image) for image in renderer.render_batch(poses))
    with MeshRenderer(SIZE) as moderngl:
        ref_left, ref_right = (_face_centre_x(image) for image in moderngl.render_batch(poses))
    assert right - left > 4                                                     # measured ~7.7 px
    assert abs((right - left) - (ref_right - ref_left)) < 1.5


@needs_pyrender
def test_scene_is_built_once_and_other_renderers_survive_a_release(renderer):
    from renderers.mesh_pyrender import PyrenderMeshRenderer

    nodes = set(renderer._scene.nodes)
    buffers = [p._buffers[0] for m in renderer._scene.meshes for p in m.primitives]
    before = renderer.render(POSES[1])
    with PyrenderMeshRenderer(64) as other:  # its release must not end this module's renderer's EGL display
        other.render(POSES[2])
    renderer.render_batch(POSES)
    assert set(renderer._scene.nodes) == nodes                                    # no node added or removed
    assert [p._buffers[0] for m in renderer._scene.meshes for p in m.primitives] == buffers  # same GPU buffers
    np.testing.assert_array_equal(renderer.render(POSES[1]), before)


@needs_pyrender
def test_pool_hands_out_the_pyrender_backend():
    from renderers.mesh_pyrender import PyrenderMeshRenderer

    with RendererPool("mesh", 64, mesh_backend="pyrender") as pool:
        mesh, note = pool.for_input(Path("talk.wav"), False, None)
        assert isinstance(mesh, PyrenderMeshRenderer) and note is None
        assert pool.for_input(Path("other.wav"), False, None)[0] is mesh       # built once
    with pytest.raises(ValueError, match="mesh backend"):
        RendererPool("mesh", 64, mesh_backend="vulkan")


def test_missing_pyrender_is_one_sentence_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrender", None)  # `import pyrender` now fails as if not installed
    with pytest.raises(ListenerctlError) as err:
        RendererPool("mesh", 64, mesh_backend="pyrender")
    message = str(err.value)
    assert "pip install 'listenerctl[pyrender]'" in message and message.count(". ") == 0
    RendererPool("mesh", 64).close()              # the default backend does not need it
    RendererPool("portrait", 64, mesh_backend="pyrender").close()


@pytest.mark.parametrize("command", ["generate", "batch", "render"])
def test_missing_pyrender_stops_each_command_before_any_work(command, monkeypatch, tmp_path):
    """The option reaches the renderer pool of every command, which names the install command at once."""
    from typer.testing import CliRunner

    from listenerctl.cli import app

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copy(SAMPLE_WAV, inputs / "talk.wav")
    target = {"generate": [str(inputs / "talk.wav")], "batch": [str(inputs)],
              "render": [str(tmp_path / "out" / "talk" / "motion.npz")]}[command]
    monkeypatch.setitem(sys.modules, "pyrender", None)
    result = CliRunner().invoke(app, [command, *target, "--mesh-backend", "pyrender", "-o", str(tmp_path / "out")])
    assert result.exit_code != 0
    assert "pip install 'listenerctl[pyrender]'" in result.output and "Traceback" not in result.output
    assert not list((tmp_path / "out").rglob("*.mp4"))


@needs_pyrender
def test_egl_failure_names_the_packages(monkeypatch):
    import pyrender

    from renderers.mesh_pyrender import PyrenderMeshRenderer

    def no_egl(*args, **kwargs):
        raise RuntimeError("eglInitialize failed")

    monkeypatch.setattr(pyrender, "OffscreenRenderer", no_egl)
    with pytest.raises(ListenerctlError) as err:
        PyrenderMeshRenderer(64)
    message = str(err.value)
    assert "libegl1 libgl1-mesa-dri libegl-mesa0" in message and "eglInitialize failed" in message
    assert message.count(". ") == 0


@needs_pyrender
def test_generate_with_pyrender_writes_videos_with_audio(tmp_path):
    clip = tmp_path / "talk2.wav"
    ffmpeg("-i", str(SAMPLE_WAV), "-t", "2", str(clip))
    proc = run_cli("generate", clip, "--mesh-backend", "pyrender", "-k", 2, "--size", 64, "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    item = tmp_path / "out" / "talk2"
    for name in ("sample_00.mp4", "sample_01.mp4"):
        check_video(item / name, 50, audio_seconds=2.0, width=64)
    check_video(item / "grid.mp4", 50, audio_seconds=2.0, width=128)
    assert json.loads((item / "manifest.json").read_text())["options"]["mesh_backend"] == "pyrender"


@needs_pyrender
@pytest.mark.slow
def test_generate_sample_talk_then_render_again_with_pyrender(tmp_path):
    """The brief's command on the shipped 28.8 s sample (every video T frames with the speech muxed),
    then `listenerctl render` of its motion with pyrender at another size."""
    proc = run_cli("generate", SAMPLE_WAV, "--mesh-backend", "pyrender", "-k", 2, "-o", tmp_path / "out",
                   timeout=900)
    assert proc.returncode == 0, proc.stderr
    item = tmp_path / "out" / "talk"
    frames = np.load(item / "motion.npz")["listener"].shape[1]
    duration = float(probe_streams(SAMPLE_WAV)["streams"][0]["duration"])
    assert frames == round(duration * 25)
    for name in ("sample_00.mp4", "sample_01.mp4", "grid.mp4"):
        check_video(item / name, frames, audio_seconds=duration)
    proc = run_cli("render", item / "motion.npz", "--mesh-backend", "pyrender", "--size", 64, "-o", tmp_path / "again",
                   timeout=900)
    assert proc.returncode == 0, proc.stderr
    check_video(tmp_path / "again" / "sample_01.mp4", frames, audio_seconds=duration, width=64)
