"""Model directories: safetensors weights and JSON card round trip."""

from __future__ import annotations

import json

import pytest
import torch

from geo_p2p.card import CARD_FILE, WEIGHTS_FILE, ModelCard, load_card, load_model, save_model
from geo_p2p.nets import UNetGenerator, init_weights


def test_round_trip(tmp_path) -> None:
    torch.manual_seed(1)
    g = UNetGenerator(ngf=4, levels=6)
    init_weights(g)
    g.train()(torch.rand(2, 3, 64, 64))  # move the running statistics off their defaults
    card = ModelCard(
        ngf=4,
        tile=64,
        direction="BtoA",
        inference_stats="tile",
        gsd=1.5,
        training={"epochs_done": 3},
        metrics={"val": {"rmse": 20.0}},
    )
    save_model(tmp_path / "m", g, card)
    assert (tmp_path / "m" / WEIGHTS_FILE).read_bytes()[8:9] == b"{"  # safetensors header
    loaded, loaded_card = load_model(tmp_path / "m")
    assert loaded_card == card
    assert not loaded.training
    for (k, v), (k2, v2) in zip(g.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)
    x = torch.rand(1, 3, 64, 64)
    g.eval()
    from geo_p2p.nets import set_inference_stats

    set_inference_stats(g, "tile")
    torch.testing.assert_close(loaded(x), g(x))


def test_fp16_weights_load_as_fp32(tmp_path) -> None:
    g = UNetGenerator(ngf=4, levels=5)
    save_model(tmp_path, g, ModelCard(ngf=4, tile=32), dtype=torch.float16)
    size16 = (tmp_path / WEIGHTS_FILE).stat().st_size
    loaded, _ = load_model(tmp_path)
    assert next(loaded.parameters()).dtype == torch.float32
    save_model(tmp_path, g, ModelCard(ngf=4, tile=32))
    assert size16 < 0.6 * (tmp_path / WEIGHTS_FILE).stat().st_size


def test_bad_model_directories(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        load_model(tmp_path)
    (tmp_path / CARD_FILE).write_text(json.dumps({"ngf": 4, "colour": "red"}))
    with pytest.raises(ValueError, match="unknown model card fields: colour"):
        load_card(tmp_path)
    (tmp_path / CARD_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not a valid model card"):
        load_card(tmp_path)
    (tmp_path / CARD_FILE).write_text(json.dumps({"ngf": 4, "tile": 32}))
    with pytest.raises(FileNotFoundError, match="no generator.safetensors"):
        load_model(tmp_path)
