"""`geo-p2p pairs`: two rasters of one known image in different CRSs and resolutions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from conftest import UTM_TRANSFORM, write_raster
from geo_p2p_cli.main import cli
from PIL import Image, ImageFilter
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject

from geo_p2p.errors import RenderError
from geo_p2p.pairs import Window, make_pairs, split_windows

SIDE = 320
SIZE = 64
NODATA_BOX = (0, 224, 96, SIDE)  # row0, col0, row1, col1 of the aerial's no-data square


def texture(side: int, seed: int = 0) -> np.ndarray:
    """(3, side, side) uint8: smooth random blobs a few pixels across, full contrast."""
    noise = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    blurred = np.asarray(Image.fromarray(noise).filter(ImageFilter.GaussianBlur(3)), np.float32)
    blurred = (blurred - blurred.min()) / (blurred.max() - blurred.min()) * 255
    return np.rint(blurred).astype(np.uint8).transpose(2, 0, 1)


def map_style(rgb: np.ndarray) -> np.ndarray:
    """The known aerial -> map transform: colours inverted, channels reversed."""
    return 255 - rgb[::-1]


@pytest.fixture
def rasters(tmp_path: Path) -> tuple[Path, Path]:
    """Aerial: UTM 0.5 m with a no-data square. Map: the same place in degrees at about 1 m,
    missing the aerial's first 32 columns (no-data there)."""
    image = texture(SIDE)
    aerial = image.copy()
    r0, c0, r1, c1 = NODATA_BOX
    aerial[:, r0:r1, c0:c1] = 0
    aerial_path = write_raster(tmp_path / "aerial.tif", aerial, nodata=0)
    styled = map_style(image)
    left = UTM_TRANSFORM @ (32, 0)
    bounds = (left[0], UTM_TRANSFORM.f - SIDE * 0.5, UTM_TRANSFORM.c + SIDE * 0.5, UTM_TRANSFORM.f)
    transform, width, height = calculate_default_transform(
        "EPSG:32615", "EPSG:4326", SIDE - 32, SIDE, *bounds, resolution=(1.3e-5, 0.9e-5)
    )
    out = np.zeros((3, height, width), np.uint8)
    reproject(
        styled,
        out,
        src_transform=UTM_TRANSFORM,
        src_crs="EPSG:32615",
        dst_transform=transform,
        dst_crs="EPSG:4326",
        dst_nodata=0,
        resampling=Resampling.bilinear,
    )
    map_path = write_raster(
        tmp_path / "map.tif", out, crs="EPSG:4326", transform=transform, nodata=0
    )
    return aerial_path, map_path


def halves(path: Path) -> tuple[np.ndarray, np.ndarray]:
    pair = np.asarray(Image.open(path).convert("RGB")).astype(np.float32)
    return pair[:, :SIZE].transpose(2, 0, 1), pair[:, SIZE:].transpose(2, 0, 1)


def best_shift(a: np.ndarray, b: np.ndarray, reach: int = 3) -> tuple[int, int]:
    """The (dy, dx) that best lines ``b`` up with ``a``, by mean absolute difference."""
    inner = slice(reach, SIZE - reach)
    scores = {
        (dy, dx): np.abs(
            a[:, inner, inner] - np.roll(b, (dy, dx), axis=(1, 2))[:, inner, inner]
        ).mean()
        for dy in range(-reach, reach + 1)
        for dx in range(-reach, reach + 1)
    }
    return min(scores, key=scores.get)


def window_of(path: Path) -> tuple[int, int]:
    row, col = path.stem.split("_")
    return int(row[1:]), int(col[1:])


def overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return abs(a[0] - b[0]) < SIZE and abs(a[1] - b[1]) < SIZE


def test_pairs_line_up_skip_no_data_and_split_spatially(tmp_path, rasters) -> None:
    aerial, map_raster = rasters
    summary = make_pairs(
        aerial, map_raster, tmp_path / "ds", size=SIZE, stride=32, val_fraction=0.3, progress=False
    )
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert meta["gsd"] == pytest.approx(0.5, rel=0.01) and meta["crs"] == "EPSG:32615"
    train = sorted((tmp_path / "ds" / "train").glob("*.png"))
    val = sorted((tmp_path / "ds" / "val").glob("*.png"))
    assert (
        (len(train), len(val))
        == (summary.train, summary.val)
        == (
            meta["counts"]["train"],
            meta["counts"]["val"],
        )
    )
    assert train and val and meta["counts"]["skipped_no_data"] > 0

    # the map half is the known transform of the aerial half, within 1 px
    for path in train + val:
        a, b = halves(path)
        assert max(abs(s) for s in best_shift(map_style(a.astype(np.uint8)), b)) <= 1, path
    a, b = halves(train[0])
    assert np.abs(map_style(a.astype(np.uint8)).astype(np.float32) - b).mean() < 12

    # no window lies over the aerial's no-data or outside the map's columns
    r0, c0, r1, c1 = NODATA_BOX
    for row, col in map(window_of, train + val):
        covered = max(0, min(row + SIZE, r1) - max(row, r0)) * max(
            0, min(col + SIZE, c1) - max(col, c0)
        )
        assert covered <= 0.05 * SIZE * SIZE and col >= 24  # map data starts at col 29-32

    for path in train + val:
        filled = (np.asarray(Image.open(path).convert("RGB")) == 128).all(axis=2)
        assert filled.mean() <= 0.05  # the few invalid pixels, grey in both halves
    # validation windows are apart from every training window
    train_windows = [window_of(p) for p in train]
    assert not any(overlap(v, t) for v in map(window_of, val) for t in train_windows)


def test_split_takes_whole_blocks_and_leaves_training_data() -> None:
    grid = [(r, c) for r in range(0, 1024, 64) for c in range(0, 1024, 64)]
    windows = split_windows(grid, 64, 0.2, seed=1)
    val_blocks = {(w.row // 256, w.col // 256) for w in windows if w.split == "val"}
    assert all((w.split == "val") == ((w.row // 256, w.col // 256) in val_blocks) for w in windows)
    assert 0.2 <= len([w for w in windows if w.split == "val"]) / len(windows) < 0.3
    assert split_windows([(0, 0), (0, 64)], 64, 0.5) == [
        Window(0, 0, "train"),
        Window(0, 64, "train"),
    ]  # one block only: it stays in training


def test_bad_inputs_are_one_line_errors_and_leave_nothing(tmp_path, rasters) -> None:
    aerial, map_raster = rasters
    far = Affine(0.5, 0, 700000.0, 0, -0.5, 5188000.0)
    elsewhere = write_raster(tmp_path / "far.tif", texture(64), transform=far)
    bare = write_raster(tmp_path / "bare.tif", texture(64), crs=None, transform=None)
    runner = CliRunner()
    for args, message in [
        ([aerial, elsewhere], "do not overlap"),
        ([aerial, bare], "has no coordinate reference system"),
        ([aerial, tmp_path / "missing.tif"], "does not exist"),
        ([aerial, map_raster, "--size", "512"], "less than one 512 px window"),
    ]:
        result = runner.invoke(cli, ["pairs", *map(str, args), "-o", str(tmp_path / "out")])
        assert result.exit_code != 0 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "aerial.tif",
        "bare.tif",
        "far.tif",
        "map.tif",
    ]
    with pytest.raises(RenderError, match="exists"):
        (tmp_path / "taken").mkdir()
        (tmp_path / "taken" / "x").write_text("")
        make_pairs(aerial, map_raster, tmp_path / "taken", size=SIZE)


def test_cli_writes_pairs_that_train_reads(tmp_path, rasters) -> None:
    aerial, map_raster = rasters
    out = tmp_path / "ds"
    result = CliRunner().invoke(
        cli, ["pairs", str(aerial), str(map_raster), "-o", str(out), "--size", "64", "--gsd", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "m/px" in result.output
    from geo_p2p.train.data import dataset_gsd, find_pairs

    found = find_pairs(out)
    assert found.train and dataset_gsd(out, found.train) == pytest.approx(1.0)
    with Image.open(found.train[0]) as im:
        assert im.size == (128, 64)
    with rasterio.open(aerial) as src:
        assert src.crs.to_string() == json.loads((out / "dataset.json").read_text())["crs"]
