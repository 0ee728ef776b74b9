"""Raster input decisions (bands, scaling, resampling grid, georeferencing) and output writing."""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from conftest import ATLANTA, CHARLOTTE, WEBODM, write_raster
from rasterio.enums import ColorInterp

from geo_p2p.errors import RenderError
from geo_p2p.files import atomic_output, check_output
from geo_p2p.geodesy import ground_scale
from geo_p2p.geotiff import gdal_cache_bytes, output_profile
from geo_p2p.raster import inspect_source
from geo_p2p.reader import RasterReader


def test_default_bands_follow_colour_interpretation(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "bgr.tif", np.zeros((4, 8, 8), np.uint8))
    with rasterio.open(path, "r+") as ds:
        ds.colorinterp = [
            ColorInterp.undefined,
            ColorInterp.blue,
            ColorInterp.green,
            ColorInterp.red,
        ]
    assert inspect_source(path).bands == (4, 3, 2)
    assert inspect_source(WEBODM).bands == (1, 2, 3)  # the alpha band is not a colour
    plain = write_raster(tmp_path / "plain.tif", np.zeros((5, 8, 8), np.uint8))
    assert inspect_source(plain).bands == (1, 2, 3)


def test_band_choice_errors(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="bands 1 to 4, not 5"):
        inspect_source(WEBODM, bands=(1, 2, 5))
    with pytest.raises(RenderError, match="1 or 3 band numbers"):
        inspect_source(WEBODM, bands=(1, 2))
    two = write_raster(tmp_path / "two.tif", np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(RenderError, match="2 bands") as e:
        inspect_source(two)
    assert e.value.param == "--bands"


def test_single_band_uint16_is_replicated_and_stretched(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        source = inspect_source(ATLANTA)
    assert source.bands == (1,)
    assert "replicated" in caplog.text and "2-98 % stretch" in caplog.text
    lo, hi = source.scale
    with rasterio.open(ATLANTA) as ds:
        values = ds.read(1)
    assert np.percentile(values[values > 0], 2) == pytest.approx(lo, rel=0.05)
    with RasterReader(source) as reader:
        rgb, valid = reader.read(0, 0, 10, 20)
    assert rgb.dtype == np.uint8 and rgb.shape == (3, 10, 20)
    assert (rgb[0] == rgb[1]).all() and (rgb[1] == rgb[2]).all()
    expected = np.clip(np.rint((values[:10, :20] - lo) * 255 / (hi - lo)), 0, 255)
    np.testing.assert_array_equal(rgb[0], expected)


def test_explicit_scale(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "f.tif", np.full((3, 4, 4), 0.5, np.float32))
    source = inspect_source(path, scale=(0.0, 1.0))
    with RasterReader(source) as reader:
        rgb, valid = reader.read(0, 0, 4, 4)
    assert (rgb == 128).all() and valid.all()
    with pytest.raises(RenderError, match="MIN must be below MAX"):
        inspect_source(path, scale=(1.0, 0.0))


def test_nodata_and_nan_are_invalid(tmp_path: Path) -> None:
    data = np.full((3, 6, 6), 7.0, np.float32)
    data[:, 0, 0] = -9999
    data[1, 5, 5] = np.nan
    path = write_raster(tmp_path / "nd.tif", data, nodata=-9999)
    with RasterReader(inspect_source(path)) as reader:
        _, valid = reader.read(0, 0, 6, 6)
    assert not valid[0, 0] and not valid[5, 5] and valid.sum() == 34


def test_ground_scale() -> None:
    utm = Affine(0.5, 0, 500000, 0, -0.5, 4000000)
    mx, my = ground_scale(rasterio.CRS.from_epsg(32615), utm, 100, 100)
    assert mx == pytest.approx(1.0, abs=0.005) and my == pytest.approx(1.0, abs=0.005)
    with rasterio.open(CHARLOTTE) as ds:  # Web Mercator at 35.2 N: ground = cos(lat) x units
        mx, my = ground_scale(ds.crs, ds.transform, ds.width, ds.height)
    assert mx == pytest.approx(math.cos(math.radians(35.19)), rel=0.005)
    assert my == pytest.approx(mx, rel=0.005)
    lonlat = Affine(1e-5, 0, 8.0, 0, -1e-5, 47.0)
    mx, my = ground_scale(rasterio.CRS.from_epsg(4326), lonlat, 100, 100)
    assert my == pytest.approx(111_200, rel=0.01)
    assert mx == pytest.approx(111_200 * math.cos(math.radians(47.0)), rel=0.01)


def test_resolution_auto_keeps_the_footprint() -> None:
    source = inspect_source(WEBODM, gsd=1.0)  # 0.5 m input, 1 m model
    assert (source.width, source.height) == (106, 106)
    assert source.resampling is not None
    with rasterio.open(WEBODM) as ds:
        bounds = rasterio.transform.array_bounds(source.height, source.width, source.transform)
        np.testing.assert_allclose(bounds, tuple(ds.bounds), atol=1e-6)
    assert inspect_source(WEBODM, gsd=0.5).resampling is None  # within tolerance: no resampling
    assert inspect_source(WEBODM, resolution="native", gsd=1.0).width == 212
    assert inspect_source(WEBODM, resolution=2.0, gsd=1.0).width == 53


def test_geographic_crs_is_resampled_in_metres(tmp_path: Path) -> None:
    lat = 47.0
    deg = 1.0 / 111_200  # about 1 m north-south
    transform = Affine(deg / math.cos(math.radians(lat)), 0, 8.0, 0, -deg, lat)
    path = write_raster(
        tmp_path / "ll.tif", np.zeros((3, 100, 100), np.uint8), "EPSG:4326", transform
    )
    assert inspect_source(path, gsd=1.0).resampling is None
    source = inspect_source(path, gsd=2.0)
    assert (source.width, source.height) == (50, 50)
    assert source.transform.a == pytest.approx(2 * transform.a)


def test_ungeoreferenced_input(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "raw.tif", np.zeros((3, 8, 8), np.uint8), crs=None)
    with pytest.raises(RenderError, match="--allow-ungeoreferenced"):
        inspect_source(path)
    source = inspect_source(path, allow_ungeoreferenced=True, gsd=1.0)
    assert source.transform is None and source.resampling is None
    assert "crs" not in output_profile(source)


def test_unreadable_inputs(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="does not exist"):
        inspect_source(tmp_path / "missing.tif")
    text = tmp_path / "notes.txt"
    text.write_text("not a raster\n")
    with pytest.raises(RenderError, match="not a raster"):
        inspect_source(text)


def test_output_profile_and_creation_options() -> None:
    source = inspect_source(CHARLOTTE)
    profile = output_profile(source, alpha=True, creation_options={"COMPRESS": "LZW"})
    assert profile["count"] == 4 and profile["compress"] == "LZW"
    assert profile["blockxsize"] == 512 and profile["bigtiff"] == "IF_SAFER"
    assert profile["crs"] == source.crs


def test_atomic_output_and_checks(tmp_path: Path) -> None:
    dst = tmp_path / "out.tif"
    with pytest.raises(RuntimeError), atomic_output(dst) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(dst) as tmp:
        tmp.write_bytes(b"done")
    assert dst.read_bytes() == b"done" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(RenderError, match="--overwrite"):
        check_output(dst, WEBODM, overwrite=False)
    check_output(dst, WEBODM, overwrite=True)
    with pytest.raises(RenderError, match="does not exist"):
        check_output(tmp_path / "no" / "out.tif", WEBODM, overwrite=False)


def test_gdal_cache_depends_on_the_strip_not_the_raster() -> None:
    base = inspect_source(CHARLOTTE)
    small = dataclasses.replace(
        base, width=4096, height=4096, input_shape=(4096, 4096), input_block_rows=512
    )
    big = dataclasses.replace(small, width=65536, height=65536, input_shape=(65536, 65536))
    assert gdal_cache_bytes(small, 256, 4096) == gdal_cache_bytes(big, 256, 4096) < 64 * 2**20
    assert gdal_cache_bytes(big, 256, 2048) < gdal_cache_bytes(big, 256, 4096)


def test_inspected_sources_know_their_input_layout() -> None:
    """The cache budget counts the input blocks of a real georeferenced file, too."""
    for resolution in ("native", 2.0):
        source = inspect_source(CHARLOTTE, resolution=resolution)
        with rasterio.open(CHARLOTTE) as src:
            assert source.input_shape == (src.height, src.width)
            assert source.input_block_rows == src.block_shapes[0][0]
        no_input = dataclasses.replace(source, input_shape=(0, 0), input_block_rows=0)
        assert gdal_cache_bytes(source, 256, 4096) > gdal_cache_bytes(no_input, 256, 4096)


def test_a_finer_input_is_read_from_the_coarsest_overview_still_finer_than_the_grid(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fine.tif"
    with rasterio.open(CHARLOTTE) as src:  # a real aerial, upsampled to 1/8 of its pixel size
        data = src.read([1, 2, 3], out_shape=(3, src.height * 4, src.width * 4))
        transform = src.transform @ Affine.scale(0.25)
        write_raster(
            path, data, str(src.crs), transform, tiled=True, blockxsize=256, blockysize=256
        )
    with rasterio.open(path, "r+") as ds:
        ds.build_overviews([2, 4, 8], rasterio.enums.Resampling.average)
    native = inspect_source(path, resolution="native")
    assert native.overviews == (2, 4, 8) and native.overview() is None  # not resampled
    gsd = native.input_gsd
    assert gsd is not None
    for ratio, chosen in [(1.5, None), (2.0, (0, 2)), (6.0, (1, 4)), (20.0, (2, 8))]:
        assert inspect_source(path, resolution=gsd * ratio).overview() == chosen, ratio
    coarse = inspect_source(path, resolution=gsd * 6)
    full = dataclasses.replace(coarse, overviews=())
    with RasterReader(coarse) as a, RasterReader(full) as b:
        (x, valid_x), (y, valid_y) = (r.read(0, 0, coarse.height, coarse.width) for r in (a, b))
    # The same grid and footprint, the same picture within rounding of the two averages.
    assert np.array_equal(valid_x, valid_y) and valid_x.all()
    assert np.abs(x.astype(int) - y.astype(int)).mean() < 1.0
