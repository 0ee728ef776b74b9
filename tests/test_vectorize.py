"""Vector layers of class rasters: areas, seams, centrelines, the CLI, GDAL and QGIS."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from click.testing import CliRunner
from geo_p2p_cli.main import cli
from PIL import Image

from geo_p2p.mapclasses import majority_filter, maps_palette
from geo_p2p.mapclasses.classraster import class_areas
from geo_p2p.mapclasses.vectorize import CENTRELINES, VectorOptions, vectorize

pyogrio = pytest.importorskip("pyogrio", reason="the vectors extra is not installed")
pytest.importorskip("skimage", reason="the vectors extra is not installed")

from test_classraster import CRS, PAIRS, TRANSFORM, write_classes  # noqa: E402


def real_classes(path: Path) -> Path:
    """The class raster of two real maps-style targets side by side (1200 x 600, from
    examples/pairs), majority-filtered as the crisp style is."""
    halves = []
    for name in ("1.jpg", "2.jpg"):
        image = np.asarray(Image.open(PAIRS / name).convert("RGB"))
        halves.append(image[:, image.shape[1] // 2 :])
    values = maps_palette().classify(np.concatenate(halves, axis=1)) + 1
    return write_classes(path, majority_filter(values.astype(np.uint8), 2, 5))


def read_layer(path: Path, layer: str) -> tuple[np.ndarray, dict]:
    meta, _, wkb, fields = pyogrio.raw.read(path, layer=layer)
    return shapely.from_wkb(wkb), dict(zip(meta["fields"], fields, strict=True))


def test_polygons_keep_the_class_areas_and_are_valid(tmp_path):
    raster = real_classes(tmp_path / "c.tif")
    out = tmp_path / "map.gpkg"
    summary = vectorize(raster, out, VectorOptions(block=256))
    layers = dict(pyogrio.list_layers(out))
    assert layers == {**dict.fromkeys(maps_palette().names, "Polygon"), CENTRELINES: "LineString"}
    assert pyogrio.read_info(out, layer="land")["crs"] == CRS
    areas = class_areas(raster)
    assert len(areas) >= 3
    for name in areas:
        geoms, fields = read_layer(out, name)
        assert len(geoms) == summary.features[name] > 0
        assert shapely.is_valid(geoms).all()
        assert abs(shapely.area(geoms).sum() / areas[name] - 1) < 0.01, name
        assert set(fields["class"]) == {name}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("block, halo", [(128, 64), (96, 32), (300, 100)])
def test_blocks_leave_no_seams(tmp_path, block, halo):
    """Cut into blocks or not cut at all, the polygons are the same (no seams, no slivers) and
    so are the centrelines, junctions on block edges included."""
    raster = real_classes(tmp_path / "c.tif")
    vectorize(raster, tmp_path / "one.gpkg", VectorOptions(simplify=0, min_area=0, block=2048))
    options = VectorOptions(simplify=0, min_area=0, block=block, halo=halo)
    vectorize(raster, tmp_path / "many.gpkg", options)
    for name in maps_palette().names:
        one, _ = read_layer(tmp_path / "one.gpkg", name)
        many, _ = read_layer(tmp_path / "many.gpkg", name)
        assert len(one) == len(many), name
        difference = shapely.symmetric_difference(shapely.union_all(one), shapely.union_all(many))
        assert difference.area < 1e-6, name
    one, _ = read_layer(tmp_path / "one.gpkg", CENTRELINES)
    many, _ = read_layer(tmp_path / "many.gpkg", CENTRELINES)

    def wkt(lines):
        return sorted(shapely.to_wkt(shapely.normalize(lines), rounding_precision=3))

    assert len(one) > 100 and wkt(one) == wkt(many)


def test_a_road_across_blocks_is_one_line(tmp_path):
    values = np.ones((400, 400), np.uint8)
    rows, cols = np.mgrid[:400, :400]
    curve = 200 + 80 * np.sin(cols / 60)  # a winding road through many 128 px blocks
    values[np.abs(rows - curve) < 5] = 2
    raster = write_classes(tmp_path / "c.tif", values)
    vectorize(raster, tmp_path / "map.gpkg", VectorOptions(block=128, halo=16))
    lines, fields = read_layer(tmp_path / "map.gpkg", CENTRELINES)
    assert len(lines) == 1
    # From one side of the raster to the other, as long as the curve (0.9 m pixels).
    expected = np.hypot(np.diff(curve[0]), 1).sum() * 0.9
    assert fields["length_m"][0] == pytest.approx(expected, rel=0.03)


def test_lines_meet_at_junctions(tmp_path):
    values = np.ones((300, 300), np.uint8)
    values[145:154, :] = 2  # an east-west road
    values[:, 95:104] = 2  # crossed by a north-south one, and a third one ending on it
    values[:150, 245:254] = 2
    raster = write_classes(tmp_path / "c.tif", values)
    vectorize(raster, tmp_path / "map.gpkg", VectorOptions(block=128, halo=16, simplify=0))
    lines, _ = read_layer(tmp_path / "map.gpkg", CENTRELINES)
    ends = np.concatenate([shapely.get_coordinates(line)[[0, -1]] for line in lines])
    points, counts = np.unique(np.round(ends, 6), axis=0, return_counts=True)
    # Every line ends at the raster's edge or at a junction that three or more lines share.
    at_edge = (
        (points[:, 0] < TRANSFORM.c + 10)
        | (points[:, 0] > TRANSFORM.c + 270 - 10)
        | (points[:, 1] > TRANSFORM.f - 10)
        | (points[:, 1] < TRANSFORM.f - 270 + 10)
    )
    assert ((counts >= 3) | at_edge).all()
    assert (counts >= 3).sum() >= 2  # the crossing and the T
    assert shapely.union_all(lines).is_valid


def test_cli_vectorize(tmp_path):
    raster = real_classes(tmp_path / "c.tif")
    out = tmp_path / "map.gpkg"
    result = CliRunner().invoke(cli, ["vectorize", str(raster), "-o", str(out), "--lines", "road"])
    assert result.exit_code == 0, result.output
    assert "road_centrelines" in result.output and out.exists()
    again = CliRunner().invoke(cli, ["vectorize", str(raster), "-o", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output
    rgb = tmp_path / "rgb.tif"
    profile = {"driver": "GTiff", "count": 3, "dtype": "uint8", "crs": CRS, "transform": TRANSFORM}
    with rasterio.open(rgb, "w", width=4, height=4, **profile) as d:
        d.write(np.zeros((3, 4, 4), np.uint8))
    bad = CliRunner().invoke(cli, ["vectorize", str(rgb), "-o", str(tmp_path / "x.gpkg")])
    assert bad.exit_code == 2 and "not a class raster" in bad.output
    assert len(bad.output.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="ogrinfo (gdal-bin) not installed")
def test_ogrinfo_reads_the_geopackage(tmp_path):
    raster = real_classes(tmp_path / "c.tif")
    vectorize(raster, tmp_path / "map.gpkg")
    info = subprocess.run(
        ["ogrinfo", "-so", str(tmp_path / "map.gpkg"), "road", CENTRELINES],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert info.returncode == 0, info.stderr
    assert "Geometry: Polygon" in info.stdout and "Geometry: Line String" in info.stdout
    assert info.stdout.count('ID["EPSG",2056]') == 2


def _qgis_python() -> str | None:
    """A Python with QGIS's bindings (Debian's python3-qgis), if there is one."""
    python = shutil.which("python3", path="/usr/bin")
    if python is None:
        return None
    found = subprocess.run([python, "-c", "import qgis.core"], capture_output=True, timeout=60)
    return python if found.returncode == 0 else None


@pytest.mark.skipif(_qgis_python() is None, reason="no Python with QGIS (python3-qgis)")
def test_qgis_shows_class_names_colours_and_layers(tmp_path):
    raster = real_classes(tmp_path / "c.tif")
    vectorize(raster, tmp_path / "map.gpkg")
    script = Path(__file__).parent / "qgis_layers.py"
    run = subprocess.run(
        [_qgis_python(), str(script), str(raster), str(tmp_path / "map.gpkg"), "road", CENTRELINES],
        capture_output=True,
        text=True,
        timeout=120,
        env={"QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["raster_valid"] and seen["raster_crs"] == CRS
    assert seen["renderer"] == "paletted"
    labels = {value: (label, colour) for value, label, colour in seen["classes"]}
    for value, c in enumerate(maps_palette().classes, start=1):
        assert labels[value] == (c.name, "#{:02x}{:02x}{:02x}".format(*c.colour))
    assert seen["layers"]["road"] == {
        "valid": True,
        "crs": CRS,
        "geometry": "Polygon",
        "features": pyogrio.read_info(tmp_path / "map.gpkg", layer="road")["features"],
    }
    assert seen["layers"][CENTRELINES]["geometry"] == "LineString"
