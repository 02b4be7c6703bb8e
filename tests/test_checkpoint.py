"""Checkpoints: safetensors + card round trip, and one clear sentence for every way loading can fail."""

from __future__ import annotations

import hashlib
import json
import pickle

import pytest
import torch
from torch import nn

from listenerctl.checkpoint import (RENAMED_CONFIG_FIELDS, checkpoint_paths, load_checkpoint, load_into, read_card,
                                    save_checkpoint)
from listenerctl.errors import ListenerctlError
from listenerctl.models import REGISTRY, load_generator, resolve


class TinyNet(nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.encoder = nn.Linear(3, width)
        self.head = nn.Linear(width, 2)
        self.register_buffer("scale", torch.ones(2))

    def forward(self, x):
        return self.head(torch.relu(self.encoder(x))) * self.scale


CARD = {"model": "tiny", "config": {"width": 4}, "spec": "arkit58", "fps": 25.0,
        "training_data": "synthetic: 3 speakers x 2 personalities (rules teacher)", "steps": 120,
        "wall_time_s": 3.5, "metrics": {"val_loss": 0.25}}


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    net = TinyNet()
    weights, card = save_checkpoint(tmp_path / "tiny", net.state_dict(), CARD)
    return net, weights, card


def assert_one_sentence(error: pytest.ExceptionInfo, *phrases: str) -> None:
    message = str(error.value)
    assert "\n" not in message and message.endswith(".") and ". " not in message, message
    for phrase in phrases:
        assert phrase in message, message


def test_round_trip_restores_weights_and_card(saved, tmp_path):
    net, weights, card_path = saved
    assert (weights.name, card_path.name) == ("tiny.safetensors", "tiny.json")
    state, card = load_checkpoint(weights, expected_model="tiny", expected_spec="arkit58")
    assert {k: v for k, v in card.items() if k not in ("sha256", "weights")} == CARD
    assert len(card["sha256"]) == 64 and card["weights"] == "tiny.safetensors"
    fresh = TinyNet()
    load_into(fresh, state)
    x = torch.randn(5, 3)
    assert torch.equal(fresh(x), net(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.json", "tiny.safetensors"]  # no temp files left
    for name in ("tiny", "tiny.json", "tiny.safetensors"):
        assert read_card(tmp_path / name)["sha256"] == card["sha256"]


def test_tied_weights_are_saved(tmp_path):
    shared = torch.randn(3, 3)
    save_checkpoint(tmp_path / "tied", {"a": shared, "b": shared}, CARD)
    state, _ = load_checkpoint(tmp_path / "tied")
    assert torch.equal(state["a"], state["b"])


def test_card_without_required_fields_is_refused_at_save(tmp_path):
    with pytest.raises(ValueError, match="metrics"):
        save_checkpoint(tmp_path / "x", {}, {k: v for k, v in CARD.items() if k != "metrics"})
    assert not any(tmp_path.iterdir())


def test_missing_weights(tmp_path):
    with pytest.raises(ListenerctlError) as error:
        load_checkpoint(tmp_path / "absent.safetensors")
    assert_one_sentence(error, "not found")


def test_missing_card(saved):
    _, weights, card_path = saved
    card_path.unlink()
    with pytest.raises(ListenerctlError) as error:
        load_checkpoint(weights)
    assert_one_sentence(error, "tiny.json is missing")


def test_card_that_is_not_json(saved):
    _, weights, card_path = saved
    card_path.write_text("{ not json")
    with pytest.raises(ListenerctlError) as error:
        load_checkpoint(weights)
    assert_one_sentence(error, "not readable JSON")


def test_card_missing_fields(saved):
    _, weights, card_path = saved
    card = json.loads(card_path.read_text())
    del card["sha256"], card["spec"]
    card_path.write_text(json.dumps(card))
    with pytest.raises(ListenerctlError) as error:
        load_checkpoint(weights)
    assert_one_sentence(error, "lacks spec, sha256")


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_truncated_or_corrupt_weights_fail_the_sha256_check(saved, damage):
    _, weights, _ = saved
    blob = bytearray(weights.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    else:
        blob[-3] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(ListenerctlError) as error:
        load_checkpoint(weights)
    assert_one_sentence(error, "truncated or corrupt", "sha256")


def test_pickles_are_never_loaded(saved):
    _, weights, card_path = saved

    class Trap:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    blob = pickle.dumps(Trap())
    weights.write_bytes(blob)
    card = json.loads(card_path.read_text())
    card["sha256"] = hashlib.sha256(blob).hexdigest()  # a card that vouches for the pickle
    card_path.write_text(json.dumps(card))
    with pytest.raises(ListenerctlError) as error:
        load_checkpoint(weights)
    assert_one_sentence(error, "not a valid safetensors file")


def test_wrong_model_or_spec(saved):
    _, weights, _ = saved
    with pytest.raises(ListenerctlError) as error:
        load_checkpoint(weights, expected_model="lbd")
    assert_one_sentence(error, "holds model 'tiny', not 'lbd'")
    with pytest.raises(ListenerctlError) as error:
        load_checkpoint(weights, expected_spec="beat141")
    assert_one_sentence(error, "'arkit58', not 'beat141'")


def test_load_into_names_missing_unexpected_and_misshapen_keys(saved):
    _, weights, _ = saved
    state, _ = load_checkpoint(weights)
    with pytest.raises(ListenerctlError) as error:
        load_into(TinyNet(width=5), state)
    assert_one_sentence(error, "does not fit TinyNet", "wrong shapes", "encoder.weight [4, 3] vs [5, 3]")
    partial = {k: v for k, v in state.items() if not k.startswith("head")}
    partial["extra.bias"] = torch.zeros(1)
    with pytest.raises(ListenerctlError) as error:
        load_into(TinyNet(), partial, source="checkpoint tiny")
    assert_one_sentence(error, "checkpoint tiny does not fit", "missing keys head.bias, head.weight",
                        "unexpected keys extra.bias")


def test_checkpoint_paths_accept_stem_or_either_file(tmp_path):
    expected = (tmp_path / "m.v2.safetensors", tmp_path / "m.v2.json")
    for name in ("m.v2", "m.v2.safetensors", "m.v2.json"):
        assert checkpoint_paths(tmp_path / name) == expected


# ---------------------------------------------------------------- every shipped learned model

# A config field whose change gives the shipped weights the wrong shapes.
SHAPE_FIELD = {"lbd": "denoiser_width", "difflistener": "codebook", "sfms": "predictor_width", "facetok": "width",
               "diffsheg": "width"}


def _one_sentence(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text and text.endswith(".") and "Traceback" not in text, text
    return text


@pytest.mark.parametrize("name", sorted(SHAPE_FIELD))
def test_shipped_checkpoints_refuse_damage_and_mismatch_in_one_sentence(name, tmp_path):
    import shutil

    from listenerctl.models import REGISTRY, load_generator

    assert {n for n, e in REGISTRY.items() if e.learned} == set(SHAPE_FIELD)
    weights, card_path = checkpoint_paths(tmp_path / name)
    shipped_weights, shipped_card = checkpoint_paths(REGISTRY[name].default_checkpoint())
    shutil.copy(shipped_card, card_path)
    card = json.loads(card_path.read_text())
    blob = shipped_weights.read_bytes()

    def refused(weights_bytes: bytes, changed_card: dict) -> str:
        weights.write_bytes(weights_bytes)
        card_path.write_text(json.dumps(changed_card))
        with pytest.raises(ListenerctlError) as error:
            load_generator(name, weights)
        return _one_sentence(error)

    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0xFF
    assert "corrupt" in refused(bytes(flipped), card)
    assert "truncated" in refused(blob[:1000], card)
    config = card["config"]
    assert "does not fit" in refused(blob, {**card, "config": {**config, SHAPE_FIELD[name]: 2 * config[SHAPE_FIELD[name]]}})
    assert "unknown fields bogus" in refused(blob, {**card, "config": {**config, "bogus": 1}})
    other = "lbd" if name != "lbd" else "sfms"
    assert other in refused(blob, {**card, "model": other})
    assert "motion spec" in refused(blob, {**card, "spec": "deca56"})


@pytest.mark.parametrize("name", [name for name, entry in REGISTRY.items()
                                  if entry.learned and resolve(entry.target).config_class.__name__ in RENAMED_CONFIG_FIELDS])
def test_a_card_with_the_old_config_names_still_loads(tmp_path, name):
    """A checkpoint written before the config renames (its card spells the fields the old way) builds the same
    model as the shipped card, which uses the new names; the weights' sha256 is untouched by the card."""
    shipped = REGISTRY[name].default_checkpoint()
    weights, card_path = checkpoint_paths(shipped)
    card = json.loads(card_path.read_text())
    renamed = RENAMED_CONFIG_FIELDS[resolve(REGISTRY[name].target).config_class.__name__]
    assert set(renamed.values()) <= set(card["config"]) and not set(renamed) & set(card["config"])
    old_names = {new: old for old, new in renamed.items()}
    card["config"] = {old_names.get(field, field): value for field, value in card["config"].items()}
    (tmp_path / weights.name).write_bytes(weights.read_bytes())
    (tmp_path / card_path.name).write_text(json.dumps(card))
    old = load_generator(name, tmp_path / weights.name)
    new = load_generator(name, shipped)
    assert old.config == new.config and old.describe()["sha256"] == new.describe()["sha256"]
    assert all(torch.equal(a, b) for a, b in zip(old.model.state_dict().values(), new.model.state_dict().values()))
