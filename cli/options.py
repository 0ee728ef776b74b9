"""Options and error handling shared by the subcommands."""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
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


class InputError(click.ClickException):
    """A problem with the user's input or options, printed as one line ("Error: ...") without
    the usage text; exit status 2, as click's own option errors."""

    exit_code = 2

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(f"Invalid value for {param}: {message}" if param else message)


def dry_run_options(what: str) -> Callable[[F], F]:
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


def fail_cleanly(command: F) -> F:
    """Turn the library's errors into one-line messages (exit 1), and Ctrl-C or SIGTERM
    (see :func:`terminate_as_interrupt`) into "interrupted" once the outputs are cleaned up.

    With ``geo-p2p -v`` the full traceback is shown instead, for debugging.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except (OSError, ValueError, RuntimeError) as e:
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            raise click.ClickException(str(e).splitlines()[0] if str(e) else repr(e)) from e
        except KeyboardInterrupt:
            raise click.ClickException("interrupted") from None
        except Exception as e:  # a bug: still one line, and the way to the traceback
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            first = str(e).splitlines()[0] if str(e) else ""
            raise click.ClickException(
                f"unexpected {type(e).__name__} ({first}): run 'geo-p2p -v ...' for the "
                "traceback, and please report it"
            ) from e

    return wrapper  # type: ignore[return-value]


def terminate_as_interrupt() -> None:
    """Make SIGTERM (``kill``, a batch scheduler's stop) act like Ctrl-C in the main thread, so
    that temporary outputs are removed on the way out as they are for Ctrl-C."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


@contextlib.contextmanager
def as_click_errors(verb: str) -> Iterator[None]:
    """Turn the library's RenderError into a one-line :class:`InputError` naming the option at
    fault, and I/O and GDAL errors into ``VERB failed: ...``."""
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioError

    from geo_p2p.inputs import redact
    from geo_p2p.raster import RenderError

    try:
        yield
    except RenderError as e:
        raise InputError(str(e), e.param) from None
    except (OSError, RasterioError, CPLE_BaseError) as e:  # GDAL's word, in one line
        raise click.ClickException(f"{verb} failed: {redact(' '.join(str(e).split()))}") from None
