"""Block mosaic: weighted assembly, blocks finished once, bounded open blocks, no-data."""

from __future__ import annotations

import numpy as np

from geo_p2p.render.mosaic import BlockMosaic, signed_to_u8, u8_to_signed
from geo_p2p.render.tiling import TileGrid


def assemble(grid: TileGrid, value, block=(16, 24)):
    """Feed every tile of ``grid`` (value(tile) -> (3, T, T) float) and collect the blocks."""
    mosaic = BlockMosaic(grid, block)
    out = np.zeros((3, grid.height, grid.width), np.uint8)
    mask = np.zeros((grid.height, grid.width), np.uint8)
    written = np.zeros((grid.height, grid.width), int)
    peak = 0
    for tile in grid.tiles:
        values, valid = value(tile)
        blocks = mosaic.add(tile, values, valid) if valid is not None else mosaic.skip(tile)
        peak = max(peak, mosaic.open_blocks)
        for b in blocks:
            _, h, w = b.rgb.shape
            out[:, b.row : b.row + h, b.col : b.col + w] = b.rgb
            mask[b.row : b.row + h, b.col : b.col + w] = b.mask
            written[b.row : b.row + h, b.col : b.col + w] += 1
    assert mosaic.open_blocks == 0
    return out, mask, written, peak


def test_constant_tiles_give_a_constant_mosaic_written_once() -> None:
    grid = TileGrid(70, 90, tile=32, overlap=12, margin=3)
    value = u8_to_signed(np.full((3, 32, 32), 200, np.uint8))
    out, mask, written, _ = assemble(grid, lambda t: (value, np.ones((32, 32), bool)))
    assert (out == 200).all() and (mask == 255).all() and (written == 1).all()


def test_blend_is_the_weighted_mean() -> None:
    grid = TileGrid(32, 56, tile=32, overlap=8)  # two tiles side by side, 8 px overlap
    left, right = grid.tiles

    def value(tile):
        level = -0.5 if tile == left else 0.5
        return np.full((3, 32, 32), level, np.float32), np.ones((32, 32), bool)

    out, _, _, _ = assemble(grid, value)
    w = grid.weights(left)[0, 24:32]
    expected = signed_to_u8(-0.5 * w + 0.5 * (1 - w))
    np.testing.assert_array_equal(out[0, 0, 24:32], expected)
    assert out[0, 0, 0] == signed_to_u8(np.float32(-0.5)) and out[0, 0, -1] == 191


def test_skipped_tiles_and_invalid_pixels_are_no_data() -> None:
    grid = TileGrid(64, 64, tile=32, overlap=0)
    half = np.ones((32, 32), bool)
    half[:, 16:] = False

    def value(tile):
        if tile.row == 32 and tile.col == 32:
            return None, None
        return np.zeros((3, 32, 32), np.float32), half

    out, mask, _, _ = assemble(grid, value)
    assert (mask[32:, 32:] == 0).all() and (out[:, 32:, 32:] == 0).all()
    assert (mask[:32, :16] == 255).all() and (mask[:32, 16:32] == 0).all()


def test_open_blocks_do_not_grow_with_height() -> None:
    value = np.zeros((3, 32, 32), np.float32), np.ones((32, 32), bool)
    block_cols = -(-300 // 24)
    bound = block_cols * ((32 + 16) // 16 + 1)  # a band of tile + block height, any raster height
    for height in (200, 1600, 3200):
        peak = assemble(TileGrid(height, 300, tile=32, overlap=8), lambda t: value)[3]
        assert peak <= bound


def test_u8_round_trip_is_exact() -> None:
    values = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(signed_to_u8(u8_to_signed(values)), values)
