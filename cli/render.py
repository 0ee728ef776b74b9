"""``geo-p2p render``: translate a georeferenced raster into a map-style GeoTIFF."""

from __future__ import annotations

from typing import Any

import click

from geo_p2p.render.options import MAX_UPSAMPLING, RenderOptions
from geo_p2p.render.tiling import REGION_SIZE

from . import options as o


@click.command(short_help="Translate a georeferenced raster into a map-style GeoTIFF.")
@o.raster_input
@o.asset
@o.output("Output GeoTIFF (required unless --dry-run).", type=click.Path(dir_okay=False))
@o.model_dir
@o.bands
@o.scale
@o.resolution
@o.aoi
@o.allow_ungeoreferenced
@o.overlap
@o.margin
@o.batch_size(
    "Tiles per forward pass (on a CPU without --compile the output does not depend on it)."
)
@o.device
@o.precision
@click.option(
    "--backend",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "torch", "onnxruntime"]),
    help="What runs the generator. auto: onnxruntime where installed (the onnx extra) and "
    "faster on this CPU in a probe before the render, else torch (torch with --resume or a "
    "cluster, so that every region runs the same kernels). onnxruntime: CPU, fp32.",
)
@o.alpha
@o.cog
@o.creation_options
@o.quicklook
@o.style
@o.speckle
@o.vegetation
@o.classes
@o.vectors
@o.overwrite
@o.dry_run("sizes, resolutions, CRS, tiles, time estimated from a rate measured here")
@o.force(
    f"Accept an output with more than {MAX_UPSAMPLING:g} times the input's pixels per axis from "
    "--resolution auto (refused otherwise: a coarse input, mostly invented detail)."
)
@o.max_tiles(
    "Refuse renders of more model tiles than this (about 4 h for the bundled model on a "
    "2-core CPU)."
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
@o.reports_errors("render")
def render(
    input: str,
    output: str | None,
    model: str | None,
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
    **options: Any,
) -> None:
    """Translate the raster INPUT into a map-style GeoTIFF, keeping its georeferencing.

    Before the first tile it logs the plan: input and output size and ground resolution, CRS,
    tiles and the estimated time. Inputs georeferenced by ground control points or RPCs, or
    with a rotated geotransform, are warped north-up on the fly.

    \b
    geo-p2p render area.tif -o map.tif
    geo-p2p render area.tif -o map.tif --aoi parcel.geojson --cog
    geo-p2p render scene.tif -o map.tif --dry-run --json
    geo-p2p render area.tif -o map.tif --style crisp --classes classes.tif --vectors map.gpkg
    geo-p2p render https://host/scene.tif -o map.tif   (s3://, /vsi... paths, STAC items too)
    """
    from geo_p2p.regions import ModelSpec, render_regions

    o.check_dry_run(dry_run, as_json)
    if output is None and not dry_run:
        raise click.BadParameter("give the output GeoTIFF", param_hint="-o/--output")
    o.quiet_libraries()
    render_options = RenderOptions(**options)
    # Regions (--resume, a cluster) use torch unless told: "auto" could choose differently
    # on each worker, or on resuming, and the backends differ in the last bits.
    region_backend = "torch" if backend == "auto" else backend
    spec = ModelSpec(model, batch_size, device, precision, torch_compile, region_backend)
    if dry_run:
        o.echo_plan(spec.load(backend=backend).plan(input, render_options), as_json)
    elif scheduler is not None or workers is not None:
        if scheduler is not None and workers is not None:
            raise o.InputError("give --scheduler or --workers, not both")
        from geo_p2p.distributed import dask_client, dask_compute

        o.quiet_libraries()  # again: importing Dask sets its own log levels
        with dask_client(scheduler, workers) as client:
            compute = dask_compute(client, spec)
            render_regions(spec, input, output, render_options, compute=compute, resume=resume)
    elif resume:
        render_regions(spec, input, output, render_options, resume=True)
    else:
        spec.load(backend=backend).render(input, output, render_options)
