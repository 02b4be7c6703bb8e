"""Fine-tuning (`train MODEL --init CHECKPOINT`) for every learned listener: the run starts from the
checkpoint's weights, config and normalisation (its step-0 loss is the checkpoint model's), trains only the
last phase, records the init checkpoint in the card and writes a loadable checkpoint; wrong checkpoints and
mismatches are one sentence."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import run_cli
from listenerctl.checkpoint import load_checkpoint, load_into
from listenerctl.errors import ListenerctlError
from listenerctl.models import load_generator, train_plan_builder
from listenerctl.training.loop import run_training

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# model: (tiny config, the config field(s) whose sum is where its last phase starts, trained prefixes, frozen prefixes)
MODELS = {
    "lbd": (dict(width=32, heads=4, latent_dim=4, denoiser_width=32, denoiser_layers=3, time_dim=16, batch_size=8,
                 noise_repeats=2, autoencoder_steps=4, warmup_steps=2, steps=10),
            ("autoencoder_steps",), ("denoiser.",), ("decoder.", "encoder.body.")),
    "difflistener": (dict(window=32, overlap_tokens=1, code_dim=8, vq_width=16, width=32, heads=4, denoiser_layers=1,
                          time_dim=16, diffusion_steps=20, steps=5, batch_size=8, vqvae_steps=4, warmup_steps=2,
                          dead_after=2),
                     ("vqvae_steps",), ("denoiser.body.",), ("encoder.", "decoder.", "quantizer.")),
    "sfms": (dict(width=16, heads=2, position_dim=8, predictor_width=16, predictor_layers=1, encoder_layers=1,
                  inpainter_layers=1, batch_size=8, tokenizer_steps=4, warmup_steps=2, best_of=2, keyframes=5),
             ("tokenizer_steps",), ("predictor.body.",), ("tokenizer.",)),
    "facetok": (dict(token_window=4, tokenizer_width=16, tokenizer_layers=1, width=16, heads=2, speaker_layers=1,
                     listener_layers=1, patch=8, context=8, tokenizer_steps=4, emotion_steps=2, tokenizer_batch_size=4,
                     batch_size=4, warmup_steps=2),
                ("tokenizer_steps", "emotion_steps"), ("listener.",), ("tokenizer.", "emotion.")),
}


def plan_of(model: str, corpus, **kwargs):
    return train_plan_builder(model)(corpus, seed=0, **kwargs)


@pytest.fixture(scope="module")
def pretrained(tiny_corpus, tmp_path_factory) -> dict:
    """Per model: a tiny checkpoint trained two steps into its last phase on the tiny corpus."""
    folder = tmp_path_factory.mktemp("pretrained")
    stems = {}
    for model, (tiny, phase_fields, _, _) in MODELS.items():
        stems[model] = folder / model
        run_training(plan_of(model, tiny_corpus, **tiny), sum(tiny[f] for f in phase_fields) + 2, stems[model],
                     log_every=100)
    return stems


def loss_on(plan, step: int, batch: dict) -> float:
    """The plan's loss on ``batch`` at the run's ``step``, as `run_training` schedules it."""
    plan.on_step(plan.first_step + step)
    torch.manual_seed(7)
    return float(plan.loss(batch)["loss"].detach())


@pytest.mark.parametrize("model", list(MODELS))
def test_fine_tuning_starts_from_the_checkpoint_and_trains_its_last_phase(model, pretrained, tiny_corpus, tmp_path):
    tiny, phase_fields, trained_prefixes, frozen_prefixes = MODELS[model]
    init_state, init_card = load_checkpoint(pretrained[model], expected_model=model)
    plan = plan_of(model, tiny_corpus, init=pretrained[model])
    start_state = {k: v.clone() for k, v in plan.model.state_dict().items()}
    assert all(torch.equal(start_state[k], init_state[k]) for k in init_state)       # weights and statistics

    # Step 0 of fine-tuning is a last-phase step of the checkpoint's model: the same loss on the same batch
    # as a fresh plan holding the checkpoint's weights at the last phase's first step, unlike a fresh model.
    batch = next(plan.batches)
    last_phase = sum(tiny[f] for f in phase_fields)
    fresh_loss = loss_on(plan_of(model, tiny_corpus, **tiny), last_phase, batch)
    reference = plan_of(model, tiny_corpus, **tiny)
    load_into(reference.model, init_state)
    assert loss_on(plan, 0, batch) == pytest.approx(loss_on(reference, last_phase, batch), rel=1e-5)
    assert loss_on(plan, 0, batch) != pytest.approx(fresh_loss, rel=1e-3)

    stem = tmp_path / f"{model}-finetuned"
    card = run_training(plan_of(model, tiny_corpus, init=pretrained[model]), 3, stem, log_every=3)
    assert card["init"] == {"checkpoint": str(pretrained[model]), "sha256": init_card["sha256"],
                            "steps": init_card["steps"], "training_data": init_card["training_data"]}
    assert card["steps"] == 3 and json.loads(json.dumps(card["config"])) == init_card["config"]
    tuned, saved_card = load_checkpoint(stem, expected_model=model)
    assert saved_card["init"]["sha256"] == init_card["sha256"]
    trained = [k for k in tuned if k.startswith(trained_prefixes)]
    frozen = [k for k in tuned if k.startswith(frozen_prefixes) and tuned[k].is_floating_point()]
    assert trained and any(not torch.equal(tuned[k], init_state[k]) for k in trained)
    assert frozen and all(torch.equal(tuned[k], init_state[k]) for k in frozen)
    for name in ("motion_mean", "motion_std", "audio_mean", "audio_std"):
        assert torch.equal(tuned[name], init_state[name])
    assert load_generator(model, stem.with_name(stem.name + ".safetensors")).name == model


def test_a_checkpoint_of_another_model_or_config_is_one_sentence(pretrained, tiny_corpus):
    with pytest.raises(ListenerctlError, match="holds model 'sfms', not 'lbd'"):
        plan_of("lbd", tiny_corpus, init=pretrained["sfms"])
    with pytest.raises(ListenerctlError, match="does not fit"):
        plan_of("lbd", tiny_corpus, init=pretrained["lbd"], width=64)
    card_path = pretrained["lbd"].with_name("lbd.json")
    card = json.loads(card_path.read_text())
    broken = pretrained["lbd"].with_name("broken")
    broken.with_name("broken.safetensors").write_bytes(pretrained["lbd"].with_name("lbd.safetensors").read_bytes())
    broken.with_name("broken.json").write_text(json.dumps({**card, "config": {**card["config"], "colour": 3}}))
    with pytest.raises(ListenerctlError, match="unknown fields colour"):
        plan_of("lbd", tiny_corpus, init=broken)


def test_cli_fine_tunes_and_refuses_to_overwrite_its_init(pretrained, tiny_corpus, tmp_path):
    init = pretrained["sfms"].with_name("sfms.safetensors")
    result = run_cli("train", "sfms", "--data", tiny_corpus, "--init", init, "--out", pretrained["sfms"])
    assert result.returncode == 2 and "would overwrite the --init checkpoint" in result.stdout + result.stderr
    result = run_cli("train", "diffsheg", "--data", tiny_corpus, "--init", init)
    assert result.returncode == 2 and "fine-tunes listener models" in result.stdout + result.stderr
    stem = tmp_path / "tuned"
    result = run_cli("train", "sfms", "--data", tiny_corpus, "--init", init, "--out", stem, "--steps", "2",
                     "--device", "cpu")
    assert result.returncode == 0, result.stdout + result.stderr
    card = json.loads(stem.with_name("tuned.json").read_text())
    assert card["init"]["checkpoint"] == str(init) and card["steps"] == 2
