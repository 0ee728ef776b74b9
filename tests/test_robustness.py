"""``geo-p2p render`` on rasters as people have them: odd, coarse, damaged, GCP/RPC-georeferenced.

Each case ends in a correct output (CRS, footprint and mask checked) or a one-line error, and
never in a traceback, a partial output or a temporary file left behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
import torch
from affine import Affine
from click.testing import CliRunner, Result
from conftest import default_sigint, write_raster
from geo_p2p_cli.render import render
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.rpc import RPC
from rasterio.warp import transform as transform_points

from geo_p2p.errors import RenderError
from geo_p2p.render.options import RenderOptions
from geo_p2p.render.tiling import tile_starts
from geo_p2p.render.translator import Translator

pytestmark = pytest.mark.usefixtures("one_thread")

ORIGIN = (576000.0, 5188000.0)
"""Top left corner of the synthetic UTM rasters (EPSG:32615)."""


def image(height: int, width: int, bands: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth random uint8 image, (bands, height, width)."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 4, height)[:, None]
    cols = np.linspace(0, 4, width)[None, :]
    base = 127 + 100 * np.sin(rows + cols + rng.uniform(0, 6, (bands, 1, 1)))
    return base.astype(np.uint8)


def utm(gsd: float) -> Affine:
    return Affine(gsd, 0, ORIGIN[0], 0, -gsd, ORIGIN[1])


def run_render(src: Path, out: Path, *args: object, model: Path) -> Result:
    """Render ``src`` to ``out`` with the tiny model; check that the outcome is clean."""
    before = set(out.parent.iterdir())
    result = CliRunner().invoke(
        render, [str(src), "-o", str(out), "--model", str(model), *map(str, args)]
    )
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.output
    left = {p.name for p in set(out.parent.iterdir()) - before}
    if result.exit_code == 0:
        assert left == {out.name}, left
    else:
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
        assert not left, left
    return result


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder / "map.tif"


def read_output(path: Path) -> tuple[rasterio.profiles.Profile, np.ndarray, np.ndarray]:
    with rasterio.open(path) as dst:
        return dst.profile, dst.read(), dst.dataset_mask()


@pytest.mark.parametrize(("height", "width"), [(1, 1), (3, 200), (200, 3)])
def test_tiny_and_strip_rasters(tmp_path: Path, out: Path, model_dir: Path, height, width):
    src = write_raster(tmp_path / "in.tif", image(height, width), transform=utm(1.0))
    run_render(src, out, model=model_dir)
    profile, rgb, mask = read_output(out)
    assert (profile["height"], profile["width"]) == (height, width)
    assert profile["transform"] == utm(1.0) and mask.all()


def test_two_bands_is_an_error(tmp_path: Path, out: Path, model_dir: Path) -> None:
    src = write_raster(tmp_path / "in.tif", image(40, 40, bands=2), transform=utm(1.0))
    result = run_render(src, out, model=model_dir)
    assert "has 2 bands: choose 1 or 3 of them with --bands" in result.output


def test_four_bands_take_the_first_three(tmp_path: Path, out: Path, model_dir: Path) -> None:
    src = write_raster(tmp_path / "in.tif", image(40, 50, bands=4), transform=utm(1.0))
    run_render(src, out, model=model_dir)
    profile, _, mask = read_output(out)
    assert profile["count"] == 3 and (profile["width"], profile["height"]) == (50, 40)
    assert mask.all()


def masked_case(kind: str) -> tuple[np.ndarray, dict[str, object]]:
    """Data with a no-data square at rows and columns 10-19, and the profile saying so."""
    if kind == "int16":
        data = image(40, 40).astype(np.int16) * 8 - 700
        data[:, 10:20, 10:20] = -9999
        return data, {"nodata": -9999}
    if kind == "float32":
        data = image(40, 40).astype(np.float32) / 255
        data[:, 10:20, 10:20] = np.nan
        return data, {}
    data = np.concatenate([image(40, 40).astype(np.uint16) * 200, np.full((1, 40, 40), 65535)])
    data[3, 10:20, 10:20] = 0
    return data.astype(np.uint16), {"photometric": "RGB", "alpha": "YES"}


@pytest.mark.parametrize("kind", ["int16", "float32", "uint16_rgba"])
def test_no_data_stays_no_data(tmp_path: Path, out: Path, model_dir: Path, kind: str) -> None:
    data, profile = masked_case(kind)
    src = write_raster(tmp_path / "in.tif", data, transform=utm(1.0), **profile)
    run_render(src, out, model=model_dir)
    _, rgb, mask = read_output(out)
    expected = np.ones((40, 40), bool)
    expected[10:20, 10:20] = False
    np.testing.assert_array_equal(mask > 0, expected)
    assert rgb[:, expected].std() > 0  # translated, not blank


def test_all_no_data(tmp_path: Path, out: Path, model_dir: Path) -> None:
    byte = write_raster(tmp_path / "byte.tif", np.zeros((3, 30, 30), np.uint8), nodata=0)
    run_render(byte, out, "--resolution", "native", model=model_dir)
    assert not read_output(out)[2].any()  # a correct, fully masked output
    floats = np.full((3, 30, 30), np.nan, np.float32)
    src = write_raster(tmp_path / "float.tif", floats)
    result = run_render(src, out.with_name("f.tif"), model=model_dir)
    assert "has no valid pixels" in result.output


def test_no_crs(tmp_path: Path, out: Path, model_dir: Path) -> None:
    src = write_raster(tmp_path / "in.tif", image(30, 30), crs=None, transform=None)
    result = run_render(src, out, model=model_dir)
    assert "--allow-ungeoreferenced" in result.output


def test_world_wide_geographic(tmp_path: Path, out: Path, model_dir: Path) -> None:
    world = Affine(0.7, 0, -180, 0, -0.7, 90)
    src = write_raster(tmp_path / "in.tif", image(257, 514), crs="EPSG:4326", transform=world)
    result = run_render(src, out, model=model_dir)
    assert "77.8 km per pixel and the model expects 1 m" in result.output
    width, height = (
        int(n.replace(",", "")) for n in re.findall(r"to ([\d,]+)x([\d,]+) px", result.output)[0]
    )
    assert 514 * 77_000 < width < 514 * 78_500 and abs(2 * height - width) < width / 100
    assert "--force" in result.output
    result = run_render(src, out, "--force", model=model_dir)
    assert "more than --max-tiles" in result.output
    run_render(src, out, "--resolution", "native", model=model_dir)
    profile, _, mask = read_output(out)
    assert profile["crs"] == CRS.from_epsg(4326) and profile["transform"] == world
    assert mask.all()


@pytest.mark.parametrize(
    ("crs", "centre", "gsd"),
    [
        ("+proj=geos +h=35785831 +lon_0=0 +sweep=y +datum=WGS84 +units=m", (0, 0), 3000.0),
        ("EPSG:3413", (0.0, -2_000_000.0), 1.0),  # NSIDC polar stereographic north
    ],
)
def test_other_projections(tmp_path: Path, out: Path, model_dir: Path, crs, centre, gsd):
    transform = Affine(gsd, 0, centre[0] - 30 * gsd, 0, -gsd, centre[1] + 30 * gsd)
    src = write_raster(tmp_path / "in.tif", image(60, 60), crs=crs, transform=transform)
    result = run_render(src, out, model=model_dir)
    if gsd > 1:  # the geostationary pixels are 3 km: refused at auto, fine at native
        assert "--resolution native" in result.output
        run_render(src, out, "--resolution", "native", model=model_dir)
    profile, _, mask = read_output(out)
    assert CRS.from_user_input(crs) == profile["crs"] and profile["transform"] == transform
    assert mask.all()


def test_colour_table_is_expanded(tmp_path: Path, out: Path, model_dir: Path) -> None:
    """A colour-mapped band (land cover, a scanned map) reaches the model as its colours; its
    nodata value stays no-data (GeoTIFF colour tables have no transparency)."""
    values = np.ones((1, 40, 40), np.uint8)
    values[0, :, 20:] = 2
    values[0, :10] = 0
    profile = {"photometric": "palette", "nodata": 0}
    src = write_raster(tmp_path / "in.tif", values, transform=utm(1.0), **profile)
    with rasterio.open(src, "r+") as dst:
        dst.write_colormap(1, {0: (0, 0, 0, 0), 1: (250, 20, 20, 255), 2: (10, 30, 240, 255)})
    run_render(src, out, model=model_dir)
    assert not read_output(out)[2][:10].any() and read_output(out)[2][10:].all()
    identity = tmp_path / "identity.tif"
    Translator(torch.nn.Identity(), tile=32, gsd=1.0).render(src, identity)
    _, rgb, mask = read_output(identity)
    assert (rgb[:, 10:, :20].T == (250, 20, 20)).all()
    assert (rgb[:, 10:, 20:].T == (10, 30, 240)).all() and not mask[:10].any()


def test_non_earth_crs_needs_native(tmp_path: Path, out: Path, model_dir: Path) -> None:
    mars = "+proj=eqc +lat_ts=0 +lon_0=180 +R=3396190 +units=m +no_defs"
    src = write_raster(tmp_path / "in.tif", image(30, 30), crs=mars, transform=utm(100.0))
    result = run_render(src, out, model=model_dir)
    assert "cannot be measured" in result.output and "--resolution native" in result.output
    run_render(src, out, "--resolution", "native", model=model_dir)
    assert read_output(out)[2].all()


def test_coarse_input_is_refused_with_the_way_out(tmp_path: Path, out: Path, model_dir: Path):
    src = write_raster(tmp_path / "in.tif", image(20, 20), transform=utm(60.0))
    result = run_render(src, out, model=model_dir)
    assert "is 59.9 m per pixel and the model expects 1 m" in result.output  # UTM's scale
    assert "60 times to 1,197x1,201 px" in result.output and "--force" in result.output
    run_render(src, out, "--resolution", "native", model=model_dir)
    assert read_output(out)[0]["width"] == 20
    run_render(src, out.with_name("forced.tif"), "--force", model=model_dir)
    assert read_output(out.with_name("forced.tif"))[0]["width"] == 1197


def check_footprint(path: Path, crs: CRS, bounds: tuple[float, ...], tolerance: float) -> None:
    """The output is in ``crs`` and covers ``bounds`` to within ``tolerance`` CRS units."""
    with rasterio.open(path) as dst:
        assert dst.crs == crs
        assert dst.transform.b == 0 and dst.transform.d == 0  # north-up
        np.testing.assert_allclose(tuple(dst.bounds), bounds, atol=tolerance)
        rgb, mask = dst.read(), dst.dataset_mask()
    assert mask[mask.shape[0] // 2, mask.shape[1] // 2] == 255
    assert rgb[:, mask > 0].std() > 5  # the input's pattern came through the warp


def test_gcp_georeferenced(tmp_path: Path, out: Path, model_dir: Path) -> None:
    """GCPs taken from a known 1 m grid: the output covers that grid's bounds."""
    height, width = 60, 80
    grid = utm(1.0)
    gcps = [
        GroundControlPoint(row, col, *(grid @ (col, row)))
        for row in (0, 30, height)
        for col in (0, 40, width)
    ]
    src = write_raster(tmp_path / "in.tif", image(height, width), crs=None, transform=None)
    with rasterio.open(src, "r+") as dst:
        dst.gcps = (gcps, CRS.from_epsg(32615))
    run_render(src, out, model=model_dir)
    left, top = ORIGIN
    check_footprint(out, CRS.from_epsg(32615), (left, top - height, left + width, top), 1.0)


def test_rpc_georeferenced(tmp_path: Path, out: Path, model_dir: Path) -> None:
    """Linear RPCs over a known longitude/latitude box: warped to its UTM zone, covering it."""
    height, width = 60, 80
    ones = [1.0] + [0.0] * 19
    rpcs = RPC(
        height_off=0, height_scale=1, lat_off=47.0, lat_scale=0.00027, line_off=height / 2,
        line_scale=height / 2, line_num_coeff=[0, 0, -1] + [0.0] * 17, line_den_coeff=ones,
        long_off=8.0, long_scale=0.00053, samp_off=width / 2, samp_scale=width / 2,
        samp_num_coeff=[0, 1] + [0.0] * 18, samp_den_coeff=ones,
    )  # fmt: skip
    src = write_raster(tmp_path / "in.tif", image(height, width), crs=None, transform=None)
    with rasterio.open(src, "r+") as dst:
        dst.rpcs = rpcs
    run_render(src, out, model=model_dir)
    lons, lats = [8 - 0.00053, 8 + 0.00053], [47 - 0.00027, 47 + 0.00027]
    xs, ys = transform_points("EPSG:4326", "EPSG:32632", lons * 2, [lats[0]] * 2 + [lats[1]] * 2)
    bounds = (min(xs), min(ys), max(xs), max(ys))
    check_footprint(out, CRS.from_epsg(32632), bounds, 2.0)  # zone 32 at 8 E


def test_rotated_transform_is_rendered_north_up(tmp_path: Path, out: Path, model_dir: Path):
    rotated = Affine.translation(*ORIGIN) @ Affine.rotation(30) @ Affine.scale(1, -1)
    src = write_raster(tmp_path / "in.tif", image(60, 60), transform=rotated)
    run_render(src, out, model=model_dir)
    xs, ys = zip(*(rotated @ (c, r) for c in (0, 60) for r in (0, 60)), strict=True)
    check_footprint(out, CRS.from_epsg(32615), (min(xs), min(ys), max(xs), max(ys)), 1.5)
    mask = read_output(out)[2]
    assert mask[0, 0] == 0 and mask[-1, -1] == 0  # outside the rotated footprint


def damaged_copy(tmp_path: Path, truncate: bool) -> Path:
    """A tiled, compressed GeoTIFF whose second half is overwritten (or cut off)."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (3, 256, 256), dtype=np.uint8)
    good = write_raster(
        tmp_path / "good.tif", noise, tiled=True, blockxsize=128, blockysize=128, compress="lzw"
    )
    data = bytearray(good.read_bytes())
    half = len(data) // 2
    bad = tmp_path / "damaged.tif"
    bad.write_bytes(bytes(data[:half]) if truncate else bytes(data[:half]) + b"\x55" * half)
    return bad


@pytest.mark.parametrize("truncate", [False, True])
def test_damaged_file_error_says_where(tmp_path: Path, out: Path, model_dir: Path, truncate):
    src = damaged_copy(tmp_path, truncate)
    result = run_render(src, out, "--resolution", "native", model=model_dir)
    assert f"cannot read {src} at pixels x " in result.output
    assert "IReadBlock failed" in result.output or "TIFFRead" in result.output
    assert f"gdalinfo -checksum {src}" in result.output


@pytest.mark.parametrize("content", [b"", b"hello, not a raster\n"])
def test_empty_and_text_files(tmp_path: Path, out: Path, model_dir: Path, content: bytes):
    src = tmp_path / "in.tif"
    src.write_bytes(content)
    result = run_render(src, out, model=model_dir)
    assert "is not a raster that GDAL can read" in result.output


def test_sidecar_mask(tmp_path: Path, out: Path, model_dir: Path) -> None:
    src = write_raster(tmp_path / "in.tif", image(40, 40), transform=utm(1.0))
    mask = np.full((40, 40), 255, np.uint8)
    mask[:, :15] = 0
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=False), rasterio.open(src, "r+") as dst:
        dst.write_mask(mask)
    assert src.with_name("in.tif.msk").exists()
    run_render(src, out, model=model_dir)
    np.testing.assert_array_equal(read_output(out)[2], mask)


def test_vrt(tmp_path: Path, out: Path, model_dir: Path) -> None:
    tif = write_raster(tmp_path / "in.tif", image(40, 50), transform=utm(1.0))
    bands = "".join(
        f"""<VRTRasterBand dataType="Byte" band="{b}"><SimpleSource>
        <SourceFilename relativeToVRT="1">in.tif</SourceFilename><SourceBand>{b}</SourceBand>
        </SimpleSource></VRTRasterBand>"""
        for b in (1, 2, 3)
    )
    vrt = tmp_path / "in.vrt"
    vrt.write_text(
        f'<VRTDataset rasterXSize="50" rasterYSize="40"><SRS>EPSG:32615</SRS>'
        f"<GeoTransform>{', '.join(map(str, utm(1.0).to_gdal()))}</GeoTransform>{bands}"
        "</VRTDataset>"
    )
    run_render(vrt, out, model=model_dir)
    with rasterio.open(tif) as a, rasterio.open(out) as b:
        assert (a.crs, a.transform, a.shape) == (b.crs, b.transform, b.shape)


def test_dry_run_writes_nothing(tmp_path: Path, out: Path, model_dir: Path) -> None:
    src = write_raster(tmp_path / "in.tif", image(300, 400), transform=utm(0.5))
    result = CliRunner().invoke(
        render, [str(src), "--model", str(model_dir), "--dry-run", "--json"]
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["input_size"] == [400, 300] and plan["output_size"] == [199, 150]  # UTM scale
    assert plan["gsd"] == 1.0 and abs(plan["input_gsd"] - 0.5) < 0.01
    assert plan["crs"] == "EPSG:32615" and plan["warp"] == "resampled (average)"
    rows, cols = (len(tile_starts(n, 32, 28)) for n in plan["output_size"][::-1])
    assert plan["tiles"] == rows * cols and plan["rate"] > 0 and plan["seconds"] > 0
    assert not list(out.parent.iterdir())
    text = CliRunner().invoke(render, [str(src), "--model", str(model_dir), "--dry-run"])
    assert text.output.startswith(f"plan: {src} 400x300 at 0.5 m -> 199x150 at 1 m")


SLOW_CLI = """
import sys, time, torch
from geo_p2p.render.translator import Translator
from geo_p2p_cli.main import cli

class Slow(torch.nn.Module):
    def forward(self, x):
        time.sleep(0.05)
        return x

Translator.load = classmethod(lambda cls, *a, **k: cls(Slow(), tile=32, batch_size=4))
cli(sys.argv[1:])
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_render_leaves_nothing(tmp_path: Path, out: Path, signum: int) -> None:
    """Ctrl-C or SIGTERM in the middle of a render (a slow model) leaves no file behind."""
    src = write_raster(tmp_path / "in.tif", image(400, 400), transform=utm(1.0))
    script = tmp_path / "slow_cli.py"
    script.write_text(textwrap.dedent(SLOW_CLI))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = [sys.executable, str(script), "render", str(src), "-o", str(out)]
    proc = subprocess.Popen(
        [*args, "--resolution", "native"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=default_sigint,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(out.parent.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.05)  # the temporary output appears once tiles are written
        assert list(out.parent.iterdir()), "the render never started"
        time.sleep(0.3)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, stderr
    assert "Error: interrupted" in stderr and "Traceback" not in stderr
    assert not list(out.parent.iterdir())


def test_a_small_aoi_of_a_huge_raster_lays_out_only_its_tiles(
    tmp_path: Path, model_dir: Path, monkeypatch
) -> None:
    """A 400,000 px square raster (a VRT over a small GeoTIFF) with a 100 m --aoi: the grid
    and the --max-tiles count cover the area, not the 3 million tiles of the whole raster."""
    from geo_p2p.render import tiling

    write_raster(tmp_path / "small.tif", image(300, 300), transform=utm(1.0))
    vrt = tmp_path / "huge.vrt"
    sources = "".join(
        f"<VRTRasterBand dataType='Byte' band='{b}'><SimpleSource>"
        f"<SourceFilename relativeToVRT='1'>small.tif</SourceFilename>"
        f"<SourceBand>{b}</SourceBand><DstRect xOff='0' yOff='0' xSize='300' ySize='300'/>"
        "</SimpleSource></VRTRasterBand>"
        for b in (1, 2, 3)
    )
    vrt.write_text(
        "<VRTDataset rasterXSize='400000' rasterYSize='400000'>"
        f"<SRS>EPSG:32615</SRS><GeoTransform>{ORIGIN[0]}, 1, 0, {ORIGIN[1]}, 0, -1"
        f"</GeoTransform>{sources}</VRTDataset>"
    )
    x, y = ORIGIN
    aoi = shapely.box(x + 50, y - 150, x + 150, y - 50).wkt
    made, tile = [], tiling.Tile
    monkeypatch.setattr(tiling, "Tile", lambda *args: made.append(args) or tile(*args))
    translator = Translator.load(model_dir, device="cpu")
    with pytest.raises(RenderError, match="more than --max-tiles"):
        translator.plan(vrt, resolution="native")
    job = translator.job(vrt, RenderOptions(resolution="native", aoi=aoi), estimate=False)
    assert 0 < job.plan.tiles == len(job.grid.tiles) and len(made) < 100
