"""A plain (non-editable) install works: the wheel ships the checkpoints and face model inside the package,
and the installed `listenerctl generate` finds them when run from a folder outside the repository."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import ROOT, SAMPLE_WAV
from listenerctl.data.speech import synthesize_speech
from listenerctl.data.synth import SynthOptions, build_corpus
from listenerctl.media import probe
from listenerctl.models import REGISTRY

SAMPLE_VIDEO = ROOT / "samples" / "talk.mp4"
BUILD_INPUTS = ("pyproject.toml", "README.md", "listenerctl", "renderers", "checkpoints")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def clean_env() -> dict[str, str]:
    """The environment without PYTHONPATH, so the installed package (not this source tree) is imported."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LISTENERCTL_DEBUG")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built by pip (as `pip install .` builds it) from a copy of the build inputs, so the build
    leaves nothing in the source tree."""
    src = tmp_path_factory.mktemp("src")
    for name in BUILD_INPUTS:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
                   check=True, capture_output=True, text=True, timeout=300, env=clean_env())
    (found,) = out.glob("listenerctl-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv (seeing this machine's installed dependencies) with the wheel installed, not editable."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(root)], check=True, timeout=120)
    subprocess.run([str(root / "bin" / "pip"), "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=300, env=clean_env())
    return root


def test_wheel_ships_checkpoints_face_model_and_every_module(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        shipped = {name: archive.read(f"listenerctl/checkpoints/{name}")
                   for name in ["face_landmarker.task", "NOTICE.md"]
                   + [f"{e.name}{suffix}" for e in REGISTRY.values() if e.learned
                      for suffix in (".safetensors", ".json")]}
    for name, data in shipped.items():
        assert sha256(data) == sha256((ROOT / "checkpoints" / name).read_bytes()), name
    modules = {p.relative_to(ROOT).as_posix() for package in ("listenerctl", "renderers")
               for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts}
    assert modules <= names, f"modules missing from the wheel (pyproject packages list): {modules - names}"
    assert "listenerctl/study_page.html" in names and "renderers/assets/default_portrait.jpg" in names


@pytest.mark.slow  # ~40 s: a venv install and two generate runs, one with a learned model
def test_installed_generate_reads_shipped_assets_outside_the_repo(venv, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    listenerctl = str(venv / "bin" / "listenerctl")
    paths = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "from listenerctl.paths import FACE_MODEL, SHIPPED_DIR; print(SHIPPED_DIR); "
                            "print(FACE_MODEL.is_file())"],
                           cwd=work, env=clean_env(), capture_output=True, text=True, check=True)
    shipped_dir, face_model_found = paths.stdout.split()
    assert Path(shipped_dir).is_relative_to(venv) and face_model_found == "True", paths.stdout

    def generate(*args):
        proc = subprocess.run([listenerctl, "generate", *map(str, args), "--render", "none"], cwd=work,
                              env=clean_env(), capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        return proc

    generate(SAMPLE_WAV, "-k", 2)
    with np.load(work / "out" / "talk" / "motion.npz") as z:
        assert z["listener"].shape == (2, round(probe(SAMPLE_WAV).duration * 25), 58)
    assert json.loads((work / "out" / "talk" / "manifest.json").read_text())["conditioning"] == "audio"

    generate(SAMPLE_VIDEO, "-k", 2, "--model", "lbd", "-o", "video")
    manifest = json.loads((work / "video" / "talk" / "manifest.json").read_text())
    assert manifest["conditioning"] == "audio+face" and manifest["face_found_share"] > 0.95
    assert Path(manifest["model"]["checkpoint"]).is_relative_to(venv)
    assert manifest["model"]["sha256"] == sha256((ROOT / "checkpoints" / "lbd.safetensors").read_bytes())
    with np.load(work / "video" / "talk" / "motion.npz") as z:
        assert z["listener"].shape[:1] == (2,) and np.isfinite(z["listener"]).all()


@pytest.mark.slow  # ~60 s: a small synthetic corpus and a two-step fine-tune with the installed CLI
def test_installed_train_writes_under_the_working_directory_not_the_package(venv, tmp_path):
    speech = tmp_path / "speech"
    synthesize_speech(speech, minutes=1.5, seed=3, recording_minutes=0.4)
    corpus = tmp_path / "corpus"
    build_corpus([speech], corpus, SynthOptions(personalities=2, clip_frames=125, seed=1), report=lambda _: None)
    work = tmp_path / "work"
    work.mkdir()
    shipped = next((venv / "lib").glob("python*/site-packages/listenerctl/checkpoints"))
    before = {p.name: sha256(p.read_bytes()) for p in shipped.iterdir()}
    proc = subprocess.run([str(venv / "bin" / "listenerctl"), "train", "sfms", "--data", str(corpus), "--init",
                           str(shipped / "sfms.safetensors"), "--steps", "2", "--log-every", "1", "--device", "cpu"],
                          cwd=work, env=clean_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (work / "checkpoints" / "sfms-finetuned.safetensors").is_file()
    assert json.loads((work / "checkpoints" / "sfms-finetuned.json").read_text())["steps"] == 2
    assert {p.name: sha256(p.read_bytes()) for p in shipped.iterdir()} == before
