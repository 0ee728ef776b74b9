"""Planning a web tile pyramid: its options, the zooms, the tiles per zoom, the model tiles and
their estimated time, and the guards against pyramids nobody asked for."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..aoi import AreaOfInterest
from ..domain import domain_warnings
from ..errors import RenderError
from ..mapclasses.crisp import speckle_radius
from ..mapclasses.palette import Palette
from ..mapclasses.vegetation import Vegetation, paints_vegetation
from ..progress import duration
from ..raster import Source, inspect_source, require_georeferencing
from ..render.engine import SMALL_JOB_TILES
from ..render.options import DEFAULT_MAX_TILES, MAX_UPSAMPLING, Style, check_map_style
from ..render.planner import Domain, Plan, domain_check, grid_tiles
from ..render.translator import Translator
from ..run.journal import fingerprint
from .codec import check_format
from .mercator import (
    MAX_ZOOM,
    WEB_TILE,
    ZOOM_SPAN,
    TileRange,
    area_on,
    coverage,
    default_zooms,
    footprint,
    lowest_zoom,
    tile_source,
    zoom_for_resolution,
)

DEFAULT_ATTRIBUTION = "Translated by geo-p2p (pix2pix)"
CONTAINER_FILES = (".mbtiles", ".pmtiles")
GEOREFERENCING_NEEDED = (
    "web tiles need a CRS and a geotransform (add them with gdal_edit.py or gdalwarp first)"
)


@dataclass(frozen=True)
class TilesOptions:
    """What ``geo-p2p tiles`` makes: ``zooms`` (min, max; default from the model's ground
    resolution, see :func:`plan_tiles`), ``fmt`` (png, webp or jpeg), ``bands``, ``scale`` and
    ``aoi`` (as for a render), ``style``, ``speckle`` and ``vegetation`` (as for a render),
    ``with_input`` (also tile the input under ``dst/input`` for the viewer's swipe; default: for
    a folder, when translating), ``attribution``, ``overwrite``, and the guards ``force`` and
    ``max_tiles``."""

    zooms: tuple[int, int] | None = None
    fmt: str = "png"
    bands: tuple[int, ...] | None = None
    scale: tuple[float, float] | None = None
    aoi: str | None = None
    style: Style = "painted"
    speckle: float | None = None
    vegetation: bool | None = None
    with_input: bool | None = None
    attribution: str = DEFAULT_ATTRIBUTION
    overwrite: bool = False
    force: bool = False
    max_tiles: int = DEFAULT_MAX_TILES

    def __post_init__(self) -> None:
        check_map_style(self.style, self.speckle)

    @classmethod
    def build(cls, options: TilesOptions | None = None, **keywords: Any) -> TilesOptions:
        """``options`` with ``keywords`` replacing some of its fields."""
        base = options if options is not None else cls()
        return dataclasses.replace(base, **keywords) if keywords else base


@dataclass(frozen=True)
class TilePlan(Plan):
    """What :func:`make_tiles` will do: tiles per zoom and layer, model tiles, an estimate, and
    how unlike the model's training imagery the input looks."""

    zooms: tuple[int, int]
    zoom_reason: str
    tiles: dict[int, int]
    """Tiles per zoom of one layer (the footprint's coverage)."""
    layers: int
    done: int
    model_tiles: int
    seconds: float | None
    """Estimated model time (None: not measured, for jobs too small to be worth it)."""
    vegetation: bool | None = None
    """Whether vegetation is painted (``--vegetation``, or by default where the input is out of
    the model's domain); None: no model that can paint it."""
    domain_distance: float | None = None
    """How unlike the model's training imagery the input looks, on the max zoom's grid (see
    :func:`~geo_p2p.render.planner.domain_check`; None: not measured)."""
    domain_threshold: float | None = None
    """The distance above which the input is out of the model's domain."""
    model: str | None = None
    """The model, as ``geo-p2p train --init`` takes it: "default" or its directory (None: none,
    ``--map``)."""
    model_gsd: float | None = None
    """The model's ground resolution in metres per pixel, for the warning's advice."""

    @property
    def total(self) -> int:
        return sum(self.tiles.values()) * self.layers

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready values, the total and the estimate in seconds included."""
        return {**asdict(self), "total": self.total}

    def line(self) -> str:
        """The plan in one line, as ``geo-p2p tiles`` logs it before the first tile."""
        per_zoom = " ".join(f"{z}:{n}" for z, n in sorted(self.tiles.items()))
        layers = f" x {self.layers} layers (map, input)" if self.layers > 1 else ""
        done = f", {self.done} done" if self.done else ""
        estimate = "no estimate" if self.seconds is None else f"about {duration(self.seconds)}"
        green = "; vegetation painted from the aerial" if self.vegetation else ""
        return (
            f"zooms {self.zooms[0]}-{self.zooms[1]} ({self.zoom_reason}); tiles per zoom "
            f"{per_zoom}{layers} = {self.total}{done}; {self.model_tiles} model tiles at zoom "
            f"{self.zooms[1]}, {estimate} of model time{green}"
        )

    def warnings(self) -> list[str]:
        """What the user should know before the tiles: an input out of the model's domain."""
        if self.model is None:  # --map: no model, nothing measured
            return []
        distance, threshold = self.domain_distance, self.domain_threshold
        return domain_warnings(distance, threshold, self.vegetation, self.model_gsd, self.model)


@dataclass(frozen=True)
class TilesJob:
    """A tile pyramid laid out by :func:`plan_tiles`, ready for
    :func:`~geo_p2p.webtiles.make.make_tiles`."""

    src: str
    """The input as given (a path, URL or STAC Item)."""
    dst: Path
    options: TilesOptions
    bounds: tuple[float, float, float, float]
    ranges: dict[int, TileRange]
    """The tiles of each zoom."""
    source: Source
    """The input read onto the max zoom's pixel grid."""
    area: AreaOfInterest | None
    with_input: bool
    stamp: dict[str, object]
    """The run's fingerprint: a resume must match it."""
    plan: TilePlan
    crisp: tuple[Palette, int] | None
    """The map's palette and the majority window's radius, for the crisp style."""
    vegetation: Vegetation | None
    """How vegetation is painted (``--vegetation``, or by default out of the model's domain),
    or None."""


def identity_translator(batch_size: int = 8) -> Translator:
    """The translator that only tiles: identity module, 256 px tiles without overlap."""
    return Translator(
        torch.nn.Identity(), tile=WEB_TILE, overlap=0, margin=0, batch_size=batch_size, device="cpu"
    )


def plan_tiles(
    src: str | Path,
    dst: str | Path,
    translator: Translator | None = None,
    options: TilesOptions | None = None,
    **keywords: Any,
) -> TilesJob:
    """Lay out what :func:`~geo_p2p.webtiles.make.make_tiles` would do with ``options`` (or
    ``keywords`` over them), writing nothing (``geo-p2p tiles --dry-run``).

    By default the max zoom is the zoom closest to the model's ground resolution (or the
    input's) at the raster's centre, the min the highest zoom at which the footprint fits one
    tile, or max - 6 if higher. Refuses, with a one-line RenderError: an input without
    georeferencing; default zooms that would resample the input more than 4 times finer than it
    is (unless ``force``); more than ``max_tiles`` model or web tiles. The model's rate is
    measured (a few batches) only for jobs of more than 200 model tiles, as for a render; how
    unlike its training imagery the input looks, always, by the render's
    :func:`~geo_p2p.render.planner.domain_check` but on the max zoom's grid: for the plan, its
    warning and the default of ``vegetation``.
    """
    o = TilesOptions.build(options, **keywords)
    dst = Path(dst)
    check_format(o.fmt)
    require_georeferencing(src, GEOREFERENCING_NEEDED)
    native = inspect_source(src, o.bands, o.scale, "native")
    native_area = AreaOfInterest(o.aoi, native) if o.aoi else None
    bounds = footprint(native, native_area)
    lat = (bounds[1] + bounds[3]) / 2
    gsd = translator.gsd if translator is not None and translator.gsd else None
    metres = gsd or native.ground_resolution()
    zooms, reason = _zooms(o.zooms, bounds, metres, lat, gsd is not None)
    ranges = {z: coverage(bounds, z) for z in range(zooms[0], zooms[1] + 1)}
    source = tile_source(native, ranges[zooms[1]], lat)
    container = dst.suffix.lower() in CONTAINER_FILES
    with_input = translator is not None and not container if o.with_input is None else o.with_input
    if with_input and container:
        raise RenderError("the input layer is written only beside a folder", "--with-input")
    counts = {z: len(r) for z, r in ranges.items()}
    model = translator or identity_translator()
    asked = o.zooms is not None or o.force
    model_tiles = _check_tiles(src, native, source, asked, model, counts, o.max_tiles)
    # As render: the rate is measured (a few batches) only where the job is much larger.
    seconds = 0.0 if translator is None else None
    if translator is not None and model_tiles > SMALL_JOB_TILES:
        seconds = model_tiles / translator.measure_rate()
    settings = {
        "zooms": zooms,
        "format": o.fmt,
        "bands": native.bands,
        "scale": native.scale,
        "aoi": o.aoi,
        "input_layer": with_input,
    }
    crisp = None
    if o.style == "crisp":
        crisp = _crisp(translator, o, source.ground_resolution())
        settings.update(style=o.style, speckle=crisp[1], palette=crisp[0].as_card())
    palette = None if translator is None else translator.palette
    domain = Domain()
    if translator is not None:  # on the max zoom's grid, which the model translates
        domain = domain_check(source, translator.imagery, translator.tile)
    vegetation = None
    if domain.paints(o.vegetation, palette):
        vegetation = _vegetation(translator, source.ground_resolution())
    if vegetation is not None:
        settings.update(vegetation=vegetation.radius, palette=vegetation.palette.as_card())
    stamp = fingerprint(src, None if translator is None else translator.module, settings)
    layers = 2 if with_input else 1
    plan = TilePlan(
        zooms,
        reason,
        counts,
        layers,
        0,
        model_tiles,
        seconds,
        vegetation=vegetation is not None if paints_vegetation(palette) else None,
        domain_distance=domain.distance,
        domain_threshold=domain.threshold,
        model=None if translator is None else translator.model,
        model_gsd=gsd,
    )
    area = area_on(native_area, native, source) if native_area else None
    job = (str(src), dst, o, bounds, ranges, source, area, with_input, stamp, plan, crisp)
    return TilesJob(*job, vegetation)


def _vegetation(translator: Translator | None, gsd: float) -> Vegetation:
    """How to paint vegetation at ``gsd``; a RenderError without a model whose palette can."""
    if translator is None:
        raise RenderError(
            "--vegetation needs a model (not --map, which only tiles)", "--vegetation"
        )
    return Vegetation.at(translator.palette, gsd)


def _crisp(translator: Translator | None, options: TilesOptions, gsd: float) -> tuple[Palette, int]:
    """The palette and majority window radius of the crisp style; a RenderError without a
    model that knows its map's classes."""
    if translator is None or translator.palette is None:
        raise RenderError(
            "--style crisp needs a model whose card names its map's classes (not --map, which "
            "only tiles)",
            "--style",
        )
    return translator.palette, speckle_radius(options.speckle, gsd)


def _check_tiles(
    src: str | Path,
    native: Source,
    source: Source,
    asked: bool,
    model: Translator,
    counts: dict[int, int],
    max_tiles: int,
) -> int:
    """The guards of :func:`plan_tiles` (``asked``: zooms given or ``--force``); returns the
    number of model tiles at the max zoom."""
    zoom = max(counts)
    finer = native.ground_resolution() / source.ground_resolution()
    if finer > MAX_UPSAMPLING and not asked:
        raise RenderError(
            f"{src} is {native.ground_resolution():.3g} m per pixel: zoom {zoom}, the model's "
            f"resolution, would resample it {finer:.0f} times finer, {counts[zoom]:,} tiles of "
            "invented detail. Pass --zoom MIN-MAX with a lower max zoom, or --force to make "
            "them anyway",
            "--zoom",
        )
    web_tiles = sum(counts.values())
    model_tiles = 0
    if web_tiles <= max_tiles:  # else too many anyway: no need to count them
        model_tiles = grid_tiles(source.height, source.width, model.tile, model.overlap)
    if max(web_tiles, model_tiles) > max_tiles:
        raise RenderError(
            f"zooms {min(counts)}-{zoom} of {src} make {max(web_tiles, model_tiles):,} tiles, "
            f"more than --max-tiles {max_tiles:,}: pass --zoom MIN-MAX with a lower max zoom, "
            "or a larger --max-tiles if you mean it",
            "--max-tiles",
        )
    return model_tiles


def _zooms(
    zooms: tuple[int, int] | None,
    bounds: tuple[float, float, float, float],
    metres: float,
    lat: float,
    model: bool,
) -> tuple[tuple[int, int], str]:
    lowest = lowest_zoom(bounds)
    if zooms is not None:
        if not 0 <= zooms[0] <= zooms[1] <= MAX_ZOOM:
            raise RenderError(f"zooms must be MIN-MAX within 0-{MAX_ZOOM}, got {zooms}", "--zoom")
        if zooms[0] < lowest:
            raise RenderError(
                f"the footprint crosses the antimeridian and wraps around the world below zoom "
                f"{lowest}: choose a min zoom of {lowest} or more",
                "--zoom",
            )
        return zooms, "as asked"
    top = zoom_for_resolution(metres, lat)
    whose = "the model's" if model else "the input's"
    low, top = default_zooms(bounds, top)
    rule = f"max - {ZOOM_SPAN}"
    if low != max(top - ZOOM_SPAN, 0):
        rule = "the lowest that does not wrap" if bounds[2] > 180 else "the footprint in one tile"
    return (low, top), f"max: {whose} {metres:.2g} m/px at {lat:.2f} deg; min: {rule}"
