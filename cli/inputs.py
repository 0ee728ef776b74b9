"""The input raster argument shared by the commands: a local file, a URL, a GDAL path or a STAC
Item, and ``--asset`` to choose the asset of a STAC Item."""

from __future__ import annotations

from typing import Any

import click

from geo_p2p.inputs import BadInput, resolve_input

from .options import InputError

ASSET_KEY = "geo_p2p.asset"
"""Where ``--asset`` leaves its value in the click context, for :class:`RasterInput`."""


class RasterInput(click.ParamType):
    """A raster to read: a local file (which must exist), an ``http(s)://``, ``s3://``,
    ``gs://`` or ``az://`` URL, a GDAL path (``/vsis3/...``, ``/vsicurl/...``, ``/vsizip/...``)
    or a STAC Item (a JSON file or URL). Converted to the path GDAL opens, with the asset that
    ``--asset`` names for a STAC Item (``asset``: whether ``--asset`` applies to this one)."""

    name = "raster"

    def __init__(self, asset: bool = True) -> None:
        self.asset = asset

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        asset = ctx.meta.get(ASSET_KEY) if ctx is not None and self.asset else None
        try:
            return resolve_input(value, asset)
        except BadInput as e:  # one line, without the usage text
            name = param.human_readable_name if param is not None else e.param
            raise InputError(str(e), "--asset" if e.param == "--asset" else name) from None


def _keep_asset(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    ctx.meta[ASSET_KEY] = value


asset_option = click.option(
    "--asset",
    metavar="NAME",
    is_eager=True,  # read before the input argument, wherever it stands on the line
    expose_value=False,
    callback=_keep_asset,
    help="With a STAC item as input: the asset to read [the visual RGB one].",
)
"""``--asset NAME``: the asset of a STAC Item that :class:`RasterInput` reads."""
