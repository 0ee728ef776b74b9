"""Class balancing: pairs drawn by their share of a map class, and the class-weighted L1."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from geo_p2p.metrics import PALETTE
from geo_p2p.render.mosaic import u8_to_signed
from geo_p2p.train import CHECKPOINT, TrainConfig, Trainer, resume_config, train
from geo_p2p.train.data import EpochSampler, class_shares, oversampling_weights, parse_class_factor

HALF = 48
HIGHWAY = PALETTE["highway"][0]
LAND = PALETTE["land"][0]
SHARES = (0.0, 0.25, 0.5, 0.0)
"""Highway share of the target half of each synthetic pair."""


def map_half(share: float) -> np.ndarray:
    """A land-coloured map whose first ``share`` of rows are highway-coloured."""
    half = np.empty((HALF, HALF, 3), np.uint8)
    half[:] = LAND
    half[: round(share * HALF)] = HIGHWAY
    return half


@pytest.fixture
def pairs(tmp_path: Path) -> Path:
    folder = tmp_path / "pairs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, share in enumerate(SHARES):
        aerial = rng.integers(0, 256, (HALF, HALF, 3), dtype=np.uint8)
        Image.fromarray(np.concatenate([aerial, map_half(share)], axis=1)).save(folder / f"{i}.png")
    return folder


def test_shares_and_weights_follow_the_class(pairs) -> None:
    files = sorted(pairs.iterdir())
    shares = class_shares(files, "highway", step=1)
    assert shares == pytest.approx(SHARES)
    assert class_shares(files, "highway") == pytest.approx(SHARES)  # every 4th row
    weights = oversampling_weights(shares, 4.0)
    assert weights == pytest.approx([1, 1 + 4 * 0.25 / 0.1875, 1 + 4 * 0.5 / 0.1875, 1])
    assert oversampling_weights(np.zeros(3), 4.0).tolist() == [1, 1, 1]


def test_weighted_draws_follow_the_weights_and_are_fixed_by_seed_and_epoch() -> None:
    weights = np.array([1.0, 3.0, 6.0, 0.0])
    counts = Counter(
        i for epoch in range(500) for _, i in EpochSampler(4, seed=1, epoch=epoch, weights=weights)
    )
    assert counts[3] == 0
    for i in range(3):
        assert counts[i] / 2000 == pytest.approx(weights[i] / 10, abs=0.03)
    draw = EpochSampler(4, 1, 7, weights=weights).order()
    assert draw == EpochSampler(4, 1, 7, weights=weights).order()
    orders = {
        tuple(EpochSampler(8, s, e, weights=np.ones(8)).order()) for s in (1, 2) for e in (0, 1)
    }
    assert len(orders) == 4  # another seed or epoch, another draw
    # resuming mid-epoch and splitting between processes take the same draw
    assert list(EpochSampler(4, 1, 7, start=2, weights=weights)) == [(7, i) for i in draw[2:]]
    assert EpochSampler(4, 1, 7, rank=1, world=2, weights=weights).order() == draw[1::2]


def test_class_factor_specs() -> None:
    assert parse_class_factor("highway", 4.0) == ("highway", 4.0)
    assert parse_class_factor("road:2.5", 4.0) == ("road", 2.5)
    for bad in ("motorway", "road:x", "road:-1", ""):
        with pytest.raises(ValueError, match="CLASS"):
            parse_class_factor(bad, 4.0)


def tiny(pairs: Path, out: Path, **changes: object) -> TrainConfig:
    options = dict(
        data=str(pairs),
        out=str(out),
        ngf=4,
        ndf=4,
        tile=32,
        load_size=None,
        epochs=1,
        epochs_decay=1,
        workers=0,
        device="cpu",
        seed=3,
    )
    return TrainConfig(**{**options, **changes})  # type: ignore[arg-type]


def test_oversampled_run_resumes_exactly_and_its_card_says_so(pairs, tmp_path) -> None:
    straight = tiny(pairs, tmp_path / "straight", oversample="highway:4", max_steps=6)
    trainer = Trainer(straight)
    assert trainer.weights == pytest.approx(oversampling_weights(np.array(SHARES), 4.0))
    train(straight)  # crosses an epoch boundary (4 pairs)
    train(tiny(pairs, tmp_path / "resumed", oversample="highway:4", max_steps=2))
    run = tmp_path / "resumed"
    train(resume_config(run, max_steps=6), resume=run)
    a, b = (
        torch.load(r / CHECKPOINT, weights_only=True)["G"] for r in (tmp_path / "straight", run)
    )
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = tiny(pairs, tmp_path / "plain", max_steps=6)
    train(plain)
    c = torch.load(tmp_path / "plain" / CHECKPOINT, weights_only=True)["G"]
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the draw differs from the shuffle
    card = json.loads((run / "model" / "card.json").read_text())
    assert card["training"]["oversample"] == "highway:4"


def test_class_weighted_l1_weighs_the_class_pixels(pairs, tmp_path) -> None:
    target = torch.from_numpy(u8_to_signed(map_half(0.25).transpose(2, 0, 1)))[None]
    fake = target + 0.1
    plain = Trainer(tiny(pairs, tmp_path / "a")).l1_loss(fake, target)
    weighted = Trainer(tiny(pairs, tmp_path / "b", l1_class_weight="highway:5")).l1_loss(
        fake, target
    )
    assert plain.item() == pytest.approx(0.1)
    assert weighted.item() == pytest.approx(0.1 * (0.75 + 5 * 0.25))
