"""What the user typed, as the path GDAL opens, and as it may be shown.

Local paths stay as they are; URLs become GDAL virtual file system paths (``https://`` ->
``/vsicurl/https://``, ``s3://bucket/key`` -> ``/vsis3/bucket/key``); GDAL paths (``/vsis3/``,
``/vsicurl/``, ``/vsizip/``, ...) pass through. :func:`redact` removes what must not be shown:
query strings (signed URLs carry their signature there) and user names and passwords in URLs.
"""

from __future__ import annotations

import re
from pathlib import Path

SCHEMES = {
    "http": "/vsicurl/",
    "https": "/vsicurl/",
    "ftp": "/vsicurl/",
    "s3": "/vsis3/",
    "gs": "/vsigs/",
    "az": "/vsiaz/",
}
"""URL schemes and the GDAL file system that reads them; http(s) and ftp keep the URL whole."""
NETWORK = re.compile(r"/vsi(curl|s3|gs|az|adls|oss|swift|webhdfs)(_streaming)?[/?]")
"""A GDAL file system that reads over the network (anywhere in a chained path, such as
``/vsizip//vsicurl/https://...``)."""
_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s?#'\"]*@)?(?P<rest>[^\s?#'\"]*)"
    r"(?P<query>\?[^\s#'\"]*)?"
)
_VSI_OPTIONS = re.compile(r"(/vsi[a-z0-9_]+)\?[^\s'\"]*")


def gdal_path(text: str | Path) -> str:
    """The path GDAL opens for ``text``: a URL as a GDAL virtual path, anything else as it is.

    >>> gdal_path("https://example.com/a.tif?sig=x")
    '/vsicurl/https://example.com/a.tif?sig=x'
    >>> gdal_path("s3://bucket/scenes/a.tif"), gdal_path("/vsis3/bucket/a.tif")
    ('/vsis3/bucket/scenes/a.tif', '/vsis3/bucket/a.tif')
    >>> gdal_path("area.tif")
    'area.tif'
    """
    text = str(text)
    scheme, sep, rest = text.partition("://")
    if not sep or text.startswith("/vsi"):
        return text
    prefix = SCHEMES.get(scheme.lower())
    if prefix is None:
        raise ValueError(
            f"{redact(text)}: unknown URL scheme {scheme}:// (known: "
            f"{', '.join(s + '://' for s in SCHEMES)}, or a GDAL path such as /vsicurl/...)"
        )
    return prefix + (text if prefix == "/vsicurl/" else rest)


def is_remote(path: str | Path) -> bool:
    """Whether GDAL reads ``path`` (a GDAL path or URL) over the network.

    >>> is_remote("/vsicurl/https://h/a.tif"), is_remote("/vsizip//vsis3/b/a.zip/a.tif")
    (True, True)
    >>> is_remote("area.tif"), is_remote("/vsizip/area.zip/a.tif")
    (False, False)
    """
    return NETWORK.search(gdal_path(path)) is not None


def is_local(path: str | Path) -> bool:
    """Whether ``path`` is a plain file path (not a URL, not a GDAL virtual path).

    >>> is_local("maps/area.tif"), is_local("/vsimem/a.tif"), is_local("s3://b/a.tif")
    (True, False, False)
    """
    text = str(path)
    return not text.startswith("/vsi") and "://" not in text


def redact(text: str) -> str:
    """``text`` with the query strings and the user names and passwords of the URLs in it
    replaced by ``***``, and GDAL's ``/vsicurl?...`` options likewise.

    >>> redact("cannot read /vsicurl/https://h/a.tif?X-Amz-Signature=abc at x 0-256")
    'cannot read /vsicurl/https://h/a.tif?*** at x 0-256'
    >>> redact("https://user:secret@h/a.tif"), redact("/vsis3/bucket/a.tif")
    ('https://***@h/a.tif', '/vsis3/bucket/a.tif')
    """

    def clean(match: re.Match[str]) -> str:
        user = "***@" if match["user"] else ""
        query = "?***" if match["query"] else ""
        return f"{match['scheme']}{user}{match['rest']}{query}"

    return _VSI_OPTIONS.sub(r"\1?***", _URL.sub(clean, text))


def without_query(path: str) -> str:
    """``path`` without its query string: what names a remote file across signings.

    >>> without_query("/vsicurl/https://h/a.tif?sig=1"), without_query("a?.tif")
    ('/vsicurl/https://h/a.tif', 'a?.tif')
    """
    scheme = path.find("://")
    query = path.find("?", scheme) if scheme >= 0 else -1
    return path[:query] if query >= 0 else path


def file_name(path: str | Path) -> str:
    """The file name of a path, URL or GDAL path, without a query string.

    >>> file_name("/vsicurl/https://h/scenes/a.tif?sig=1"), file_name(Path("maps/b.tif"))
    ('a.tif', 'b.tif')
    """
    name = str(path).rstrip("/").rsplit("/", 1)[-1]
    return name if is_local(path) else name.split("?", 1)[0]
