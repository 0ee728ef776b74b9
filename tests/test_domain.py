"""Training-imagery statistics: features, the out-of-domain distance, colour normalisation; and
the domain randomisation of training inputs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import CHARLOTTE, WEBODM
from PIL import Image, ImageFilter

from geo_p2p.domain import (
    FEATURES,
    domain_distance,
    image_features,
    imagery_record,
    match_histograms,
    match_moments,
    sample_features,
)
from geo_p2p.train.data import Augment, PairDataset
from geo_p2p.train.randomise import randomise

EXAMPLES = Path(__file__).parents[1] / "examples"


def charlotte() -> np.ndarray:
    with rasterio.open(CHARLOTTE) as src:
        return np.ascontiguousarray(src.read([1, 2, 3]).transpose(1, 2, 0))


def crops(image: np.ndarray, size: int = 64) -> list[np.ndarray]:
    h, w = image.shape[:2]
    return [image[r : r + size, c : c + size] for r in range(0, h - size + 1, size // 2)
            for c in range(0, w - size + 1, size // 2)]  # fmt: skip


def test_features_of_a_flat_and_a_striped_image() -> None:
    flat = np.full((8, 8, 3), (10, 20, 30), np.uint8)
    f = dict(zip(FEATURES, image_features(flat), strict=True))
    assert (f["mean_r"], f["mean_g"], f["mean_b"]) == (10, 20, 30)
    assert f["std_r"] == f["gradient"] == f["laplacian"] == 0 and f["chroma"] == 20
    stripes = np.zeros((8, 8, 3), np.uint8)
    stripes[:, ::2] = 100
    g = dict(zip(FEATURES, image_features(stripes), strict=True))
    assert g["gradient"] == pytest.approx(100) and g["laplacian"] == pytest.approx(200)
    assert g["std_r"] == pytest.approx(50)
    both = np.stack([flat.transpose(2, 0, 1), stripes.transpose(2, 0, 1)])
    np.testing.assert_allclose(
        sample_features(both), (image_features(flat) + image_features(stripes)) / 2
    )


def one(image: np.ndarray) -> np.ndarray:
    """A sample of one tile: the whole image."""
    return image.transpose(2, 0, 1)[None]


def test_distance_is_small_for_the_training_imagery_and_large_for_other_imagery() -> None:
    train = crops(charlotte())
    record = imagery_record(one(c) for c in train)
    assert record["images"] == len(train) and len(record["band_quantiles"][0]) == 101
    inside = [domain_distance(sample_features(one(c)), record) for c in train]
    assert np.sqrt(np.mean(np.square(inside))) == pytest.approx(1.0, abs=1e-3)  # z-scores
    with rasterio.open(WEBODM) as src:  # a drone orthophoto of a park, 0.5 m
        park = np.ascontiguousarray(src.read([1, 2, 3])[:, 40:168, 40:168].transpose(1, 2, 0))
    blurred = np.asarray(Image.fromarray(train[0]).filter(ImageFilter.GaussianBlur(3)))
    assert domain_distance(sample_features(one(park)), record) > max(inside)
    assert domain_distance(sample_features(one(blurred)), record) > inside[0] + 1  # texture


def test_colour_normalisation_moves_the_bands_to_the_record() -> None:
    record = imagery_record(one(c) for c in crops(charlotte()))
    with rasterio.open(WEBODM) as src:
        other = np.ascontiguousarray(src.read([1, 2, 3])[:, 40:168, 40:168].transpose(1, 2, 0))
    moved = match_moments(other, other, record).reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(moved.mean(0), record["band_mean"], atol=3)
    np.testing.assert_allclose(moved.std(0), record["band_std"], rtol=0.08)
    matched = match_histograms(other, other, record).reshape(-1, 3)
    for k in range(3):
        ours = np.percentile(matched[:, k], [10, 50, 90])
        np.testing.assert_allclose(ours, np.asarray(record["band_quantiles"][k])[[10, 50, 90]],
                                   atol=3)  # fmt: skip


def test_randomise_is_reproducible_and_changes_the_image() -> None:
    image = Image.fromarray(charlotte()[:64, :64])
    first = randomise(image, np.random.default_rng(5))
    again = randomise(image, np.random.default_rng(5))
    assert first.size == image.size and first.mode == "RGB"
    assert np.array_equal(np.asarray(first), np.asarray(again))
    outs = [np.asarray(randomise(image, np.random.default_rng(i)), np.int16) for i in range(8)]
    diffs = [np.abs(o - np.asarray(image, np.int16)).mean() for o in outs]
    assert sum(d > 2 for d in diffs) >= 6  # each effect has probability 1/2: most draws change
    assert randomise(image, np.random.default_rng(0), 0.0) is image


def test_domain_randomisation_touches_the_input_only(tmp_path: Path) -> None:
    a = charlotte()[:32, :32]
    b = 255 - a
    path = tmp_path / "p.png"
    Image.fromarray(np.concatenate([a, b], axis=1)).save(path)
    plain = PairDataset([path], size=32, load_size=None)
    randomised = PairDataset([path], size=32, load_size=None, augment=Augment(domain=1.0))
    changed = 0
    for epoch in range(6):
        (a0, b0), (a1, b1) = plain[(epoch, 0)], randomised[(epoch, 0)]
        assert torch.equal(b0, b1)
        changed += (a0 - a1).abs().mean().item() > 0.005
        assert torch.equal(randomised[(epoch, 0)][0], a1)
    assert changed >= 4


def test_bundled_card_records_the_training_imagery_and_flags_zurich() -> None:
    """The bundled model's card holds its training imagery's record and threshold; the Lake
    Zurich example (another sensor, country and season) is over it."""
    from geo_p2p.card import DEFAULT_MODEL_DIR, load_card
    from geo_p2p.domain import WARNING
    from geo_p2p.raster import inspect_source
    from geo_p2p.render.adapt import raster_sample

    card = load_card(DEFAULT_MODEL_DIR)
    record = card.training["imagery"]
    assert record["features"]["names"] == list(FEATURES) and record["images"] == 548
    area = Path(__file__).parents[1] / "examples" / "area.tif"
    sample = raster_sample(inspect_source(area, gsd=card.gsd), card.tile, 16)
    distance = domain_distance(sample_features(sample), record)
    assert distance > record["threshold"] == 2.3
    text = WARNING.format(distance=distance, threshold=2.3, hint="", gsd=card.gsd, model="default")
    assert "geo-p2p pairs" in text and "--init default" in text


def test_train_option_reaches_the_dataset() -> None:
    from click.testing import CliRunner
    from geo_p2p_cli.main import cli

    from geo_p2p.train import TrainConfig

    assert TrainConfig(data="x", domain_randomise=0.5).augment() == Augment(domain=0.5)
    assert TrainConfig(data="x").augment() == Augment()
    result = CliRunner().invoke(cli, ["train", "--help"])
    assert "--domain-randomise" in result.output


def test_the_plan_warns_of_imagery_unlike_the_training_imagery(tmp_path, model_dir) -> None:
    """render's plan measures the input against the card's record: the Lake Zurich example is
    out of the bundled model's domain, said in one warning line after the plan (on stderr
    beside a JSON plan on stdout) pointing to pairs and train --init; out of its domain the
    render paints vegetation by default, and the warning says so (or, with --no-vegetation,
    points to --vegetation); a model whose card has no record measures nothing."""
    import json
    import subprocess
    import sys

    area = Path(__file__).parents[1] / "examples" / "area.tif"
    command = [sys.executable, "-m", "geo_p2p_cli.main", "render", str(area)]
    done = subprocess.run([*command, "--dry-run", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["domain_distance"] > plan["domain_threshold"] == 2.3
    assert "Warning: this imagery looks unlike" in done.stderr and "--init default" in done.stderr
    assert plan["vegetation"] is True and "lawns are painted green" in done.stderr
    rendered = subprocess.run(
        [*command, "-o", str(tmp_path / "map.tif")], capture_output=True, text=True
    )
    lines = rendered.stderr.strip().splitlines()
    assert lines[0].startswith("geo-p2p: plan:") and "looks unlike" in lines[1]
    green = subprocess.run(
        [*command, "--vegetation", "--dry-run", "--json"], capture_output=True, text=True
    )
    assert json.loads(green.stdout)["vegetation"] is True and "painted green" in green.stderr
    plain = subprocess.run(
        [*command, "--no-vegetation", "--dry-run", "--json"], capture_output=True, text=True
    )
    assert json.loads(plain.stdout)["vegetation"] is False
    assert "looks unlike" in plain.stderr and "'--vegetation' paints" in plain.stderr
    other = subprocess.run(
        [*command, "--model", str(model_dir), "--dry-run", "--json"],
        capture_output=True,
        text=True,
    )
    assert json.loads(other.stdout)["domain_distance"] is None and "Warning" not in other.stderr
    assert json.loads(other.stdout)["vegetation"] is None  # no land and park classes


def newyork_tif(path: Path) -> Path:
    """A New York aerial of the maps pairs (in the bundled model's domain) as a GeoTIFF at
    ``path``: 600 x 600 px at 0.9 m in Web Mercator, in Manhattan."""
    from rasterio.transform import from_origin

    aerial = np.asarray(Image.open(EXAMPLES / "pairs" / "val" / "1.jpg"))[:, :600]
    profile = {"driver": "GTiff", "width": 600, "height": 600, "count": 3, "dtype": "uint8"}
    transform = from_origin(-8236000.0, 4975000.0, 0.9, 0.9)
    with rasterio.open(path, "w", crs="EPSG:3857", transform=transform, **profile) as ds:
        ds.write(aerial.transpose(2, 0, 1))
    return path


def test_vegetation_by_default_only_out_of_the_models_domain(tmp_path) -> None:
    """A New York aerial of the maps pairs (in the bundled model's domain) is rendered and
    tiled as the model draws it; the Lake Zurich example is painted, unless --no-vegetation."""
    from geo_p2p import Translator
    from geo_p2p.render.options import RenderOptions
    from geo_p2p.webtiles import plan_tiles

    newyork = newyork_tif(tmp_path / "newyork.tif")
    translator = Translator.load(device="cpu")

    def plan(src: Path, **options):
        return translator.job(src, RenderOptions.build(None, **options)).plan

    inside = plan(newyork)
    assert inside.domain_distance < inside.domain_threshold and inside.vegetation is False
    assert not inside.warnings()
    assert plan(newyork, vegetation=True).vegetation is True
    area = EXAMPLES / "area.tif"
    assert plan(area).vegetation is True and plan(area, vegetation=False).vegetation is False

    def tiles(src: Path, **options) -> bool:
        return plan_tiles(src, tmp_path / "tiles", translator, **options).plan.vegetation

    assert tiles(area) and not tiles(area, vegetation=False) and not tiles(newyork)


def tiles_dry_run(src: Path, tmp_path: Path, *options: str) -> tuple[dict, str]:
    """``geo-p2p tiles SRC --dry-run --json`` with the bundled model: its plan and stderr."""
    from click.testing import CliRunner
    from geo_p2p_cli.main import cli

    args = ["tiles", str(src), "-o", str(tmp_path / "web"), "--dry-run", "--json", *options]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def logged_tiles(src: Path, tmp_path: Path, caplog, **options) -> list[str]:
    """The messages make_tiles logs for ``src`` at zoom 17 with the bundled model."""
    from geo_p2p import Translator
    from geo_p2p.webtiles import make_tiles

    caplog.set_level(logging.INFO, logger="geo_p2p")
    caplog.clear()
    translator = Translator.load(device="cpu")
    zoom = {"zooms": (17, 17), "with_input": False, "progress": False}
    make_tiles(src, tmp_path / "tiles", translator, **zoom, **options)
    return [record.getMessage() for record in caplog.records]


def test_tiles_warn_of_imagery_unlike_the_training_imagery(tmp_path, caplog) -> None:
    """tiles measures the input as render does, on its max zoom's grid: the Lake Zurich example
    is out of the bundled model's domain, its plan says by how far, and one warning follows the
    plan line, saying that vegetation is painted (the default) or, with --no-vegetation,
    pointing to --vegetation."""
    area = EXAMPLES / "area.tif"
    plan, stderr = tiles_dry_run(area, tmp_path)
    assert plan["domain_distance"] > plan["domain_threshold"] == 2.3 and plan["vegetation"]
    assert stderr.count("Warning: this imagery looks unlike") == 1
    assert "lawns are painted green" in stderr and "--init default" in stderr
    lines = logged_tiles(area, tmp_path, caplog, vegetation=False)
    warned = [i for i, line in enumerate(lines) if "looks unlike" in line]
    assert len(warned) == 1 and lines[warned[0] - 1].startswith("zooms 17-17")
    assert "'--vegetation' paints" in lines[warned[0]] and "painted green" not in lines[warned[0]]


def test_tiles_of_imagery_like_the_training_imagery_warn_of_nothing(tmp_path, caplog) -> None:
    """A New York aerial of the maps pairs: its tile plan's distance is under the threshold,
    and neither the dry run nor the tiles warn."""
    newyork = newyork_tif(tmp_path / "newyork.tif")
    plan, stderr = tiles_dry_run(newyork, tmp_path)
    assert plan["domain_distance"] < plan["domain_threshold"] and plan["vegetation"] is False
    assert "Warning" not in stderr
    lines = logged_tiles(newyork, tmp_path, caplog)
    assert lines[0].startswith("zooms 17-17") and not any("looks unlike" in x for x in lines)


def test_the_default_render_of_an_out_of_domain_input_is_painted(tmp_path) -> None:
    """examples/area.tif, out of domain: the default render's pixels are --vegetation's, and
    differ from --no-vegetation's where it is painted park."""
    from geo_p2p import Translator

    area = Path(__file__).parents[1] / "examples" / "area.tif"
    translator = Translator.load(device="cpu")
    maps = {}
    for name, vegetation in (("default", None), ("always", True), ("never", False)):
        translator.render(area, tmp_path / f"{name}.tif", vegetation=vegetation, progress=False)
        with rasterio.open(tmp_path / f"{name}.tif") as ds:
            maps[name] = ds.read()
    assert np.array_equal(maps["default"], maps["always"])
    changed = (maps["default"] != maps["never"]).any(axis=0)
    assert changed.mean() > 0.01
    # Park, but where overlapping tiles judged the cover differently and were blended.
    classes = translator.palette.classify(maps["default"].transpose(1, 2, 0))
    assert (classes[changed] == translator.palette.index("park")).mean() > 0.8


def test_auto_resolution_draws_out_of_domain_input_coarser(tmp_path) -> None:
    """--resolution auto draws the out-of-domain Lake Zurich example at 1.5 times the model's
    0.9 m, says so in the warning (whose pairs advice keeps the model's 0.9 m) and writes that
    grid; a number keeps it, and the in-domain New York aerial stays at 0.9 m."""
    from geo_p2p import Translator
    from geo_p2p.domain import COARSER
    from geo_p2p.render.options import RenderOptions

    translator = Translator.load(device="cpu")

    def plan(src: Path, **options):
        return translator.job(src, RenderOptions.build(None, **options)).plan

    area = EXAMPLES / "area.tif"
    coarse = plan(area)
    assert coarse.coarser == COARSER and coarse.gsd == pytest.approx(0.9 * COARSER, rel=1e-3)
    (warning,) = coarse.warnings()
    assert "drawn at 1.35 m, 1.5 times the model's 0.9 m" in warning and "--gsd 0.9'" in warning
    kept = plan(area, resolution=0.9)
    assert kept.coarser is None and kept.gsd == pytest.approx(0.9, rel=1e-3)
    assert "drawn at" not in kept.warnings()[0]
    newyork = plan(newyork_tif(tmp_path / "newyork.tif"))
    assert newyork.coarser is None and newyork.gsd == pytest.approx(0.9, rel=1e-3)
    translator.render(area, tmp_path / "map.tif", progress=False)
    with rasterio.open(tmp_path / "map.tif") as ds, rasterio.open(area) as src:
        assert (ds.width, ds.height) == coarse.output_size and ds.crs == src.crs
        assert ds.res[0] == pytest.approx(1.35, rel=1e-2)  # EPSG:2056 metres
