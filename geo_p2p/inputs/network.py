"""Reading over the network: GDAL settings that survive a busy or flaky server, retries of
whole windows, the bytes fetched, and GDAL's messages without secrets.

GDAL 3.10 retries a request answered 429, 500, 502, 503 or 504 (GDAL_HTTP_MAX_RETRY times,
0 by default, waiting GDAL_HTTP_RETRY_DELAY seconds, doubled with jitter each time), but not
one whose connection drops mid-transfer when it reads several blocks at once: the window
read then fails, and fails again, even on a reopened dataset, until GDAL forgets what it
cached of the file. :func:`read_with_retries` does that.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from rasterio.env import get_gdal_config
from rasterio.errors import RasterioError

from . import libgdal
from .paths import is_remote, redact

log = logging.getLogger(__name__)

T = TypeVar("T")

NETWORK_DEFAULTS = {
    "GDAL_HTTP_MAX_RETRY": "4",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
    "GDAL_HTTP_CONNECTTIMEOUT": "15",
    "GDAL_HTTP_TIMEOUT": "120",
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
}
"""GDAL settings for a remote input, each unless the user set it (environment or GDAL config).
Four retries from half a second (about 10 s in all, GDAL doubling the wait each time) ride
out a short outage; a request gets 15 s to connect and 120 s to finish (a window is a few
MB at most); no directory listing and side-car probing on open (eight requests saved)."""
WINDOW_ATTEMPTS = 3
"""Reads of a window of a remote input, each on a freshly opened dataset, before giving up."""
STATS_OPTION = "CPL_VSIL_NETWORK_STATS_ENABLED"
GDAL_LOGGERS = ("rasterio._env", "rasterio._err", "rasterio._base", "rasterio._io")
"""The loggers through which rasterio passes on GDAL's messages (which name the URL)."""


def network_settings() -> dict[str, str]:
    """The :data:`NETWORK_DEFAULTS` that the user has not set."""
    return {k: v for k, v in NETWORK_DEFAULTS.items() if get_gdal_config(k) is None}


def prepare_remote(path: str, fresh: bool = False) -> None:
    """Before reading the GDAL path ``path`` (no-op for a local one): apply
    :func:`network_settings` to it alone (GDAL's path-specific options, so other files and
    the user's settings are untouched), turn on the counting of bytes fetched, and keep
    secrets out of GDAL's logged messages. Cheap, and safe to repeat. ``fresh``: also forget
    what GDAL cached about the file (a failure to open it, too, is remembered otherwise)."""
    if not is_remote(path):
        return
    if fresh:
        libgdal.clear_cache(path)
    libgdal.clear_path_options(path)
    settings = network_settings()
    if not all(libgdal.set_path_option(path, k, v) for k, v in settings.items()):
        log.debug("this GDAL has no path-specific options: network defaults not applied")
    _count_bytes()
    redact_gdal_messages()


def read_with_retries(path: str, read: Callable[[], T], reopen: Callable[[], None]) -> T:
    """``read()``; for a remote ``path``, on a GDAL error, clear GDAL's cache of the file,
    reopen the dataset (``reopen``) and read again, :data:`WINDOW_ATTEMPTS` times in all with
    a doubling wait from GDAL_HTTP_RETRY_DELAY. The last error is raised."""
    attempts = WINDOW_ATTEMPTS if is_remote(path) else 1
    delay = float(get_gdal_config("GDAL_HTTP_RETRY_DELAY") or 0) or float(
        NETWORK_DEFAULTS["GDAL_HTTP_RETRY_DELAY"]
    )
    attempt = 1
    while True:
        try:
            return read()
        except RasterioError as e:
            if attempt == attempts:
                raise
            cause = e.__cause__ or e.__context__ or e
            log.warning(
                "reading %s failed (%s): trying again in %.1f s",
                redact(path),
                redact(" ".join(str(cause).split())),
                delay,
            )
            time.sleep(delay)
            delay *= 2
            libgdal.clear_cache(path)  # GDAL keeps what a dropped transfer brought
            reopen()
            attempt += 1


def _count_bytes() -> None:
    """Turn on GDAL's network statistics, for the process, unless the user set
    CPL_VSIL_NETWORK_STATS_ENABLED (GDAL reads it on its first request, and again after a
    reset only). Set once: a reset inside a rasterio environment that forgot the option would
    lose the count so far (as in a Dask worker, which reads each region in one). Where GDAL's
    C library is not reachable, nothing can be counted, nor read back."""
    if get_gdal_config(STATS_OPTION) is None and libgdal.set_config_option(STATS_OPTION, "YES"):
        libgdal.reset_network_stats()


def network_bytes() -> int | None:
    """Bytes GDAL has downloaded in this process since it began counting (which reading a
    remote input starts); None where GDAL's statistics are unavailable or turned off. The
    difference between two calls is what was fetched between them, by every thread."""
    if get_gdal_config(STATS_OPTION) is False:
        return None
    stats = libgdal.network_stats()
    if stats is None:
        return None
    return sum(m.get("downloaded_bytes", 0) for m in stats.get("methods", {}).values())


def fetched_since(counted: int | None, path: str) -> int | None:
    """Bytes fetched since :func:`network_bytes` returned ``counted``, if ``path`` is remote
    and they were counted (None otherwise)."""
    now = network_bytes()
    if counted is None or now is None or not is_remote(path):
        return None
    return max(0, now - counted)


def format_bytes(count: int) -> str:
    """A byte count in words.

    >>> format_bytes(512), format_bytes(1_234_567), format_bytes(3 * 2**30)
    ('512 B', '1.2 MB', '3.2 GB')
    """
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


class RedactingFilter(logging.Filter):
    """Rewrites a log record's message with :func:`~geo_p2p.inputs.paths.redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def redact_gdal_messages() -> None:
    """Keep query strings (signatures) and passwords out of GDAL's messages as rasterio logs
    them (a retry's warning names the URL). Idempotent."""
    for name in GDAL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())
