"""What a render will do, said before it starts, and the guards against jobs nobody asked for.

A :class:`RenderPlan` gives the input's and the output's size and ground resolution, the CRS,
how the input is brought onto the output grid, the number of model tiles and an estimate of
the time from a rate measured on the spot. :func:`check_job` refuses, with a one-line error
that says what to do, outputs that would mostly be invented detail (much finer than the input)
and outputs too large to finish in any sane time.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import shapely

from .raster import RenderError, Resolution, Source
from .tiling import grid_starts

MAX_UPSAMPLING = 4.0
"""``--resolution auto`` refuses outputs with more than this many times the input's pixels per
axis (unless forced)."""
DEFAULT_MAX_TILES = 1_000_000
"""Default limit on the model tiles of one render: about 4 hours for the bundled model on a
2-core CPU (70 tiles/s), minutes on a GPU. ``--max-tiles`` raises it."""
MAX_SIDE = 2**31 - 1
"""Largest output side in pixels: GDAL's raster dimensions are 32-bit signed integers."""


@dataclass(frozen=True)
class RenderPlan:
    """What a render does: sizes (width, height) in pixels, ground resolutions in metres per
    pixel (None where not measurable), tiles, and the estimated time where measured."""

    input: str
    input_size: tuple[int, int]
    input_gsd: float | None
    output_size: tuple[int, int]
    gsd: float | None
    crs: str | None
    warp: str | None
    """How the input reaches the output grid: None (as it is), resampled, or warped."""
    tiles: int
    tile: int
    overlap: int
    device: str
    rate: float | None
    """Tiles per second measured on this machine just before, with this model and options."""

    @property
    def seconds(self) -> float | None:
        """Estimated time of the render (None when no rate was measured)."""
        return None if self.rate is None else self.tiles / self.rate

    def line(self) -> str:
        """The plan in one line, as render logs it before the first tile."""
        out = f"{_size(self.output_size)} at {_gsd(self.gsd)}"
        if self.crs:
            out += f" in {self.crs}"
        how = f", {self.warp}" if self.warp else ""
        return (
            f"plan: {self.input} {_size(self.input_size)} at {_gsd(self.input_gsd)} -> {out}"
            f"{how}; {self.tiles:,} tiles on {self.device}; {self.estimate()}"
        )

    def estimate(self) -> str:
        """The estimated time and the rate it comes from, in words."""
        if self.seconds is None:
            return "no estimate"
        return f"about {duration(self.seconds)} at {self.rate:.3g} tiles/s measured here"

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready values, with the estimate in seconds."""
        return {**asdict(self), "seconds": self.seconds}


def check_job(
    source: Source,
    resolution: Resolution,
    tile: int,
    overlap: int,
    force: bool,
    max_tiles: int,
    area: shapely.Geometry | None = None,
) -> int:
    """Refuse a render that nobody would want by accident; returns its number of grid tiles.

    With ``resolution="auto"``, an output with more than :data:`MAX_UPSAMPLING` times the
    input's pixels per axis is refused unless ``force``. Outputs wider or higher than
    :data:`MAX_SIDE` and grids of more than ``max_tiles`` tiles are refused always.
    """
    height, width = source.input_shape
    size = f"{_size((source.width, source.height))} px"
    if max(source.width, source.height) > MAX_SIDE:
        raise RenderError(
            f"{source.path} would become a {size} output, past GeoTIFF's limit of "
            f"{MAX_SIDE:,} px on a side: choose a coarser --resolution (in metres per pixel)",
            "--resolution",
        )
    tiles = grid_tiles(source.height, source.width, tile, overlap, area)
    factor = max(source.width / width, source.height / height)
    if resolution == "auto" and factor > MAX_UPSAMPLING and not force:
        raise RenderError(
            f"{source.path} is {_gsd(source.input_gsd)} per pixel and the model expects "
            f"{_gsd(source.gsd)}: --resolution auto would resample its {_size((width, height))} "
            f"px {factor:.0f} times to {size} ({tiles:,} tiles) of invented detail. Pass "
            "--resolution native to keep its grid, --resolution M to choose the metres per "
            "pixel, or --force to render it anyway",
            "--resolution",
        )
    if tiles > max_tiles:
        raise RenderError(
            f"{source.path} would become a {size} output of {tiles:,} tiles, more than "
            f"--max-tiles {max_tiles:,}: choose a coarser --resolution, or pass a larger "
            "--max-tiles if you mean it",
            "--max-tiles",
        )
    return tiles


def grid_tiles(
    height: int, width: int, tile: int, overlap: int, area: shapely.Geometry | None = None
) -> int:
    """How many model tiles cover ``height`` x ``width`` px (those meeting the bounding box of
    ``area``, in pixels, if given), counted without laying them out."""
    rows, cols = grid_starts(height, width, tile, overlap, area)
    return len(rows) * len(cols)


def duration(seconds: float) -> str:
    """A duration in words, to two units.

    >>> duration(42.3), duration(3725), duration(2 * 86400 + 7200)
    ('42 s', '1 h 2 min', '2 days 2 h')
    """
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} days {s % 86400 // 3600} h"


def _size(size: tuple[int, int]) -> str:
    return f"{size[0]:,}x{size[1]:,}"


def _gsd(gsd: float | None) -> str:
    if gsd is None or not math.isfinite(gsd):
        return "an unknown resolution"
    return f"{gsd / 1000:.3g} km" if gsd >= 1000 else f"{gsd:.3g} m"
