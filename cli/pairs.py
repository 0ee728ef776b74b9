"""``geo-p2p pairs``: training pairs from an aerial raster and a map raster of the same area."""

from __future__ import annotations

from pathlib import Path

import click

from . import options as o


@click.command()
@click.argument("aerial", type=o.RasterInput())
@click.argument("map_raster", metavar="MAP", type=o.RasterInput(asset=False))
@o.asset
@o.output(
    "Folder to create: train/ and val/ pair PNGs and dataset.json.",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
)
@click.option(
    "--gsd",
    type=click.FloatRange(0, min_open=True),
    help="Ground resolution of the pairs, metres per pixel [default: the aerial's own]. "
    "To fine-tune the bundled model, 0.9 (what it was trained at).",
)
@click.option(
    "--size", default=256, show_default=True, type=click.IntRange(32), help="Window side, px."
)
@click.option(
    "--stride", type=click.IntRange(1), help="Step between windows, px [default: --size]."
)
@click.option(
    "--val-fraction",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1, max_open=True),
    help="Share of the pairs held out in val/, taken as whole blocks of 4x4 windows.",
)
@click.option(
    "--min-valid",
    default=0.95,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Skip windows with less than this share of valid pixels in either raster.",
)
@o.aoi
@click.option("--seed", default=0, show_default=True, help="Seed of the choice of val blocks.")
@o.overwrite
@o.reports_errors("pairs")
def pairs(aerial: str, map_raster: str, output: Path, **options: object) -> None:
    """Cut side-by-side AERIAL | MAP pair images for `geo-p2p train` from two rasters.

    The rasters may differ in CRS, resolution and extent: both are read onto one grid in
    AERIAL's CRS, over the area they share. Validation pairs are whole blocks apart from the
    training ones. Then: geo-p2p train OUTPUT --init default.
    """
    from geo_p2p.pairs import make_pairs

    o.quiet_libraries()
    click.echo(str(make_pairs(aerial, map_raster, output, **options)))  # type: ignore[arg-type]
