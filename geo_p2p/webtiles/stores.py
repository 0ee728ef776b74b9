"""Containers for web map tiles: an XYZ folder, MBTiles 1.3, PMTiles v3, chosen by the name.

Every store is written so that a viewer never takes an unfinished one for complete, and so that
``resume`` can carry on where an interrupted run stopped:

- XYZ folder ``z/x/y.ext``: each tile is written under a temporary name and renamed;
  ``tilejson.json`` (and the viewer) are written last, so a folder without it is unfinished.
- MBTiles: a SQLite file under a hidden ``.NAME.partial`` name beside the output, one transaction
  per batch of tiles, renamed to the output once its metadata is written.
- PMTiles: tiles gather in the same kind of hidden SQLite file, keyed by PMTiles tile id; the
  archive is written from it in tile-id order (clustered) and renamed into place at the end.

Each store remembers the settings (``job``) it was started with, so a resume with other settings
is refused rather than mixing two pyramids.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

TILE_FORMATS = {"png": "png", "webp": "webp", "jpeg": "jpg"}
"""Tile formats and their file extensions."""
COMMIT_EVERY = 256
"""Tiles per MBTiles / staging transaction."""
JOB_KEY = "geo_p2p_job"


@dataclass(frozen=True)
class TileSetInfo:
    """What a finished tile set says about itself (TileJSON, MBTiles and PMTiles metadata)."""

    name: str
    format: str
    bounds: tuple[float, float, float, float]
    """West, south, east, north in degrees; east past 180 across the antimeridian (as Leaflet
    takes them)."""
    minzoom: int
    maxzoom: int
    attribution: str
    description: str = ""

    @property
    def lonlat_bounds(self) -> tuple[float, float, float, float]:
        """The bounds with longitudes within -180 to 180 (for metadata): west is then greater
        than east across the antimeridian."""
        west, south, east, north = self.bounds
        return west, south, east - 360 if east > 180 else east, north

    @property
    def center(self) -> tuple[float, float, int]:
        """Longitude (-180 to 180), latitude and a zoom that shows the whole set at a glance."""
        west, south, east, north = self.bounds
        lon = ((west + east) / 2 + 180) % 360 - 180
        return lon, (south + north) / 2, min(self.maxzoom, self.minzoom + 2)

    def tilejson(self, tiles: str) -> dict[str, object]:
        """TileJSON 3.0.0 for the tile URL template ``tiles``."""
        return {
            "tilejson": "3.0.0",
            "name": self.name,
            "description": self.description,
            "attribution": self.attribution,
            "tiles": [tiles],
            "bounds": list(self.lonlat_bounds),
            "center": list(self.center),
            "minzoom": self.minzoom,
            "maxzoom": self.maxzoom,
        }


class TileStore(ABC):
    """Where tiles go: ``write``, ``read`` back (for the lower zooms), ``done`` for a resume,
    then ``finish`` (complete) or ``close`` (leave it resumable). One thread at a time."""

    extension: str

    @abstractmethod
    def done(self, zoom: int) -> set[tuple[int, int]]:
        """Columns and rows of the tiles of ``zoom`` already written."""

    @abstractmethod
    def read(self, zoom: int, x: int, y: int) -> bytes | None:
        """A tile's bytes, None if it was not written."""

    @abstractmethod
    def write(self, zoom: int, x: int, y: int, data: bytes) -> None:
        """Store a tile (rows counted from the north, as in XYZ)."""

    @abstractmethod
    def finish(self, info: TileSetInfo) -> None:
        """Make the store complete and visible as such."""

    @abstractmethod
    def close(self) -> None:
        """Release the store without finishing it (what is written stays for a resume)."""

    @property
    @abstractmethod
    def job(self) -> str | None:
        """The settings the store was started with (JSON), None for a new store."""

    @job.setter
    @abstractmethod
    def job(self, value: str) -> None: ...
