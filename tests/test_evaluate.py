"""Evaluation: pairs scored at the model's ground resolution, baselines, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from geo_p2p_cli.main import cli

from geo_p2p import Translator
from geo_p2p.card import ModelCard, load_card, save_model
from geo_p2p.evaluate import ConstantImage, evaluate, evaluation_files, input_size, median_colour
from geo_p2p.nets import UNetGenerator

PAIRS = Path(__file__).parents[1] / "examples" / "pairs"


def test_input_is_resampled_to_the_model_resolution() -> None:
    t = Translator(torch.nn.Identity(), tile=32, device="cpu", gsd=1.8)
    assert input_size(600, 0.9, t) == 300
    assert input_size(600, None, t) == 32  # unknown: one tile, as the paper's test transform
    t.gsd = None
    assert input_size(600, 0.9, t) == 32


def test_constant_baseline_scores_as_computed_by_hand() -> None:
    files = evaluation_files(PAIRS)  # the val/ subfolder
    assert [f.name for f in files] == ["1.jpg", "3.jpg"]
    colour = median_colour(files)
    t = Translator(ConstantImage(colour), tile=32, device="cpu")
    summary = evaluate(t, files, data_gsd=None, progress=False)
    from geo_p2p.metrics import MetricAccumulator
    from geo_p2p.train.data import load_pair

    acc = MetricAccumulator()
    for f in files:
        target = np.asarray(load_pair(f)[1])
        acc.add(np.broadcast_to(np.array(colour, np.uint8), target.shape).copy(), target)
    assert summary == pytest.approx(acc.summary(), nan_ok=True)
    assert summary["n"] == 2 and summary["iou_road"] == 0.0


def test_cli_evaluate_prints_writes_json_and_card(tmp_path) -> None:
    model = save_model(tmp_path / "m", UNetGenerator(ngf=4, levels=5), ModelCard(ngf=4, tile=32))
    out = tmp_path / "metrics.json"
    result = CliRunner().invoke(
        cli,
        [
            "evaluate",
            str(model),
            str(PAIRS),
            "--json",
            str(out),
            "--write-card",
            "--predictions",
            str(tmp_path / "pred"),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "mIoU" in result.output and "RMSE" in result.output
    summary = json.loads(out.read_text())
    assert summary["n"] == 2
    assert load_card(model).metrics["pairs"]["rmse"] == summary["rmse"]
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == ["1.png", "3.png"]


def test_cli_evaluate_errors(tmp_path) -> None:
    model = save_model(tmp_path / "m", UNetGenerator(ngf=4, levels=5), ModelCard(ngf=4, tile=32))
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(cli, ["evaluate", str(model), str(tmp_path / "empty")])
    assert result.exit_code == 2
    assert "no pair images" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path), str(PAIRS)])
    assert result.exit_code == 2 and "not a model directory" in result.output


def test_cli_inference_stats_override_reaches_the_model(tmp_path) -> None:
    torch.manual_seed(0)
    g = UNetGenerator(ngf=4, levels=5)
    g.train()(torch.rand(4, 3, 32, 32))  # running statistics unlike any one tile's
    model = save_model(tmp_path / "m", g, ModelCard(ngf=4, tile=32, inference_stats="running"))
    outputs = {}
    for stats in ("running", "tile"):
        out = tmp_path / f"{stats}.json"
        result = CliRunner().invoke(
            cli,
            [
                "evaluate",
                str(model),
                str(PAIRS),
                "--inference-stats",
                stats,
                "--json",
                str(out),
                "--device",
                "cpu",
            ],
        )
        assert result.exit_code == 0, result.output
        outputs[stats] = json.loads(out.read_text())
    assert outputs["running"]["l1"] != outputs["tile"]["l1"]
