"""Pair folders: discovery, jitter, reproducible order, and the bad-input errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from geo_p2p.train.data import (
    DataError,
    EpochSampler,
    PairDataset,
    check_pairs,
    dataset_gsd,
    find_pairs,
)

PAIRS = Path(__file__).parents[1] / "examples" / "pairs"


def test_find_pairs_in_train_val_layout_and_flat(tmp_path) -> None:
    found = find_pairs(PAIRS)
    assert len(found.train) == 6 and len(found.val) == 2
    for f in found.train[:2]:
        shutil.copy(f, tmp_path / f.name)
    flat = find_pairs(tmp_path)
    assert len(flat.train) == 2 and flat.val == []


def test_missing_and_empty_folders(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        find_pairs(tmp_path / "nope")
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="no pair images"):
        find_pairs(tmp_path)


def test_bad_files_are_named_or_skipped(tmp_path, caplog) -> None:
    good = shutil.copy(PAIRS / "train" / "1.jpg", tmp_path / "good.jpg")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    square = tmp_path / "square.png"
    Image.new("RGB", (300, 300)).save(square)
    files = [broken, Path(good), square]
    with pytest.raises(DataError, match=r"broken\.jpg: not a readable image \(and 1 more\)"):
        check_pairs(files)
    with pytest.raises(DataError, match=r"square\.png: 300x300 is not a side-by-side pair"):
        check_pairs([square])
    assert check_pairs(files, skip_bad=True) == [Path(good)]
    assert "square.png" in caplog.text and "broken.jpg" in caplog.text


def test_jitter_is_paired_reproducible_and_in_range() -> None:
    files = find_pairs(PAIRS).train
    ds = PairDataset(files, size=64, load_size=72, seed=3)
    a, b = ds[(0, 1)]
    assert a.shape == b.shape == (3, 64, 64)
    assert a.min() >= -1 and a.max() <= 1
    a2, b2 = ds[(0, 1)]
    assert torch.equal(a, a2) and torch.equal(b, b2)
    crops = {tuple(ds[(e, 1)][0][:, 0, 0].tolist()) for e in range(6)}
    assert len(crops) > 1  # a new crop each epoch
    # A and B get the same crop and mirror: the aligned pair, not two unrelated crops
    whole = PairDataset(files, size=72, load_size=72, jitter=False)[1]
    for e in range(4):
        a, b = ds[(e, 1)]
        hits = [
            (y, x)
            for y in range(9)
            for x in range(9)
            for img in (whole[0], whole[0].flip(2))
            if torch.allclose(img[:, y : y + 64, x : x + 64], a)
        ]
        assert hits, "input crop not found in the resized input"
        y, x = hits[0]
        assert any(
            torch.allclose(img[:, y : y + 64, x : x + 64], b)
            for img in (whole[1], whole[1].flip(2))
        )


def test_direction_swaps_halves() -> None:
    files = find_pairs(PAIRS).train
    a, b = PairDataset(files, size=64, load_size=64, jitter=False)[0]
    b2, a2 = PairDataset(files, "BtoA", size=64, load_size=64, jitter=False)[0]
    assert torch.equal(a, a2) and torch.equal(b, b2)


def test_epoch_sampler_order_resume_and_shards() -> None:
    full = list(EpochSampler(10, seed=1, epoch=2))
    assert sorted(i for _, i in full) == list(range(10))
    assert list(EpochSampler(10, seed=1, epoch=2, start=4)) == full[4:]
    assert full != list(EpochSampler(10, seed=1, epoch=3))
    shards = [list(EpochSampler(10, 1, 2, rank=r, world=3)) for r in range(3)]
    assert all(len(s) == 3 for s in shards)
    assert len({i for s in shards for _, i in s}) == 9


def test_dataset_gsd(tmp_path) -> None:
    files = find_pairs(PAIRS).train
    assert dataset_gsd(PAIRS, files) == 0.9  # 1200x600 pix2pix maps pairs
    (tmp_path / "dataset.json").write_text('{"gsd": 0.3}')
    assert dataset_gsd(tmp_path, files) == 0.3
    other = tmp_path / "other"
    other.mkdir()
    Image.new("RGB", (200, 100)).save(other / "p.png")
    assert dataset_gsd(other, [other / "p.png"]) is None
