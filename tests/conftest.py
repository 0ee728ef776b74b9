"""Shared fixtures: real test rasters, tiny models, and a writer for synthetic rasters."""

from __future__ import annotations

import signal
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from geo_p2p import Translator
from geo_p2p.card import ModelCard, save_model
from geo_p2p.mapclasses import learn_palette
from geo_p2p.nets import UNetGenerator, init_weights, set_inference_stats

DATA = Path(__file__).parent / "data"
WEBODM = DATA / "webodm_orthophoto.tif"  # RGBA, EPSG:32615, 212x212, 0.5 m
CHARLOTTE = DATA / "charlotte_sat_3857.tif"  # RGB, EPSG:3857, 300x220
ATLANTA = DATA / "atlanta_pan_uint16.tif"  # 1 band uint16, nodata 0, EPSG:32616
UTM_TRANSFORM = Affine(0.5, 0, 576000.0, 0, -0.5, 5188000.0)


def tiny_unet(seed: int = 0) -> UNetGenerator:
    """A 32 px U-Net (ngf 4) with per-tile statistics: fast, and tile borders matter."""
    torch.manual_seed(seed)
    net = UNetGenerator(ngf=4, levels=5)
    init_weights(net)
    set_inference_stats(net, "tile")
    return net.eval()


def write_raster(
    path: Path,
    data: np.ndarray,
    crs: str | None = "EPSG:32615",
    transform: Affine | None = UTM_TRANSFORM,
    **profile: object,
) -> Path:
    """Write (C, H, W) ``data`` as a GeoTIFF (no CRS/transform when both are None)."""
    meta: dict[str, object] = {
        "driver": "GTiff",
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "dtype": data.dtype.name,
    }
    if crs is not None:
        meta.update(crs=crs, transform=transform)
    meta.update(profile)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **meta) as dst:
            dst.write(data)
    return path


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run torch on one thread: tiny models gain nothing from more, and lose a lot when other
    processes keep the cores busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A saved tiny model directory (tile 32) whose card asks for 1 m/px."""
    card = ModelCard(ngf=4, tile=32, inference_stats="tile", gsd=1.0)
    return save_model(tmp_path / "model", tiny_unet(), card)


@pytest.fixture
def land_park_model(tmp_path: Path) -> Path:
    """A tiny model whose card names land (its most common colour) and park classes."""
    translator = Translator(tiny_unet(), tile=32, device="cpu")
    with rasterio.open(CHARLOTTE) as src:
        painted = translator.translate(src.read([1, 2, 3]).transpose(1, 2, 0))
    palette = learn_palette([painted], names=["land", "park", "road"], seed=0)
    card = ModelCard(ngf=4, tile=32, inference_stats="tile", gsd=1.0, classes=palette.as_card())
    return save_model(tmp_path / "land_park", tiny_unet(), card)


def default_sigint() -> None:
    """``preexec_fn`` for a subprocess that a test interrupts with SIGINT: a test run started
    in the background of a shell inherits an ignored SIGINT, and Python then installs no
    Ctrl-C handler in the child."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
