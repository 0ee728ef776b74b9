"""Test-time adaptation: BatchNorm statistics from a sample of the input's tiles (AdaBN), and
the dihedral mean."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import CHARLOTTE, tiny_unet

from geo_p2p import Translator
from geo_p2p.nets import TileBatchNorm, UNetGenerator, init_weights, set_inference_stats
from geo_p2p.render.adapt import (
    DihedralMean,
    normalisation_statistics,
    sample_tiles,
    spread,
    use_statistics,
)


def real_tiles(count: int = 4, size: int = 32) -> np.ndarray:
    """``count`` tiles of the real Charlotte satellite crop, (N, 3, size, size) uint8."""
    import rasterio

    with rasterio.open(CHARLOTTE) as src:
        image = src.read([1, 2, 3]).transpose(1, 2, 0)
    return sample_tiles(np.ascontiguousarray(image), size, count)


def test_one_tile_statistics_reproduce_per_tile_normalisation() -> None:
    """Statistics from one tile, used as fixed statistics, give that tile's per-tile output:
    every layer saw the layers before it normalised by the sample's statistics."""
    net = tiny_unet()
    tile = torch.from_numpy(real_tiles(1)).float() / 127.5 - 1
    with torch.no_grad():
        expected = net(tile)
        use_statistics(net, normalisation_statistics(net, real_tiles(1), "tile"))
        assert all(m.inference_stats == "running" for m in net.modules() if hasattr(m, "eps"))
        torch.testing.assert_close(net(tile), expected, atol=2e-5, rtol=0)


def test_pooling_of_the_first_layer_by_hand() -> None:
    net = tiny_unet()
    tiles = real_tiles(4)
    first = next(m for m in net.modules() if isinstance(m, TileBatchNorm))
    seen = []
    hook = first.register_forward_pre_hook(lambda m, inputs: seen.append(inputs[0]))
    with torch.no_grad():
        net(torch.from_numpy(tiles).float() / 127.5 - 1)  # nothing before it normalises
    hook.remove()
    h = seen[0].double()
    name = next(n for n, m in net.named_modules() if m is first)
    tile_stats = normalisation_statistics(net, tiles, "tile")[name]
    pop_stats = normalisation_statistics(net, tiles, "population")[name]
    per_tile_var = h.var(dim=(2, 3), unbiased=False).mean(0)
    torch.testing.assert_close(tile_stats[0].double(), h.mean(dim=(0, 2, 3)), atol=1e-6, rtol=0)
    torch.testing.assert_close(tile_stats[1].double(), per_tile_var, atol=1e-6, rtol=1e-5)
    whole = h.transpose(0, 1).reshape(h.shape[1], -1).var(dim=1, unbiased=False)
    torch.testing.assert_close(pop_stats[1].double(), whole, atol=1e-6, rtol=1e-5)
    assert (pop_stats[1] >= tile_stats[1] - 1e-6).all()
    assert torch.equal(first.running_mean, torch.zeros_like(first.running_mean))  # untouched


def test_adapted_statistics_do_not_depend_on_the_batch_and_tiles_blend_as_before() -> None:
    net = tiny_unet(seed=1)
    use_statistics(net, normalisation_statistics(net, real_tiles(4)))
    x = torch.from_numpy(real_tiles(4)).float() / 127.5 - 1
    with torch.no_grad():
        whole = net(x)
        one_by_one = torch.cat([net(x[i : i + 1]) for i in range(4)])
    torch.testing.assert_close(whole, one_by_one, atol=1e-5, rtol=0)
    image = np.ascontiguousarray(real_tiles(1, 96)[0].transpose(1, 2, 0))
    out = Translator(net, tile=32, overlap=16, margin=4, device="cpu").translate(image)
    assert out.shape == image.shape and out.std() > 0


def test_bad_pooling_is_refused() -> None:
    with pytest.raises(ValueError, match="pooling"):
        normalisation_statistics(tiny_unet(), real_tiles(1), "median")  # type: ignore[arg-type]


def test_sample_tiles_spread_over_the_grid() -> None:
    image = np.arange(100 * 70 * 3, dtype=np.int64).reshape(100, 70, 3).astype(np.uint8)
    tiles = sample_tiles(image, 32, 3)  # grid starts rows 0, 32, 64, 68 x cols 0, 32, 38
    assert tiles.shape == (3, 3, 32, 32)
    assert np.array_equal(tiles[0], image[:32, :32].transpose(2, 0, 1))
    assert np.array_equal(tiles[-1], image[68:100, 38:70].transpose(2, 0, 1))
    small = sample_tiles(image[:20, :20], 32, 5)
    assert small.shape == (1, 3, 32, 32)
    assert spread(5, 5) == [0, 1, 2, 3, 4] and spread(9, 1) == [4]


def test_dihedral_mean_is_invariant_to_turning_the_input() -> None:
    torch.manual_seed(0)
    net = UNetGenerator(ngf=4, levels=5)
    init_weights(net)
    set_inference_stats(net, "tile")
    tta = DihedralMean(net.eval())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        turned = tta(torch.rot90(x, 1, (2, 3)))
        torch.testing.assert_close(turned, torch.rot90(tta(x), 1, (2, 3)), atol=1e-6, rtol=0)
        torch.testing.assert_close(tta(x.flip(3)), tta(x).flip(3), atol=1e-6, rtol=0)
        assert not torch.allclose(tta(x), net(x), atol=1e-3)
    identity = DihedralMean(torch.nn.Identity())
    torch.testing.assert_close(identity(x), x)


def test_raster_sample_takes_tiles_of_valid_pixels(tmp_path) -> None:
    """A raster whose right half is no-data: the sample comes from the left half only."""
    from conftest import write_raster

    from geo_p2p.raster import inspect_source
    from geo_p2p.render.adapt import raster_sample

    rng = np.random.default_rng(0)
    data = rng.integers(1, 200, (3, 64, 128), dtype=np.uint8)
    data[:, :, 64:] = 0
    path = write_raster(tmp_path / "half.tif", data, nodata=0)
    source = inspect_source(path, resolution="native")
    tiles = raster_sample(source, 32, 8)
    assert tiles.shape == (4, 3, 32, 32)  # the 4 tiles of the left half
    left = {data[:, r : r + 32, c : c + 32].tobytes() for r in (0, 32) for c in (0, 32)}
    assert {t.tobytes() for t in tiles} == left
    everything = raster_sample(source, 32, 8, min_valid=0.0)
    assert everything.shape == (4, 3, 32, 32)  # tiles without any valid pixel never count
    small = raster_sample(inspect_source(path, resolution="native"), 256, 3)
    assert small.shape == (1, 3, 256, 256)  # one mirrored tile, no-data in its mean colour
    assert not (small == 0).all(axis=1).any()
