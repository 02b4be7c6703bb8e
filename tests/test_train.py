"""The shared trainer: an interrupted run resumes bit for bit, logs and plots, and writes a complete card."""

from __future__ import annotations

import csv
import json
from itertools import count

import pytest
import torch
from torch import nn

from helpers import run_cli
from listenerctl.checkpoint import CARD_FIELDS, load_checkpoint
from listenerctl.errors import ListenerctlError
from listenerctl.training.loop import TrainPlan, log_paths, run_training, state_paths


class Interrupted(Exception):
    pass


def tiny_plan(width: int = 8, interrupt_at: int | None = None, global_rng_batches: bool = False) -> TrainPlan:
    """A small regression net with dropout (global RNG) and two optimisers, on an endless seeded stream."""
    torch.manual_seed(123)
    model = nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Dropout(0.3), nn.Linear(width, 2))
    target = torch.tensor([[1.0, -2.0, 0.5], [0.3, 0.0, -1.0]])

    def batches():
        gen = torch.Generator().manual_seed(7)
        while True:
            x = torch.randn(16, 3) if global_rng_batches else torch.randn(16, 3, generator=gen)
            yield {"x": x, "y": x @ target.t()}

    def loss(batch):
        err = model(batch["x"]) - batch["y"]
        mse = err.pow(2).mean()
        return {"loss": mse, "mae": err.abs().mean(), "constant": 1.0}

    def on_step(step):
        if step == interrupt_at:
            raise Interrupted

    def evaluate():
        x = torch.linspace(-1, 1, 30).reshape(10, 3)
        return {"held_out_mse": (model(x) - x @ target.t()).pow(2).mean()}

    card = {"model": "tiny", "config": {"width": width}, "spec": "arkit58", "fps": 25.0,
            "training_data": "synthetic linear map"}
    optimizers = [torch.optim.AdamW(model[0].parameters(), lr=5e-2), torch.optim.SGD(model[3].parameters(), lr=5e-2)]
    return TrainPlan(model, optimizers, batches(), loss, evaluate, card, on_step)


@pytest.mark.parametrize("global_rng_batches", [False, True])
def test_interrupted_run_resumes_with_identical_results(tmp_path, global_rng_batches):
    straight = tiny_plan(global_rng_batches=global_rng_batches)
    run_training(straight, 20, tmp_path / "straight" / "tiny", log_every=4, seed=3)

    with pytest.raises(Interrupted):
        run_training(tiny_plan(interrupt_at=14, global_rng_batches=global_rng_batches), 20,
                     tmp_path / "resumed" / "tiny", log_every=4, seed=3)
    assert json.loads(state_paths(tmp_path / "resumed" / "tiny")[1].read_text())["step"] == 12
    resumed = tiny_plan(global_rng_batches=global_rng_batches)
    card = run_training(resumed, 20, tmp_path / "resumed" / "tiny", log_every=4, seed=3)

    assert card["training"]["resumed_from"] == 12
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    logs = [log_paths(tmp_path / run / "tiny")[0].read_text() for run in ("straight", "resumed")]
    steps_and_losses = [[(r["step"], r["loss"]) for r in csv.DictReader(text.splitlines())] for text in logs]
    assert steps_and_losses[0] == steps_and_losses[1]
    assert [s for s, _ in steps_and_losses[0]] == ["4", "8", "12", "16", "20"]


def test_runs_depend_on_the_seed(tmp_path):
    """Guards the test above: the global RNG (dropout) changes the result, so restoring it is needed."""
    plans = [tiny_plan(), tiny_plan()]
    for seed, plan in enumerate(plans):
        run_training(plan, 6, tmp_path / str(seed) / "tiny", log_every=6, seed=seed)
    assert not torch.equal(plans[0].model[0].weight, plans[1].model[0].weight)


def test_log_plot_and_card_are_written(tmp_path):
    plan = tiny_plan()
    card = run_training(plan, 10, tmp_path / "tiny", log_every=3, seed=0)
    csv_path, png_path = log_paths(tmp_path / "tiny")
    rows = list(csv.DictReader(csv_path.read_text().splitlines()))
    assert [r["step"] for r in rows] == ["3", "6", "9", "10"]
    assert {"loss", "mae", "constant", "grad_norm", "wall_s"} <= set(rows[0])
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert float(rows[0]["constant"]) == 1.0
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png_path.stat().st_size > 5000

    state, saved = load_checkpoint(tmp_path / "tiny", expected_model="tiny", expected_spec="arkit58")
    assert all(field in saved for field in CARD_FIELDS)
    assert saved["steps"] == 10 and saved["wall_time_s"] > 0 and saved["config"] == {"width": 8}
    assert saved["training_data"] == "synthetic linear map"
    assert set(saved["metrics"]) == {"held_out_mse"} and saved["metrics"]["held_out_mse"] > 0
    assert saved["training"]["final_terms"]["loss"] == pytest.approx(float(rows[-1]["loss"]), rel=1e-5)
    assert {k: v for k, v in saved.items() if k not in ("sha256", "weights")} == card
    assert all(torch.equal(state[k], v) for k, v in plan.model.state_dict().items())
    assert not plan.model.training  # evaluated in eval mode


def test_finished_run_can_be_extended(tmp_path):
    run_training(tiny_plan(), 8, tmp_path / "tiny", log_every=4, seed=1)
    extended = tiny_plan()
    card = run_training(extended, 12, tmp_path / "tiny", log_every=4, seed=1)
    straight = tiny_plan()
    run_training(straight, 12, tmp_path / "straight", log_every=4, seed=1)
    assert card["steps"] == 12 and card["training"]["resumed_from"] == 8
    assert torch.equal(extended.model[3].weight, straight.model[3].weight)


def test_state_of_another_config_or_past_the_goal_is_refused(tmp_path):
    run_training(tiny_plan(width=8), 8, tmp_path / "tiny", log_every=4)
    with pytest.raises(ListenerctlError, match="another model or config") as error:
        run_training(tiny_plan(width=6), 8, tmp_path / "tiny", log_every=4)
    assert "\n" not in str(error.value)
    with pytest.raises(ListenerctlError, match="past the 4 steps"):
        run_training(tiny_plan(width=8), 4, tmp_path / "tiny", log_every=4)


def test_corrupt_state_gives_one_sentence(tmp_path):
    run_training(tiny_plan(), 4, tmp_path / "tiny", log_every=4)
    state_paths(tmp_path / "tiny")[0].write_bytes(b"not safetensors")
    with pytest.raises(ListenerctlError, match="cannot be read"):
        run_training(tiny_plan(), 8, tmp_path / "tiny", log_every=4)


def test_divergence_stops_with_a_sentence(tmp_path):
    plan = tiny_plan()
    steps = count()
    plan.loss = lambda batch: {"loss": torch.tensor(float("nan"), requires_grad=True) if next(steps) > 1
                               else plan.model(batch["x"]).pow(2).mean()}
    with pytest.raises(ListenerctlError, match="diverged"):
        run_training(plan, 8, tmp_path / "tiny", log_every=2)


def test_plan_card_must_describe_the_model(tmp_path):
    plan = tiny_plan()
    del plan.card["training_data"]
    with pytest.raises(ValueError, match="training_data"):
        run_training(plan, 1, tmp_path / "tiny")


def test_the_registry_names_each_learned_models_plan_builder():
    import listenerctl.training.lbd
    from listenerctl.models import REGISTRY, train_plan_builder   # the registry, not a model file

    learned = [name for name, entry in REGISTRY.items() if entry.learned]
    assert set(learned) == {"lbd", "difflistener", "sfms", "facetok", "diffsheg"}
    for name in learned:
        builder = train_plan_builder(name)
        assert callable(builder) and builder.__module__ == f"listenerctl.training.{name}"
    assert train_plan_builder("lbd") is listenerctl.training.lbd.make_train_plan
    for name in ("rules", "mean", "nonsense"):
        with pytest.raises(ListenerctlError, match=f"'{name}' is not a trainable model; trainable: diffsheg, "):
            train_plan_builder(name)


def test_cli_train_of_a_model_without_training_is_one_sentence(tmp_path):
    result = run_cli("train", "rules", "--data", str(tmp_path), "--out", str(tmp_path / "rules"))
    assert result.returncode == 2 and "'rules' is not a trainable model" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr and not list(tmp_path.iterdir())
