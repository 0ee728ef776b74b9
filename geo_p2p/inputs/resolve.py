"""From what the user typed to the path GDAL reads: local files, URLs, GDAL paths and STAC
Items, checked, with the network settings for a remote file applied."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import RenderError
from .network import prepare_remote
from .paths import gdal_path, is_local, redact
from .stac import asset_href, is_stac_candidate

log = logging.getLogger(__name__)


def resolve_input(src: str | Path, asset: str | None = None, param: str = "INPUT") -> str:
    """The GDAL path to read for ``src``: a local file as it is (it must exist), a URL as a
    GDAL path (``https://`` -> ``/vsicurl/https://``, ``s3://`` -> ``/vsis3/``), a GDAL path
    as it is, a STAC Item (JSON file or URL) as the path of its visual RGB asset or of
    ``asset``. A remote file gets :func:`~geo_p2p.inputs.network.prepare_remote` (and GDAL
    forgets what it cached of it, so that a server that failed before is asked again). Raises
    RenderError (naming ``param``) for an input that cannot be read as given.

    Idempotent: a resolved path resolves to itself.
    """
    text = str(src)
    if is_stac_candidate(text) and ("://" in text or Path(text).is_file()):
        href = asset_href(text, asset)
        log.info("STAC item %s: rendering asset %s", redact(text), redact(href))
        text = href
    elif asset is not None:
        raise RenderError(
            f"--asset chooses an asset of a STAC item, and {redact(text)} is not one", "--asset"
        )
    try:
        path = gdal_path(text)
    except ValueError as e:
        raise RenderError(str(e), param) from e
    if is_local(path) and not Path(path).exists():
        raise RenderError(f"{path} does not exist", param)
    if is_local(path) and Path(path).is_dir():
        raise RenderError(f"{path} is a folder: give a raster file", param)
    prepare_remote(path, fresh=True)
    return path
