"""`geo-p2p train`: a run from the command line, resume, and one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner
from geo_p2p_cli.main import cli

from geo_p2p.card import load_model

PAIRS = Path(__file__).parents[1] / "examples" / "pairs"
TINY = [
    "--ngf",
    "4",
    "--ndf",
    "4",
    "--tile",
    "32",
    "--load-size",
    "40",
    "--device",
    "cpu",
    "--workers",
    "0",
    "--epochs",
    "1",
    "--epochs-decay",
    "0",
]


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_train_then_resume(tmp_path) -> None:
    out = str(tmp_path / "run")
    result = run("train", str(PAIRS), "-o", out, "--max-steps", "2", *TINY)
    assert result.exit_code == 0, result.output
    _, card = load_model(tmp_path / "run" / "model")
    assert card.training["steps"] == 2
    again = run("train", str(PAIRS), "-o", out, *TINY)
    assert again.exit_code == 2 and f"--resume {out}" in again.output
    resumed = run("train", str(PAIRS), "--resume", out, "--max-steps", "3")
    assert resumed.exit_code == 0, resumed.output
    _, card = load_model(tmp_path / "run" / "model")
    assert card.training["steps"] == 3


def test_output_is_dash_o_output_and_the_old_out_still_works(tmp_path) -> None:
    result = run("train", str(PAIRS), "--out", str(tmp_path / "old"), "--max-steps", "1", *TINY)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "old" / "model" / "card.json").is_file()
    usage = run("train", "--help").output
    assert "-o, --output" in usage and not re.search(r"^\s+--out\b", usage, re.M)


def test_bad_input_is_one_line(tmp_path) -> None:
    (tmp_path / "bad.jpg").write_text("no image")
    for data, message in [
        (tmp_path / "missing", "does not exist"),
        (tmp_path, "bad.jpg: not a readable image"),
    ]:
        result = run("train", str(data), "-o", str(tmp_path / "r"), *TINY)
        assert result.exit_code == 2  # bad input, as for every command
        assert message in result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    result = run("train", str(PAIRS), "--load-size", "big")
    assert result.exit_code == 2 and "'native'" in result.output
    result = run("train", str(PAIRS), "-o", str(tmp_path / "r"), *TINY, "--load-size", "24")
    assert result.exit_code == 2
    assert "32 px training crop does not fit in 600 px halves resized to 24 px" in result.output
    result = run("train", str(PAIRS), "--save-every", "0")
    assert result.exit_code == 2 and "--save-every" in result.output


def test_help_explains_every_option() -> None:
    import click

    for name in ("train", "evaluate", "render"):
        command = cli.commands[name]
        assert run(name, "--help").exit_code == 0
        assert command.help
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts} has no help"


def test_torchrun_two_processes_share_the_epoch(tmp_path) -> None:
    """DistributedDataParallel on CPU (gloo): each process takes half of every epoch."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29731",
        "-m",
        "geo_p2p_cli.main",
        "train",
        str(PAIRS),
        "-o",
        str(out),
        *TINY,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-8000:]  # the failing child's message too
    assert done.stdout.count("model written to") == 1
    _, card = load_model(out / "model")
    assert card.training["steps"] == 3 and card.training["batch_size"] == 2
    assert card.training["epochs_done"] == 1


def test_a_trained_model_carries_its_map_classes(tmp_path) -> None:
    """The card names the classes learnt from the targets' colours (three asked for, named in
    order of size), and render draws the crisp style with them; a fine-tune keeps its parent's
    classes; a bad --map-classes is one line."""
    from geo_p2p.card import load_card

    out = tmp_path / "run"
    args = ["train", str(PAIRS), "-o", str(out), "--max-steps", "1", *TINY]
    result = run(*args, "--map-classes", "land,road,water")
    assert result.exit_code == 0, result.output
    classes = load_card(out / "model").classes
    assert [c["name"] for c in classes] == ["land", "road", "water"]
    land = classes[0]["colour"]
    assert min(land) > 200  # the maps style's land: light
    crisp = tmp_path / "crisp.tif"
    area = Path(__file__).parents[1] / "examples" / "area.tif"
    result = run(
        "render", str(area), "-o", str(crisp), "--model", str(out / "model"), "--style", "crisp"
    )
    assert result.exit_code == 0, result.output
    tuned = tmp_path / "tuned"
    result = run(
        "train", str(PAIRS), "-o", str(tuned), "--max-steps", "1", "--init", str(out / "model")
    )
    assert result.exit_code == 0, result.output
    assert load_card(tuned / "model").classes == classes
    bad = ["train", str(PAIRS), "-o", str(tmp_path / "bad"), *TINY]
    result = run(*bad, "--map-classes", "land,,road")
    assert result.exit_code == 2 and "--map-classes" in result.output


def test_a_trained_model_records_its_imagery_and_the_plan_measures_inputs(tmp_path) -> None:
    """The card records the training aerials' statistics and a threshold from the held-out
    ones (examples/pairs has val/), so render's plan measures an input against them."""
    import json

    from geo_p2p.card import load_card

    out = tmp_path / "run"
    result = run("train", str(PAIRS), "-o", str(out), "--max-steps", "1", *TINY)
    assert result.exit_code == 0, result.output
    record = load_card(out / "model").training["imagery"]
    assert record["images"] == 6 and record["threshold"] > 0  # the 6 training pairs
    area = Path(__file__).parents[1] / "examples" / "area.tif"
    model = ["--model", str(out / "model")]
    result = run("render", str(area), *model, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output[result.output.index("{") : result.output.rindex("}") + 1])
    assert plan["domain_distance"] > 0 and plan["domain_threshold"] == record["threshold"]
