"""STAC Items as input: the asset to render, read with pystac (the ``stac`` extra).

An Item (a local JSON file, an http(s) URL, or an ``s3://``, ``gs://`` or ``az://`` URL read
through GDAL with its credentials) names its files as assets. Without ``--asset``
the one rendered is the visual RGB asset: named or with the role ``visual``, else a GeoTIFF
whose bands are red, green and blue (``eo:bands``, or STAC 1.1 ``bands``, common names).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..errors import RenderError
from . import libgdal
from .network import NETWORK_DEFAULTS, prepare_remote
from .paths import SCHEMES, gdal_path, redact

RGB = {"red", "green", "blue"}
FETCH_TIMEOUT = float(NETWORK_DEFAULTS["GDAL_HTTP_TIMEOUT"])
FETCH_ATTEMPTS = 1 + int(NETWORK_DEFAULTS["GDAL_HTTP_MAX_RETRY"])
MAX_ITEM_BYTES = 16 * 2**20
"""The largest STAC Item read from object storage (a few kB is usual)."""


class StacError(RenderError):
    """A STAC Item that cannot be read, or has no asset to render; says what to do."""


def is_stac_candidate(text: str) -> bool:
    """Whether ``text`` names JSON (a local file or a URL whose path ends in .json), the form
    a STAC Item comes in.

    >>> is_stac_candidate("item.json"), is_stac_candidate("https://h/items/x.json?sig=1")
    (True, True)
    >>> is_stac_candidate("area.tif")
    False
    """
    path = text.split("?", 1)[0] if "://" in text else text
    return path.lower().endswith((".json", ".geojson"))


def asset_href(text: str, asset: str | None = None) -> str:
    """The absolute href of the asset to render in the STAC Item ``text`` (a JSON file or
    URL): ``asset`` if given, else the visual RGB one. Raises StacError (one line, listing
    the item's assets) when there is none."""
    try:
        import pystac
    except ImportError:
        raise StacError(
            f"{redact(text)} is JSON: reading STAC items needs pystac (pip install 'geo-p2p[stac]')"
        ) from None
    data = _read_json(text)
    kind = data.get("type") if isinstance(data, dict) else None
    if kind != "Feature" or "stac_version" not in data:
        what = f"a STAC {kind}" if kind in ("Collection", "Catalog", "FeatureCollection") else ""
        raise StacError(
            f"{redact(text)} is {what or 'JSON but not a STAC Item'}: give one STAC Item "
            "(a JSON file or URL) or a raster"
        )
    href = text if "://" in text else str(Path(text).resolve())
    try:
        item = pystac.Item.from_dict(data, href=href, preserve_dict=False)
    except (KeyError, TypeError, ValueError) as e:
        raise StacError(f"{redact(text)} is not a valid STAC Item ({e})") from e
    chosen = _choose(item.assets, asset, redact(text))
    return chosen.get_absolute_href() or chosen.href


def _read_json(text: str) -> Any:
    """The JSON at a local path, an http(s) URL (retrying 5xx answers and failed connections
    as GDAL does for rasters), or an object storage URL (through GDAL, with its retries)."""
    scheme = text.partition("://")[0].lower() if "://" in text else None
    if scheme is None:
        path = Path(text)
        if not path.is_file():
            raise StacError(f"{text} does not exist")
        raw = path.read_bytes()
    elif scheme in ("http", "https"):
        raw = _fetch(text)
    elif scheme in SCHEMES:
        raw = _read_through_gdal(text)
    else:
        raise StacError(
            f"{redact(text)}: STAC items are read from files and http(s), "
            f"{', '.join(s + '://' for s in SCHEMES if not s.startswith('http'))} URLs"
        )
    try:
        return json.loads(raw)
    except ValueError as e:
        raise StacError(f"{redact(text)} is not valid JSON ({e})") from e


def _read_through_gdal(url: str) -> bytes:
    path = gdal_path(url)
    prepare_remote(path, fresh=True)
    try:
        return libgdal.read_file(path, MAX_ITEM_BYTES)
    except OSError as e:
        raise StacError(
            f"cannot read the STAC item {redact(url)} ({redact(str(e))}): check the URL and "
            "the credentials (GDAL's AWS_*, GOOGLE_* or AZURE_* settings)"
        ) from e


def _fetch(url: str) -> bytes:
    delay = float(NETWORK_DEFAULTS["GDAL_HTTP_RETRY_DELAY"])
    attempt = 1
    while True:
        try:
            with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as answer:
                return answer.read()
        except (urllib.error.URLError, OSError) as e:
            status = getattr(e, "code", None)
            retry = status is None or status in (429, 500, 502, 503, 504)
            if not retry or attempt == FETCH_ATTEMPTS:
                reason = f"HTTP {status}" if status else str(getattr(e, "reason", e))
                raise StacError(f"cannot fetch the STAC item {redact(url)} ({reason})") from e
        time.sleep(delay)
        delay *= 2
        attempt += 1


def _choose(assets: dict[str, Any], name: str | None, label: str) -> Any:
    if name is not None:
        if name not in assets:
            raise StacError(
                f"{label} has no asset {name!r}: its assets are {_listing(assets)}", "--asset"
            )
        return assets[name]
    for key, asset in assets.items():
        if key == "visual" or "visual" in (asset.roles or []):
            return asset
    for asset in assets.values():
        if _is_geotiff(asset) and RGB <= _common_names(asset):
            return asset
    raise StacError(
        f"{label} has no visual RGB asset (named or with role 'visual', or a GeoTIFF with red, "
        f"green and blue bands): pass --asset NAME, one of {_listing(assets) or 'none'}"
    )


def _is_geotiff(asset: Any) -> bool:
    media = (asset.media_type or "").lower()
    if media:
        return "image/tiff" in media
    return asset.href.split("?", 1)[0].lower().endswith((".tif", ".tiff"))


def _common_names(asset: Any) -> set[str]:
    bands = asset.extra_fields.get("eo:bands") or asset.extra_fields.get("bands") or []
    names = (b.get("common_name") or b.get("eo:common_name") for b in bands if isinstance(b, dict))
    return {str(n).lower() for n in names if n}


def _listing(assets: dict[str, Any]) -> str:
    """The assets' names with their media types, in one line."""
    return ", ".join(
        f"{key} ({asset.media_type})" if asset.media_type else key for key, asset in assets.items()
    )
