"""The map-class outputs of render and tiles: --style crisp, --classes and --vectors, made from
the finished painted map whatever rendered it (one stream, regions resumed), and the crisp style
of web tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import CHARLOTTE, tiny_unet
from geo_p2p_cli.main import cli
from test_regions import mosaic_raster
from test_webtiles import Interrupted, interrupt_after, read_tile, tile_set, utm, written

from geo_p2p import Translator
from geo_p2p.card import ModelCard, save_model
from geo_p2p.errors import RenderError
from geo_p2p.mapclasses import learn_palette
from geo_p2p.mapclasses.classraster import crisp_geotiff
from geo_p2p.mapclasses.crisp import speckle_radius
from geo_p2p.regions import ModelSpec, render_regions
from geo_p2p.render.options import RenderOptions
from geo_p2p.webtiles import make_tiles

__all__ = ["utm"]  # the fixture, used by name


@pytest.fixture
def classes_model(tmp_path: Path) -> Path:
    """A tiny model whose card names classes learnt from its own (untrained) colours."""
    translator = Translator(tiny_unet(), tile=32, device="cpu")
    with rasterio.open(CHARLOTTE) as src:
        painted = translator.translate(src.read([1, 2, 3]).transpose(1, 2, 0))
    palette = learn_palette([painted], k=4, seed=0)
    card = ModelCard(ngf=4, tile=32, inference_stats="tile", gsd=1.0, classes=palette.as_card())
    return save_model(tmp_path / "classes_model", tiny_unet(), card)


def read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(path) as ds:
        return ds.read(), ds.dataset_mask()


def test_crisp_render_is_the_painted_render_made_crisp(classes_model: Path, tmp_path: Path):
    translator = Translator.load(classes_model, device="cpu")
    options = {"resolution": "native", "progress": False}
    painted = tmp_path / "painted.tif"
    translator.render(CHARLOTTE, painted, **options)
    gsd = translator.job(CHARLOTTE, RenderOptions(resolution="native")).source.gsd
    radius = speckle_radius(None, gsd)
    assert radius >= 1
    expected, expected_classes = tmp_path / "expected.tif", tmp_path / "expected_classes.tif"
    crisp_geotiff(painted, translator.palette, radius, expected, expected_classes)

    crisp, classes = tmp_path / "crisp.tif", tmp_path / "classes.tif"
    translator.render(CHARLOTTE, crisp, style="crisp", classes=classes, **options)
    for got, want in ((crisp, expected), (classes, expected_classes)):
        assert all(np.array_equal(a, b) for a, b in zip(read(got), read(want), strict=True))
    colours = {tuple(c.colour) for c in translator.palette.classes}
    rgb, mask = read(crisp)
    assert {tuple(p) for p in rgb[:, mask > 0].T} <= colours  # flat class colours only
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "classes.tif",
        "classes.tif.aux.xml",
        "classes_model",
        "crisp.tif",
        "expected.tif",
        "expected_classes.tif",
        "expected_classes.tif.aux.xml",
        "painted.tif",
    ]  # no temporary file left


def test_resumed_crisp_render_by_regions_equals_the_plain_one(classes_model, tmp_path):
    src = mosaic_raster(tmp_path / "in.tif", 600, 1100)
    options = {"resolution": "native", "style": "crisp", "alpha": True, "progress": False}
    plain, regions = tmp_path / "plain.tif", tmp_path / "regions.tif"
    Translator.load(classes_model, device="cpu").render(src, plain, **options)
    spec = ModelSpec(str(classes_model), device="cpu")
    render_regions(spec, src, regions, region_size=512, resume=True, **options)
    assert all(np.array_equal(a, b) for a, b in zip(read(plain), read(regions), strict=True))
    with rasterio.open(regions) as ds:
        assert ds.count == 4  # --alpha kept


def test_vectors_from_the_cli_and_one_line_errors(classes_model, model_dir, tmp_path):
    pytest.importorskip("pyogrio", reason="--vectors needs the vectors extra")
    pytest.importorskip("skimage", reason="--vectors needs the vectors extra")
    import pyogrio

    runner = CliRunner()
    out, gpkg = tmp_path / "map.tif", tmp_path / "map.gpkg"
    args = [str(CHARLOTTE), "-o", str(out), "--model", str(classes_model), "--vectors", str(gpkg)]
    result = runner.invoke(cli, ["render", *args, "--resolution", "native"])
    assert result.exit_code == 0, result.output
    layers = {name for name, _ in pyogrio.list_layers(gpkg)}
    assert layers and layers <= {c.name for c in Translator.load(classes_model).palette.classes}
    assert not list(tmp_path.glob(".*"))  # the temporary class raster is gone

    # A model whose card names no classes, an output in the way: one line, exit 2, nothing made.
    plain = [str(CHARLOTTE), "-o", str(tmp_path / "x.tif"), "--model", str(model_dir)]
    result = runner.invoke(cli, ["render", *plain, "--style", "crisp"])
    assert result.exit_code == 2 and "names no map classes" in result.output
    same = str(tmp_path / "y.tif")
    result = runner.invoke(cli, ["render", *plain[:1], "-o", same, "--classes", same])
    assert result.exit_code == 2 and "--classes cannot be the output" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.tif").exists() and not (tmp_path / "y.tif").exists()


def test_crisp_tiles_resume_to_the_same_pyramid(classes_model, utm, tmp_path, monkeypatch):
    """Crisp web tiles hold class colours only; interrupted during the max zoom and resumed,
    they are the same tiles as an uninterrupted run (the filter sees the settled tiles' pixels
    again)."""
    from geo_p2p.webtiles.xyz import XYZDirectory

    translator = Translator.load(classes_model, device="cpu")
    options = {"zooms": (17, 19), "with_input": False, "progress": False, "style": "crisp"}
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    make_tiles(utm, whole, translator, **options)
    colours = {tuple(c.colour) for c in translator.palette.classes}
    x, y = next(iter(written(whole)[19]))
    tile = read_tile(whole, 19, x, y)
    assert {tuple(p) for p in tile[:3, tile[3] > 0].T} <= colours
    with monkeypatch.context() as patch:
        interrupt_after(patch, XYZDirectory, 3, zoom=19)
        with pytest.raises(Interrupted):
            make_tiles(utm, resumed, translator, **options)
    make_tiles(utm, resumed, translator, **options, resume=True)
    assert tile_set(resumed) == tile_set(whole)
    with pytest.raises(Exception, match="names its map's classes"):
        make_tiles(utm, tmp_path / "map", None, **options)
    for bad, message in (({"style": "fancy"}, "unknown style"), ({"speckle": -1}, "0 or more")):
        with pytest.raises(RenderError, match=message):
            make_tiles(utm, tmp_path / "bad", translator, **{**options, **bad})
