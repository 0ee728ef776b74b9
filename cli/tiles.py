"""``geo-p2p tiles``: translate a raster into a web map (XYZ folder, MBTiles or PMTiles)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from geo_p2p.plan import DEFAULT_MAX_TILES, MAX_UPSAMPLING
from geo_p2p.render import Translator
from geo_p2p.webtiles import DEFAULT_ATTRIBUTION, MAX_ZOOM, make_tiles, plan_tiles

from .inputs import RasterInput, asset_option
from .options import (
    as_click_errors,
    check_dry_run,
    device_option,
    dry_run_options,
    fail_cleanly,
    precision_option,
)
from .render import _bands, _scale


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
@click.argument("input", type=RasterInput())
@asset_option
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(),
    help="A folder (z/x/y tiles, tilejson.json, index.html), *.mbtiles or *.pmtiles.",
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
@click.option(
    "--model",
    type=click.Path(exists=True, file_okay=False),
    help="Model directory from 'geo-p2p train' (default: the bundled model).",
)
@click.option(
    "--with-input/--no-input",
    default=None,
    help="Also tile the input, for the viewer's swipe [with a folder, when translating].",
)
@click.option("--attribution", default=DEFAULT_ATTRIBUTION, show_default=True)
@click.option("--bands", callback=_bands, metavar="R,G,B", help="1 or 3 band numbers, e.g. 1,2,3.")
@click.option(
    "--scale", callback=_scale, metavar="MIN,MAX", help="Input values mapped to 0 and 255."
)
@click.option("--aoi", metavar="FILE|WKT", help="Polygon limiting the tiles (GeoJSON or WKT).")
@click.option(
    "--batch-size", default=8, show_default=True, type=click.IntRange(1), help="Tiles per pass."
)
@device_option
@precision_option
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--resume", is_flag=True, help="Finish an interrupted run (same settings).")
@dry_run_options("zooms, tiles per zoom, model tiles, time estimated from a rate measured here")
@click.option(
    "--force",
    is_flag=True,
    help=f"Accept a default max zoom more than {MAX_UPSAMPLING:g} times finer than the input "
    "(refused otherwise: a coarse input, mostly invented detail).",
)
@click.option(
    "--max-tiles",
    default=DEFAULT_MAX_TILES,
    show_default=True,
    type=click.IntRange(1),
    help="Refuse pyramids of more web tiles or model tiles than this.",
)
@fail_cleanly
def tiles(
    input: str,
    output: str,
    is_map: bool,
    model: str | None,
    batch_size: int,
    device: str,
    precision: str,
    dry_run: bool,
    as_json: bool,
    **options: object,
) -> None:
    """Translate the raster INPUT once, at the highest zoom, into a web map tile pyramid.

    \b
    geo-p2p tiles area.tif -o web/            then open web/index.html
    geo-p2p tiles area.tif -o area.mbtiles --zoom 14-17
    geo-p2p tiles map.tif --map -o map.pmtiles
    geo-p2p tiles area.tif -o web/ --dry-run
    geo-p2p tiles s3://bucket/scene.tif -o web/         (https://, /vsi... paths, STAC items too)
    """
    check_dry_run(dry_run, as_json)
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("rasterio").setLevel(logging.WARNING)
    with as_click_errors("tiles"):
        translator = None
        if is_map:
            if model:
                raise click.BadParameter(
                    "--map tiles INPUT as it is: drop --model", param_hint="--model"
                )
        else:
            translator = Translator.load(
                Path(model) if model else None,
                batch_size=batch_size,
                device=device,
                precision=precision,
            )
        if dry_run:
            for key in ("attribution", "overwrite", "resume"):
                del options[key]
            plan = plan_tiles(input, output, translator, **options).plan  # type: ignore[arg-type]
            click.echo(json.dumps(plan.as_dict(), indent=2) if as_json else plan.line())
        else:
            make_tiles(input, output, translator, **options)  # type: ignore[arg-type]
