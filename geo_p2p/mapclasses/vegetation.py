"""Vegetation from the aerial itself: trees and grass the model leaves as land, painted green.

The maps pairs' maps colour parks only, so the bundled model paints courtyard lawns, street
trees and forests as land; outside New York that is most of what a map marks green (see README,
"How far the model travels"). A pixel is vegetation where the aerial's excess green
(2G - R - B) / (R + G + B), a colour index that needs no near-infrared band, is over
:data:`VEGETATION_INDEX` and its blue is no more than its red (which leaves out shallow,
turquoise water: green, but bluer than red); where the map there is of the palette's land
class, it takes the park class's colour. The test is per pixel, so a render paints tile by tile
and stays seamless.
"""

from __future__ import annotations

import numpy as np

from ..errors import RenderError
from ..render.mosaic import signed_to_u8
from .palette import Palette

VEGETATION_INDEX = 0.10
"""Excess green over which an aerial pixel counts as vegetation (chosen among 0.02-0.12 by the
rule's IoU with the target maps' green on the screened New York and Moscow subsets of
benchmarks/travel.py)."""
LAND, GREEN = "land", "park"
"""The palette classes vegetation is taken from and painted as."""


def is_vegetation(aerial: np.ndarray) -> np.ndarray:
    """(H, W) bool: the vegetation of an (H, W, 3) uint8 RGB image (the module's rule).

    >>> is_vegetation(np.array([[[60, 120, 50], [60, 140, 120], [100, 100, 100]]], np.uint8))
    array([[ True, False, False]])
    """
    return (excess_green(aerial) > VEGETATION_INDEX) & (aerial[..., 2] <= aerial[..., 0])


def excess_green(aerial: np.ndarray) -> np.ndarray:
    """(2G - R - B) / (R + G + B) of an (H, W, 3) uint8 RGB image, float32 in [-1, 2].

    >>> index = excess_green(np.array([[[60, 120, 50], [9, 9, 9]]], np.uint8))
    >>> [round(float(v), 3) for v in index[0]]
    [0.563, 0.0]
    """
    x = aerial.astype(np.float32)
    return (2 * x[..., 1] - x[..., 0] - x[..., 2]) / (x.sum(axis=-1) + 1)


def check_vegetation_palette(palette: Palette | None) -> None:
    """Raise a RenderError (a ValueError) unless ``palette`` has the land and park classes
    vegetation needs."""
    names = () if palette is None else palette.names
    if LAND not in names or GREEN not in names:
        raise RenderError(
            f"--vegetation needs a model whose card names {LAND!r} and {GREEN!r} map classes",
            "--vegetation",
        )


def vegetation_mask(aerial: np.ndarray, map_: np.ndarray, palette: Palette) -> np.ndarray:
    """(H, W) bool: the pixels of ``map_`` ((H, W, 3) uint8, drawn from ``aerial``, the same
    shape) that are land in ``palette`` and vegetation in ``aerial``."""
    check_vegetation_palette(palette)
    land = palette.classify(map_) == palette.index(LAND)
    return land & is_vegetation(aerial)


def paint_vegetation(aerial: np.ndarray, map_: np.ndarray, palette: Palette) -> np.ndarray:
    """``map_`` with its :func:`vegetation_mask` in the park class's colour (a new array)."""
    out = map_.copy()
    out[vegetation_mask(aerial, map_, palette)] = palette.colours[palette.index(GREEN)]
    return out


def paint_vegetation_tile(aerial: np.ndarray, values: np.ndarray, palette: Palette) -> None:
    """Paint vegetation into a translated tile in place, in the generator's range: ``aerial``
    (3, T, T) and ``values`` (3, T, T), float32 in [-1, 1] (a render's model input and
    output)."""
    rgb = signed_to_u8(values).transpose(1, 2, 0)
    mask = vegetation_mask(signed_to_u8(aerial).transpose(1, 2, 0), rgb, palette)
    colour = palette.colours[palette.index(GREEN)].astype(np.float32) / np.float32(127.5) - 1
    values[:, mask] = colour[:, None]
