"""The trainer: learning, exact resume, Ctrl-C checkpoints, run outputs, schedule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from geo_p2p.card import load_card, load_model
from geo_p2p.train import CHECKPOINT, TrainConfig, Trainer, lr_factor, resume_config, train
from geo_p2p.train import trainer as trainer_module

PAIRS = Path(__file__).parents[1] / "examples" / "pairs"


def tiny_config(tmp_path: Path, name: str, **changes: object) -> TrainConfig:
    options = dict(
        data=str(PAIRS),
        out=str(tmp_path / name),
        ngf=4,
        ndf=4,
        tile=32,
        load_size=40,
        epochs=1,
        epochs_decay=1,
        workers=0,
        device="cpu",
        seed=5,
        save_every=1,
    )
    return TrainConfig(**{**options, **changes})  # type: ignore[arg-type]


def generator_state(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / CHECKPOINT, weights_only=True)["G"]


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_two_plus_two_steps_resumed_equal_four_straight(tmp_path) -> None:
    train(tiny_config(tmp_path, "straight", max_steps=4))
    train(tiny_config(tmp_path, "resumed", max_steps=2))
    first_half = generator_state(tmp_path / "resumed")
    train(resume_config(tmp_path / "resumed", max_steps=4), resume=tmp_path / "resumed")
    resumed = generator_state(tmp_path / "resumed")
    assert_same_state(resumed, generator_state(tmp_path / "straight"))
    assert not torch.equal(first_half["encoder.0.weight"], resumed["encoder.0.weight"])
    state = torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=True)
    assert state["global_step"] == 4 and state["step_in_epoch"] == 4


def test_a_resume_takes_the_map_classes_and_imagery_record_from_its_card(
    tmp_path, monkeypatch
) -> None:
    train(tiny_config(tmp_path, "run", max_steps=2))
    before = load_card(tmp_path / "run" / "model")

    def measured(*args: object, **kwargs: object) -> None:
        raise AssertionError("a resume measured the pairs again")

    monkeypatch.setattr(trainer_module, "learn_palette", measured)
    monkeypatch.setattr(trainer_module, "imagery", measured)
    train(resume_config(tmp_path / "run", max_steps=3), resume=tmp_path / "run")
    after = load_card(tmp_path / "run" / "model")
    assert after.training["steps"] == 3
    assert after.classes == before.classes
    assert after.training["imagery"] == before.training["imagery"]


def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(tmp_path, monkeypatch) -> None:
    train(tiny_config(tmp_path, "straight", max_steps=8))  # crosses an epoch boundary (6 pairs)
    real_step = Trainer.train_step

    def interrupt_at_seventh(self: Trainer, a: torch.Tensor, b: torch.Tensor) -> dict:
        if self.global_step == 6:
            raise KeyboardInterrupt
        return real_step(self, a, b)

    monkeypatch.setattr(Trainer, "train_step", interrupt_at_seventh)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tmp_path, "interrupted", max_steps=8))
    state = torch.load(tmp_path / "interrupted" / CHECKPOINT, weights_only=True)
    assert (state["epoch"], state["step_in_epoch"], state["global_step"]) == (1, 0, 6)
    monkeypatch.setattr(Trainer, "train_step", real_step)
    train(resume_config(tmp_path / "interrupted", max_steps=8), resume=tmp_path / "interrupted")
    assert_same_state(
        generator_state(tmp_path / "interrupted"), generator_state(tmp_path / "straight")
    )


def test_l1_falls_when_overfitting_one_pair(tmp_path) -> None:
    trainer = Trainer(tiny_config(tmp_path, "overfit", ngf=8, lr=1e-3))
    a, b = trainer.dataset[(0, 0)]
    a, b = a[None], b[None]
    l1 = [trainer.train_step(a, b)["L1"] for _ in range(60)]
    assert sum(l1[-5:]) / 5 < 0.5 * sum(l1[:5]) / 5


def test_a_run_writes_its_outputs(tmp_path) -> None:
    model_dir = train(tiny_config(tmp_path, "run"))
    run = tmp_path / "run"
    assert (run / "samples" / "epoch_001.png").is_file()
    assert (run / "samples" / "epoch_002.png").is_file()
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 13))
    assert {"G_gan", "L1", "D", "lr", "epoch"} <= records[0].keys()
    assert records[-1]["lr"] < records[0]["lr"]  # the decay epoch
    generator, card = load_model(model_dir)
    assert (card.ngf, card.tile, card.direction) == (4, 32, "AtoB")
    assert card.gsd == pytest.approx(0.9 * 600 / 40)  # maps pairs resized from 600 to 40 px
    assert card.training["epochs_done"] == 2 and card.training["steps"] == 12
    assert generator(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)


def test_linear_decay_schedule() -> None:
    rule = lr_factor(epochs=3, epochs_decay=3)
    assert [round(rule(e), 4) for e in range(6)] == [1.0, 1.0, 1.0, 0.75, 0.5, 0.25]
