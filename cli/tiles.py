"""``geo-p2p tiles``: translate a raster into a web map (XYZ folder, MBTiles or PMTiles)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from geo_p2p.render.options import MAX_UPSAMPLING
from geo_p2p.webtiles import DEFAULT_ATTRIBUTION, MAX_ZOOM

from . import options as o


def _zoom(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    low, _, high = value.partition("-")
    try:
        zooms = int(low), int(high or low)
    except ValueError:
        raise click.BadParameter(f"expected MIN-MAX or one zoom, got {value!r}") from None
    if not 0 <= zooms[0] <= zooms[1] <= MAX_ZOOM:
        raise click.BadParameter(f"expected zooms 0 to {MAX_ZOOM}, MIN <= MAX; got {value!r}")
    return zooms


@click.command(short_help="Translate a raster into a web map: XYZ folder, MBTiles, PMTiles.")
@o.raster_input
@o.asset
@o.output(
    "A folder (z/x/y tiles, tilejson.json, index.html), *.mbtiles or *.pmtiles.", required=True
)
@click.option(
    "--zoom",
    "zooms",
    callback=_zoom,
    metavar="MIN-MAX",
    help="Zoom levels [max: closest to the model's resolution; min: the footprint in one "
    "tile, or max - 6 if higher].",
)
@click.option(
    "--format",
    "fmt",
    default="png",
    show_default=True,
    type=click.Choice(["png", "webp", "jpeg"]),
    help="Tile format (jpeg: no transparency where there is no data).",
)
@click.option("--map", "is_map", is_flag=True, help="INPUT is already a map: only tile it.")
@o.model_dir
@click.option(
    "--with-input/--no-input",
    default=None,
    help="Also tile the input, for the viewer's swipe [with a folder, when translating].",
)
@click.option("--attribution", default=DEFAULT_ATTRIBUTION, show_default=True)
@o.bands
@o.scale
@o.aoi
@o.style
@o.speckle
@o.vegetation
@o.batch_size()
@o.device
@o.precision
@o.overwrite
@click.option("--resume", is_flag=True, help="Finish an interrupted run (same settings).")
@o.dry_run("zooms, tiles per zoom, model tiles, time estimated from a rate measured here")
@o.force(
    f"Accept a default max zoom more than {MAX_UPSAMPLING:g} times finer than the input "
    "(refused otherwise: a coarse input, mostly invented detail)."
)
@o.max_tiles("Refuse pyramids of more web tiles or model tiles than this.")
@o.reports_errors("tiles")
def tiles(
    input: str,
    output: str,
    is_map: bool,
    model: str | None,
    batch_size: int,
    device: str,
    precision: str,
    resume: bool,
    dry_run: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Translate the raster INPUT once, at the highest zoom, into a web map tile pyramid.

    \b
    geo-p2p tiles area.tif -o web/            then open web/index.html
    geo-p2p tiles area.tif -o area.mbtiles --zoom 14-17
    geo-p2p tiles map.tif --map -o map.pmtiles
    geo-p2p tiles area.tif -o web/ --dry-run
    geo-p2p tiles area.tif -o area.pmtiles --style crisp
    geo-p2p tiles s3://bucket/scene.tif -o web/         (https://, /vsi... paths, STAC items too)
    """
    from geo_p2p.render.translator import Translator
    from geo_p2p.webtiles import TilesOptions, make_tiles, plan_tiles

    o.check_dry_run(dry_run, as_json)
    o.quiet_libraries()
    tiles_options = TilesOptions(**options)
    translator = None
    if is_map:
        if model:
            raise click.BadParameter(
                "--map tiles INPUT as it is: drop --model", param_hint="--model"
            )
    else:
        path = Path(model) if model else None
        translator = Translator.load(
            path, batch_size=batch_size, device=device, precision=precision
        )
    if dry_run:
        o.echo_plan(plan_tiles(input, output, translator, tiles_options).plan, as_json)
    else:
        make_tiles(input, output, translator, tiles_options, resume=resume)
