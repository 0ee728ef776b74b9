"""The opt-in torch.compile path: outputs within a stated tolerance of the eager module, and a
one-line error where compiling fails. Compiling takes 10-20 s here the first time."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch._inductor.config
from click.testing import CliRunner
from conftest import CHARLOTTE, tiny_unet
from geo_p2p_cli.render import render

from geo_p2p import Translator


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read().astype(np.int16)


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile needs a C++ compiler")
def test_compiled_render_is_within_a_digital_number_of_eager(tmp_path: Path) -> None:
    outputs = []
    for compiled in (False, True):
        t = Translator(tiny_unet(), tile=32, batch_size=4, device="cpu", torch_compile=compiled)
        t.render(CHARLOTTE, tmp_path / f"{compiled}.tif", progress=False)
        outputs.append(read(tmp_path / f"{compiled}.tif"))
    diff = np.abs(outputs[1] - outputs[0])
    assert outputs[0].std() > 5  # the model did something
    assert diff.mean() <= 0.05 and diff.max() <= 2  # stated in benchmarks/README.md


def test_a_failed_compile_is_a_one_line_error(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch._inductor.config.cpp, "cxx", ("no-such-compiler",))
    dst = tmp_path / "map.tif"
    args = [str(CHARLOTTE), "-o", str(dst), "--model", str(model_dir), "--compile"]
    result = CliRunner().invoke(render, args)
    assert result.exit_code == 2
    assert (
        "torch.compile failed" in result.output and "translate without compiling" in result.output
    )
    assert "Traceback" not in result.output and not dst.exists()
