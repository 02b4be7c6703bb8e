"""The options `generate`, `batch` and `render` share: declared once, the same on every command, and carried
into each batch item (locally and on Ray, via `GenerateOptions`)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, fields
from pathlib import Path

import pytest
import typer.main

from helpers import SAMPLE_WAV, ffmpeg, run_cli, two_people_clip
from listenerctl.cli import app
from listenerctl.cli_common import Device
from listenerctl.cli_options import ListenerArgs, MeshBackend, Render, RenderArgs, generate_options
from listenerctl.pipeline import GenerateOptions

COMMANDS = typer.main.get_command(app).commands
PER_INPUT = {"transcript"}      # generate-only: the transcript of its one input (batch reads each input's sidecar)
NOT_OPTIONS = {"cache_dir"}     # set by library callers, never on the command line


def described(command: str, name: str) -> tuple:
    """How the command ``command`` declares its parameter ``name``: flags, type, default, help, limits."""
    param = next(p for p in COMMANDS[command].params if p.name == name)
    return (tuple(param.opts), param.type_descriptor.annotation, param.default, param.help, param.min, param.max, param.is_flag,
            param.required)


@pytest.mark.parametrize("group,commands", [(ListenerArgs, ("generate", "batch")),
                                            (RenderArgs, ("generate", "batch", "render"))])
def test_each_shared_option_is_declared_the_same_on_every_command(group, commands):
    for field in fields(group):
        declarations = {command: described(command, field.name) for command in commands}
        assert len(set(declarations.values())) == 1, (field.name, declarations)


def test_batch_has_every_generate_option_that_fits_a_folder():
    batch = {p.name for p in COMMANDS["batch"].params}
    missing = {f.name for f in fields(GenerateOptions)} - PER_INPUT - NOT_OPTIONS - batch
    assert not missing, f"GenerateOptions fields without a batch option: {missing}"


def test_the_builder_carries_every_parsed_option_into_the_job_options():
    listener = ListenerArgs(samples=3, model="lbd", checkpoint=Path("c.safetensors"), seed=7, face="1",
                            face_at="10,20", text_encoder=Path("enc"))
    render = RenderArgs(render=Render.pirender, mesh_backend=MeshBackend.pyrender, size=128, portrait=Path("p.jpg"),
                        pirender_checkpoint=Path("g.pth"), side_by_side=True, device=Device.cuda)
    assert asdict(generate_options(render, "cuda", listener, Path("t.srt"))) == {
        "samples": 3, "model": "lbd", "checkpoint": "c.safetensors", "seed": 7, "device": "cuda", "render": "pirender",
        "mesh_backend": "pyrender", "size": 128, "portrait": "p.jpg", "pirender_checkpoint": "g.pth",
        "side_by_side": True, "face": "1", "face_at": "10,20", "cache_dir": None, "text_encoder": "enc",
        "transcript": "t.srt"}
    assert generate_options(RenderArgs(), "cpu").model == GenerateOptions().model  # the job's default model


def test_study_commands_do_not_import_the_main_cli():
    code = "import sys, listenerctl.cli_study; assert 'listenerctl.cli' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_batch_pirender_without_checkpoint_is_the_sentence_generate_gives(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    ffmpeg("-i", str(SAMPLE_WAV), "-t", "2", str(folder / "clip.wav"))
    alone = run_cli("generate", folder / "clip.wav", "-o", tmp_path / "one", "--render", "pirender")
    many = run_cli("batch", folder, "-o", tmp_path / "many", "--render", "pirender")
    assert alone.returncode == many.returncode == 2
    assert "--render pirender needs --pirender-checkpoint PATH" in alone.stderr
    assert many.stderr.strip() == alone.stderr.strip()
    assert not (tmp_path / "one").exists() and not (tmp_path / "many").exists()


def test_batch_refuses_a_malformed_face_choice_before_any_item(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    ffmpeg("-i", str(SAMPLE_WAV), "-t", "2", str(folder / "clip.wav"))
    proc = run_cli("batch", folder, "-o", tmp_path / "out", "--render", "none", "--face", "left")
    assert proc.returncode == 2 and "--face takes 'auto', 'largest' or a face number" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_batch_conditions_every_item_on_the_chosen_face(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    two_people_clip(folder / "two people.mp4")
    proc = run_cli("batch", folder, "-o", tmp_path / "out", "-k", 2, "--render", "none", "--face-at", "500,200")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "out" / "two people" / "manifest.json").read_text())
    assert manifest["options"]["face_at"] == "500,200"
    assert manifest["people"]["seen"] == 2 and manifest["people"]["chosen"] == 1  # B, on the right
    assert manifest["people"]["because"].startswith("nearest the point 500,200")
