"""The few GDAL C functions that rasterio does not wrap, called through ctypes on the libgdal
that rasterio is linked to (the one bundled in its wheel, or the system's).

Path-specific configuration (``VSISetPathSpecificOption``, GDAL >= 3.6), the HTTP headers of
a remote file (``VSIGetFileMetadata`` with the ``HEADERS`` domain, GDAL >= 3.1), the network
statistics (``VSINetworkStatsGetAsSerializedJSON``, GDAL >= 3.2) and the clearing of the
cache of ``/vsicurl/`` and its kind: each returns None (or does nothing) where the library or
the function cannot be found, so callers degrade instead of failing. And reading a small file
whole (``VSIIngestFile``), which raises OSError instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import logging

log = logging.getLogger(__name__)

_StringList = ctypes.POINTER(ctypes.c_char_p)


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The libgdal in use: looked up through rasterio's extension module, whose dependencies
    include it (the same handle as rasterio's, so the same configuration and caches), else
    the system's."""
    import rasterio._base

    for candidate in (rasterio._base.__file__, ctypes.util.find_library("gdal")):
        if not candidate:
            continue
        try:
            library = ctypes.CDLL(candidate)
            library.VSIFree  # noqa: B018  # the symbol lookup is the check
        except (OSError, AttributeError):
            continue
        return library
    log.debug("GDAL's C library is not reachable through ctypes: no path options or counts")
    return None


def _function(name: str, argtypes: list, restype: object) -> ctypes._CFuncPtr | None:
    library = _library()
    function = getattr(library, name, None) if library is not None else None
    if function is not None:
        function.argtypes = argtypes
        function.restype = restype
    return function


def set_path_option(prefix: str, key: str, value: str) -> bool:
    """Set GDAL configuration option ``key`` for the paths that start with ``prefix`` only;
    False where this GDAL cannot."""
    setter = _function("VSISetPathSpecificOption", [ctypes.c_char_p] * 3, None)
    if setter is None:
        return False
    setter(prefix.encode(), key.encode(), value.encode())
    return True


def set_config_option(key: str, value: str) -> bool:
    """Set GDAL configuration option ``key`` for the whole process, whatever rasterio
    environment is active (rasterio's setter keeps it in that environment, which forgets it on
    exit); False where GDAL is not reachable."""
    setter = _function("CPLSetConfigOption", [ctypes.c_char_p] * 2, None)
    if setter is None:
        return False
    setter(key.encode(), value.encode())
    return True


def clear_path_options(prefix: str) -> None:
    """Forget the options :func:`set_path_option` set for ``prefix``."""
    clear = _function("VSIClearPathSpecificOptions", [ctypes.c_char_p], None)
    if clear is not None:
        clear(prefix.encode())


def file_headers(path: str) -> dict[str, str] | None:
    """The HTTP headers GDAL got for the remote file ``path`` (from its cache, else a HEAD
    request made with GDAL's configuration: credentials, retries); None where unavailable."""
    get = _function(
        "VSIGetFileMetadata", [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p], _StringList
    )
    destroy = _function("CSLDestroy", [_StringList], None)
    if get is None or destroy is None:
        return None
    items = get(path.encode(), b"HEADERS", None)
    if not items:
        return None
    headers = {}
    try:
        i = 0
        while items[i] is not None:
            name, _, value = items[i].decode(errors="replace").partition("=")
            headers[name.strip().lower()] = value.strip()
            i += 1
    finally:
        destroy(items)
    return headers


def network_stats() -> dict | None:
    """GDAL's network statistics (``VSINetworkStatsGetAsSerializedJSON``) as JSON data;
    empty unless collection is enabled (see :func:`reset_network_stats`)."""
    get = _function("VSINetworkStatsGetAsSerializedJSON", [ctypes.c_void_p], ctypes.c_void_p)
    free = _function("VSIFree", [ctypes.c_void_p], None)
    if get is None or free is None:
        return None
    pointer = get(None)
    if not pointer:
        return None
    try:
        return json.loads(ctypes.string_at(pointer).decode())
    finally:
        free(pointer)


def reset_network_stats() -> bool:
    """Zero GDAL's network statistics; GDAL then reads CPL_VSIL_NETWORK_STATS_ENABLED again
    on the next request (it reads it once otherwise). False where unavailable."""
    reset = _function("VSINetworkStatsReset", [], None)
    if reset is None:
        return False
    reset()
    return True


def clear_cache(prefix: str) -> None:
    """Forget what GDAL cached of the remote files under ``prefix``: their size and
    existence, failures included, and the ranges downloaded."""
    clear = _function("VSICurlPartialClearCache", [ctypes.c_char_p], None)
    if clear is not None:
        clear(prefix.encode())


def read_file(path: str, limit: int) -> bytes:
    """The bytes of the file at GDAL path ``path`` (``/vsis3/...``: with GDAL's credentials and
    settings), at most ``limit``; OSError with GDAL's reason if it cannot be read."""
    ingest = _function(
        "VSIIngestFile",
        [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_void_p),
            ctypes.POINTER(ctypes.c_uint64),
            ctypes.c_int64,
        ],
        ctypes.c_int,
    )
    free = _function("VSIFree", [ctypes.c_void_p], None)
    message = _function("CPLGetLastErrorMsg", [], ctypes.c_char_p)
    reset = _function("CPLErrorReset", [], None)
    if ingest is None or free is None:
        raise OSError("GDAL's C library is not reachable to read it")
    push = _function("CPLPushErrorHandler", [ctypes.c_void_p], None)
    pop = _function("CPLPopErrorHandler", [], None)
    quiet = getattr(_library(), "CPLQuietErrorHandler", None)
    if reset is not None:
        reset()
    data, size = ctypes.c_void_p(), ctypes.c_uint64()
    silenced = push is not None and pop is not None and quiet is not None
    if silenced:  # the reason goes into the caller's error, not onto stderr
        push(ctypes.cast(quiet, ctypes.c_void_p))
    try:
        read = ingest(None, path.encode(), ctypes.byref(data), ctypes.byref(size), limit)
    finally:
        if silenced:
            pop()
    if not read:
        reason = message().decode(errors="replace") if message is not None else ""
        raise OSError(reason or "GDAL could not read it")
    try:
        return ctypes.string_at(data, size.value) if data else b""
    finally:
        free(data)
