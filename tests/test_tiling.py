"""Tile grids: coverage of every pixel, blend weights, AOI selection, seam measurement."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

import geo_p2p.grids
import geo_p2p.progress
import geo_p2p.raster
import geo_p2p.render.mosaic
import geo_p2p.render.pipeline
import geo_p2p.render.planner
import geo_p2p.render.tiling
import geo_p2p.webtiles.mercator
from geo_p2p.render.tiling import TileGrid, axis_weights, ramp, seam_score, tile_starts


@pytest.mark.parametrize(
    "module",
    [
        geo_p2p.render.tiling,
        geo_p2p.render.mosaic,
        geo_p2p.render.pipeline,
        geo_p2p.render.planner,
        geo_p2p.raster,
        geo_p2p.grids,
        geo_p2p.progress,
        geo_p2p.webtiles.mercator,
    ],
)
def test_docstring_examples(module) -> None:
    assert doctest.testmod(module).failed == 0


@st.composite
def grids(draw: st.DrawFn) -> TileGrid:
    tile = draw(st.sampled_from([8, 16, 32]))
    overlap = draw(st.integers(0, tile - 1))
    margin = draw(st.integers(0, overlap // 2))
    height, width = draw(st.integers(1, 150)), draw(st.integers(1, 150))
    return TileGrid(height, width, tile, overlap, margin)


@given(grids())
@settings(max_examples=150, deadline=None)
def test_every_pixel_has_positive_weight_and_edges_are_flush(grid: TileGrid) -> None:
    total = np.zeros((grid.height, grid.width), np.float64)
    for tile in grid.tiles:
        h, w = grid.clip(tile)
        total[tile.row : tile.row + h, tile.col : tile.col + w] += grid.weights(tile)[:h, :w]
    assert (total > 0).all()
    rows = sorted({t.row for t in grid.tiles})
    cols = sorted({t.col for t in grid.tiles})
    assert rows[0] == 0 and cols[0] == 0
    assert rows[-1] == max(grid.height - grid.tile, 0)
    assert cols[-1] == max(grid.width - grid.tile, 0)
    assert all(b - a <= grid.tile - grid.overlap for a, b in zip(rows, rows[1:], strict=False))


def test_weights_are_a_partition_of_unity_on_a_regular_grid() -> None:
    grid = TileGrid(32 + 24 * 4, 32 + 24 * 3, tile=32, overlap=8, margin=2)
    total = np.zeros((grid.height, grid.width))
    for tile in grid.tiles:
        total[tile.row : tile.row + 32, tile.col : tile.col + 32] += grid.weights(tile)
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_no_ramp_or_margin_on_raster_edges() -> None:
    grid = TileGrid(100, 100, tile=32, overlap=16, margin=4)
    corner = grid.weights(grid.tiles[0])
    assert corner[0, 0] == 1 and corner[0, :20].min() == 1 and corner[-1, -1] == 0
    single = TileGrid(20, 20, tile=32, overlap=16, margin=4)
    assert len(single) == 1 and (single.weights(single.tiles[0]) == 1).all()


def test_ramp_is_raised_cosine_and_symmetric() -> None:
    r = ramp(7)
    np.testing.assert_allclose(r, 0.5 - 0.5 * np.cos(np.pi * np.arange(1, 8) / 8), rtol=1e-6)
    np.testing.assert_allclose(r + r[::-1], 1.0, rtol=1e-6)
    w = axis_weights(16, 6, 1, False, False)
    assert w[0] == 0 and w[-1] == 0 and (w[6:10] == 1).all()


def test_tile_starts_are_flush_and_cover() -> None:
    assert tile_starts(256, 256, 192) == [0]
    assert tile_starts(257, 256, 192) == [0, 1]
    assert tile_starts(640, 256, 192) == [0, 192, 384]


@pytest.mark.parametrize(
    ("overlap", "margin", "message"),
    [(32, 0, "overlap"), (-1, 0, "overlap"), (8, 5, "margin")],
)
def test_invalid_overlap_or_margin(overlap: int, margin: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TileGrid(100, 100, tile=32, overlap=overlap, margin=margin)


def test_select_keeps_tiles_meeting_the_area() -> None:
    grid = TileGrid(200, 200, tile=32, overlap=8)
    selected = grid.select(shapely.box(0, 0, 40, 40))
    assert 0 < len(selected) < len(grid)
    assert all(t.row < 40 and t.col < 40 for t in selected.tiles)
    assert selected.weights(selected.tiles[0]).shape == (32, 32)
    with pytest.raises(ValueError, match="does not meet"):
        grid.select(shapely.box(500, 500, 600, 600))


def test_seam_score_sees_a_grid_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(0, 1, (200, 200)).cumsum(axis=1).cumsum(axis=0) / 50
    assert seam_score(image, 20) < 1.5
    gridded = image.copy()
    gridded[:, ::20] += 5.0  # a step every 20 columns
    assert seam_score(gridded, 20) > 2
