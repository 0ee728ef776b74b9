"""``geo-p2p render`` on the command line: options, and one-line errors without tracebacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner, Result
from conftest import CHARLOTTE, WEBODM, write_raster
from geo_p2p_cli.render import render

pytestmark = pytest.mark.usefixtures("one_thread")


def run(*args: object) -> Result:
    return CliRunner().invoke(render, [str(a) for a in args])


def test_render_with_a_model_directory(model_dir: Path, tmp_path: Path) -> None:
    dst = tmp_path / "map.tif"
    result = run(
        WEBODM,
        "-o",
        dst,
        "--model",
        model_dir,
        "--resolution",
        "native",
        "--batch-size",
        3,
        "--co",
        "ZLEVEL=9",  # DEFLATE's level: means DEFLATE
        "--alpha",
    )
    assert result.exit_code == 0, result.output
    with rasterio.open(dst) as out:
        assert out.count == 4 and out.width == 212
        assert out.compression.name == "deflate"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.tif"], "does not exist"),
        (["{text}"], "is not a raster"),
        (["{raw}"], "--allow-ungeoreferenced"),
        (["{src}", "--bands", "1,x"], "comma-separated numbers"),
        (["{src}", "--bands", "1,2,9"], "bands 1 to 4, not 9"),
        (["{src}", "--scale", "3"], "MIN,MAX"),
        (["{src}", "--co", "COMPRESS"], "NAME=VALUE"),
        (["{src}", "--resolution", "fine"], "auto, native or metres per pixel"),
        (["{src}", "--resolution", "nan"], "auto, native or metres per pixel"),
        (["{src}", "--margin", "20"], "Invalid value for --margin"),
        (["{src}", "--quicklook", "{out}"], "cannot be the output GeoTIFF"),
        (["{src}", "--overlap", "40"], "overlap must be 0 to 31"),
        (["{src}", "--aoi", "POLYGON((0 0, 1 0, 1 1, 0 0))"], "does not meet the raster"),
        (["{src}", "--aoi", "not wkt"], "cannot read the area of interest"),
        (["{src}", "--aoi", "parcel.geojson"], "parcel.geojson does not exist"),
    ],
)
def test_user_errors_are_one_line(
    model_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    raw = write_raster(tmp_path / "raw.tif", np.zeros((3, 8, 8), np.uint8), crs=None)
    names = {"text": text, "raw": raw, "src": WEBODM, "out": tmp_path / "out.tif"}
    args = [a.format(**names) for a in args]
    result = run(*args, "-o", tmp_path / "out.tif", "--model", model_dir)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.tif").exists()


def test_existing_output_and_missing_default_model(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("geo_p2p.card.DEFAULT_MODEL_DIR", tmp_path)  # an install without one
    dst = tmp_path / "out.tif"
    dst.write_bytes(b"x")
    result = run(CHARLOTTE, "-o", dst, "--model", model_dir)
    assert result.exit_code == 2 and "--overwrite" in result.output
    result = run(CHARLOTTE, "-o", tmp_path / "new.tif")
    assert result.exit_code == 2 and "no bundled default model" in result.output


def test_output_is_required() -> None:
    result = run(CHARLOTTE)
    assert result.exit_code == 2 and "-o" in result.output


def test_a_model_whose_weights_do_not_fit_is_one_line(model_dir: Path, tmp_path: Path) -> None:
    (model_dir / "generator.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    result = run(CHARLOTTE, "-o", tmp_path / "out.tif", "--model", model_dir)
    assert result.exit_code == 2
    error = result.output.strip().splitlines()[-1]
    assert "does not hold the generator its card describes" in error
    assert "Traceback" not in result.output
