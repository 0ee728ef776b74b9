"""The pix2pix networks: exact sizes of the paper's models, shapes, per-tile statistics."""

from __future__ import annotations

import pytest
import torch

from geo_p2p.nets import (
    PatchDiscriminator,
    UNetGenerator,
    count_parameters,
    init_weights,
    levels_for_tile,
    set_inference_stats,
)


def test_paper_parameter_counts() -> None:
    assert count_parameters(UNetGenerator(ngf=64, levels=8)) == 54_413_955
    assert count_parameters(PatchDiscriminator(ndf=64)) == 2_768_705


def test_shapes_at_256() -> None:
    g, d = UNetGenerator(ngf=8, levels=8).eval(), PatchDiscriminator(ndf=8)
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    y = g(x)
    assert y.shape == (2, 3, 256, 256)
    assert y.abs().max() <= 1.0
    assert d(torch.cat([x, y], 1)).shape == (2, 1, 30, 30)


def test_levels_follow_tile_size() -> None:
    assert [levels_for_tile(t) for t in (32, 64, 128, 256, 512)] == [5, 6, 7, 8, 9]
    for bad in (16, 100, 255):
        with pytest.raises(ValueError, match="power of two"):
            levels_for_tile(bad)
    g = UNetGenerator(ngf=4, levels=levels_for_tile(64)).eval()
    assert g(torch.zeros(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    dropouts = [
        m for m in UNetGenerator(ngf=4, levels=8).modules() if isinstance(m, torch.nn.Dropout)
    ]
    assert len(dropouts) == 3  # the three decoder blocks next to the innermost, as the paper


def test_init_matches_paper() -> None:
    torch.manual_seed(0)
    g = UNetGenerator(ngf=16, levels=8)
    init_weights(g)
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(w.std().item() - 0.02) < 0.001
    assert abs(w.mean().item()) < 0.001


def test_tile_statistics_do_not_depend_on_the_batch() -> None:
    torch.manual_seed(0)
    g = UNetGenerator(ngf=4, levels=5)
    init_weights(g)
    g.eval()
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    set_inference_stats(g, "tile")
    alone = torch.cat([g(x[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(g(x), alone)
    # ... whereas per-tile statistics differ from the running ones
    set_inference_stats(g, "running")
    assert not torch.allclose(g(x), alone)
    with pytest.raises(ValueError):
        set_inference_stats(g, "batch")  # type: ignore[arg-type]
