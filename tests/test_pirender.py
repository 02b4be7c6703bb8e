"""PIRender renderer: official parameter names, strict checkpoint loading, windows, frames and errors.

No PIRender checkpoint is available offline: each test saves the network's own (seeded random) weights
in the official nesting and loads them back, so only shapes, dtypes and value ranges are checked.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from helpers import SAMPLE_WAV, ffmpeg, run_cli, shared_file
from listenerctl.errors import ListenerctlError
from listenerctl.media import probe
from renderers.pirender import PIRenderer, PIRenderGenerator, coefficient_windows, load_generator

SMALL = 64  # the smallest frame side the networks accept: keeps CPU forwards cheap


def seeded_state(input_dim: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(input_dim)
    return PIRenderGenerator(input_dim).state_dict()


@pytest.fixture(scope="module")
def react_state() -> dict[str, torch.Tensor]:
    return seeded_state(58)


@pytest.fixture(scope="module")
def react_checkpoint(tmp_path_factory, react_state):
    path = tmp_path_factory.mktemp("pirender") / "react.pth"
    torch.save({"net_G_ema": react_state}, path)
    return path


@pytest.fixture(scope="module")
def small_renderer(react_checkpoint) -> PIRenderer:
    reference = np.random.default_rng(0).integers(0, 256, (80, 96, 3), dtype=np.uint8)
    return PIRenderer(react_checkpoint, reference, size=SMALL, device="cpu", batch_size=2)


def error_text(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text and text.endswith("."), text
    return text


def test_parameter_names_and_shapes_match_the_official_generator():
    original = {k: list(v.shape) for k, v in PIRenderGenerator(73).state_dict().items()}
    react = {k: list(v.shape) for k, v in PIRenderGenerator(58).state_dict().items()}
    expected = {
        "mapping_net.first.0.weight": [256, 73, 7],
        "mapping_net.encoder2.1.weight": [256, 256, 3],
        "warpping_net.hourglass.encoder.input_layer.weight": [32, 3, 7, 7],
        "warpping_net.hourglass.encoder.encoder0.conv_0.weight": [64, 32, 4, 4],
        "warpping_net.hourglass.encoder.encoder4.conv_1.weight": [256, 256, 3, 3],
        "warpping_net.hourglass.encoder.encoder0.norm_0.mlp_shared.0.weight": [128, 256],
        "warpping_net.hourglass.encoder.encoder0.norm_0.mlp_gamma.weight": [32, 128],
        "warpping_net.hourglass.decoder.decoder4.conv_0.weight": [256, 256, 3, 3],
        "warpping_net.hourglass.decoder.decoder3.conv_0.weight": [256, 512, 3, 3],
        "warpping_net.hourglass.decoder.decoder2.conv_s.weight": [512, 128, 3, 3],
        "warpping_net.hourglass.decoder.decoder2.conv_1.weight": [128, 128, 3, 3],
        "warpping_net.hourglass.decoder.decoder2.norm_1.mlp_beta.bias": [128],
        "warpping_net.flow_out.0.weight": [256, 1, 1],
        "warpping_net.flow_out.2.weight": [2, 256, 7, 7],
        "editing_net.encoder.first.model.0.weight": [64, 6, 7, 7],
        "editing_net.encoder.first.model.1.weight": [64, 1, 1],
        "editing_net.encoder.down2.model.0.weight": [256, 256, 3, 3],
        "editing_net.decoder.res0.res1.conv1.weight": [128, 128, 3, 3],
        "editing_net.decoder.res2.res0.norm2.mlp_gamma.weight": [256, 128],
        "editing_net.decoder.up0.model.0.weight": [64, 128, 3, 3],
        "editing_net.decoder.jump0.model.1.bias": [64, 1, 1],
        "editing_net.decoder.final.model.0.weight": [3, 64, 7, 7],
    }
    assert {k: original.get(k) for k in expected} == expected
    assert all(not k.startswith(("mapping_net.pre", "module.")) for k in original)
    assert set(react) - set(original) == {"mapping_net.pre.weight", "mapping_net.pre.bias"}
    assert react["mapping_net.pre.weight"] == [73, 58, 1]


def test_react_checkpoint_loads_strictly_and_renders_a_256_portrait(react_checkpoint, react_state):
    portrait = cv2.cvtColor(cv2.imread(str(shared_file("portraits/portrait_1.jpg"))), cv2.COLOR_BGR2RGB)
    renderer = PIRenderer(react_checkpoint, portrait, size=256, device="cpu", batch_size=1)
    assert renderer.coeff_dim == 58 and renderer.size == 256
    loaded = renderer.generator.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in react_state.items())
    frames = list(renderer.render_sequence(np.zeros((1, 58), np.float32)))
    assert len(frames) == 1
    frame = frames[0]
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
    assert frame.std() > 1.0  # an image, not a constant fill


def test_original_73d_and_react_state_dict_nestings_load(tmp_path, react_state):
    original = tmp_path / "epoch_00190_iteration_000400000_checkpoint.pt"
    torch.save({"net_G": seeded_state(73), "current_epoch": 190}, original)
    renderer = PIRenderer(original, np.zeros((64, 64, 3), np.uint8), size=SMALL, device="cpu")
    mapping_net = renderer.generator.mapping_net
    assert renderer.coeff_dim == 73 and not hasattr(mapping_net, "pre") and not renderer.generator.training
    react = tmp_path / "cur_model_fold.pth"
    torch.save({"state_dict": react_state}, react)
    assert load_generator(react).mapping_net.input_dim == 58
    with pytest.raises(ListenerctlError) as excinfo:
        renderer.render_batch(np.zeros((2, 58), np.float32))
    assert "D = 73" in error_text(excinfo)


def test_windows_are_centred_and_edge_padded():
    coeffs = np.arange(5, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)  # frame t holds t
    windows = coefficient_windows(coeffs)
    assert windows.shape == (5, 27, 2)
    assert windows[0, :, 0].tolist() == [0] * 14 + [1, 2, 3, 4] + [4] * 9
    assert windows[2, 13, 0] == 2 and windows[2, 11:16, 0].tolist() == [0, 1, 2, 3, 4]
    assert np.array_equal(coefficient_windows(coeffs, 3, 5), windows[3:5])
    longer = np.concatenate([coeffs, np.full((20, 2), 9.0, np.float32)])
    assert np.array_equal(coefficient_windows(longer, 0, 1)[0, :, 0], [0] * 14 + [1, 2, 3, 4] + [9] * 9)
    assert coefficient_windows(longer, 0, 1)[0, -1, 0] == longer[13, 0]  # frame t sees t-13 .. t+13


def test_sequence_is_rendered_frame_by_frame_in_batches(small_renderer):
    coeffs = np.random.default_rng(1).normal(0, 1, (3, 58)).astype(np.float32)
    frames = list(small_renderer.render_sequence(coeffs))  # batches of 2 and 1
    assert len(frames) == 3 and all(f.shape == (SMALL, SMALL, 3) and f.dtype == np.uint8 for f in frames)
    alone = small_renderer.render_windows(coefficient_windows(coeffs, 0, 1))[0]
    assert np.abs(alone.astype(int) - frames[0]).max() <= 2  # batching does not change a frame


def test_mapping_net_descriptor_depends_on_all_27_window_frames(small_renderer):
    window = np.random.default_rng(5).normal(0, 1, (1, 27, 58)).astype(np.float32)
    nudged = np.repeat(window, 28, axis=0)
    nudged[np.arange(1, 28), np.arange(27)] += 1.0  # window i + 1 moves frame i only
    with torch.inference_mode():
        descriptors = small_renderer.generator.mapping_net(torch.from_numpy(nudged.transpose(0, 2, 1)))
    assert descriptors.shape == (28, 256, 1)
    change = (descriptors[1:] - descriptors[:1]).abs().amax(dim=(1, 2))
    assert bool((change > 1e-4).all())


def test_render_batch_holds_each_pose_still(small_renderer):
    poses = np.random.default_rng(2).normal(0, 1, (2, 58)).astype(np.float32)
    batch = small_renderer.render_batch(poses)
    assert batch.shape == (2, SMALL, SMALL, 3) and batch.dtype == np.uint8
    # a one-frame sequence's edge-padded window is that pose held still
    still = small_renderer.render_windows(np.concatenate([coefficient_windows(pose[None]) for pose in poses]))
    assert np.abs(still.astype(int) - batch).max() <= 2
    assert np.abs(batch[0].astype(int) - batch[1]).max() > 8


def test_mean_face_is_added_back(react_checkpoint, small_renderer):
    mean_face = np.random.default_rng(3).normal(0, 1, 58).astype(np.float32)
    reference = np.random.default_rng(0).integers(0, 256, (80, 96, 3), dtype=np.uint8)
    centred = PIRenderer(react_checkpoint, reference, size=SMALL, device="cpu", mean_face=mean_face)
    poses = np.zeros((1, 58), np.float32)
    assert np.abs(centred.render_batch(poses).astype(int) - small_renderer.render_batch(poses + mean_face)).max() <= 2


def test_wrong_and_missing_keys_are_named_with_counts(tmp_path, react_state):
    state = dict(react_state)
    del state["editing_net.decoder.final.model.0.bias"], state["mapping_net.first.0.bias"]
    state["discriminator.weight"] = torch.zeros(3)
    path = tmp_path / "keys.pth"
    torch.save({"net_G_ema": state}, path)
    with pytest.raises(ListenerctlError) as excinfo:
        load_generator(path)
    text = error_text(excinfo)
    assert str(path) in text
    assert "2 missing keys editing_net.decoder.final.model.0.bias, mapping_net.first.0.bias" in text
    assert "1 unexpected keys discriminator.weight" in text


def test_wrong_shapes_are_named(tmp_path, react_state):
    state = dict(react_state)
    state["editing_net.decoder.final.model.0.weight"] = torch.zeros(3, 64, 5, 5)
    path = tmp_path / "shapes.pth"
    torch.save({"net_G_ema": state}, path)
    with pytest.raises(ListenerctlError) as excinfo:
        load_generator(path)
    assert "1 wrong shapes editing_net.decoder.final.model.0.weight [3, 64, 5, 5] vs [3, 64, 7, 7]" in \
        error_text(excinfo)


def test_missing_truncated_foreign_and_generatorless_files_fail_in_one_sentence(tmp_path, react_checkpoint):
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(react_checkpoint.read_bytes()[:1_000_000])
    text_file = tmp_path / "notes.pth"
    text_file.write_text("not a checkpoint\n")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    no_generator = tmp_path / "optimizer_only.pth"
    torch.save({"opt_G": {"lr": torch.tensor(1e-4)}}, no_generator)
    foreign = tmp_path / "numpy_inside.pth"
    torch.save({"net_G_ema": {"mapping_net.first.0.bias": np.zeros(256)}}, foreign)
    cases = {tmp_path / "absent.pth": "not found", truncated: "not a readable PyTorch checkpoint",
             text_file: "not a readable PyTorch checkpoint", empty: "not a readable PyTorch checkpoint",
             no_generator: "holds no PIRender generator", foreign: "holds Python objects"}
    for path, phrase in cases.items():
        with pytest.raises(ListenerctlError) as excinfo:
            load_generator(path)
        text = error_text(excinfo)
        assert phrase in text and str(path) in text


def test_bad_renderer_arguments_are_refused(react_checkpoint):
    portrait = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ListenerctlError) as excinfo:
        PIRenderer(react_checkpoint, portrait, size=32, device="cpu")
    assert "multiple of 32 of at least 64" in error_text(excinfo)
    with pytest.raises(ListenerctlError) as excinfo:
        PIRenderer(react_checkpoint, portrait.astype(np.float32), size=SMALL, device="cpu")
    assert "RGB uint8" in error_text(excinfo)
    with pytest.raises(ListenerctlError) as excinfo:
        PIRenderer(react_checkpoint, portrait, size=SMALL, device="cpu", mean_face=np.zeros(52))
    assert "52 values" in error_text(excinfo)


def test_batch_renders_its_items_with_the_named_pirender_checkpoint(react_checkpoint, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    ffmpeg("-i", str(SAMPLE_WAV), "-t", "0.4", str(folder / "clip.wav"))  # 10 frames: PIRender is slow on a CPU
    proc = run_cli("batch", folder, "-o", tmp_path / "out", "-k", 1, "--size", SMALL, "--render", "pirender",
                   "--pirender-checkpoint", react_checkpoint, "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "out" / "clip" / "manifest.json").read_text())
    assert manifest["options"]["pirender_checkpoint"] == str(react_checkpoint)
    assert "grid.mp4" in manifest["outputs"] and "portrait: the default" in manifest["notes"]
    assert probe(tmp_path / "out" / "clip" / "sample_00.mp4").has_video
