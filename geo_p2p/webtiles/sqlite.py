"""Tile containers staged in SQLite: MBTiles 1.3 (the staging file is the container) and
PMTiles v3 (written from the staging file in tile-id order at the end)."""

from __future__ import annotations

import os
import sqlite3
from abc import abstractmethod
from collections.abc import Iterator
from pathlib import Path

from ..errors import RenderError
from ..files import temporary_path
from .stores import COMMIT_EVERY, JOB_KEY, TILE_FORMATS, TileSetInfo, TileStore


class _SQLiteStore(TileStore):
    """Tiles in a SQLite file written under ``partial`` (kept for a resume), committed every
    ``COMMIT_EVERY`` tiles; ``finish`` makes ``path`` from it."""

    SCHEMA = ""

    def __init__(self, path: Path, partial: Path, fmt: str) -> None:
        self.path, self.partial, self.format = path, partial, fmt
        self.extension = TILE_FORMATS[fmt]
        try:
            # Written from the render's writing thread, then the calling thread; never both.
            self.db = sqlite3.connect(partial, check_same_thread=False)
            self.db.executescript(
                "CREATE TABLE IF NOT EXISTS metadata (name TEXT PRIMARY KEY, value TEXT);"
                + self.SCHEMA
            )
        except sqlite3.DatabaseError as e:
            raise RenderError(f"{partial} is not a tile store ({e}): delete it", "--resume") from e
        self._pending = 0

    @abstractmethod
    def _key(self, zoom: int, x: int, y: int) -> tuple[int, ...]:
        """The table's key of a tile."""

    @abstractmethod
    def _insert(self, key: tuple[int, ...], data: bytes) -> None: ...

    def write(self, zoom: int, x: int, y: int, data: bytes) -> None:
        self._insert(self._key(zoom, x, y), data)
        self._pending += 1
        if self._pending >= COMMIT_EVERY:
            self.commit()

    def commit(self) -> None:
        self.db.commit()
        self._pending = 0

    def close(self) -> None:
        self.commit()
        self.db.close()

    def _set_metadata(self, items: dict[str, str]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO metadata VALUES (?, ?)", items.items())

    @property
    def job(self) -> str | None:
        row = self.db.execute("SELECT value FROM metadata WHERE name = ?", (JOB_KEY,)).fetchone()
        return row[0] if row else None

    @job.setter
    def job(self, value: str) -> None:
        self._set_metadata({JOB_KEY: value})
        self.commit()


class MBTilesStore(_SQLiteStore):
    """MBTiles 1.3: rows in TMS order (0 at the south), metadata for GDAL, QGIS and servers."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS tiles (zoom_level INTEGER, tile_column INTEGER, "
        "tile_row INTEGER, tile_data BLOB);"
        "CREATE UNIQUE INDEX IF NOT EXISTS tile_index ON tiles (zoom_level, tile_column, tile_row);"
    )

    def _key(self, zoom: int, x: int, y: int) -> tuple[int, ...]:
        return zoom, x, (1 << zoom) - 1 - y  # TMS rows count from the south

    def _insert(self, key: tuple[int, ...], data: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO tiles VALUES (?, ?, ?, ?)", (*key, data))

    def done(self, zoom: int) -> set[tuple[int, int]]:
        rows = self.db.execute(
            "SELECT tile_column, tile_row FROM tiles WHERE zoom_level = ?", (zoom,)
        )
        return {(x, (1 << zoom) - 1 - row) for x, row in rows}

    def read(self, zoom: int, x: int, y: int) -> bytes | None:
        row = self.db.execute(
            "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
            self._key(zoom, x, y),
        ).fetchone()
        return row[0] if row else None

    def finish(self, info: TileSetInfo) -> None:
        self._set_metadata(
            {
                "name": info.name,
                "description": info.description,
                "format": info.format,
                "type": "overlay",
                "version": "1.3",
                "bounds": ",".join(f"{v:.7f}" for v in info.lonlat_bounds),
                "center": "{:.7f},{:.7f},{}".format(*info.center),
                "minzoom": str(info.minzoom),
                "maxzoom": str(info.maxzoom),
                "attribution": info.attribution,
            }
        )
        self.db.execute("DELETE FROM metadata WHERE name = ?", (JOB_KEY,))
        self.close()
        os.replace(self.partial, self.path)


class PMTilesStore(_SQLiteStore):
    """PMTiles v3 (the ``pmtiles`` package): tiles staged by tile id, then written in that order."""

    SCHEMA = "CREATE TABLE IF NOT EXISTS tiles (tile_id INTEGER PRIMARY KEY, tile_data BLOB);"

    def __init__(self, path: Path, partial: Path, fmt: str) -> None:
        try:
            import pmtiles.tile
        except ImportError as e:
            raise RenderError(
                "PMTiles output needs the pmtiles package: pip install 'geo-p2p[pmtiles]'",
                "--output",
            ) from e
        self._tile = pmtiles.tile
        super().__init__(path, partial, fmt)

    def _key(self, zoom: int, x: int, y: int) -> tuple[int, ...]:
        return (self._tile.zxy_to_tileid(zoom, x, y),)

    def _insert(self, key: tuple[int, ...], data: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO tiles VALUES (?, ?)", (*key, data))

    def done(self, zoom: int) -> set[tuple[int, int]]:
        first, stop = self._tile.zxy_to_tileid(zoom, 0, 0), self._tile.zxy_to_tileid(zoom + 1, 0, 0)
        rows = self.db.execute(
            "SELECT tile_id FROM tiles WHERE tile_id >= ? AND tile_id < ?", (first, stop)
        )
        return {self._tile.tileid_to_zxy(tile_id)[1:] for (tile_id,) in rows}

    def read(self, zoom: int, x: int, y: int) -> bytes | None:
        row = self.db.execute(
            "SELECT tile_data FROM tiles WHERE tile_id = ?", self._key(zoom, x, y)
        ).fetchone()
        return row[0] if row else None

    def _in_order(self) -> Iterator[tuple[int, bytes]]:
        yield from self.db.execute("SELECT tile_id, tile_data FROM tiles ORDER BY tile_id")

    def finish(self, info: TileSetInfo) -> None:
        from pmtiles.writer import Writer

        tile = self._tile
        kinds = {"png": tile.TileType.PNG, "webp": tile.TileType.WEBP, "jpeg": tile.TileType.JPEG}
        west, south, east, north = info.lonlat_bounds
        lon, lat, zoom = info.center
        header = {
            "tile_type": kinds[info.format],
            "tile_compression": tile.Compression.NONE,
            "min_zoom": info.minzoom,
            "max_zoom": info.maxzoom,
            "min_lon_e7": round(west * 1e7),
            "min_lat_e7": round(south * 1e7),
            "max_lon_e7": round(east * 1e7),
            "max_lat_e7": round(north * 1e7),
            "center_zoom": zoom,
            "center_lon_e7": round(lon * 1e7),
            "center_lat_e7": round(lat * 1e7),
        }
        metadata = {"name": info.name, "description": info.description}
        metadata["attribution"] = info.attribution
        self.commit()
        with temporary_path(self.path.parent, self.path.name) as tmp:
            with open(tmp, "wb") as f:
                writer = Writer(f)
                for tile_id, data in self._in_order():
                    writer.write_tile(tile_id, data)
                writer.finalize(header, metadata)
            os.replace(tmp, self.path)
        self.db.close()
        self.partial.unlink()
