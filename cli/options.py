"""The registry of the options the subcommands share, their callbacks, the one way every
command prints a dry run's plan and reports bad input (as ``rio``'s options module serves all
of its commands).

Each option is defined once here; a command takes it by name (``@options.bands``). Options whose
help differs by command (``-o/--output``, ``--batch-size``) are factories with one definition of
the flag, its type and checks.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import signal
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import click

from geo_p2p.domain import COARSER
from geo_p2p.mapclasses.crisp import DEFAULT_SPECKLE_M
from geo_p2p.render.options import STYLES

if TYPE_CHECKING:
    from geo_p2p.render.planner import Plan

F = TypeVar("F", bound=Callable[..., Any])
Decorator = Callable[[F], F]


# Callbacks: values checked and parsed once, for every command that takes them.


def _numbers(value: str | None, kind: type) -> tuple | None:
    if value is None:
        return None
    try:
        return tuple(kind(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from None


def _bands(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple | None:
    return _numbers(value, int)


def _scale(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple | None:
    scale = _numbers(value, float)
    if scale is not None and len(scale) != 2:
        raise click.BadParameter(f"expected MIN,MAX, got {value!r}")
    return scale


def _resolution(ctx: click.Context, param: click.Parameter, value: str) -> str | float:
    if value in ("auto", "native"):
        return value
    try:
        metres = float(value)
    except ValueError:
        metres = math.nan
    if not (math.isfinite(metres) and metres > 0):
        raise click.BadParameter(f"expected auto, native or metres per pixel, got {value!r}")
    return metres


def _creation_options(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> dict[str, str]:
    options = {}
    for item in value:
        name, sep, setting = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}")
        options[name.strip()] = setting.strip()
    return options


# Inputs and outputs.

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
        from geo_p2p.errors import RenderError
        from geo_p2p.inputs import resolve_input

        asset = ctx.meta.get(ASSET_KEY) if ctx is not None and self.asset else None
        try:
            return resolve_input(value, asset)
        except RenderError as e:  # one line, without the usage text
            name = param.human_readable_name if param is not None else e.param
            raise InputError(str(e), "--asset" if e.param == "--asset" else name) from None


def _keep_asset(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    ctx.meta[ASSET_KEY] = value


asset = click.option(
    "--asset",
    metavar="NAME",
    is_eager=True,  # read before the input argument, wherever it stands on the line
    expose_value=False,
    callback=_keep_asset,
    help="With a STAC item as input: the asset to read [the visual RGB one].",
)
"""``--asset NAME``: the asset of a STAC Item that :class:`RasterInput` reads."""
raster_input = click.argument("input", type=RasterInput())


def output(help: str, **kwargs: Any) -> Decorator:
    """``-o/--output``: what a command writes (``help`` says what it is)."""
    kwargs.setdefault("type", click.Path())
    return click.option("-o", "--output", help=help, **kwargs)


overwrite = click.option("--overwrite", is_flag=True, help="Replace an existing output.")
model_dir = click.option(
    "--model",
    type=click.Path(exists=True, file_okay=False),
    help="Model directory from 'geo-p2p train' (default: the bundled model).",
)

# Reading the input.

bands = click.option(
    "--bands", callback=_bands, metavar="R,G,B", help="1 or 3 band numbers, e.g. 1,2,3."
)
scale = click.option(
    "--scale", callback=_scale, metavar="MIN,MAX", help="Input values mapped to 0 and 255."
)
resolution = click.option(
    "--resolution",
    default="auto",
    metavar="auto|native|M",
    show_default=True,
    callback=_resolution,
    help=f"auto (the model's ground resolution; {COARSER:g} times coarser for imagery unlike the "
    "model's training imagery, where it draws a better map), native, or metres per pixel.",
)
aoi = click.option("--aoi", metavar="FILE|WKT", help="Polygon limiting the work (GeoJSON or WKT).")
allow_ungeoreferenced = click.option(
    "--allow-ungeoreferenced", is_flag=True, help="Translate a raster without CRS or transform."
)

# The tile layout and the model's run.

overlap = click.option("--overlap", type=click.IntRange(0), help="Tile overlap in pixels [tile/8].")
margin = click.option("--margin", type=click.IntRange(0), help="Tile border discarded [tile/32].")


def batch_size(help: str = "Tiles per forward pass.", default: int = 8) -> Decorator:
    """``--batch-size``: how many tiles (or pairs) go through the model at once."""
    return click.option(
        "--batch-size", default=default, show_default=True, type=click.IntRange(1), help=help
    )


device = click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.",
)
precision = click.option(
    "--precision",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    help="auto: bf16 mixed precision on CUDA, fp32 elsewhere. bf16 on a CPU with AVX-512 BF16 "
    "or AMX: about 1.6x faster.",
)


def direction(default: str) -> Decorator:
    """``--direction``: which half of a pair image is the input (``default`` says what applies
    when it is not given)."""
    return click.option(
        "--direction",
        type=click.Choice(["AtoB", "BtoA"]),
        default=None,
        help=f"AtoB: left half -> right half (aerial -> map for the maps pairs) [default: "
        f"{default}].",
    )


def inference_stats(default: str) -> Decorator:
    """``--inference-stats``: the BatchNorm statistics a model uses at inference."""
    return click.option(
        "--inference-stats",
        type=click.Choice(["running", "tile"]),
        default=None,
        help="BatchNorm statistics at inference: running averages, or each tile's own (as in "
        f"training at batch size 1) [default: {default}].",
    )


gsd = click.option(
    "--gsd",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="Ground resolution of the pair images as stored, metres per pixel [default: "
    "DATA/dataset.json, or 0.9 for 1200x600 pix2pix maps pairs].",
)

# Writing a GeoTIFF.

alpha = click.option(
    "--alpha", is_flag=True, help="No-data as an alpha band, not an internal mask."
)
cog = click.option("--cog", is_flag=True, help="Write a Cloud-Optimized GeoTIFF with overviews.")
creation_options = click.option(
    "--co",
    "creation_options",
    multiple=True,
    callback=_creation_options,
    metavar="NAME=VALUE",
    help="GDAL creation option (repeatable); the default output is COMPRESS=ZSTD, ZSTD_LEVEL=1, "
    "PREDICTOR=2 (COMPRESS=DEFLATE for readers without ZSTD).",
)
quicklook = click.option(
    "--quicklook",
    type=click.Path(dir_okay=False),
    metavar="PNG",
    help="Also write a small input | output preview.",
)

# The map's classes (the model card's palette).

style = click.option(
    "--style",
    default="painted",
    show_default=True,
    type=click.Choice(STYLES),
    help="painted: the generator's colours. crisp: every pixel in its map class's colour (the "
    "model card's classes), speckle removed by a majority filter.",
)
speckle = click.option(
    "--speckle",
    type=click.FloatRange(0),
    metavar="M",
    help="With --style crisp: the majority filter's window, ground metres "
    f"[{DEFAULT_SPECKLE_M:g}, measured on held-out pairs; 0: none].",
)
vegetation = click.option(
    "--vegetation/--no-vegetation",
    default=None,
    help="Paint the tree cover and lawns that the model leaves as land in the park colour, "
    "found in the aerial: land where more than 35 % of the 22.5 m square around a pixel is "
    "vegetation (excess green, no bluer than red). For imagery outside New York, whose maps mark "
    "far more green than the training's: README's class reading of Moscow 0.145 -> 0.197, of "
    "New York 0.548 -> 0.489, when always painted. [default: where the input looks unlike the "
    "model's training imagery (its colour and texture distance from the card's record, as in "
    "the plan's out-of-domain warning) and the model has land and park classes: Moscow 0.169, "
    "New York unchanged; decided per raster, so give it for mosaics and batches]",
)
classes = click.option(
    "--classes",
    type=click.Path(dir_okay=False),
    metavar="TIF",
    help="Also write a class raster (uint8, 0 no data, class names and colours) on the output's "
    "grid.",
)
vectors = click.option(
    "--vectors",
    type=click.Path(dir_okay=False),
    metavar="GPKG",
    help="Also write a GeoPackage: a polygon layer per class and road centrelines, in the "
    "output's CRS. Needs geo-p2p[vectors].",
)

# Guards and plans.


def force(what: str) -> Decorator:
    """``--force``: accept ``what`` (a coarse input turned into invented detail)."""
    return click.option("--force", is_flag=True, help=what)


def max_tiles(help_text: str) -> Decorator:
    """``--max-tiles``, explained by ``help_text`` (what is refused, and when)."""
    from geo_p2p.render.options import DEFAULT_MAX_TILES

    return click.option(
        "--max-tiles",
        default=DEFAULT_MAX_TILES,
        show_default=True,
        type=click.IntRange(1),
        help=help_text,
    )


def dry_run(what: str) -> Decorator:
    """``--dry-run`` (print the plan of ``what``, write nothing) and ``--json`` beside it."""

    def add(command: F) -> F:
        command = click.option(
            "--json", "as_json", is_flag=True, help="With --dry-run: print the plan as JSON."
        )(command)
        return click.option(
            "--dry-run",
            is_flag=True,
            help=f"Print the plan ({what}) and exit without writing.",
        )(command)

    return add


def check_dry_run(dry_run: bool, as_json: bool) -> None:
    """Refuse ``--json`` without ``--dry-run``."""
    if as_json and not dry_run:
        raise click.BadParameter("--json goes with --dry-run", param_hint="--json")


def echo_plan(plan: Plan, as_json: bool) -> None:
    """Print a ``--dry-run``'s plan (its line, or JSON), then its warnings on stderr."""
    click.echo(json.dumps(plan.as_dict(), indent=2) if as_json else plan.line())
    for warning in plan.warnings():
        click.echo(f"Warning: {warning}", err=True)


# Errors, interruption and the libraries' log lines: the same for every command.


class InputError(click.ClickException):
    """A problem with the user's input or options, printed as one line ("Error: ...") without
    the usage text; exit status 2, as click's own option errors."""

    exit_code = 2

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(f"Invalid value for {param}: {message}" if param else message)


def reports_errors(verb: str) -> Decorator:
    """Every command's error handling, in one line each: bad input (the library's RenderError)
    names the option at fault, exit status 2; I/O and GDAL errors as ``VERB failed: ...``;
    Ctrl-C or SIGTERM (see :func:`terminate_as_interrupt`) as "interrupted" once the outputs
    are cleaned up; anything else as unexpected, with the way to the traceback. With
    ``geo-p2p -v`` all but bad input show the full traceback instead, for debugging."""

    def decorate(command: F) -> F:
        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _one_line_errors(verb):
                return command(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


@contextlib.contextmanager
def _one_line_errors(verb: str) -> Iterator[None]:
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioError

    from geo_p2p.errors import RenderError
    from geo_p2p.inputs import redact

    debugging = logging.getLogger().isEnabledFor(logging.DEBUG)
    try:
        yield
    except (click.ClickException, click.exceptions.Exit, click.Abort):
        raise
    except RenderError as e:
        raise InputError(str(e), e.param) from None
    except KeyboardInterrupt:
        raise click.ClickException("interrupted") from None
    except (OSError, RasterioError, CPLE_BaseError) as e:  # GDAL's word, in one line
        if debugging:
            raise
        message = redact(" ".join(str(e).split()))
        raise click.ClickException(f"{verb} failed: {message}") from None
    except (ValueError, RuntimeError) as e:
        if debugging:
            raise
        raise click.ClickException(str(e).splitlines()[0] if str(e) else repr(e)) from e
    except Exception as e:  # a bug: still one line, and the way to the traceback
        if debugging:
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        raise click.ClickException(
            f"unexpected {type(e).__name__} ({first}): run 'geo-p2p -v ...' for the "
            "traceback, and please report it"
        ) from e


def terminate_as_interrupt() -> None:
    """Make SIGTERM (``kill``, a batch scheduler's stop) act like Ctrl-C in the main thread, so
    that temporary outputs are removed on the way out as they are for Ctrl-C."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


QUIET_LOGGERS = ("rasterio", "distributed", "pyogrio")
"""Libraries whose INFO lines say nothing to a user (GDAL's errors arrive as ours; a local Dask
cluster's "Received 'close-stream'", "Lost all workers"; pyogrio's line per layer written):
shown with ``geo-p2p -v`` only."""


def quiet_libraries() -> None:
    """Raise the libraries' log level to warnings unless ``-v`` asked for debugging detail."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        return
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
