"""What identifies an input across runs, for resuming a render of it."""

from __future__ import annotations

from pathlib import Path

from . import libgdal
from .paths import gdal_path, is_local, is_remote, redact, without_query


def input_identity(path: str | Path) -> dict[str, object]:
    """What must stay the same for a render of ``path`` to be resumed, as JSON data.

    A local file: its absolute path, size and modification time (``path``, ``bytes``,
    ``mtime_ns``). A remote file: its GDAL path without the query string (signed URLs change
    at every signing) and without a password, its size, and the ETag and Last-Modified the
    server gives, from a HEAD request made by GDAL with its configuration (or GDAL's cache of
    it: ``bytes``, ``etag``, ``last_modified`` where known). Anything else: its path.
    """
    text = str(path)
    if is_local(text):
        local = Path(text)
        if not local.exists():
            return {"path": text}
        stat = local.stat()
        return {"path": str(local.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    gdal = gdal_path(text)
    identity: dict[str, object] = {"path": redact(without_query(gdal))}
    if is_remote(gdal):
        headers = libgdal.file_headers(gdal) or {}
        size = _size(headers)
        if size is not None:
            identity["bytes"] = size
        for header, key in (("etag", "etag"), ("last-modified", "last_modified")):
            if header in headers:
                identity[key] = headers[header]
    return identity


def _size(headers: dict[str, str]) -> int | None:
    """The file's size from HTTP headers: the total of a Content-Range (GDAL may have kept
    those of a ranged GET), else the Content-Length.

    >>> _size({"content-range": "bytes 0-16383/1936355", "content-length": "16384"})
    1936355
    """
    total = headers.get("content-range", "").rpartition("/")[2]
    if total.isdigit():
        return int(total)
    length = headers.get("content-length", "")
    return int(length) if length.isdigit() else None
