"""``geo-p2p render``: translate a georeferenced raster into a map-style GeoTIFF."""

from __future__ import annotations

import json
import logging
import math

import click

from geo_p2p.plan import DEFAULT_MAX_TILES, MAX_UPSAMPLING
from geo_p2p.regions import REGION_SIZE, ModelSpec, render_regions
from geo_p2p.render import RenderError

from .inputs import RasterInput, asset_option
from .options import (
    as_click_errors,
    check_dry_run,
    device_option,
    dry_run_options,
    fail_cleanly,
    precision_option,
)


def _numbers(ctx: click.Context, param: click.Parameter, value: str | None, kind: type):
    if value is None:
        return None
    try:
        return tuple(kind(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from None


def _bands(ctx: click.Context, param: click.Parameter, value: str | None):
    return _numbers(ctx, param, value, int)


def _scale(ctx: click.Context, param: click.Parameter, value: str | None):
    scale = _numbers(ctx, param, value, float)
    if scale is not None and len(scale) != 2:
        raise click.BadParameter(f"expected MIN,MAX, got {value!r}")
    return scale


def _resolution(ctx: click.Context, param: click.Parameter, value: str):
    if value in ("auto", "native"):
        return value
    try:
        metres = float(value)
    except ValueError:
        metres = math.nan
    if not (math.isfinite(metres) and metres > 0):
        raise click.BadParameter(f"expected auto, native or metres per pixel, got {value!r}")
    return metres


def _creation_options(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]):
    options = {}
    for item in value:
        name, sep, setting = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}")
        options[name.strip()] = setting.strip()
    return options


PLAN_OPTIONS = (
    "bands",
    "scale",
    "resolution",
    "aoi",
    "allow_ungeoreferenced",
    "force",
    "max_tiles",
)
"""The render options that :meth:`Translator.plan` takes."""


@click.command(short_help="Translate a georeferenced raster into a map-style GeoTIFF.")
@click.argument("input", type=RasterInput())
@asset_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Output GeoTIFF (required unless --dry-run).",
)
@click.option(
    "--model",
    type=click.Path(exists=True, file_okay=False),
    help="Model directory from 'geo-p2p train' (default: the bundled model).",
)
@click.option("--bands", callback=_bands, metavar="R,G,B", help="1 or 3 band numbers, e.g. 1,2,3.")
@click.option(
    "--scale", callback=_scale, metavar="MIN,MAX", help="Input values mapped to 0 and 255."
)
@click.option(
    "--resolution",
    default="auto",
    metavar="auto|native|M",
    show_default=True,
    callback=_resolution,
    help="auto (the model's ground resolution), native, or metres per pixel.",
)
@click.option("--aoi", metavar="FILE|WKT", help="Polygon limiting the render (GeoJSON or WKT).")
@click.option(
    "--allow-ungeoreferenced", is_flag=True, help="Translate a raster without CRS or transform."
)
@click.option("--overlap", type=click.IntRange(0), help="Tile overlap in pixels [tile/8].")
@click.option("--margin", type=click.IntRange(0), help="Tile border discarded [tile/32].")
@click.option(
    "--batch-size",
    default=8,
    show_default=True,
    type=click.IntRange(1),
    help="Tiles per forward pass (on a CPU without --compile the output does not depend on it).",
)
@device_option
@precision_option
@click.option(
    "--backend",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "torch", "onnxruntime"]),
    help="What runs the generator. auto: onnxruntime where installed (the onnx extra) and "
    "faster on this CPU in a probe before the render, else torch (torch with --resume or a "
    "cluster, so that every region runs the same kernels). onnxruntime: CPU, fp32.",
)
@click.option("--alpha", is_flag=True, help="No-data as an alpha band, not an internal mask.")
@click.option("--cog", is_flag=True, help="Write a Cloud-Optimized GeoTIFF with overviews.")
@click.option(
    "--co",
    "creation_options",
    multiple=True,
    callback=_creation_options,
    metavar="NAME=VALUE",
    help="GDAL creation option (repeatable); the default output is COMPRESS=ZSTD, ZSTD_LEVEL=1, "
    "PREDICTOR=2 (COMPRESS=DEFLATE for readers without ZSTD).",
)
@click.option(
    "--quicklook",
    type=click.Path(dir_okay=False),
    metavar="PNG",
    help="Also write a small input | output preview.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@dry_run_options("sizes, resolutions, CRS, tiles, time estimated from a rate measured here")
@click.option(
    "--force",
    is_flag=True,
    help=f"Accept an output with more than {MAX_UPSAMPLING:g} times the input's pixels per "
    "axis from --resolution auto (refused otherwise: a coarse input, mostly invented detail).",
)
@click.option(
    "--max-tiles",
    default=DEFAULT_MAX_TILES,
    show_default=True,
    type=click.IntRange(1),
    help="Refuse renders of more model tiles than this (about 4 h for the bundled model on a "
    "2-core CPU).",
)
@click.option(
    "--compile",
    "torch_compile",
    is_flag=True,
    help="Compile the generator first (torch.compile): about 1.2x faster on a CPU after "
    "10-25 s of compiling (2 s once cached), so worth it for rasters of several thousand "
    "tiles. Needs a C++ compiler on a CPU.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Render resumably: keep the partial output and a journal beside OUTPUT, and continue "
    "an interrupted render of the same input, model and options.",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Render on the Dask cluster of this scheduler (tcp://HOST:8786); the input and the "
    "model must be readable by every worker. Needs geo-p2p[distributed].",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    help="Render on a Dask cluster of N processes started on this machine (one thread each).",
)
@click.option(
    "--region-size",
    default=REGION_SIZE,
    show_default=True,
    type=click.IntRange(512),
    help="Side in pixels (a multiple of 512) of the regions that --resume, --scheduler and "
    "--workers render.",
)
@fail_cleanly
def render(
    input: str,
    output: str | None,
    model: str | None,
    overlap: int | None,
    margin: int | None,
    batch_size: int,
    device: str,
    precision: str,
    torch_compile: bool,
    dry_run: bool,
    as_json: bool,
    backend: str,
    resume: bool,
    scheduler: str | None,
    workers: int | None,
    region_size: int,
    **options: object,
) -> None:
    """Translate the raster INPUT into a map-style GeoTIFF, keeping its georeferencing.

    Before the first tile it logs the plan: input and output size and ground resolution, CRS,
    tiles and the estimated time. Inputs georeferenced by ground control points or RPCs, or
    with a rotated geotransform, are warped north-up on the fly.

    \b
    geo-p2p render area.tif -o map.tif
    geo-p2p render area.tif -o map.tif --aoi parcel.geojson --cog
    geo-p2p render scene.tif -o map.tif --dry-run --json
    geo-p2p render https://host/scene.tif -o map.tif   (s3://, /vsi... paths, STAC items too)
    """
    check_dry_run(dry_run, as_json)
    if output is None and not dry_run:
        raise click.BadParameter("give the output GeoTIFF", param_hint="-o/--output")
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("rasterio").setLevel(logging.WARNING)  # GDAL's errors arrive as ours
        logging.getLogger("distributed").setLevel(logging.WARNING)  # a local cluster's chatter
    # Regions (--resume, a cluster) use torch unless told: "auto" could choose differently
    # on each worker, or on resuming, and the backends differ in the last bits.
    region_backend = "torch" if backend == "auto" else backend
    spec = ModelSpec(
        model, overlap, margin, batch_size, device, precision, torch_compile, region_backend
    )
    with as_click_errors("render"):
        if dry_run:
            translator = spec.load(backend=backend)
            plan_options = {k: options[k] for k in PLAN_OPTIONS}
            plan = translator.plan(input, **plan_options)  # type: ignore[arg-type]
            click.echo(json.dumps(plan.as_dict(), indent=2) if as_json else plan.line())
        elif scheduler is not None or workers is not None:
            _render_on_cluster(
                spec, input, output, scheduler, workers, resume, region_size, options
            )
        elif resume:
            render_regions(spec, input, output, resume=True, region_size=region_size, **options)  # type: ignore[arg-type]
        else:
            spec.load(backend=backend).render(input, output, **options)  # type: ignore[arg-type]


def _render_on_cluster(
    spec: ModelSpec,
    input: str,
    output: str,
    scheduler: str | None,
    workers: int | None,
    resume: bool,
    region_size: int,
    options: dict[str, object],
) -> None:
    if scheduler is not None and workers is not None:
        raise RenderError("give --scheduler or --workers, not both")
    from geo_p2p.distributed import dask_client, dask_compute

    with dask_client(scheduler, workers) as client:
        render_regions(
            spec,
            input,
            output,
            compute=dask_compute(client, spec),
            resume=resume,
            region_size=region_size,
            **options,  # type: ignore[arg-type]
        )
