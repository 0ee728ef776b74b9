"""Vegetation from the aerial itself: tree cover and lawns the model leaves as land, painted green.

The maps pairs' maps colour parks only, so the bundled model paints courtyard lawns, street
trees and forests as land; outside New York that is most of what a map marks green (see README,
"How far the model travels"). A pixel is vegetation where the aerial's excess green
(2G - R - B) / (R + G + B), a colour index that needs no near-infrared band, is over
:data:`VEGETATION_INDEX` and its blue is no more than its red (which leaves out shallow,
turquoise water: green, but bluer than red). Maps mark green areas, not single trees, so a
pixel is under vegetation cover where more than :data:`VEGETATION_SHARE` of the
:data:`VEGETATION_WINDOW_M` square about it is vegetation; where the map there is of the
palette's land class, it takes the park class's colour. A render paints tile by tile before the
overlaps are blended, each tile's window reflected at its edges, which its margin and the
blend hide (no seams measured: README, "Vegetation from the aerial"). Renders and web tiles
paint vegetation by default where the input is out of the model's domain
(:func:`geo_p2p.domain.out_of_domain`, decided once per job by the planner).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import RenderError
from ..render.mosaic import signed_to_u8
from .crisp import window_radius
from .palette import Palette

VEGETATION_INDEX = 0.10
"""Excess green over which an aerial pixel counts as vegetation (chosen among 0.02-0.12 by the
rule's IoU with the target maps' green on the screened New York and Moscow subsets of
benchmarks/travel.py)."""
VEGETATION_WINDOW_M = 22.5
"""Width in ground metres of the square over which vegetation cover is judged."""
VEGETATION_SHARE = 0.35
"""Share of vegetation pixels in that square over which a pixel is under vegetation cover
(window and share chosen on the same screen, and by eye on the Zurich housing estate)."""
LAND, GREEN = "land", "park"
"""The palette classes vegetation is taken from and painted as."""


def excess_green(aerial: np.ndarray) -> np.ndarray:
    """(2G - R - B) / (R + G + B) of an (H, W, 3) uint8 RGB image, float32 in [-1, 2].

    >>> index = excess_green(np.array([[[60, 120, 50], [9, 9, 9]]], np.uint8))
    >>> [round(float(v), 3) for v in index[0]]
    [0.563, 0.0]
    """
    x = aerial.astype(np.float32)
    return (2 * x[..., 1] - x[..., 0] - x[..., 2]) / (x.sum(axis=-1) + 1)


def is_vegetation(aerial: np.ndarray) -> np.ndarray:
    """(H, W) bool: the vegetation pixels of an (H, W, 3) uint8 RGB image.

    >>> is_vegetation(np.array([[[60, 120, 50], [60, 140, 120], [100, 100, 100]]], np.uint8))
    array([[ True, False, False]])
    """
    return (excess_green(aerial) > VEGETATION_INDEX) & (aerial[..., 2] <= aerial[..., 0])


def vegetation_cover(
    aerial: np.ndarray, radius: int, valid: np.ndarray | None = None
) -> np.ndarray:
    """(H, W) bool: the pixels of an (H, W, 3) uint8 RGB image more than
    :data:`VEGETATION_SHARE` of whose ``(2 radius + 1)^2`` square is vegetation, the image
    reflected at its edges (radius 0: the vegetation pixels themselves). With ``valid`` ((H, W)
    bool), the share is of the square's valid pixels, and invalid ones are never under cover."""
    vegetation = is_vegetation(aerial)
    if valid is not None and valid.all():
        valid = None
    if valid is not None:
        vegetation &= valid
    if radius == 0:
        return vegetation
    counts = _box_sums(vegetation, radius)
    if valid is None:
        return counts > VEGETATION_SHARE * (2 * radius + 1) ** 2
    return valid & (counts > VEGETATION_SHARE * _box_sums(valid, radius))


def _box_sums(mask: np.ndarray, radius: int) -> np.ndarray:
    """(H, W) int64: the True pixels of each ``(2 radius + 1)^2`` square of an (H, W) bool
    mask, reflected at its edges (an integral image)."""
    size = 2 * radius + 1
    padded = np.pad(mask, radius, mode="reflect").astype(np.int64)
    table = np.zeros((padded.shape[0] + 1, padded.shape[1] + 1), np.int64)
    table[1:, 1:] = padded.cumsum(axis=0).cumsum(axis=1)
    inner, outer = table[size:], table[:-size]
    return inner[:, size:] - outer[:, size:] - inner[:, :-size] + outer[:, :-size]


def paints_vegetation(palette: Palette | None) -> bool:
    """Whether ``palette`` has the land and park classes vegetation needs."""
    return palette is not None and LAND in palette.names and GREEN in palette.names


def check_vegetation_palette(palette: Palette | None) -> Palette:
    """``palette``; a RenderError (a ValueError) unless it :func:`paints_vegetation`."""
    if palette is None or not paints_vegetation(palette):
        raise RenderError(
            f"--vegetation needs a model whose card names {LAND!r} and {GREEN!r} map classes",
            "--vegetation",
        )
    return palette


@dataclass(frozen=True, eq=False)
class Vegetation:
    """How a render paints vegetation: the map's palette and the cover window's radius in
    pixels (:meth:`at` a ground resolution)."""

    palette: Palette
    radius: int

    @classmethod
    def at(cls, palette: Palette | None, gsd: float | None) -> Vegetation:
        """Vegetation for maps of ``palette`` drawn at ``gsd`` metres per pixel (None: the
        window taken as pixels); a RenderError without land and park classes."""
        return cls(check_vegetation_palette(palette), window_radius(VEGETATION_WINDOW_M, gsd))

    def mask(
        self, aerial: np.ndarray, map_: np.ndarray, valid: np.ndarray | None = None
    ) -> np.ndarray:
        """(H, W) bool: the pixels of ``map_`` ((H, W, 3) uint8, drawn from ``aerial``, the same
        shape) that are land in the palette and under vegetation cover in ``aerial`` (judged
        over its ``valid`` pixels, (H, W) bool, where given)."""
        land = self.palette.classify(map_) == self.palette.index(LAND)
        return land & vegetation_cover(aerial, self.radius, valid)

    def paint(self, aerial: np.ndarray, map_: np.ndarray) -> np.ndarray:
        """``map_`` with its :meth:`mask` in the park class's colour (a new array)."""
        out = map_.copy()
        out[self.mask(aerial, map_)] = self.palette.colours[self.palette.index(GREEN)]
        return out

    def paint_tile(self, aerial: np.ndarray, values: np.ndarray, valid: np.ndarray) -> None:
        """Paint a translated tile in place, in the generator's range: ``aerial`` (3, T, T) and
        ``values`` (3, T, T), float32 in [-1, 1] (a render's model input and output), cover
        judged over the tile's ``valid`` pixels ((T, T) bool: no-data fill and the mirror
        beyond the raster left out)."""
        rgb = signed_to_u8(values).transpose(1, 2, 0)
        mask = self.mask(signed_to_u8(aerial).transpose(1, 2, 0), rgb, valid)
        colour = self.palette.colours[self.palette.index(GREEN)]
        values[:, mask] = (colour.astype(np.float32) / np.float32(127.5) - 1)[:, None]
