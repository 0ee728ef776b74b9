"""Class rasters: colours and names that GDAL reads, a painted map made crisp."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from PIL import Image

from geo_p2p.mapclasses import majority_filter, maps_palette
from geo_p2p.mapclasses.classraster import (
    class_profile,
    class_raster_output,
    crisp_geotiff,
    read_class_names,
    sidecar_path,
)

PAIRS = Path(__file__).parents[1] / "examples" / "pairs" / "train"
TRANSFORM = Affine(0.9, 0, 2683000.0, 0, -0.9, 1248000.0)
CRS = "EPSG:2056"


def write_classes(path: Path, values: np.ndarray) -> Path:
    """A class raster of the maps palette (EPSG:2056, 0.9 m)."""
    profile = class_profile(values.shape[1], values.shape[0], CRS, TRANSFORM)
    with class_raster_output(path, maps_palette(), profile) as out:
        out.write(values, 1)
    return path


def test_class_raster_has_colours_and_names(tmp_path):
    path = write_classes(tmp_path / "c.tif", np.array([[0, 1, 2], [3, 4, 5]], np.uint8))
    with rasterio.open(path) as src:
        assert src.nodata == 0 and src.crs.to_epsg() == 2056
        assert src.colormap(1)[2] == (*maps_palette().classes[1].colour, 255)
        assert read_class_names(src) == dict(enumerate(maps_palette().names, start=1))
    assert "<Category>road</Category>" in sidecar_path(path).read_text()
    assert not list(tmp_path.glob(".*"))  # no temporary left


@pytest.mark.skipif(shutil.which("gdalinfo") is None, reason="gdalinfo (gdal-bin) not installed")
def test_gdalinfo_reads_the_class_names(tmp_path):
    path = write_classes(tmp_path / "c.tif", np.array([[0, 1, 2], [3, 4, 5]], np.uint8))
    info = subprocess.run(["gdalinfo", str(path)], capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    assert "ColorInterp=Palette" in info.stdout
    categories = info.stdout.split("Categories:")[1].split("Metadata:")[0].split()
    assert categories == ["0:", "no", "data", "1:", "land", "2:", "road", "3:", "water"] + [
        "4:",
        "park",
        "5:",
        "highway",
    ]
    assert "1: 232,229,222,255" in info.stdout  # the colour table


def test_crisp_geotiff_of_a_painted_map(tmp_path):
    """A painted RGB map with a mask becomes the crisp style and a class raster on its grid."""
    palette = maps_palette()
    image = np.asarray(Image.open(PAIRS / "3.jpg").convert("RGB"))
    painted = image[:, image.shape[1] // 2 :].transpose(2, 0, 1)
    mask = np.full(painted.shape[1:], 255, np.uint8)
    mask[:50] = 0
    src = tmp_path / "painted.tif"
    profile = {"driver": "GTiff", "count": 3, "dtype": "uint8", "crs": CRS, "transform": TRANSFORM}
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(src, "w", width=600, height=600, **profile) as dst:
            dst.write(painted)
            dst.write_mask(mask)
    crisp_geotiff(src, palette, 2, tmp_path / "crisp.tif", tmp_path / "classes.tif")
    with rasterio.open(tmp_path / "crisp.tif") as c, rasterio.open(tmp_path / "classes.tif") as k:
        rgb, values = c.read(), k.read(1)
        assert c.crs == k.crs and c.transform == k.transform == TRANSFORM
        assert (c.dataset_mask()[:50] == 0).all() and (values[:50] == 0).all()
    expected = palette.classify(painted.transpose(1, 2, 0)) + 1
    expected[:50] = 0
    assert np.array_equal(values, majority_filter(expected.astype(np.uint8), 2, 5))
    assert np.array_equal(rgb[:, 50:].transpose(1, 2, 0), palette.paint(values[50:] - 1))
    with pytest.raises(ValueError, match="exists"):
        crisp_geotiff(src, palette, 2, classes=tmp_path / "classes.tif")
