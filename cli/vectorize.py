"""``geo-p2p vectorize``: a class raster as a GeoPackage of class polygons and road centrelines."""

from __future__ import annotations

from pathlib import Path

import click

from geo_p2p.mapclasses.vectorize import (
    DEFAULT_BLOCK,
    ROAD_CLASSES,
    VectorOptions,
)
from geo_p2p.mapclasses.vectorize import vectorize as run_vectorize

from . import options as o


@click.command(short_help="Class polygons and road centrelines from a class raster (GeoPackage).")
@click.argument("classes", type=click.Path(path_type=Path))
@o.output("GeoPackage to write.", required=True, type=click.Path(dir_okay=False, path_type=Path))
@o.overwrite
@click.option(
    "--simplify",
    type=click.FloatRange(0),
    default=VectorOptions.simplify,
    show_default=True,
    help="Simplification tolerance, ground metres (0: keep the pixel staircase).",
)
@click.option(
    "--min-area",
    type=click.FloatRange(0),
    default=VectorOptions.min_area,
    show_default=True,
    help="Drop polygons, and fill holes, smaller than this many square ground metres.",
)
@click.option(
    "--lines",
    default=",".join(ROAD_CLASSES),
    show_default=True,
    help="Classes thinned to centrelines, comma-separated ('' for no line layer).",
)
@click.option(
    "--block",
    type=click.IntRange(128),
    default=DEFAULT_BLOCK,
    show_default=True,
    help="Block side in pixels (memory follows it and the raster's width).",
)
@o.reports_errors("vectorize")
def vectorize(
    classes: Path,
    output: Path,
    overwrite: bool,
    simplify: float,
    min_area: float,
    lines: str,
    block: int,
) -> None:
    """Write CLASSES (a class raster from 'geo-p2p render --classes') as a GeoPackage.

    \b
    geo-p2p vectorize classes.tif -o map.gpkg
    geo-p2p vectorize classes.tif -o map.gpkg --simplify 2 --min-area 25 --lines road

    One polygon layer per class (fields class, value, area_m2; holes kept), and a line layer
    road_centrelines (length_m) of the road classes' skeleton, lines meeting at junctions; in
    the raster's CRS. Works in blocks, in bounded memory. Needs the vectors extra.
    """
    o.quiet_libraries()
    names = tuple(n.strip() for n in lines.split(",") if n.strip())
    options = VectorOptions(simplify=simplify, min_area=min_area, lines=names, block=block)
    summary = run_vectorize(classes, output, options, overwrite=overwrite)
    click.echo(str(summary))
