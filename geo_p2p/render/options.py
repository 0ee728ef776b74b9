"""The options of a render, in one frozen type built once (by the command line, or from the
keywords of the Python API) and passed everywhere: to the planner, the executors, the writer,
and the resume fingerprint."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from ..errors import RenderError
from ..raster import Resolution
from .tiling import OUTPUT_BLOCK, REGION_SIZE

MAX_UPSAMPLING = 4.0
"""``--resolution auto`` refuses outputs with more than this many times the input's pixels per
axis (unless forced)."""
Style = Literal["painted", "crisp"]
STYLES: tuple[Style, ...] = get_args(Style)
DEFAULT_MAX_TILES = 1_000_000
"""Default limit on the model tiles of one render: about 4 hours for the bundled model on a
2-core CPU (70 tiles/s), minutes on a GPU. ``--max-tiles`` raises it."""


def check_map_style(style: str, speckle: float | None) -> None:
    """Refuse a ``--style`` other than painted or crisp, and a negative ``--speckle``."""
    if style not in STYLES:
        raise RenderError(f"unknown style {style!r}: use painted or crisp", "--style")
    if speckle is not None and not speckle >= 0:
        raise RenderError(f"--speckle must be 0 or more metres, got {speckle}", "--speckle")


@dataclass(frozen=True)
class RenderOptions:
    """Everything that says what a render reads, writes and refuses, and how it lays out tiles.

    Input: ``bands`` (1-based; 3, or 1 to replicate; default red, green, blue by colour
    interpretation, else the first three), ``scale`` (input values mapped to 0 and 255; default
    for non-uint8 input a 2-98 % stretch), ``resolution`` ("auto": the model's ground
    resolution, "native", or metres per pixel), ``aoi`` (GeoJSON file or WKT polygon: tiles
    outside are skipped, pixels outside masked), ``allow_ungeoreferenced``.
    Output: ``alpha`` (no-data as an alpha band, not an internal mask), ``cog`` (a
    Cloud-Optimized GeoTIFF), ``creation_options`` (GDAL's, over the defaults), ``quicklook``
    (a small input | output PNG), ``overwrite``; the map's classes (the model card's): ``style``
    ("painted", the generator's colours, or "crisp", every pixel its class's colour),
    ``speckle`` (the crisp style's majority window in ground metres; None: the default),
    ``classes`` (also write a class raster there) and ``vectors`` (also write a GeoPackage of
    class polygons and road centrelines there); ``vegetation`` (paint the tree cover and lawns
    the model leaves as land in the park class's colour, see :mod:`geo_p2p.mapclasses.vegetation`;
    None: where the input is out of the model's domain and the model can).
    Guards: ``force`` (accept more than :data:`MAX_UPSAMPLING` times the input's pixels per axis
    from "auto"), ``max_tiles``.
    Layout: ``overlap`` and ``margin`` in pixels (None: the translator's), ``region_size`` (the
    side of the regions of resumable and distributed renders, a multiple of 512).
    """

    bands: tuple[int, ...] | None = None
    scale: tuple[float, float] | None = None
    resolution: Resolution = "auto"
    aoi: str | None = None
    allow_ungeoreferenced: bool = False
    alpha: bool = False
    cog: bool = False
    creation_options: Mapping[str, str] = field(default_factory=dict)
    quicklook: Path | None = None
    overwrite: bool = False
    style: Style = "painted"
    speckle: float | None = None
    classes: Path | None = None
    vectors: Path | None = None
    vegetation: bool | None = None
    force: bool = False
    max_tiles: int = DEFAULT_MAX_TILES
    overlap: int | None = None
    margin: int | None = None
    region_size: int = REGION_SIZE

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # normalised once, here: the type is frozen
        set_(self, "creation_options", dict(self.creation_options or {}))
        for name in ("quicklook", "classes", "vectors"):
            if getattr(self, name) is not None:
                set_(self, name, Path(getattr(self, name)))
        check_map_style(self.style, self.speckle)
        for name in ("bands", "scale"):
            if getattr(self, name) is not None:
                set_(self, name, tuple(getattr(self, name)))
        if self.region_size < OUTPUT_BLOCK or self.region_size % OUTPUT_BLOCK:
            raise RenderError(
                f"the region size must be a multiple of {OUTPUT_BLOCK}, got {self.region_size}",
                "--region-size",
            )

    @classmethod
    def build(cls, options: RenderOptions | None = None, **keywords: Any) -> RenderOptions:
        """``options`` with ``keywords`` replacing some of its fields (the Python API's way:
        ``translator.render(src, dst, cog=True)``); a TypeError names an unknown keyword."""
        base = options if options is not None else cls()
        return dataclasses.replace(base, **keywords) if keywords else base

    def changing_output(self, area_wkt: str | None) -> dict[str, object]:
        """The options that change the output's pixels or file, for the resume fingerprint;
        the area of interest as the polygon it became on the output grid (``area_wkt``). The
        plan's vegetation, decided from the input, is the caller's to add."""
        return {
            "bands": self.bands,
            "scale": self.scale,
            "resolution": self.resolution,
            "aoi": area_wkt,
            "alpha": self.alpha,
            "cog": self.cog,
            "creation_options": dict(self.creation_options),
            "region_size": self.region_size,
        }
