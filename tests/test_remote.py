"""Remote inputs against real servers on 127.0.0.1: Cloud-Optimized GeoTIFFs made from real
rasters, served with Range requests by tests/httpserver.py (with injected faults) and by an S3
server (moto), and STAC items pointing at them."""

from __future__ import annotations

import datetime
import doctest
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import rasterio.shutil
from click.testing import CliRunner, Result
from cogs import area_of_interest, write_cog
from conftest import ATLANTA
from geo_p2p_cli.main import cli
from httpserver import RangeServer

import geo_p2p.inputs.identity
import geo_p2p.inputs.network
import geo_p2p.inputs.paths
import geo_p2p.inputs.stac
from geo_p2p import Translator
from geo_p2p.errors import RenderError
from geo_p2p.inputs import input_identity, network_bytes, resolve_input
from geo_p2p.inputs.stac import asset_href
from geo_p2p.raster import inspect_source
from geo_p2p.webtiles import make_tiles

pytestmark = pytest.mark.usefixtures("one_thread")

AREA = Path(__file__).parents[1] / "examples" / "area.tif"  # 875x400 RGB, EPSG:2056, 0.5 m
FAST_RETRIES = {"GDAL_HTTP_MAX_RETRY": "1", "GDAL_HTTP_RETRY_DELAY": "0.01"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder served: area.tif as a COG (4 x 2 blocks), area.tif upsampled to 2048 px
    (8 x 4 blocks), a 2048 px uint16 panchromatic COG."""
    folder = tmp_path_factory.mktemp("served")
    write_cog(AREA, folder / "area.tif")
    write_cog(AREA, folder / "scene.tif", size=2048)
    write_cog(ATLANTA, folder / "pan.tif", size=2048)
    return folder


@pytest.fixture
def server(served: Path) -> Iterator[RangeServer]:
    """A fresh server (a new port: GDAL's cache of another test's URLs does not apply)."""
    with RangeServer(served) as running:
        yield running


@pytest.fixture
def translator(model_dir: Path) -> Translator:
    return Translator.load(model_dir, batch_size=8)


def cli_render(*args: object) -> Result:
    return CliRunner().invoke(cli, ["render", *map(str, args)])


@pytest.mark.parametrize(
    "module",
    [
        geo_p2p.inputs.paths,
        geo_p2p.inputs.network,
        geo_p2p.inputs.stac,
        geo_p2p.inputs.identity,
    ],
)
def test_docstring_examples(module) -> None:
    assert doctest.testmod(module).failed == 0


def test_inputs_become_the_paths_gdal_opens(tmp_path: Path) -> None:
    assert resolve_input("s3://imagery/scenes/a.tif") == "/vsis3/imagery/scenes/a.tif"
    assert resolve_input("https://h/a.tif?sig=1") == "/vsicurl/https://h/a.tif?sig=1"
    assert resolve_input("/vsizip/x.zip/a.tif") == "/vsizip/x.zip/a.tif"
    assert resolve_input(AREA) == str(AREA)
    for text, message in [
        (tmp_path / "missing.tif", "does not exist"),
        (tmp_path, "is a folder"),
        ("ftps://h/a.tif", "unknown URL scheme ftps://"),
    ]:
        with pytest.raises(RenderError, match=message):
            resolve_input(text)
    with pytest.raises(RenderError, match="--asset chooses an asset of a STAC item") as error:
        resolve_input(AREA, asset="visual")
    assert error.value.param == "--asset"


def same_file(a: Path, b: Path, same_bytes: bool = True) -> None:
    """The same GeoTIFF: same pixels, mask and georeferencing, and (``same_bytes``, for two
    files written alike) the same bytes."""
    with rasterio.open(a) as x, rasterio.open(b) as y:
        assert (x.crs, x.transform, x.shape) == (y.crs, y.transform, y.shape)
        assert np.array_equal(x.read(), y.read())
        assert np.array_equal(x.dataset_mask(), y.dataset_mask())
    assert a.read_bytes() == b.read_bytes() or not same_bytes


def test_render_over_http_equals_the_local_render_and_counts_the_bytes(
    translator: Translator, server: RangeServer, served: Path, tmp_path: Path
) -> None:
    local = translator.render(served / "area.tif", tmp_path / "local.tif", resolution="native")
    assert local.fetched is None and "fetched" not in str(local)
    remote = translator.render(server.url("area.tif"), tmp_path / "http.tif", resolution="native")
    same_file(tmp_path / "local.tif", tmp_path / "http.tif")
    # GDAL's count is what the server sent: the header and the full-resolution blocks, no
    # overview (uint8 needs no value scaling), no directory listing, no side-car probing.
    assert remote.fetched == server.body_bytes() > 0
    assert "fetched" in str(remote)
    assert not [r for r in server.requests() if not r.path.startswith("/area.tif")]


def test_a_flaky_server_is_survived(
    translator: Translator,
    server: RangeServer,
    served: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    translator.render(served / "scene.tif", tmp_path / "local.tif", resolution="native")
    # The first two requests get 503, then every third range request (three times at most)
    # loses its connection half-way through. GDAL retries the 503s, and asks for the rest of
    # a transfer cut short in some reads, but not in all: the window is then read again.
    server.set_faults(fail_first=2, drop_every=3, drop_limit=3)
    translator.render(server.url("scene.tif"), tmp_path / "http.tif", resolution="native")
    same_file(tmp_path / "local.tif", tmp_path / "http.tif")
    requests = server.requests()
    assert [r.status for r in requests[:3]] == [503, 503, 200]
    dropped = [r for r in requests if r.range and r.status == 206 and r.sent < _length(r.range)]
    assert len(dropped) >= 2
    assert "trying again" in caplog.text  # a window read again on a reopened dataset


def _length(byte_range: str) -> int:
    start, end = byte_range.removeprefix("bytes=").split("-")
    return int(end) - int(start) + 1


def test_a_server_that_stays_down_is_one_line_and_leaves_nothing(
    model_dir: Path,
    server: RangeServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in FAST_RETRIES.items():  # the user's settings win over the defaults
        monkeypatch.setenv(name, value)
    server.set_faults(down_after=0)
    out = tmp_path / "out"
    out.mkdir()
    result = cli_render(server.url("area.tif"), "-o", out / "map.tif", "--model", model_dir)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: Invalid value for INPUT: cannot open /vsicurl/{server.url('area.tif')} (HTTP "
        "response code: 503): check the URL, the network and the credentials (GDAL's AWS_* "
        "and GDAL_HTTP_* settings), or try again later"
    ]
    assert [r.status for r in server.requests()] == [503, 503]  # GDAL_HTTP_MAX_RETRY=1
    assert list(out.iterdir()) == []


def test_a_render_stopped_by_the_server_resumes_from_the_regions_written(
    model_dir: Path,
    server: RangeServer,
    served: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="geo_p2p")
    for name, value in FAST_RETRIES.items():
        monkeypatch.setenv(name, value)
    options = ["--model", model_dir, "--resolution", "native", "--region-size", 512]
    options += ["--backend", "torch"]  # as regions are rendered
    assert cli_render(served / "area.tif", "-o", tmp_path / "local.tif", *options).exit_code == 0
    url = server.url("area.tif")
    headers = _headers(url)
    server.reset()
    # A whole render counts the requests; the next one meets a server down from its last
    # request on: the last of the two regions fails, the first is kept.
    assert cli_render(url, "-o", tmp_path / "whole.tif", *options, "--resume").exit_code == 0
    server.set_faults(down_after=len(server.requests()) - 1)
    server.reset()
    out = tmp_path / "out"
    out.mkdir()
    failed = cli_render(url, "-o", out / "map.tif", *options, "--resume")
    assert failed.exit_code == 2
    (line,) = failed.output.strip().splitlines()
    assert line.startswith(f"Error: Invalid value for INPUT: cannot read /vsicurl/{url} at pix")
    assert line.endswith(
        "the server did not deliver it; try again later (--resume keeps what is done)"
    )
    assert sorted(p.name for p in out.iterdir()) == [
        ".map.tif.partial.json",
        ".map.tif.partial.tif",
    ]
    journal = json.loads((out / ".map.tif.partial.json").read_text())
    assert journal["done"] == [0]
    assert journal["fingerprint"]["input"] == {
        "path": f"/vsicurl/{url}",
        "bytes": (served / "area.tif").stat().st_size,
        "etag": headers["ETag"],
        "last_modified": headers["Last-Modified"],
    }
    # The file changes on the server (its ETag and date): no resume.
    stat = (served / "area.tif").stat()
    os.utime(served / "area.tif", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    server.set_faults()
    try:
        refused = cli_render(url, "-o", out / "map.tif", *options, "--resume")
    finally:
        os.utime(served / "area.tif", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert refused.exit_code == 2
    assert "the input (its path or URL, size, modification time or ETag) differs" in refused.output
    # The same file again: the render goes on from the region written.
    resumed = cli_render(url, "-o", out / "map.tif", *options, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "resuming: 1 of 2 regions already rendered" in caplog.text
    same_file(tmp_path / "local.tif", out / "map.tif", same_bytes=False)  # written by regions
    assert sorted(p.name for p in out.iterdir()) == ["map.tif"]


def _headers(url: str) -> dict[str, str]:
    request = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return dict(answer.headers)


def test_input_identity_of_a_remote_file(server: RangeServer, served: Path) -> None:
    url = server.url("area.tif")
    identity = input_identity(f"{url}?X-Amz-Signature=secret")
    headers = _headers(url)
    assert identity == {
        "path": f"/vsicurl/{url}",
        "bytes": (served / "area.tif").stat().st_size,
        "etag": headers["ETag"],
        "last_modified": headers["Last-Modified"],
    }
    stat = (served / "area.tif").stat()
    assert input_identity(served / "area.tif") == {
        "path": str((served / "area.tif").resolve()),
        "bytes": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }


def test_an_aoi_render_fetches_only_the_blocks_under_the_area(
    translator: Translator, server: RangeServer, served: Path, tmp_path: Path
) -> None:
    scene = served / "scene.tif"
    with rasterio.open(scene) as ds:  # a tenth of the area, in the middle of the west half
        aoi, needed = area_of_interest(ds, translator.tile)
    summary = translator.render(
        server.url("scene.tif"), tmp_path / "aoi.tif", resolution="native", aoi=aoi
    )
    size, fetched = scene.stat().st_size, server.body_bytes()
    assert summary.fetched == fetched
    # The header, and the blocks (to the 16 kB GDAL fetches at a time): under half the file.
    assert fetched < 16384 + 1.1 * needed < 0.5 * size, (fetched, needed, size)
    translator.render(served / "scene.tif", tmp_path / "local.tif", resolution="native", aoi=aoi)
    same_file(tmp_path / "local.tif", tmp_path / "aoi.tif")


def test_the_value_stretch_reads_an_overview(server: RangeServer, served: Path) -> None:
    remote = inspect_source(server.url("pan.tif"), resolution="native")
    size = (served / "pan.tif").stat().st_size
    # The 2-98 % stretch reads 1024 px of the 2048 px raster: GDAL takes the 1024 px overview
    # (a quarter of the full resolution's bytes) instead of decimating the full resolution.
    assert server.body_bytes() < 0.3 * size, f"{server.body_bytes()} of {size} bytes"
    assert remote.scale == inspect_source(served / "pan.tif", resolution="native").scale


def write_item(path: Path, assets: dict[str, pystac.Asset]) -> Path:
    item = pystac.Item("area", None, None, datetime.datetime(2024, 1, 1), {})
    for key, asset in assets.items():
        item.add_asset(key, asset)
    path.write_text(json.dumps(item.to_dict(include_self_link=False)))
    return path


COG = pystac.MediaType.COG


def test_a_stac_item_renders_its_visual_asset(
    model_dir: Path, server: RangeServer, served: Path, tmp_path: Path
) -> None:
    item = write_item(
        tmp_path / "item.json",
        {
            "thumbnail": pystac.Asset("https://example.com/t.jpg", media_type="image/jpeg"),
            "visual": pystac.Asset(server.url("area.tif"), media_type=COG, roles=["visual"]),
        },
    )
    options = ["--model", model_dir, "--resolution", "native"]
    assert cli_render(served / "area.tif", "-o", tmp_path / "local.tif", *options).exit_code == 0
    result = cli_render(item, "-o", tmp_path / "stac.tif", *options)
    assert result.exit_code == 0, result.output
    same_file(tmp_path / "local.tif", tmp_path / "stac.tif")
    named = cli_render(item, "--asset", "visual", "-o", tmp_path / "named.tif", *options)
    assert named.exit_code == 0, named.output


def test_a_stac_item_without_a_suitable_asset_lists_its_assets(
    model_dir: Path, tmp_path: Path
) -> None:
    blue = {"eo:bands": [{"name": "B02", "common_name": "blue"}]}
    item = write_item(
        tmp_path / "item.json",
        {
            "B02": pystac.Asset("B02.tif", media_type=COG, extra_fields=blue),
            "thumbnail": pystac.Asset("t.jpg", media_type="image/jpeg"),
        },
    )
    for extra, message in [
        ([], "has no visual RGB asset (named or with role 'visual', or a GeoTIFF with red, "),
        (["--asset", "B8A"], "Invalid value for --asset: "),
    ]:
        result = cli_render(item, *extra, "-o", tmp_path / "map.tif", "--model", model_dir)
        assert result.exit_code == 2
        (line,) = result.output.strip().splitlines()
        assert message in line
        assert (
            "B02 (image/tiff; application=geotiff; profile=cloud-optimized), thumbnail (image/jpeg)"
            in line
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["item.json", "model"]


def test_stac_asset_choice(tmp_path: Path, server: RangeServer) -> None:
    rgbn = {
        "eo:bands": [{"common_name": c} for c in ("red", "green", "blue", "nir")],
    }
    item = write_item(
        tmp_path / "naip.json",
        {
            "metadata": pystac.Asset("m.xml", media_type="application/xml"),
            "image": pystac.Asset("image.tif", media_type=COG, roles=["data"], extra_fields=rgbn),
        },
    )
    assert asset_href(str(item)) == str(tmp_path / "image.tif")  # relative to the item
    assert asset_href(str(item), "metadata") == str(tmp_path / "m.xml")
    not_item = tmp_path / "collection.json"
    not_item.write_text(json.dumps({"type": "Collection", "stac_version": "1.0.0", "id": "c"}))
    with pytest.raises(RenderError, match="is a STAC Collection: give one STAC Item"):
        asset_href(str(not_item))
    # An item served over HTTP, its asset relative to it.
    shutil.copy(
        write_item(
            tmp_path / "served.json",
            {"visual": pystac.Asset("./area.tif", media_type=COG, roles=["visual"])},
        ),
        server.root / "item.json",
    )
    try:
        assert resolve_input(server.url("item.json")) == f"/vsicurl/{server.url('area.tif')}"
    finally:
        (server.root / "item.json").unlink()


def same_pngs(a: Path, b: Path) -> int:
    """Check that folders ``a`` and ``b`` hold the same PNG files, byte for byte; their count."""
    names = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert names == sorted(p.relative_to(b) for p in b.rglob("*.png"))
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes()
    return len(names)


def test_tiles_over_http_equal_the_local_tiles(
    model_dir: Path, server: RangeServer, served: Path, tmp_path: Path
) -> None:
    options = ["--model", model_dir, "--zoom", "16-17", "--no-input"]
    runner = CliRunner()
    for src, dst in ((served / "area.tif", "local"), (server.url("area.tif"), "http")):
        result = runner.invoke(cli, ["tiles", str(src), "-o", str(tmp_path / dst), *options])
        assert result.exit_code == 0, result.output
    assert same_pngs(tmp_path / "local", tmp_path / "http") > 2
    server.reset()
    summary = make_tiles(
        server.url("area.tif"), tmp_path / "again.mbtiles", zooms=(16, 17), progress=False
    )
    assert summary.fetched == server.body_bytes() > 0  # what GDAL counted is what was sent
    assert "fetched" in str(summary)


def test_no_secret_reaches_the_output(model_dir: Path, server: RangeServer, tmp_path: Path) -> None:
    """A signed URL's signature and AWS credentials in the environment appear nowhere in what
    the command prints, GDAL's retry warnings (which name the URL) included."""
    server.set_faults(down_after=0)
    env = {
        **os.environ,
        **FAST_RETRIES,
        "AWS_ACCESS_KEY_ID": "AKIDTESTVALUE",
        "AWS_SECRET_ACCESS_KEY": "TESTSECRETVALUE",
    }
    url = server.url("area.tif") + "?X-Amz-Signature=SIGNATUREVALUE"
    command = [
        sys.executable,
        "-m",
        "geo_p2p_cli.main",
        "render",
        url,
        "-o",
        str(tmp_path / "m.tif"),
    ]
    done = subprocess.run(
        [*command, "--model", str(model_dir)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "Retrying again" in done.stderr  # GDAL's warning was printed, redacted
    assert f"{server.url('area.tif')}?***" in done.stderr
    for secret in ("SIGNATUREVALUE", "TESTSECRETVALUE", "AKIDTESTVALUE"):
        assert secret not in done.stdout + done.stderr


@pytest.fixture
def s3_server(served: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An S3 server (moto) on 127.0.0.1 with bucket ``imagery`` holding area.tif, and the
    environment that points GDAL at it; yields the secret key."""
    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("moto.server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        env = {
            "AWS_ACCESS_KEY_ID": "geo-p2p-test",
            "AWS_SECRET_ACCESS_KEY": "S3SECRETVALUE",
            "AWS_REGION": "us-east-1",
            "AWS_S3_ENDPOINT": f"127.0.0.1:{port}",
            "AWS_HTTPS": "NO",
            "AWS_VIRTUAL_HOSTING": "FALSE",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="imagery")
        client.upload_file(str(served / "area.tif"), "imagery", "scenes/area.tif")
        yield env["AWS_SECRET_ACCESS_KEY"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_render_from_s3_with_credentials_from_the_environment(
    translator: Translator,
    s3_server: str,
    served: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    translator.render(served / "area.tif", tmp_path / "local.tif", resolution="native")
    summary = translator.render(
        "s3://imagery/scenes/area.tif", tmp_path / "s3.tif", resolution="native"
    )
    same_file(tmp_path / "local.tif", tmp_path / "s3.tif")
    assert summary.fetched and summary.fetched > 0
    assert (
        input_identity("s3://imagery/scenes/area.tif")["bytes"]
        == (served / "area.tif").stat().st_size
    )
    assert s3_server not in caplog.text
    assert network_bytes() is not None


def test_pairs_from_urls_equal_pairs_from_files(
    server: RangeServer, served: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    sources = {
        "local": (served / "area.tif", served / "scene.tif"),
        "http": (server.url("area.tif"), server.url("scene.tif")),
    }
    for name, (aerial, map_raster) in sources.items():
        args = ["pairs", str(aerial), str(map_raster), "-o", str(tmp_path / name), "--size", "128"]
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
    assert same_pngs(tmp_path / "local", tmp_path / "http") > 4
    sources = json.loads((tmp_path / "http" / "dataset.json").read_text())["sources"]
    assert sources == {
        "aerial": f"/vsicurl/{server.url('area.tif')}",
        "map": f"/vsicurl/{server.url('scene.tif')}",
    }


def test_a_finer_input_is_fetched_from_its_overview(
    translator: Translator, server: RangeServer, served: Path, tmp_path: Path
) -> None:
    scene = served / "scene.tif"  # 2048 px at 0.21 m, overviews of 1024, 512 and 256 px
    plan = translator.plan(server.url("scene.tif"), resolution=0.9)
    assert plan.warp is not None and plan.warp.startswith("resampled (average) from its 0.85")
    server.reset()
    summary = translator.render(server.url("scene.tif"), tmp_path / "coarse.tif", resolution=0.9)
    size = scene.stat().st_size
    # The 512 px overview is a sixteenth of the full resolution: the header and it, no more.
    assert summary.fetched == server.body_bytes() < 0.15 * size, (server.body_bytes(), size)
    translator.render(scene, tmp_path / "local.tif", resolution=0.9)
    same_file(tmp_path / "local.tif", tmp_path / "coarse.tif")


def test_a_stac_item_on_s3_renders_its_asset_there(
    model_dir: Path, s3_server: str, served: Path, tmp_path: Path
) -> None:
    import boto3

    relative = pystac.Asset("../scenes/area.tif", media_type=COG, roles=["visual"])
    item = write_item(tmp_path / "item.json", {"visual": relative})
    endpoint = f"http://{os.environ['AWS_S3_ENDPOINT']}"
    boto3.client("s3", endpoint_url=endpoint).upload_file(str(item), "imagery", "items/area.json")
    options = ["--model", model_dir, "--resolution", "native"]
    assert cli_render(served / "area.tif", "-o", tmp_path / "local.tif", *options).exit_code == 0
    result = cli_render("s3://imagery/items/area.json", "-o", tmp_path / "stac.tif", *options)
    assert result.exit_code == 0, result.output
    same_file(tmp_path / "local.tif", tmp_path / "stac.tif")
    missing = cli_render("s3://imagery/items/gone.json", "-o", tmp_path / "gone.tif", *options)
    assert missing.exit_code == 2
    (line,) = missing.output.strip().splitlines()
    assert "cannot read the STAC item s3://imagery/items/gone.json (" in line
    assert s3_server not in missing.output and not (tmp_path / "gone.tif").exists()
