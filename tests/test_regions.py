"""Rendering by regions: bit for bit the single-process render, and resumable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import CHARLOTTE, default_sigint, write_raster
from hypothesis import given, settings
from hypothesis import strategies as st

from geo_p2p import Translator
from geo_p2p.errors import RenderError
from geo_p2p.regions import ModelSpec, render_regions
from geo_p2p.render.options import RenderOptions
from geo_p2p.render.tiling import TileGrid, regions
from geo_p2p.run.executors import LocalRegions, region_grid, render_region

pytestmark = pytest.mark.usefixtures("one_thread")

TIMEOUT_S = 120


def mosaic_raster(path: Path, height: int, width: int) -> Path:
    """A ``height x width`` RGB GeoTIFF tiled from the mirrored real test raster, no-data in a
    corner (tiled 256, so that reads are windowed as for real inputs)."""
    with rasterio.open(CHARLOTTE) as src:
        image = src.read()
    row = np.concatenate([image, image[:, :, ::-1]], axis=2)
    motif = np.concatenate([row, row[:, ::-1]], axis=1)
    reps = (1, -(-height // motif.shape[1]), -(-width // motif.shape[2]))
    data = np.tile(motif, reps)[:, :height, :width].copy()
    data[:, :40, :50] = 0
    return write_raster(path, data, nodata=0, tiled=True, blockxsize=256, blockysize=256)


def read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(path) as ds:
        return ds.read(), ds.dataset_mask()


def assert_same_output(a: Path, b: Path) -> None:
    rgb_a, mask_a = read(a)
    rgb_b, mask_b = read(b)
    np.testing.assert_array_equal(mask_a, mask_b)
    np.testing.assert_array_equal(rgb_a, rgb_b)
    with rasterio.open(a) as da, rasterio.open(b) as db:
        assert (da.crs, da.transform, da.colorinterp) == (db.crs, db.transform, db.colorinterp)


@given(
    height=st.integers(1, 1100),
    width=st.integers(1, 1100),
    tile=st.sampled_from([64, 256]),
    overlap=st.integers(0, 32),
    size=st.sampled_from([512, 1024]),
)
@settings(max_examples=25, deadline=None)
def test_regions_hold_the_tiles_that_weigh_on_them_in_grid_order(
    height, width, tile, overlap, size
):
    grid = TileGrid(height, width, tile, overlap, overlap // 3)
    parts = regions(grid, size)
    index = {t: i for i, t in enumerate(grid.tiles)}
    for region in parts:
        assert region.top % size == 0 and region.start % size == 0
        order = [index[t] for t in region.tiles]
        assert order == sorted(order)
        for t in grid.tiles:  # in the region if and only if it has weight there
            weights = grid.weights(t) > 0
            rows = np.flatnonzero(weights.any(axis=1)) + t.row
            cols = np.flatnonzero(weights.any(axis=0)) + t.col
            weighs = ((rows >= region.top) & (rows < region.bottom)).any() and (
                (cols >= region.start) & (cols < region.stop)
            ).any()
            assert weighs == (t in region.tiles)
    covered = sum((r.bottom - r.top) * (r.stop - r.start) for r in parts)
    assert covered == height * width


@pytest.mark.parametrize(("batch_size", "aoi"), [(1, False), (3, True)])
def test_region_equals_the_window_of_the_single_process_render(
    model_dir: Path, tmp_path: Path, batch_size: int, aoi: bool
) -> None:
    src = mosaic_raster(tmp_path / "in.tif", 600, 1100)
    polygon = "POLYGON((576100 5187700, 576600 5187900, 576300 5187800, 576100 5187700))"
    options = {"resolution": "native", "aoi": polygon if aoi else None}
    whole = tmp_path / "whole.tif"
    Translator.load(model_dir, batch_size=5, device="cpu").render(src, whole, **options)
    rgb, mask = read(whole)
    translator = Translator.load(model_dir, batch_size=batch_size, device="cpu")
    job = translator.job(src, RenderOptions(**options), dst=tmp_path / "x.tif")
    source, area, grid = job.source, job.area, job.grid
    parts = regions(grid, 512)
    assert len(parts) == (4 if aoi else 6)
    for region in parts[::-1]:
        result = render_region(translator.engine, source, area, region_grid(grid, region), region)
        rows = slice(region.top, region.bottom)
        cols = slice(region.start, region.stop)
        np.testing.assert_array_equal(result.mask, mask[rows, cols])
        np.testing.assert_array_equal(result.rgb, rgb[:, rows, cols])


def test_local_render_by_regions_equals_the_plain_render(model_dir: Path, tmp_path: Path) -> None:
    src = mosaic_raster(tmp_path / "in.tif", 700, 1100)
    plain, by_regions = tmp_path / "plain.tif", tmp_path / "regions.tif"
    options = {"resolution": "native", "alpha": True, "progress": False}
    Translator.load(model_dir, device="cpu").render(src, plain, **options)
    spec = ModelSpec(str(model_dir), device="cpu")
    summary = render_regions(spec, src, by_regions, region_size=512, resume=True, **options)
    assert_same_output(plain, by_regions)
    assert summary.tiles > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.tif",
        "model",
        "plain.tif",
        "regions.tif",
    ]


def cli(*args: object) -> list[str]:
    return [sys.executable, "-m", "geo_p2p_cli.main", "render", *map(str, args)]


def test_interrupted_render_resumes_to_the_same_output(model_dir: Path, tmp_path: Path) -> None:
    src = mosaic_raster(tmp_path / "in.tif", 1024, 1024)
    dst = tmp_path / "map.tif"
    journal = tmp_path / ".map.tif.partial.json"
    args = (src, "-o", dst, "--model", model_dir, "--resolution", "native", "--region-size", 512)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [*cli(*args, "--resume")],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not (journal.exists() and json.loads(journal.read_text())["done"]):
            assert child.poll() is None, child.stderr.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=TIMEOUT_S)
    finally:
        child.kill()
    assert child.returncode == 1 and "interrupted" in err, err
    assert not dst.exists()
    done = json.loads(journal.read_text())["done"]
    assert 0 < len(done) < 4, done

    # A different option is refused, saying which.
    other = subprocess.run(
        cli(*args, "--resume", "--overlap", 6),
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert other.returncode == 2 and "--overlap (was 4, now 6)" in other.stderr, other.stderr

    resumed = subprocess.run(
        cli(*args, "--resume"), env=env, capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(done)} of 4 regions already rendered" in resumed.stderr
    straight = tmp_path / "straight.tif"
    Translator.load(model_dir).render(src, straight, resolution="native")
    assert_same_output(straight, dst)
    assert not journal.exists() and not (tmp_path / ".map.tif.partial.tif").exists()


def test_region_size_must_be_a_multiple_of_512(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="multiple of 512"):
        render_regions(ModelSpec(str(model_dir)), CHARLOTTE, tmp_path / "x.tif", region_size=700)


@pytest.mark.parametrize("resume", [False, True])
def test_an_interrupted_render_leaves_nothing_unless_resumable(
    model_dir: Path, tmp_path: Path, resume: bool
) -> None:
    src = mosaic_raster(tmp_path / "in.tif", 600, 1100)
    spec = ModelSpec(str(model_dir), device="cpu")

    class StoppedAfterOne(LocalRegions):
        def regions(self, job, parts):  # noqa: ANN001, ANN202
            yield from super().regions(job, parts[:1])
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render_regions(
            spec,
            src,
            tmp_path / "map.tif",
            compute=StoppedAfterOne(spec.load().engine),
            resume=resume,
            region_size=512,
            resolution="native",
        )
    left = sorted(p.name for p in tmp_path.iterdir() if p.name not in ("in.tif", "model"))
    assert left == ([".map.tif.partial.json", ".map.tif.partial.tif"] if resume else [])
    if resume:
        journal = json.loads((tmp_path / ".map.tif.partial.json").read_text())
        assert journal["done"] == [0] and journal["regions"] == 6
