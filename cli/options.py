"""Options and error handling shared by the subcommands."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

device_option = click.option(
    "--device",
    default="auto",
    show_default=True,
    help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.",
)

precision_option = click.option(
    "--precision",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    help="auto: bf16 mixed precision on CUDA, fp32 elsewhere. bf16 on a CPU with AVX-512 BF16 "
    "or AMX: about 1.6x faster.",
)


def fail_cleanly(command: F) -> F:
    """Turn the library's errors about bad input into one-line messages (exit 1).

    With ``geo-p2p -v`` the full traceback is shown instead, for debugging.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (OSError, ValueError, RuntimeError) as e:
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            raise click.ClickException(str(e).splitlines()[0] if str(e) else repr(e)) from e
        except KeyboardInterrupt:
            raise click.ClickException("interrupted") from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def as_click_errors(verb: str) -> Iterator[None]:
    """Turn the library's RenderError into a usage error naming the option at fault, and
    I/O and GDAL errors into ``VERB failed: ...``."""
    from rasterio.errors import RasterioError

    from geo_p2p.raster import RenderError

    try:
        yield
    except RenderError as e:
        if e.param:
            raise click.BadParameter(str(e), param_hint=e.param) from None
        raise click.UsageError(str(e)) from None
    except (OSError, RasterioError) as e:
        raise click.ClickException(f"{verb} failed: {e}") from None
