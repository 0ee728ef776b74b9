"""ONNX export and the onnxruntime backend: same outputs as torch, metadata, clean errors."""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from conftest import tiny_unet
from geo_p2p_cli.export import export
from geo_p2p_cli.render import render

from geo_p2p import Translator
from geo_p2p.card import DEFAULT_MODEL_DIR, ModelCard, load_model, save_model
from geo_p2p.errors import RenderError
from geo_p2p.export import OPSET, export_model
from geo_p2p.nets import set_inference_stats

AREA = Path(__file__).parents[1] / "examples" / "area.tif"  # real orthophoto, 875 x 400
TOLERANCE = 1e-5
"""Largest difference between onnxruntime's and torch's output in [-1, 1] (measured: 1.5e-6
to 2.1e-6 for the bundled model): float rounding in other kernels."""

pytestmark = pytest.mark.usefixtures("one_thread")
needs_onnx = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime")),
    reason="the onnx extra is not installed (pip install -e '.[onnx]')",
)


def area_tiles(size: int, count: int = 2) -> torch.Tensor:
    """``count`` real (size x size) crops of examples/area.tif in [-1, 1], from two corners."""
    with rasterio.open(AREA) as ds:
        image = ds.read()
    corners = [(0, 0), (image.shape[1] - size, image.shape[2] - size)] * count
    crops = [image[:, r : r + size, c : c + size] for r, c in corners[:count]]
    return torch.from_numpy(np.stack(crops).astype(np.float32) / 127.5 - 1)


def session(path: Path):  # noqa: ANN201 - onnxruntime is optional
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def bundled_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_model(None, tmp_path_factory.mktemp("onnx") / "bundled.onnx")


@needs_onnx
def test_bundled_model_round_trip_on_real_tiles(bundled_onnx: Path) -> None:
    import onnx

    model = onnx.load(str(bundled_onnx))
    ops = {node.op_type for node in model.graph.node}
    assert "InstanceNormalization" in ops and "BatchNormalization" not in ops
    assert model.opset_import[0].version == OPSET
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.dim_value  # dynamic batch size
    x = area_tiles(256, 3)
    generator, _ = load_model(None)
    with torch.inference_mode():
        expected = generator(x).numpy()
    s = session(bundled_onnx)
    (y,) = s.run(None, {"input": x.numpy()})
    assert y.shape == expected.shape and np.abs(y - expected).max() < TOLERANCE
    assert expected.std() > 0.1  # a real output, not a flat one
    (one,) = s.run(None, {"input": x[:1].numpy()})  # another batch size, same graph
    assert np.abs(one - expected[:1]).max() < TOLERANCE


def metadata(path: Path) -> dict[str, object]:
    return {k: json.loads(v) for k, v in session(path).get_modelmeta().custom_metadata_map.items()}


@needs_onnx
def test_metadata_for_geo_p2p(bundled_onnx: Path) -> None:
    meta = metadata(bundled_onnx)
    card = json.loads((DEFAULT_MODEL_DIR / "card.json").read_text())
    assert meta["tile"] == 256 and meta["overlap"] == 32
    assert meta["gsd"] == card["gsd"] == 0.9
    assert meta["direction"] == "AtoB" and meta["inference_stats"] == "tile"
    assert meta["value_range"] == [-1, 1]
    assert meta["card"]["ngf"] == 32 and meta["card"]["metrics"] == card["metrics"]
    assert "model_type" not in meta  # Deepness's keys only in --for deepness


@needs_onnx
def test_deepness_export_gives_the_map_through_deepness_arithmetic(tmp_path: Path) -> None:
    """What Deepness's Regressor does with the export: input (v / 255 - 0.5) / 0.5, outputs
    times reg_output_scaling, truncated to uint8; that gives the map, rounded."""
    path = export_model(None, tmp_path / "deepness.onnx", target="deepness")
    meta = metadata(path)
    assert meta["model_type"] == "Regressor" and meta["tiles_overlap"] == 50
    assert isinstance(meta["tiles_overlap"], int)  # Deepness reads it with int()
    assert meta["class_names"] == [{"0": "red"}, {"0": "green"}, {"0": "blue"}]
    assert meta["reg_output_scaling"] == 255 and meta["resolution"] == 90.0  # cm/px
    assert meta["tile_size"] == 256 and meta["standardization_mean"] == [0.5] * 3
    s = session(path)
    assert [o.name for o in s.get_outputs()] == ["red", "green", "blue"]
    assert [o.shape[1:] for o in s.get_outputs()] == [[1, 256, 256]] * 3
    x = area_tiles(256, 2)
    u8 = np.rint((x.numpy() + 1) * 127.5).astype(np.uint8)
    deepness_input = ((u8 / 255).astype(np.float32) - 0.5) / 0.5
    outputs = s.run(None, {"input": deepness_input})
    got = (np.concatenate(outputs, axis=1) * np.float32(255)).astype(np.uint8)
    generator, _ = load_model(None)
    with torch.inference_mode():
        y = generator(torch.from_numpy(deepness_input)).numpy()
    expected = np.clip(np.rint((y + 1) * 127.5), 0, 255).astype(np.uint8)
    diff = np.abs(got.astype(int) - expected)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # rounding ties and float error only
    assert expected.std() > 10


@needs_onnx
def test_deepness_export_fills_black_padding_with_the_tile_mean(
    model_dir: Path, tmp_path: Path
) -> None:
    """Deepness reads beyond the raster as black: the graph gives those pixels the mean colour
    of the rest of the tile, as geo-p2p render does with no-data."""
    path = export_model(model_dir, tmp_path / "deepness.onnx", target="deepness")
    x = area_tiles(32, 1)
    x[:, :, :, 20:] = -1  # black right part, as beyond the raster's edge
    valid = x[:, :, :, :20]
    filled = x.clone()
    filled[:, :, :, 20:] = valid.mean(dim=(2, 3), keepdim=True)
    net, _ = load_model(model_dir)
    with torch.inference_mode():
        expected = ((net(filled) + 1) * 127.5).clamp(0, 255).numpy()
        plain = ((net(x) + 1) * 127.5).clamp(0, 255).numpy()
    outputs = session(path).run(None, {"input": x.numpy()})
    got = np.concatenate(outputs, axis=1) * 255 - 0.5
    assert np.abs(got - expected).max() < 1e-3
    assert np.abs(plain - expected)[..., :20].mean() > 1  # the black part changed the rest


@needs_onnx
def test_running_statistics_are_folded(tmp_path: Path) -> None:
    import onnx

    torch.manual_seed(1)
    net = tiny_unet()
    set_inference_stats(net, "running")
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # statistics that are not the identity
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2)
    model = save_model(
        tmp_path / "model", net, ModelCard(ngf=4, tile=32, inference_stats="running")
    )
    path = export_model(model, tmp_path / "running.onnx")
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert not ops & {"BatchNormalization", "InstanceNormalization"}
    x = area_tiles(32)
    with torch.inference_mode():
        expected = net(x).numpy()
    (y,) = session(path).run(None, {"input": x.numpy()})
    assert np.abs(y - expected).max() < TOLERANCE
    assert "resolution" not in session(path).get_modelmeta().custom_metadata_map  # gsd unknown


@needs_onnx
def test_cli_export(model_dir: Path, tmp_path: Path) -> None:
    dst = tmp_path / "tiny.onnx"
    result = CliRunner().invoke(export, [str(model_dir), "-o", str(dst)])
    assert result.exit_code == 0, result.output
    assert f"opset {OPSET}" in result.output and dst.is_file()
    for_deepness = tmp_path / "deepness.onnx"
    result = CliRunner().invoke(
        export, [str(model_dir), "-o", str(for_deepness), "--for", "deepness"]
    )
    assert result.exit_code == 0, result.output
    assert [o.name for o in session(for_deepness).get_outputs()] == ["red", "green", "blue"]
    again = CliRunner().invoke(export, [str(model_dir), "-o", str(dst)])
    assert again.exit_code == 2 and "pass --overwrite" in again.output
    assert "Traceback" not in again.output
    assert not list(tmp_path.glob(".tiny.onnx.*"))  # no temporary file left


@needs_onnx
def test_render_with_onnxruntime_equals_torch(model_dir: Path, tmp_path: Path) -> None:
    outputs = {}
    for backend in ("torch", "onnxruntime"):
        t = Translator.load(model_dir, backend=backend, device="cpu")
        assert t.engine.backend_for().name == backend
        t.render(AREA, tmp_path / f"{backend}.tif", resolution="native", progress=False)
        with rasterio.open(tmp_path / f"{backend}.tif") as ds:
            outputs[backend] = ds.read().astype(int)
    diff = np.abs(outputs["onnxruntime"] - outputs["torch"])
    assert diff.max() <= 1 and diff.mean() < 0.01  # 1e-5 in [-1, 1] rounds the same, nearly always
    assert outputs["torch"].std() > 5


@needs_onnx
def test_onnxruntime_output_does_not_depend_on_batch_size() -> None:
    with rasterio.open(AREA) as ds:
        image = ds.read(window=((0, 150), (0, 200))).transpose(1, 2, 0).copy()
    net = tiny_unet()
    one, many = (
        Translator(net, tile=32, device="cpu", batch_size=b, backend="onnxruntime").translate(image)
        for b in (1, 7)
    )
    np.testing.assert_array_equal(one, many)


@needs_onnx
def test_auto_picks_a_backend_by_a_probe(model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert Translator.load(model_dir, device="cpu").engine.backend_for().name == "torch"
    t = Translator.load(model_dir, device="cpu", backend="auto")
    with caplog.at_level(logging.INFO, logger="geo_p2p.render.backends"):
        assert t.engine.backend_for(tiles=200).name == "torch"  # a small job: no probe
        assert "backend auto" not in caplog.text
        chosen = t.engine.backend_for()  # timed on the first large job
    assert chosen.name in ("torch", "onnxruntime")
    assert f"backend auto: {chosen.name} (torch " in caplog.text
    assert t.engine.backend_for(tiles=10_000) is chosen  # and kept: later jobs do not change it
    assert t.engine.backend_for(tiles=10).name == "torch"
    bf16 = Translator.load(model_dir, device="cpu", precision="bf16", backend="auto")
    assert bf16.engine.backend_for().name == "torch"  # onnxruntime runs fp32
    assert Translator(tiny_unet(), tile=32).engine.backend_for().name == "torch"  # the default


@needs_onnx
def test_onnxruntime_refuses_what_it_cannot_run(model_dir: Path) -> None:
    with pytest.raises(RenderError, match="fp32") as e:
        Translator.load(model_dir, backend="onnxruntime", device="cpu", precision="bf16")
    assert e.value.param == "--backend"
    with pytest.raises(RenderError, match="torch backend only"):
        Translator.load(model_dir, backend="onnxruntime", device="cpu", torch_compile=True)


def test_missing_extra_is_a_one_line_error(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime fails
    with pytest.raises(RenderError, match=r"pip install 'geo-p2p\[onnx\]'") as e:
        Translator.load(model_dir, backend="onnxruntime", device="cpu")
    assert e.value.param == "--backend"
    assert Translator.load(model_dir, device="cpu").engine.backend_for().name == "torch"
    args = [str(AREA), "-o", str(tmp_path / "map.tif"), "--model", str(model_dir)]
    result = CliRunner().invoke(render, [*args, "--backend", "onnxruntime"])
    assert result.exit_code == 2 and "onnxruntime is not installed" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "map.tif").exists()
    monkeypatch.setitem(sys.modules, "onnx", None)
    result = CliRunner().invoke(export, [str(model_dir), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2 and result.output.startswith("Error: onnx is not installed")
    assert len(result.output.strip().splitlines()) == 1
