"""Inputs wherever they live: local files, URLs (http, https, s3, gs, az), GDAL virtual paths
and STAC Items, read with network settings that survive a flaky server.

    from geo_p2p.inputs import resolve_input
    path = resolve_input("https://example.com/scene.tif")   # '/vsicurl/https://...'
    path = resolve_input("item.json", asset="visual")       # the asset's GDAL path

:func:`resolve_input` is what the render, tiles and pairs functions call on their input;
:func:`input_identity` identifies an input for resuming; :func:`network_bytes` counts what
GDAL fetched.
"""

from .identity import input_identity
from .network import (
    NETWORK_DEFAULTS,
    fetched_since,
    format_bytes,
    network_bytes,
    prepare_remote,
    read_with_retries,
)
from .paths import file_name, gdal_path, is_local, is_remote, redact
from .resolve import resolve_input

__all__ = [
    "NETWORK_DEFAULTS",
    "fetched_since",
    "file_name",
    "format_bytes",
    "gdal_path",
    "input_identity",
    "is_local",
    "is_remote",
    "network_bytes",
    "prepare_remote",
    "read_with_retries",
    "redact",
    "resolve_input",
]
