"""The QGIS plugin: its zip, its command runner, and its algorithms in a real, headless QGIS.

The QGIS tests run tests/qgis_driver.py once with the system Python (Debian's python3-qgis,
which .ci/run installs), offscreen, with the plugin installed from its zip and this virtual
environment's geo-p2p as the executable; they are skipped, saying why, where QGIS is missing.
"""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import write_raster

from geo_p2p import Translator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "qgis_plugin"))
sys.path.insert(0, str(ROOT / "scripts"))

from geo_p2p_qgis import command  # noqa: E402
from package_qgis_plugin import package  # noqa: E402

AREA = ROOT / "examples" / "area.tif"  # real orthophoto, EPSG:2056, 875 x 400
SYSTEM_PYTHON = "/usr/bin/python3"
GEO_P2P = Path(sys.executable).parent / "geo-p2p"


def test_zip_installs_as_one_plugin_folder(tmp_path: Path) -> None:
    path = package(tmp_path / "plugin.zip")
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        metadata = configparser.ConfigParser()
        metadata.read_string(zf.read("geo_p2p_qgis/metadata.txt").decode())
    assert {n.split("/")[0] for n in names} == {"geo_p2p_qgis"}
    assert {"geo_p2p_qgis/__init__.py", "geo_p2p_qgis/provider.py"} <= set(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    general = metadata["general"]
    assert general["hasProcessingProvider"] == "yes"
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert general["version"] == setup["metadata"]["version"]
    assert float(general["qgisMinimumVersion"]) <= 3.22
    assert not list(tmp_path.glob(".*"))  # no partial zip left


def test_progress_and_error_lines() -> None:
    assert command.progress_of("geo-p2p: 1,024/4,096 tiles (25 %), 3.1 tiles/s, 16 min left") == 25
    assert command.progress_of("geo-p2p: plan: a.tif 875x400 at 0.499 m -> ...") is None
    lines = ["geo-p2p: plan: ...", "Error: Invalid value for INPUT: x.tif has no CRS"]
    assert command.error_of(lines) == "Invalid value for INPUT: x.tif has no CRS"
    assert command.error_of(["Killed"]) == "geo-p2p failed: Killed"


def fake_command(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "fake.py"
    script.write_text(body)
    return [sys.executable, str(script)]


def test_runner_reports_progress_and_fails_with_the_error_line(tmp_path: Path) -> None:
    args = fake_command(
        tmp_path,
        "import os, sys\n"
        "assert os.environ['GEO_P2P_PROGRESS_EVERY'] == '0' and 'PYTHONPATH' not in os.environ\n"
        "print('geo-p2p: plan: 2 tiles', file=sys.stderr)\n"
        "print('geo-p2p: 1/2 tiles (50 %), 1 tiles/s, 1 s left', file=sys.stderr)\n"
        "print('Error: Invalid value for --aoi: not a polygon', file=sys.stderr)\n"
        "sys.exit(2)\n",
    )
    progress, info = [], []
    os.environ["PYTHONPATH"] = "/somewhere/qgis"  # what QGIS may carry for its own Python
    try:
        with pytest.raises(command.CommandError, match=r"^Invalid value for --aoi: not a polygon$"):
            command.run(args, progress.append, info.append, lambda: False)
    finally:
        del os.environ["PYTHONPATH"]
    assert progress == [50.0] and info[0] == "plan: 2 tiles"


def test_runner_stops_the_command_with_sigterm_on_cancel(tmp_path: Path) -> None:
    marker = tmp_path / "cleaned"
    args = fake_command(
        tmp_path,
        "import signal, sys, time\n"
        "def stop(*_):\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "    print('Error: interrupted', file=sys.stderr)\n"
        "    sys.exit(1)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "print('geo-p2p: 1/100 tiles (1 %), 1 tiles/s, 99 s left', file=sys.stderr)\n"
        "time.sleep(60)\n",
    )
    progress: list[float] = []
    start = time.monotonic()
    with pytest.raises(command.Canceled):
        command.run(args, progress.append, lambda _: None, lambda: bool(progress))
    assert marker.exists() and time.monotonic() - start < 30  # its handler ran, then it exited


def test_missing_executable_says_what_to_do(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(command.CommandError, match="pip install geo-p2p"):
        command.find_executable(None)
    with pytest.raises(command.CommandError, match="Providers > geo-p2p"):
        command.find_executable(str(tmp_path / "nothing"))


def _has_qgis() -> str | None:
    """None when the system Python imports QGIS, else why not."""
    if not os.path.exists(SYSTEM_PYTHON):
        return f"no {SYSTEM_PYTHON}"
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True, text=True, timeout=60
    )
    return None if probe.returncode == 0 else "QGIS's Python bindings are not installed"


@pytest.fixture(scope="module")
def qgis_results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    why = _has_qgis()
    if why:
        pytest.skip(f"{why}: the QGIS tests are skipped (apt-get install python3-qgis)")
    if not GEO_P2P.exists():
        pytest.skip(f"no geo-p2p executable at {GEO_P2P} (pip install -e .)")
    base = tmp_path_factory.mktemp("qgis")
    home, tmp, work = base / "home", base / "tmp", base / "work"
    runtime = base / "runtime"
    for folder in (home, tmp, work, runtime):
        folder.mkdir()
    runtime.chmod(0o700)  # as Qt wants it
    bad = write_raster(base / "no_crs.tif", np.full((3, 64, 64), 90, np.uint8), None, None)
    spec = {
        "plugin_zip": str(package(base / "geo_p2p_qgis.zip")),
        "executable": str(GEO_P2P),
        "input": str(AREA),
        "bad_input": str(bad),
        "profile": str(base / "profile"),
        "work": str(work),
    }
    (base / "spec.json").write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        QT_QPA_PLATFORM="offscreen",
        HOME=str(home),  # QGIS's settings go here, not into the user's
        XDG_CONFIG_HOME=str(home / "config"),
        XDG_DATA_HOME=str(home / "data"),
        XDG_RUNTIME_DIR=str(runtime),
        TMPDIR=str(tmp),
        GDAL_PAM_ENABLED="NO",  # no .aux.xml statistics beside examples/area.tif
    )
    driver = Path(__file__).with_name("qgis_driver.py")
    done = subprocess.run(
        [SYSTEM_PYTHON, str(driver), str(base / "spec.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    results["tmp"], results["bad_input_path"] = str(tmp), str(bad)
    return results


def test_plugin_installs_from_its_zip_and_registers_three_algorithms(qgis_results: dict) -> None:
    install = qgis_results["install"]
    assert install == {
        "folders": ["geo_p2p_qgis"],
        "has_processing_provider": "yes",
        "started": True,
    }
    provider = qgis_results["provider"]
    assert provider["name"] == "geo-p2p"
    algorithms = provider["algorithms"]
    assert sorted(algorithms) == ["geo_p2p:pairs", "geo_p2p:render", "geo_p2p:tiles"]
    for parameters in algorithms.values():
        assert {"INPUT", "OUTPUT", "AOI", "EXTENT", "EXTRA"} <= set(parameters)
    assert {"MODEL", "RESOLUTION", "PIXEL_SIZE", "BANDS"} <= set(algorithms["geo_p2p:render"])
    for name in ("geo_p2p:render", "geo_p2p:tiles"):
        assert {"STYLE", "VEGETATION"} <= set(algorithms[name])


def test_render_loads_a_map_in_the_inputs_crs_with_progress(qgis_results: dict) -> None:
    render = qgis_results["render"]
    assert "outputs" in render, render
    output = render["outputs"]["OUTPUT"]
    layers = [layer for layer in render["layers"] if layer["source"] == output]
    assert len(layers) == 1, render["layers"]  # loaded into the project
    layer = layers[0]
    assert layer["valid"] and layer["provider"] == "gdal"
    assert layer["bands"] in (3, 4)  # QGIS shows the GeoTIFF's internal mask as a 4th band
    assert layer["crs"] == render["input_crs"] == "EPSG:2056"
    with rasterio.open(output) as ds, rasterio.open(AREA) as src:
        assert ds.crs == src.crs and (ds.width, ds.height) == (layer["width"], layer["height"])
        assert ds.count == 3
        assert ds.read().std() > 5  # a map, not a flat image
    steps = [p for p in render["progress"] if 0 < p < 100]
    assert steps, render["progress"]  # from the command's progress lines, before the end
    assert steps == sorted(steps) and render["progress"][-1] == 100
    assert any(line.startswith("plan: ") for line in render["infos"])


def test_render_crisp_with_vegetation_and_a_class_raster(qgis_results: dict) -> None:
    """STYLE crisp, VEGETATION and a CLASSES output: the map in flat class colours and the class
    raster, both loaded; QGIS labels the class raster's colours with the class names; the
    villa's lawns are park (the bundled model alone paints no park on examples/area.tif)."""
    crisp = qgis_results["crisp"]
    assert "outputs" in crisp, crisp
    sources = {layer["source"] for layer in crisp["layers"]}
    assert {crisp["outputs"]["OUTPUT"], crisp["outputs"]["CLASSES"]} <= sources
    with rasterio.open(crisp["outputs"]["OUTPUT"]) as ds:
        rgb, mask = ds.read(), ds.dataset_mask()
    assert len({tuple(p) for p in rgb[:, mask > 0].T}) <= 5  # the maps style's class colours
    assert {"land", "road", "water"} <= set(crisp["class_labels"]), crisp["class_labels"][:8]
    assert len(crisp["commands"]) == 1 and " --vegetation" in crisp["commands"][0]
    with rasterio.open(crisp["outputs"]["CLASSES"]) as ds:
        classes = ds.read(1)
    park = Translator.load().palette.index("park") + 1  # 0 is no data
    assert (classes == park).mean() > 0.01


def test_cancel_stops_the_command_and_leaves_nothing(qgis_results: dict) -> None:
    cancel = qgis_results["cancel"]
    assert cancel.get("exception") == "canceled: geo-p2p stopped and left nothing", cancel
    assert max(cancel["progress"]) < 100
    assert cancel["left"] == [] and cancel["temp_left"] == []
    assert not [p for p in Path(qgis_results["tmp"]).iterdir() if p.name.startswith("geo-p2p")]


def test_bad_input_fails_with_the_commands_one_line_error(qgis_results: dict, tmp_path) -> None:
    bad = qgis_results["bad_input"]
    assert "exception" in bad and bad["left"] == []
    direct = subprocess.run(  # the same raster given to the command itself
        [str(GEO_P2P), "render", qgis_results["bad_input_path"], "-o", str(tmp_path / "m.tif")],
        capture_output=True,
        text=True,
    )
    assert direct.returncode == 2
    (line,) = direct.stderr.strip().splitlines()
    assert "has no coordinate reference system: pass --allow-ungeoreferenced" in line
    assert bad["exception"] == line.removeprefix("Error: ")  # what the dialog's log shows


def test_tiles_load_into_the_project_and_pairs_are_cut(qgis_results: dict) -> None:
    results = qgis_results["tiles_and_pairs"]
    for name, provider in (("map.mbtiles", "gdal"), ("xyz", "wms")):
        result = results[name]
        assert "outputs" in result, result
        assert [layer["provider"] for layer in result["layers"]] == [provider]
        assert result["layers"][0]["valid"]
    assert results["xyz"]["layers"][0]["source"].startswith("type=xyz&url=file://")
    pairs = results["pairs"]
    assert "outputs" in pairs, pairs
    assert pairs["dataset"]["gsd"] == 0.9 and pairs["dataset"]["counts"]["train"] > 0


def test_render_and_tiles_chain_in_a_processing_model(qgis_results: dict) -> None:
    model = qgis_results["model"]
    assert "outputs" in model and model["exists"], model
