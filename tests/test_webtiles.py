"""Web map tiles: coverage and zooms, tiles against an independent warp, the pyramid, the
containers (XYZ folder, MBTiles, PMTiles), resume, the command line and the viewer in Chromium."""

from __future__ import annotations

import io
import json
import logging
import math
import re
import sqlite3
from pathlib import Path

import mercantile
import numpy as np
import pytest
import rasterio
import rasterio.warp
import shapely
import torch
from affine import Affine
from browser import chromium, dom, screenshot
from click.testing import CliRunner
from conftest import CHARLOTTE, tiny_unet, write_raster
from geo_p2p_cli.main import cli
from PIL import Image
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds, transform_geom

from geo_p2p import Translator
from geo_p2p.errors import RenderError
from geo_p2p.run.executors import StreamExecutor
from geo_p2p.webtiles import make_tiles
from geo_p2p.webtiles.codec import decode_tile, encode_png
from geo_p2p.webtiles.mercator import (
    WEB_TILE,
    coverage,
    default_zooms,
    mercator_resolution,
    zoom_for_resolution,
)
from geo_p2p.webtiles.pyramid import quarter

pytestmark = pytest.mark.usefixtures("one_thread")


def identity(tile: int = 32) -> Translator:
    """Translates nothing, but blends overlapping tiles as a model's would be."""
    return Translator(torch.nn.Identity(), tile=tile, overlap=8, margin=2, device="cpu")


def smooth_rgb(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(3, H, W) uint8 with structure at several scales (warps and averages are visible)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    bands = [
        127 + 100 * np.sin(x / (7 + 3 * b)) * np.cos(y / (5 + 2 * b)) + rng.normal(0, 10, x.shape)
        for b in range(3)
    ]
    return np.clip(np.stack(bands), 0, 255).astype(np.uint8)


@pytest.fixture
def utm(tmp_path: Path) -> Path:
    """160 x 120 px at 0.5 m in UTM 15 N (46.8 N), all valid."""
    return write_raster(tmp_path / "utm.tif", smooth_rgb(120, 160))


@pytest.fixture
def geographic(tmp_path: Path) -> Path:
    """140 x 100 px of 5e-6 degrees in EPSG:4326 (Zurich), all valid."""
    transform = Affine(5e-6, 0, 8.63, 0, -5e-6, 47.252)
    return write_raster(tmp_path / "wgs84.tif", smooth_rgb(100, 140, 1), "EPSG:4326", transform)


def lonlat_outline(path: Path) -> shapely.Geometry:
    with rasterio.open(path) as ds:
        box = shapely.segmentize(shapely.box(*ds.bounds), max(ds.res) * 10)
        return shapely.geometry.shape(
            transform_geom(ds.crs, "EPSG:4326", shapely.geometry.mapping(box))
        )


def written(root: Path, ext: str = "png") -> dict[int, set[tuple[int, int]]]:
    """Tiles under an XYZ folder by zoom."""
    out: dict[int, set[tuple[int, int]]] = {}
    for path in root.glob(f"[0-9]*/*/*.{ext}"):
        z, x, y = int(path.parts[-3]), int(path.parts[-2]), int(path.stem)
        out.setdefault(z, set()).add((x, y))
    return out


def read_tile(root: Path, z: int, x: int, y: int) -> np.ndarray:
    return decode_tile((root / str(z) / str(x) / f"{y}.png").read_bytes())


# Zooms and coverage


def test_zoom_for_resolution_and_defaults() -> None:
    assert zoom_for_resolution(0.9, 40.71) == 17  # the bundled model at New York
    assert zoom_for_resolution(0.5, 0.0) == 18  # 0.597 m at the equator, 1.19 m at 17
    assert zoom_for_resolution(0.9, 60.0) == 16  # 1.19 m / 2 = 0.597 m at 60 N: 0.9 is nearer 16
    small = (8.63, 47.25, 8.631, 47.251)  # 75 m across: one tile up to zoom 16 or so
    low, high = default_zooms(small, 18)
    assert high == 18 and low == mercantile.bounding_tile(*small).z
    assert default_zooms((-10, -10, 10, 10), 17) == (11, 17)  # max - 6 wins over zoom 1


@pytest.mark.parametrize(
    "bounds",
    [
        (8.63, 47.25, 8.6405, 47.2537),
        (-80.95, 35.19, -80.94, 35.2),
        tuple(mercantile.bounds(8578, 5745, 14)),  # exactly one tile: edges on tile boundaries
        (-0.001, -0.001, 0.001, 0.001),  # around the origin
    ],
)
def test_coverage_is_mercantile_tiles(bounds) -> None:
    for zoom in range(10, 19):
        expected = {(t.x, t.y) for t in mercantile.tiles(*bounds, zooms=zoom)}
        tiles = coverage(bounds, zoom)
        assert set(tiles) == expected
        assert len(tiles) == len(expected)


@pytest.mark.parametrize("raster", ["utm", "charlotte", "geographic"])
def test_written_tiles_cover_the_footprint_per_zoom(request, tmp_path, raster) -> None:
    """Per zoom: every written tile is one of mercantile's for the footprint's bounds and meets
    the footprint; every tile inside the footprint is written and opaque."""
    src = CHARLOTTE if raster == "charlotte" else request.getfixturevalue(raster)
    out = tmp_path / "xyz"
    make_tiles(src, out, zooms=(14, 18), progress=False)
    outline = lonlat_outline(src)
    by_zoom = written(out)
    assert sorted(by_zoom) == [14, 15, 16, 17, 18]
    for zoom, tiles in by_zoom.items():
        listed = {(t.x, t.y) for t in mercantile.tiles(*outline.bounds, zooms=zoom)}
        assert tiles <= listed
        for x, y in listed:
            box = shapely.box(*mercantile.bounds(x, y, zoom))
            if box.within(outline.buffer(-1e-7)):
                assert (x, y) in tiles
                assert (read_tile(out, zoom, x, y)[3] == 255).all()
            elif not box.intersects(outline):
                assert (x, y) not in tiles
    tilejson = (out / "tilejson.json").read_text()
    assert '"tilejson": "3.0.0"' in tilejson and '"maxzoom": 18' in tilejson


# Tile content


@pytest.mark.parametrize("zoom", [17, 18])  # 0.82 m (input finer: average), 0.41 m (bilinear)
def test_tile_equals_the_input_warped_independently(utm, tmp_path, zoom) -> None:
    out = tmp_path / "xyz"
    make_tiles(utm, out, identity(), zooms=(zoom, zoom), with_input=False, progress=False)
    resampling = Resampling.average if zoom == 17 else Resampling.bilinear
    tiles = written(out)[zoom]
    assert len(tiles) >= 2
    for x, y in tiles:
        assert_warped(read_tile(out, zoom, x, y), utm, zoom, x, y, resampling)


def assert_warped(
    tile: np.ndarray, src: Path, zoom: int, x: int, y: int, resampling, within=(1, 0.25)
) -> None:
    """``tile`` is ``src`` warped independently onto tile ``x, y``: within ``within`` DN at
    most and on average."""
    with rasterio.open(src) as ds:
        data, crs, transform = ds.read(), ds.crs, ds.transform
    res = mercator_resolution(zoom)
    west, _, _, north = mercantile.xy_bounds(x, y, zoom)
    expected = np.zeros((4, WEB_TILE, WEB_TILE), np.uint8)
    reproject(
        np.concatenate([data, np.full_like(data[:1], 255)]),
        expected,
        src_transform=transform,
        src_crs=crs,
        dst_transform=Affine(res, 0, west, 0, -res, north),
        dst_crs="EPSG:3857",
        resampling=resampling,
        dst_nodata=0,
    )
    inside = (expected[3] == 255) & (tile[3] == 255)
    assert inside.sum() > 0.9 * (expected[3] == 255).sum()
    diff = np.abs(tile[:3].astype(int) - expected[:3])[:, inside]
    assert diff.max() <= within[0] and diff.mean() < within[1]
    assert (tile[3] == 0).sum() == pytest.approx((expected[3] == 0).sum(), abs=2 * WEB_TILE)


def test_pyramid_holds_only_the_tiles_being_assembled(tmp_path, monkeypatch) -> None:
    """Blocks are cut into tiles as they come: with 512 px strips (two tiles wide), only the two
    tiles of a strip's current row are ever held, of zoom 19's 30-odd; and only a few of the
    20-odd lower tiles wait for children at any time."""
    from geo_p2p.webtiles import make, pyramid

    src = write_raster(tmp_path / "wide.tif", smooth_rgb(400, 600))
    held, parents = [], []
    add, pass_up = make.TileCutter.write, pyramid.Pyramid._pass_up

    def counting(self, block) -> None:
        add(self, block)
        held.append(len(self._open))

    def counting_parents(self, *args) -> None:
        pass_up(self, *args)
        parents.append(len(self._open))

    monkeypatch.setattr(make.TileCutter, "write", counting)
    monkeypatch.setattr(pyramid.Pyramid, "_pass_up", counting_parents)
    translator = Translator(torch.nn.Identity(), tile=64, overlap=8, device="cpu", strip_width=512)
    make_tiles(src, tmp_path / "xyz", translator, zooms=(16, 19), with_input=False, progress=False)
    tiles = written(tmp_path / "xyz")
    assert len(tiles[19]) > 25 and sum(len(tiles[z]) for z in (16, 17, 18)) > 15
    assert 0 < max(held) <= 2
    assert 0 < max(parents) <= 4


def test_quarter_is_the_alpha_weighted_2x2_average() -> None:
    rng = np.random.default_rng(0)
    child = rng.integers(0, 256, (4, WEB_TILE, WEB_TILE), np.uint8)
    child[3] = np.where(rng.random((WEB_TILE, WEB_TILE)) < 0.3, 0, 255)
    child[3, :20, :20] = 0
    half = quarter(child)
    assert half.shape == (4, WEB_TILE // 2, WEB_TILE // 2) and half.dtype == np.uint8
    for r, c in [(0, 0), (5, 100), (64, 64), (100, 15), (127, 127), (100, 100)]:
        block = child[:, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2].reshape(4, 4).astype(float)
        opaque = block[3] > 0
        assert half[3, r, c] == math.floor(block[3].mean() + 0.5)
        if opaque.any():
            mean = block[:3, opaque].mean(axis=1)
            np.testing.assert_array_equal(half[:3, r, c], np.floor(mean + 0.5))
    assert (half[3, :10, :10] == 0).all()
    child[3] = 255  # opaque: the plain mean
    mean = child.reshape(4, 128, 2, 128, 2).astype(float).mean(axis=(2, 4))
    np.testing.assert_array_equal(quarter(child), np.floor(mean + 0.5))


@pytest.mark.parametrize("channels", [3, 4])
def test_png_tiles_read_back_exactly(channels) -> None:
    pixels = np.random.default_rng(channels).integers(0, 256, (WEB_TILE, 200, channels), np.uint8)
    data = encode_png(pixels)
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # checks every chunk's CRC and the zlib stream
        assert image.mode == ("RGB", "RGBA")[channels - 3]
        np.testing.assert_array_equal(np.asarray(image), pixels)


def test_parents_in_the_pyramid_average_their_children(utm, tmp_path) -> None:
    out = tmp_path / "xyz"
    make_tiles(utm, out, zooms=(16, 18), progress=False)
    by_zoom = written(out)
    for zoom in (16, 17):
        assert by_zoom[zoom] == {(x // 2, y // 2) for x, y in by_zoom[zoom + 1]}
        for x, y in by_zoom[zoom]:
            children = [
                read_tile(out, zoom + 1, 2 * x + dx, 2 * y + dy)
                if (2 * x + dx, 2 * y + dy) in by_zoom[zoom + 1]
                else np.zeros((4, WEB_TILE, WEB_TILE), np.uint8)
                for dy in (0, 1)
                for dx in (0, 1)
            ]
            quad = np.block([[children[0], children[1]], [children[2], children[3]]]).astype(float)
            pixels = quad.reshape(4, WEB_TILE, 2, WEB_TILE, 2)
            parent = read_tile(out, zoom, x, y)
            opaque = (pixels[3] == 255).all(axis=(1, 3))
            mean = np.floor(pixels[:3].mean(axis=(2, 4)) + 0.5)
            np.testing.assert_array_equal(parent[:3, opaque], mean[:, opaque])
            np.testing.assert_array_equal(
                parent[3], np.floor(pixels[3].mean(axis=(1, 3)) + 0.5).astype(np.uint8)
            )


def test_aoi_limits_tiles_and_masks_pixels(utm, tmp_path) -> None:
    """The western half of the raster (AOI in the raster's CRS): tiles only where mercantile
    lists them for the AOI, pixels east of it transparent, west of it opaque."""
    aoi = (
        "POLYGON((575990 5187930, 576040 5187930, 576040 5188010, 575990 5188010, 575990 5187930))"
    )
    out = tmp_path / "xyz"
    make_tiles(utm, out, zooms=(18, 18), aoi=aoi, progress=False)
    west, south, east, north = transform_bounds(
        "EPSG:32615", "EPSG:4326", 576000, 5187940, 576040, 5188000
    )
    listed = {(t.x, t.y) for t in mercantile.tiles(west, south, east, north, zooms=18)}
    tiles = written(out)[18]
    assert tiles and tiles <= listed
    res = mercator_resolution(18)
    for x, y in tiles:
        left, _, _, top = mercantile.xy_bounds(x, y, 18)
        rows, cols = np.mgrid[4:WEB_TILE:8, 4:WEB_TILE:8]
        xs, ys = rasterio.warp.transform(
            "EPSG:3857",
            "EPSG:32615",
            (left + (cols + 0.5) * res).ravel(),
            (top - (rows + 0.5) * res).ravel(),
        )
        xs, ys = np.array(xs).reshape(rows.shape), np.array(ys).reshape(rows.shape)
        alpha = read_tile(out, 18, x, y)[3][rows, cols]
        inside_raster = (ys > 5187941) & (ys < 5187999) & (xs > 576001)
        assert (alpha[xs > 576041] == 0).all()
        assert (alpha[(xs < 576039) & inside_raster] == 255).all()


# Containers


def test_mbtiles_rows_are_tms_and_gdal_reads_it(utm, tmp_path) -> None:
    xyz, mbtiles = tmp_path / "xyz", tmp_path / "area.mbtiles"
    make_tiles(utm, xyz, zooms=(15, 18), progress=False)
    make_tiles(utm, mbtiles, zooms=(15, 18), progress=False)
    with sqlite3.connect(mbtiles) as db:
        rows = db.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles")
        tiles = {(z, x, (1 << z) - 1 - row): data for z, x, row, data in rows}
        metadata = dict(db.execute("SELECT name, value FROM metadata"))
    by_zoom = written(xyz)
    assert set(tiles) == {(z, x, y) for z, xy in by_zoom.items() for x, y in xy}
    for (z, x, y), data in tiles.items():
        assert data == (xyz / str(z) / str(x) / f"{y}.png").read_bytes()
    assert metadata["format"] == "png" and metadata["name"] == "area"
    assert (metadata["minzoom"], metadata["maxzoom"]) == ("15", "18")
    assert {"bounds", "center", "attribution", "version"} <= set(metadata)
    with rasterio.open(utm) as ds:
        west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
    assert [float(v) for v in metadata["bounds"].split(",")] == pytest.approx(
        [west, south, east, north], abs=1e-6
    )
    with rasterio.open(mbtiles) as ds:
        assert ds.driver == "MBTiles" and ds.crs.to_epsg() == 3857
        assert ds.res[0] == pytest.approx(mercator_resolution(18))
        tags = ds.tags()
        assert (tags["minzoom"], tags["maxzoom"], tags["ZOOM_LEVEL"]) == ("15", "18", "18")
        assert ds.overviews(1)[0] == 2  # GDAL stops before an overview is smaller than a tile
        expected = transform_bounds("EPSG:4326", "EPSG:3857", west, south, east, north)
        assert list(ds.bounds) == pytest.approx(expected, abs=mercator_resolution(18) * 2)


def test_pmtiles_reads_back_with_the_pmtiles_reader(utm, tmp_path) -> None:
    reader = pytest.importorskip("pmtiles.reader", reason="PMTiles needs the [pmtiles] extra")
    xyz, archive = tmp_path / "xyz", tmp_path / "area.pmtiles"
    make_tiles(utm, xyz, zooms=(14, 18), progress=False)
    make_tiles(utm, archive, zooms=(14, 18), progress=False)
    assert not list(tmp_path.glob(".*"))  # no staging file left
    with open(archive, "rb") as f:
        pm = reader.Reader(reader.MmapSource(f))
        header = pm.header()
        assert (header["min_zoom"], header["max_zoom"]) == (14, 18)
        assert header["clustered"] and header["tile_type"].name == "PNG"
        with rasterio.open(utm) as ds:
            bounds = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
        got = [header[k] / 1e7 for k in ("min_lon_e7", "min_lat_e7", "max_lon_e7", "max_lat_e7")]
        assert got == pytest.approx(bounds, abs=1e-6)
        assert pm.metadata()["attribution"]
        for z, tiles in written(xyz).items():
            for x, y in tiles:
                assert pm.get(z, x, y) == (xyz / str(z) / str(x) / f"{y}.png").read_bytes()
        assert pm.get(18, 0, 0) is None


def test_webp_and_jpeg_tiles(utm, tmp_path, caplog) -> None:
    make_tiles(utm, tmp_path / "webp", zooms=(18, 18), fmt="webp", progress=False)
    tiles = list((tmp_path / "webp").glob("18/*/*.webp"))
    assert tiles and Image.open(tiles[0]).format == "WEBP"
    make_tiles(utm, tmp_path / "jpeg", zooms=(18, 18), fmt="jpeg", progress=False)
    assert "no transparency" in caplog.text
    assert (tmp_path / "jpeg" / "tilejson.json").read_text().count(".jpg") == 1


# Resume, overwrite, atomicity


class Interrupted(KeyboardInterrupt):
    pass


def interrupt_after(monkeypatch, cls: type, tiles: int, zoom: int | None = None) -> None:
    """Make ``cls.write`` raise Ctrl-C once ``tiles`` tiles (of ``zoom``, if given) are
    written."""
    original = cls.write
    count = 0

    def write(self, z, *args):
        nonlocal count
        if zoom is None or z == zoom:
            if count == tiles:
                raise Interrupted
            count += 1
        original(self, z, *args)

    monkeypatch.setattr(cls, "write", write)


@pytest.mark.parametrize("suffix", ["", ".mbtiles"])
def test_resume_after_an_interruption_gives_the_same_tiles(utm, tmp_path, monkeypatch, suffix):
    from geo_p2p.webtiles.sqlite import MBTilesStore
    from geo_p2p.webtiles.xyz import XYZDirectory

    translator = Translator(tiny_unet(), tile=32, device="cpu")  # borders and blending matter
    options = {"zooms": (16, 19), "with_input": False, "progress": False}
    whole, resumed = tmp_path / f"whole{suffix}", tmp_path / f"resumed{suffix}"
    translated = []
    run = StreamExecutor.run

    def counting(self, *args, **kwargs):
        translated.append(run(self, *args, **kwargs)[0])

    monkeypatch.setattr(StreamExecutor, "run", counting)
    make_tiles(utm, whole, translator, **options)
    cls = XYZDirectory if not suffix else MBTilesStore
    with monkeypatch.context() as patch:
        interrupt_after(patch, cls, 4, zoom=19)  # during the max zoom
        with pytest.raises(Interrupted):
            make_tiles(utm, resumed, translator, **options)
    if suffix:
        assert not resumed.exists() and (tmp_path / f".{resumed.name}.partial").exists()
    else:
        assert not (resumed / "tilejson.json").exists()
        assert len(list(resumed.rglob("19/*/*.png"))) == 4
    with pytest.raises(RenderError, match="other settings"):
        make_tiles(utm, resumed, translator, **{**options, "zooms": (15, 18), "resume": True})
    with pytest.raises(RenderError, match="--overwrite"):
        make_tiles(utm, resumed, translator, **options)
    make_tiles(utm, resumed, translator, **options, resume=True)
    assert tile_set(resumed) == tile_set(whole)
    assert 0 < translated[-1] < translated[0]  # only the model tiles under the missing tiles


def test_resume_from_any_interruption_gives_the_same_tiles(utm, tmp_path, monkeypatch) -> None:
    """Lower zooms are written while the max zoom is cut: stopped after any number of tiles,
    a resume writes exactly the pyramid of an uninterrupted run."""
    from geo_p2p.webtiles.xyz import XYZDirectory

    options = {"zooms": (15, 19), "with_input": False, "progress": False}
    make_tiles(utm, tmp_path / "whole", identity(), **options)
    whole = tile_set(tmp_path / "whole")
    for stop in range(1, len(whole)):
        resumed = tmp_path / f"resumed{stop}"
        with monkeypatch.context() as patch:
            interrupt_after(patch, XYZDirectory, stop)
            with pytest.raises(Interrupted):
                make_tiles(utm, resumed, identity(), **options)
        assert len(tile_set(resumed)) == stop
        make_tiles(utm, resumed, identity(), **options, resume=True)
        assert tile_set(resumed) == whole, f"interrupted after {stop} tiles"


def test_resume_after_the_max_zoom_runs_no_model(utm, tmp_path, monkeypatch) -> None:
    from geo_p2p.webtiles.xyz import XYZDirectory

    translator = Translator(tiny_unet(), tile=32, device="cpu")
    options = {"zooms": (16, 18), "with_input": False, "progress": False}
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    make_tiles(utm, whole, translator, **options)
    assert len(written(whole)[16]) == 1
    with monkeypatch.context() as patch:
        interrupt_after(patch, XYZDirectory, 0, zoom=16)  # the last tile: the bottom
        with pytest.raises(Interrupted):
            make_tiles(utm, resumed, translator, **options)
    calls = []
    monkeypatch.setattr(StreamExecutor, "run", lambda *args, **kw: calls.append(1))
    make_tiles(utm, resumed, translator, **options, resume=True)
    assert not calls
    assert tile_set(resumed) == tile_set(whole)


def tile_set(path: Path) -> dict[tuple[int, int, int], bytes]:
    if path.suffix == ".mbtiles":
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles")
            return {(z, x, y): data for z, x, y, data in rows}
    return {
        (int(p.parts[-3]), int(p.parts[-2]), int(p.stem)): p.read_bytes()
        for p in path.glob("[0-9]*/*/*.png")
    }


def test_overwrite_refuses_a_folder_with_other_files(utm, tmp_path) -> None:
    out = tmp_path / "xyz"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RenderError, match="exists"):
        make_tiles(utm, out, zooms=(18, 18), progress=False)
    with pytest.raises(RenderError, match="did not write"):
        make_tiles(utm, out, zooms=(18, 18), overwrite=True, progress=False)
    (out / "notes.txt").unlink()
    make_tiles(utm, out, zooms=(17, 18), progress=False)
    make_tiles(utm, out, zooms=(18, 18), overwrite=True, progress=False)
    assert sorted(written(out)) == [18]


# Command line


def test_cli_tiles_map_to_mbtiles_and_errors(utm, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)
    runner = CliRunner()
    out = tmp_path / "area.mbtiles"
    result = runner.invoke(cli, ["tiles", str(utm), "-o", str(out), "--map", "--zoom", "17-18"])
    assert result.exit_code == 0, result.output
    assert re.search(r"zooms 17-18 .*tiles per zoom 17:\d+ 18:\d+", caplog.text)
    with rasterio.open(out) as ds:
        assert ds.tags()["minzoom"] == "17"
    cases = {
        "exists: pass --overwrite": ["--map"],
        "drop --model": ["--map", "--model", str(tmp_path)],
        "expected MIN-MAX": ["--map", "--zoom", "x"],
        "MIN <= MAX": ["--map", "--zoom", "18-12"],
    }
    for message, args in cases.items():
        result = runner.invoke(cli, ["tiles", str(utm), "-o", str(out), *args])
        assert result.exit_code != 0 and message in result.output, result.output
        assert "Traceback" not in result.output
    plain = write_raster(tmp_path / "plain.tif", smooth_rgb(40, 40), None, None)
    result = runner.invoke(cli, ["tiles", str(plain), "-o", str(tmp_path / "p"), "--map"])
    assert result.exit_code == 2 and "no coordinate reference system" in result.output


def test_cli_tiles_translates_with_a_model(utm, model_dir, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)
    out = tmp_path / "web"
    args = ["tiles", str(utm), "-o", str(out), "--model", str(model_dir), "--batch-size", "4"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "the model's 1 m/px" in caplog.text  # the card's ground resolution: zoom 17
    # Min zoom: the footprint (80 x 60 m) fits one tile at 16 (above 17 - 6).
    assert sorted(written(out)) == sorted(written(out / "input")) == [16, 17]
    assert (out / "index.html").exists() and (out / "leaflet" / "LICENSE").exists()


def test_cli_tiles_dry_run_and_guards(utm, model_dir, tmp_path) -> None:
    runner = CliRunner()
    out = tmp_path / "web"
    args = ["tiles", str(utm), "-o", str(out), "--model", str(model_dir), "--dry-run"]
    result = runner.invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["zooms"] == [16, 17] and plan["layers"] == 2 and plan["model_tiles"] > 0
    assert plan["total"] == 2 * sum(plan["tiles"].values())
    assert not out.exists()
    result = runner.invoke(cli, [*args[:-1], "--json"])
    assert result.exit_code == 2 and "--json goes with --dry-run" in result.output
    # 40 x 40 px of 30 m: zoom 17, the model's resolution, is about 40 times finer.
    coarse = write_raster(
        tmp_path / "coarse.tif", smooth_rgb(40, 40), transform=Affine(30, 0, 500000, 0, -30, 5e6)
    )
    args = ["tiles", str(coarse), "-o", str(out), "--model", str(model_dir), "--dry-run"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2 and "times finer" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert runner.invoke(cli, [*args, "--force"]).exit_code == 0
    assert runner.invoke(cli, [*args, "--zoom", "12-13"]).exit_code == 0
    result = runner.invoke(cli, [*args, "--force", "--max-tiles", "100"])
    assert result.exit_code == 2 and "more than --max-tiles 100" in result.output
    assert not out.exists()


def test_tiles_across_the_antimeridian_wrap_around(tmp_path, monkeypatch) -> None:
    """10 x 10 km in UTM 60 N at 65 N, across 180 degrees: tiles on both sides (the columns of
    the east side from 0 again), each the input warped independently to it; parents across
    the wrap; metadata with west > east; a resume; zooms that would wrap onto themselves
    refused."""
    from geo_p2p.webtiles.xyz import XYZDirectory

    transform = Affine(50, 0, 636000, 0, -50, 7215000)
    src = write_raster(tmp_path / "chukotka.tif", smooth_rgb(200, 200), "EPSG:32660", transform)
    out = tmp_path / "web"
    make_tiles(src, out, zooms=(9, 11), progress=False)
    tiles = written(out)
    assert {0, 2047} <= {x for x, _ in tiles[11]} <= {2046, 2047, 0, 1}
    for x, y in tiles[11]:
        # GDAL's approximate transformer (0.125 px) differs between a warp to one tile and to
        # the grid across 180 degrees; the input's pixel noise turns that into a few DN (0.35
        # on average; a quarter of a pixel to the side would give 1.6).
        tile = read_tile(out, 11, x, y)
        assert_warped(tile, src, 11, x, y, Resampling.bilinear, within=(5, 1))
    for zoom in (9, 10):
        assert tiles[zoom] == {(x // 2, y // 2) for x, y in tiles[zoom + 1]}
        assert {x for x, _ in tiles[zoom]} == {0, (1 << zoom) - 1}
    west, south, east, north = json.loads((out / "tilejson.json").read_text())["bounds"]
    assert 179.8 < west < 180 and -180 < east < -179.8 and 64.9 < south < north < 65.1
    resumed = tmp_path / "resumed"
    with monkeypatch.context() as patch:
        interrupt_after(patch, XYZDirectory, 2)
        with pytest.raises(Interrupted):
            make_tiles(src, resumed, zooms=(9, 11), progress=False)
    make_tiles(src, resumed, zooms=(9, 11), progress=False, resume=True)
    assert tile_set(resumed) == tile_set(out)
    with pytest.raises(RenderError, match="min zoom of 1 or more"):
        make_tiles(src, tmp_path / "world", zooms=(0, 11), progress=False)


# The viewer in a real browser


@pytest.mark.skipif(
    chromium() is None, reason="Chromium is not installed (apt-get install chromium)"
)
def test_viewer_shows_map_and_input_in_headless_chromium(tmp_path) -> None:
    out = tmp_path / "web"
    make_tiles(CHARLOTTE, out, identity(), progress=False)
    page = dom(out / "index.html")
    loaded = dict(re.findall(r'data-loaded-(map|input)="(\d+)"', page))
    assert int(loaded.get("map", 0)) > 0 and int(loaded.get("input", 0)) > 0, page[:500]
    png = tmp_path / "shot.png"
    screenshot(out / "index.html", png)
    shot = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    # Not a blank map: much of the window is imagery (the page background is #ddd) in many
    # colours, on both sides of the swipe.
    drawn = (shot != 221).any(axis=1).reshape(500, 800)
    assert drawn[:, :400].mean() > 0.1 and drawn[:, 400:].mean() > 0.1
    assert len(np.unique(shot, axis=0)) > 500
