"""Fast inference paths stay within a stated tolerance of the plain fp32 path.

Tolerances: BatchNorm folding changes floats by about 1e-8 (at most 1 digital number after
rounding, and almost never); bf16 autocast on CPU, at most 1 DN on average.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from conftest import CHARLOTTE, tiny_unet

from geo_p2p import Translator
from geo_p2p.card import ModelCard, save_model
from geo_p2p.fusion import fuse_batchnorm
from geo_p2p.nets import set_inference_stats

pytestmark = pytest.mark.usefixtures("one_thread")


def running_stats_unet() -> torch.nn.Module:
    """A tiny U-Net using running BatchNorm statistics, with non-trivial ones."""
    net = tiny_unet()
    set_inference_stats(net, "running")
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.5)
    return net


def image() -> np.ndarray:
    with rasterio.open(CHARLOTTE) as ds:
        return ds.read().transpose(1, 2, 0)


def test_batchnorm_folding_keeps_the_output() -> None:
    net = running_stats_unet()
    fused = copy.deepcopy(net)
    assert fuse_batchnorm(fused) == 7
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.inference_mode():
        assert (net(x) - fused(x)).abs().max() < 1e-5
    plain = Translator(net, tile=32, device="cpu").translate(image())
    folded = Translator(fused, tile=32, device="cpu").translate(image())
    diff = np.abs(plain.astype(int) - folded)
    assert diff.max() <= 1 and diff.mean() < 0.01


def test_per_tile_statistics_are_not_folded() -> None:
    assert fuse_batchnorm(tiny_unet()) == 0


def test_load_folds_running_batchnorm(tmp_path: Path) -> None:
    card = ModelCard(ngf=4, tile=32, inference_stats="running")
    model = save_model(tmp_path / "model", running_stats_unet(), card)
    fused = Translator.load(model, device="cpu")
    plain = Translator.load(model, fuse=False, device="cpu")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.module.modules())
    diff = np.abs(fused.translate(image()).astype(int) - plain.translate(image()))
    assert diff.max() <= 1 and diff.mean() < 0.01


def test_bf16_on_cpu_is_close_to_fp32() -> None:
    net = tiny_unet()
    fp32 = Translator(net, tile=32, device="cpu").translate(image())
    bf16 = Translator(net, tile=32, device="cpu", precision="bf16").translate(image())
    diff = np.abs(fp32.astype(int) - bf16)
    assert diff.mean() < 1.0
    assert fp32.std() > 5  # a model whose output varies, so the comparison means something
