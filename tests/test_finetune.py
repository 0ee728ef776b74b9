"""`geo-p2p train --init`: starting G and D from a model directory, checks and defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from geo_p2p_cli.main import cli
from test_train import tiny_config

from geo_p2p.card import DISCRIMINATOR_FILE, load_model
from geo_p2p.train import TrainConfig, Trainer, train
from geo_p2p.train.finetune import FINETUNE_SCHEDULE, unset_to_defaults

PAIRS = Path(__file__).parents[1] / "examples" / "pairs"


@pytest.fixture
def parent(tmp_path: Path) -> Path:
    """A tiny trained model directory (ngf 4, ndf 4, tile 32) with its discriminator."""
    return train(tiny_config(tmp_path, "parent", max_steps=2))


def test_a_run_starts_from_its_parent_and_records_it(tmp_path, parent) -> None:
    assert (parent / DISCRIMINATOR_FILE).is_file()
    options = unset_to_defaults({"ngf": None, "ndf": None, "tile": None}, str(parent))
    assert (options["ngf"], options["ndf"], options["tile"]) == (4, 4, 32)
    config = tiny_config(tmp_path, "child", **options, init=str(parent), max_steps=1)
    trainer = Trainer(config)
    parent_g, _ = load_model(parent)
    for k, v in parent_g.state_dict().items():
        assert torch.equal(trainer.G.state_dict()[k], v), k
    parent_d = torch.load(tmp_path / "parent" / "checkpoint.pt", weights_only=True)["D"]
    for k, v in parent_d.items():
        assert torch.equal(trainer.D.state_dict()[k], v), k
    child = trainer.fit()
    _, card = load_model(child)
    assert card.training["parent"]["model"] == str(parent)
    assert card.training["parent"]["steps"] == 2
    assert card.training["lr"] == FINETUNE_SCHEDULE["lr"]


def test_bundled_model_defaults() -> None:
    options = unset_to_defaults({"ngf": None, "lr": None, "load_size": None}, "default")
    assert options["ngf"] == 32 and options["tile"] == 256
    assert options["inference_stats"] == "tile" and options["load_size"] is None
    assert (options["epochs"], options["epochs_decay"], options["lr"]) == (5, 5, 5e-5)
    assert "ndf" not in options  # the bundled model has no discriminator: D starts fresh
    assert unset_to_defaults({"load_size": "native", "lr": None}, None) == {"load_size": None}
    TrainConfig(data="x", **unset_to_defaults({"epochs": 2}, "default"))


def test_architecture_mismatch_is_a_one_line_error(tmp_path, parent) -> None:
    with pytest.raises(ValueError, match="--ngf 8 does not match"):
        Trainer(tiny_config(tmp_path, "wide", ngf=8, init=str(parent)))
    args = ["train", str(PAIRS), "-o", str(tmp_path / "r"), "--device", "cpu"]
    for extra, message in [
        (["--init", str(parent), "--tile", "64"], "--tile 64 does not match"),
        (["--init", str(parent), "--ndf", "8"], "--ndf 8 does not match"),
        (["--init", str(tmp_path)], "is not a model directory"),
    ]:
        result = CliRunner().invoke(cli, args + extra)
        assert result.exit_code == 1 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_a_damaged_discriminator_file_is_reported(tmp_path, parent) -> None:
    (parent / DISCRIMINATOR_FILE).write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="is not a discriminator saved by geo-p2p"):
        unset_to_defaults({}, str(parent))
