"""Training augmentations: A and B stay paired, the colour jitter touches A only, all seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from geo_p2p.train.data import Augment, PairDataset

HALF = 32


def write_pair(path: Path, a: np.ndarray) -> Path:
    """A side-by-side file whose map half is the known transform of ``a`` (H, W, 3)."""
    Image.fromarray(np.concatenate([a, map_style(a)], axis=1)).save(path)
    return path


def map_style(a: np.ndarray) -> np.ndarray:
    return 255 - a[..., ::-1]


def to_u8(t: torch.Tensor) -> np.ndarray:
    return np.rint((t.numpy().transpose(1, 2, 0) + 1) * 127.5).astype(np.int16)


@pytest.fixture
def textured(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    return write_pair(tmp_path / "p.png", rng.integers(0, 256, (HALF, HALF, 3), dtype=np.uint8))


def test_dihedral_reaches_all_eight_and_keeps_a_and_b_paired(textured) -> None:
    data = PairDataset([textured], size=HALF, load_size=None, augment=Augment(dihedral=True))
    seen = set()
    for epoch in range(48):
        a, b = data[(epoch, 0)]
        a, b = to_u8(a), to_u8(b)
        assert np.array_equal(map_style(a.astype(np.uint8)), b.astype(np.uint8))
        seen.add(a.tobytes())
    assert len(seen) == 8


def test_colour_jitter_changes_the_input_only(textured) -> None:
    plain = PairDataset([textured], size=HALF, load_size=None, augment=Augment(dihedral=True))
    jittered = PairDataset(
        [textured], size=HALF, load_size=None, augment=Augment(dihedral=True, colour=0.3)
    )
    differences = []
    for epoch in range(6):
        (a0, b0), (a1, b1) = plain[(epoch, 0)], jittered[(epoch, 0)]
        assert torch.equal(b0, b1)
        differences.append((a0 - a1).abs().mean().item())
        assert torch.equal(jittered[(epoch, 0)][0], a1)  # drawn from (seed, epoch, index)
    assert min(differences) > 0.01


def test_scale_jitter_resamples_a_and_b_alike_within_range(tmp_path) -> None:
    ramp = np.broadcast_to((3 * np.arange(2 * HALF))[None, :, None], (2 * HALF, 2 * HALF, 3))
    path = write_pair(tmp_path / "ramp.png", ramp.astype(np.uint8))
    data = PairDataset([path], size=HALF, load_size=None, augment=Augment(scale=1.33))
    zooms = []
    for epoch in range(40):
        a, b = (to_u8(t) for t in data[(epoch, 0)])
        assert np.abs(map_style(a.astype(np.uint8)).astype(np.int16) - b).max() <= 1
        slope = np.abs(np.diff(a[4:-4, 4:-4, 0].astype(float), axis=1)).mean()
        zooms.append(3 / slope)  # crop side / output side
    assert 0.72 <= min(zooms) < 0.85 and 1.2 < max(zooms) <= 1.37  # 2 % measuring noise


def test_defaults_draw_the_same_items_as_before(textured) -> None:
    """Augmentations off: the paper's crop and mirror, drawn as in earlier versions."""
    data = PairDataset([textured], size=24, load_size=None, seed=2)
    rng = np.random.default_rng([2, 5, 0])
    x, y = int(rng.integers(0, HALF - 24 + 1)), int(rng.integers(0, HALF - 24 + 1))
    a = np.asarray(Image.open(textured).convert("RGB"))[y : y + 24, x : x + 24]
    if rng.random() < 0.5:
        a = a[:, ::-1]
    assert np.array_equal(to_u8(data[(5, 0)][0]), a)


def test_shadows_darken_part_of_the_input_only(textured) -> None:
    """--shadows P: about P of the items get one cast shadow, darker and no less blue than the
    light it replaces, over part of the input; the map and the other items are as without."""
    from geo_p2p.train.randomise import cast_shadow

    plain = PairDataset([textured], size=HALF, load_size=None)
    shaded = PairDataset([textured], size=HALF, load_size=None, augment=Augment(shadows=0.5))
    hits = 0
    for epoch in range(40):
        (a0, b0), (a1, b1) = plain[(epoch, 0)], shaded[(epoch, 0)]
        assert torch.equal(b0, b1)
        assert torch.equal(shaded[(epoch, 0)][0], a1)
        hits += not torch.equal(a0, a1)
    assert 10 <= hits <= 30
    image = Image.fromarray(np.full((64, 64, 3), 200, np.uint8))
    for seed in range(5):
        x = np.asarray(cast_shadow(image, np.random.default_rng(seed)), np.int16)
        dark = x[..., 0] < 150
        assert 0 < dark.mean() < 1
        assert 0.2 * 200 - 1 <= x[..., 0].min() <= 0.5 * 200 + 1  # the shadow's core
        assert (x[dark][:, 2] >= x[dark][:, 0]).all()
        assert (x[..., 0] <= 200).all()


def test_shadows_option_reaches_the_dataset_and_the_card(tmp_path) -> None:
    """`train --shadows 0.5` trains with them and the model's card records them."""
    from test_cli_train import PAIRS, TINY, run

    from geo_p2p.card import load_model
    from geo_p2p.train import TrainConfig

    assert TrainConfig(data="x", shadows=0.5).augment() == Augment(shadows=0.5)
    out = tmp_path / "run"
    result = run("train", str(PAIRS), "-o", str(out), "--max-steps", "1", "--shadows", "0.5", *TINY)
    assert result.exit_code == 0, result.output
    _, card = load_model(out / "model")
    assert card.training["augment"]["shadows"] == 0.5
    assert run("train", str(PAIRS), "--shadows", "2").exit_code == 2
