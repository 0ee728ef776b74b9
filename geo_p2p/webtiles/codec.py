"""Web tile images: RGBA arrays to PNG, WebP or JPEG bytes and back.

PNG tiles are written here rather than by Pillow: Pillow tries all five PNG row filters on every
row, which costs more than the compression itself. One "up" filter (each row less the row above,
computed for the whole tile at once) and zlib level 1 encode a 256 px map tile about 2.4 times as
fast for 3 % more bytes (``benchmarks/tiles_speed.py``, benchmarks/README.md). The files are
plain PNG (PNG specification, ISO/IEC 15948: signature, IHDR, one IDAT, IEND).
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image, features

from ..errors import RenderError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_LEVEL = 1
"""zlib level of PNG tiles: the fastest; level 6 makes them 5 % smaller at 5 times the cost."""
_UP_FILTER = 2
_COLOUR_TYPES = {3: 2, 4: 6}
"""PNG colour types by channel count: truecolour, truecolour with alpha."""


def encode_tile(rgba: np.ndarray, fmt: str) -> bytes:
    """A (4, H, W) uint8 RGBA tile as PNG, WebP (lossless) or JPEG bytes; PNG without alpha
    where the tile is opaque, JPEG always without."""
    opaque = fmt == "jpeg" or bool(rgba[3].all())
    pixels = np.ascontiguousarray((rgba[:3] if opaque else rgba).transpose(1, 2, 0))
    if fmt == "png":
        return encode_png(pixels)
    buffer = io.BytesIO()
    if fmt == "webp":
        Image.fromarray(pixels).save(buffer, "WEBP", lossless=True, quality=50)
    else:
        Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def encode_png(pixels: np.ndarray) -> bytes:
    """An (H, W, 3 or 4) uint8 image as 8-bit RGB or RGBA PNG bytes (up filter, zlib level 1)."""
    height, width, channels = pixels.shape
    rows = pixels.reshape(height, width * channels)
    filtered = np.empty((height, width * channels + 1), np.uint8)
    filtered[:, 0] = _UP_FILTER
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # modulo 256, as PNG wants
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPES[channels], 0, 0, 0)
    return b"".join(
        (
            PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(filtered.data, PNG_LEVEL)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def decode_tile(data: bytes) -> np.ndarray:
    """Tile bytes back to (4, H, W) uint8 RGBA."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGBA")).transpose(2, 0, 1)


def check_format(fmt: str) -> None:
    """Refuse a tile format this Pillow cannot write."""
    if fmt == "webp" and not features.check("webp"):
        raise RenderError("this Pillow has no WebP support: use --format png", "--format")
