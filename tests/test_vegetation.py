"""render --vegetation: tree cover and lawns the model leaves as land painted in the park colour,
from the aerial's excess green over a window, the same by regions as in one stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import CHARLOTTE
from geo_p2p_cli.main import cli
from test_regions import mosaic_raster

from geo_p2p import Translator
from geo_p2p.errors import RenderError
from geo_p2p.mapclasses.vegetation import (
    VEGETATION_INDEX,
    Vegetation,
    excess_green,
    is_vegetation,
    vegetation_cover,
)
from geo_p2p.regions import ModelSpec, render_regions
from geo_p2p.render.mosaic import signed_to_u8, u8_to_signed


def read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(path) as ds:
        return ds.read(), ds.dataset_mask()


def test_the_pixel_rule():
    # grass, grey, faintly green, shallow turquoise water (green, but bluer than red)
    aerial = np.array([[[60, 130, 50], [120, 120, 120], [90, 100, 95], [60, 140, 120]]], np.uint8)
    assert excess_green(aerial)[0, 0] > VEGETATION_INDEX > excess_green(aerial)[0, 2]
    assert excess_green(aerial)[0, 3] > VEGETATION_INDEX
    assert is_vegetation(aerial).tolist() == [[True, False, False, False]]


def test_only_land_under_vegetation_cover_is_painted(land_park_model):
    palette = Translator.load(land_park_model).palette
    land, park, road = palette.colours.tolist()
    # A lawn on the left; grey on the right, with single green pixels on a 4 px grid (6 %).
    aerial = np.full((40, 60, 3), 120, np.uint8)
    aerial[:, :30] = aerial[::4, 32::4] = (60, 130, 50)
    map_ = np.array([land] * 60 * 40, np.uint8).reshape(40, 60, 3)  # the classes' own colours
    map_[20] = road
    vegetation = Vegetation(palette, radius=3)  # a 7 x 7 window
    cover = vegetation_cover(aerial, 3)
    # All of the lawn, and 1 px past its edge (a 7 px square there is 3/7 lawn, over 35 %; one
    # further, 2/7 and a tree or two, under it); no single tree.
    assert cover[:, :31].all() and cover.any(axis=0).tolist() == [True] * 31 + [False] * 29
    assert vegetation_cover(aerial, 0).tolist() == is_vegetation(aerial).tolist()
    mask = vegetation.mask(aerial, map_)
    assert mask[:20, :31].all() and mask[21:, :31].all() and not mask[20].any()
    assert not mask[:, 33:].any()
    painted = vegetation.paint(aerial, map_)
    assert (painted[mask] == park).all() and (painted[~mask] == map_[~mask]).all()

    # The render's tile painter does the same in the generator's range.
    values = u8_to_signed(map_.transpose(2, 0, 1))
    vegetation.paint_tile(u8_to_signed(aerial.transpose(2, 0, 1)), values, np.ones((40, 60), bool))
    assert np.array_equal(signed_to_u8(values).transpose(1, 2, 0), painted)
    # The window is ground metres: 22.5 m is 25 px at 0.9 m, 5 px at 4.5 m.
    assert Vegetation.at(palette, 0.9).radius == 12 and Vegetation.at(palette, 4.5).radius == 2


def test_cover_is_judged_over_the_valid_pixels_only():
    # Valid in the first 20 columns; the no-data beyond is filled (as a render fills it).
    valid = np.zeros((20, 40), bool)
    valid[:, :20] = True
    grey, grass = (120, 120, 120), (60, 130, 50)
    # Filled with grass colour: without the mask, the fill is cover up to 1 px inside the edge.
    aerial = np.full((20, 40, 3), grey, np.uint8)
    aerial[:, 20:] = grass
    assert vegetation_cover(aerial, 3)[:, 19].all()
    assert not vegetation_cover(aerial, 3, valid).any()
    # A 2 px lawn along the edge: 14 of a square's 49 pixels (under 35 %), but 14 of its 28
    # valid ones (over it).
    aerial[:, 20:] = grey
    aerial[:, 18:20] = grass
    assert not vegetation_cover(aerial, 3)[:, 19].any()
    cover = vegetation_cover(aerial, 3, valid)
    assert cover[:, 18:20].all() and not cover[:, 20:].any()
    # All valid: as without the mask.
    everywhere = np.ones((20, 40), bool)
    assert np.array_equal(vegetation_cover(aerial, 3, everywhere), vegetation_cover(aerial, 3))


def test_the_window_follows_the_output_resolution(land_park_model, tmp_path):
    from geo_p2p.render.options import RenderOptions
    from geo_p2p.webtiles import plan_tiles

    translator = Translator.load(land_park_model, device="cpu")

    def radius(**options) -> int:
        job = translator.job(CHARLOTTE, RenderOptions.build(None, vegetation=True, **options))
        return job.vegetation.radius

    # 22.5 m: 22.5 px at Charlotte's 1 m, 11.25 at 2 m, 45 at 0.5 m.
    assert [radius(resolution=r) for r in ("native", 2.0, 0.5)] == [11, 5, 22]
    assert radius(resolution=2.0, style="crisp") == 5

    def tiles_radius(zoom: int) -> int:
        job = plan_tiles(CHARLOTTE, tmp_path / "t", translator, zooms=(zoom, zoom), vegetation=True)
        return job.vegetation.radius

    # Web tiles: at the max zoom's metres per pixel at Charlotte (35.2 N): 0.49 m at 18, 0.98 at 17.
    assert tiles_radius(18) == 23 and tiles_radius(17) == 11


def test_render_paints_vegetation_and_leaves_every_other_pixel(land_park_model, tmp_path):
    translator = Translator.load(land_park_model, device="cpu")
    options = {"resolution": "native", "progress": False}
    plain, green = tmp_path / "plain.tif", tmp_path / "green.tif"
    translator.render(CHARLOTTE, plain, **options)
    translator.render(CHARLOTTE, green, vegetation=True, **options)
    (before, mask), (after, mask_after) = read(plain), read(green)
    assert np.array_equal(mask, mask_after)
    with rasterio.open(CHARLOTTE) as src:
        aerial = src.read([1, 2, 3]).transpose(1, 2, 0)
    vegetation = Vegetation.at(translator.palette, 1.0)  # Charlotte's 1 m, rendered natively
    radius = vegetation.radius
    candidates = vegetation.mask(aerial, before.transpose(1, 2, 0))
    assert candidates.mean() > 0.01  # Charlotte's trees, drawn as land by the tiny model
    changed = (before != after).any(axis=0)
    # A tile paints only where vegetation is within the window's radius (its edges reflected:
    # no nearer to the tile than the raster) ...
    near = np.pad(is_vegetation(aerial), radius)
    windows = np.lib.stride_tricks.sliding_window_view(near, (2 * radius + 1,) * 2)
    assert changed.any() and not (changed & ~windows.any(axis=(2, 3))).any()
    # ... and the land under cover is now park, whichever overlapping tiles it was blended from
    # (each tile judges the cover within its own 32 px, so less than all of it).
    classes = translator.palette.classify(after.transpose(1, 2, 0))
    assert (classes[candidates] == translator.palette.index("park")).mean() > 0.8
    # In memory, as the benchmarks translate: the same pixels.
    np.testing.assert_array_equal(
        translator.translate(aerial, vegetation=True), after.transpose(1, 2, 0)
    )


def test_vegetation_by_regions_resumed_equals_the_stream(land_park_model, tmp_path):
    src = mosaic_raster(tmp_path / "in.tif", 600, 1100)
    options = {"resolution": "native", "vegetation": True, "progress": False}
    plain, regions = tmp_path / "plain.tif", tmp_path / "regions.tif"
    Translator.load(land_park_model, device="cpu").render(src, plain, **options)
    spec = ModelSpec(str(land_park_model), device="cpu")
    render_regions(spec, src, regions, region_size=512, resume=True, **options)
    assert all(np.array_equal(a, b) for a, b in zip(read(plain), read(regions), strict=True))


def test_vegetation_needs_land_and_park_classes(model_dir, tmp_path):
    out = tmp_path / "map.tif"
    with pytest.raises(ValueError, match="'land' and 'park' map classes"):
        Translator.load(model_dir).translate(np.zeros((40, 40, 3), np.uint8), vegetation=True)
    with pytest.raises(RenderError, match="'land' and 'park' map classes"):
        Translator.load(model_dir).render(CHARLOTTE, out, vegetation=True, progress=False)
    args = ["render", str(CHARLOTTE), "-o", str(out), "--model", str(model_dir), "--vegetation"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "--vegetation needs a model" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_web_tiles_paint_vegetation_too(land_park_model, tmp_path):
    from test_webtiles import read_tile, written

    from geo_p2p.webtiles import make_tiles

    translator = Translator.load(land_park_model, device="cpu")
    options = {"zooms": (18, 18), "with_input": False, "progress": False}
    plain, green = tmp_path / "plain", tmp_path / "green"
    make_tiles(CHARLOTTE, plain, translator, **options)
    make_tiles(CHARLOTTE, green, translator, vegetation=True, **options)
    park = translator.palette.colours[translator.palette.index("park")]

    def park_pixels(root: Path) -> int:
        tiles = [read_tile(root, 18, x, y) for x, y in sorted(written(root)[18])]
        return sum(
            int((np.all(t[:3] == park[:, None, None], axis=0) & (t[3] > 0)).sum()) for t in tiles
        )

    assert written(plain) == written(green)
    assert park_pixels(green) > park_pixels(plain) + 1000
    with pytest.raises(RenderError, match="needs a model"):
        make_tiles(CHARLOTTE, tmp_path / "map", None, vegetation=True, **options)
