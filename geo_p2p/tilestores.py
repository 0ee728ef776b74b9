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

import json
import os
import re
import shutil
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .card import atomic_write_bytes
from .geotiff import temporary_path
from .raster import RenderError

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


def open_store(
    path: str | Path, fmt: str, overwrite: bool = False, resume: bool = False, job: str = ""
) -> TileStore:
    """The store for ``path``: ``*.mbtiles``, ``*.pmtiles``, else an XYZ folder.

    ``job`` describes the settings; ``resume`` carries on a store started with the same ``job``,
    ``overwrite`` starts again. Raises RenderError when the output exists and neither is given,
    or when a resume would mix settings.
    """
    path = Path(path)
    if fmt not in TILE_FORMATS:
        raise RenderError(f"unknown tile format {fmt!r}: use png, webp or jpeg", "--format")
    if overwrite and resume:
        raise RenderError("choose --overwrite or --resume, not both", "--resume")
    if not path.parent.is_dir():
        raise RenderError(f"folder {path.parent} does not exist", "--output")
    suffix = path.suffix.lower()
    if suffix in (".mbtiles", ".pmtiles"):
        if path.exists() and not overwrite:
            hint = "--overwrite to replace it" + (" (it is complete)" if resume else "")
            raise RenderError(f"{path} exists: pass {hint}", "--output")
        partial = path.parent / f".{path.name}.partial"
        if partial.exists() and not (resume or overwrite):
            raise RenderError(
                f"an interrupted run left {partial}: pass --resume to finish it "
                "or --overwrite to start again",
                "--output",
            )
        if not resume:
            partial.unlink(missing_ok=True)
        cls = MBTilesStore if suffix == ".mbtiles" else PMTilesStore
        store: TileStore = cls(path, partial, fmt)
    else:
        store = XYZDirectory(path, fmt, overwrite, resume)
    if resume and store.job not in (None, job):
        store.close()
        raise RenderError(
            f"{path} was started with other settings: pass --overwrite to start again", "--resume"
        )
    store.job = job
    return store


class XYZDirectory(TileStore):
    """Tiles as ``root/z/x/y.ext``; ``tilejson.json`` last. ``viewer`` writes ``index.html``."""

    OURS = re.compile(r"^(\d+|input|leaflet|index\.html|tilejson\.json|\.geo-p2p-tiles\.json)$")

    def __init__(self, root: Path, fmt: str, overwrite: bool = False, resume: bool = False):
        self.root = root
        self.extension = TILE_FORMATS[fmt]
        if root.exists():
            if not root.is_dir():
                raise RenderError(f"{root} is a file: give a folder, .mbtiles or .pmtiles", "-o")
            entries = list(root.iterdir())
            if entries and not (overwrite or resume):
                raise RenderError(
                    f"{root} exists: pass --overwrite to replace it or --resume to finish it", "-o"
                )
            if overwrite:
                others = [e.name for e in entries if not self.OURS.match(e.name)]
                if others:
                    raise RenderError(
                        f"{root} holds files that geo-p2p did not write ({others[0]}): "
                        "choose a new or empty folder",
                        "-o",
                    )
                complete = root / "tilejson.json"
                complete.unlink(missing_ok=True)  # first: no longer complete
                for entry in entries:
                    if entry != complete:
                        _remove(entry)
            elif resume and (root / "tilejson.json").exists():
                raise RenderError(f"{root} is complete: pass --overwrite to make it again", "-o")
        root.mkdir(exist_ok=True)
        for tmp in root.glob("*/*/.*.tmp"):
            tmp.unlink()  # left by a run that was killed while writing a tile

    def _path(self, zoom: int, x: int, y: int) -> Path:
        return self.root / str(zoom) / str(x) / f"{y}.{self.extension}"

    def done(self, zoom: int) -> set[tuple[int, int]]:
        folder = self.root / str(zoom)
        if not folder.is_dir():
            return set()
        return {
            (int(column.name), int(tile.name.split(".")[0]))
            for column in folder.iterdir()
            for tile in column.glob(f"*.{self.extension}")
        }

    def read(self, zoom: int, x: int, y: int) -> bytes | None:
        try:
            return self._path(zoom, x, y).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, zoom: int, x: int, y: int, data: bytes) -> None:
        path = self._path(zoom, x, y)
        path.parent.mkdir(parents=True, exist_ok=True)
        with temporary_path(path.parent, path.name) as tmp:
            tmp.write_bytes(data)
            os.replace(tmp, path)

    def finish(self, info: TileSetInfo) -> None:
        tiles = f"{{z}}/{{x}}/{{y}}.{self.extension}"
        tilejson = json.dumps(info.tilejson(tiles), indent=2).encode()
        atomic_write_bytes(self.root / "tilejson.json", tilejson)

    def close(self) -> None:
        """Nothing to release: every tile is in place once written."""

    def write_viewer(self, info: TileSetInfo, input_layer: str | None) -> None:
        """Write ``index.html`` and Leaflet beside the tiles; ``input_layer`` is the subfolder
        of the input's tiles (shown under the map with a swipe), if any."""
        viewer = Path(__file__).parent / "viewer"
        shutil.copytree(viewer / "leaflet", self.root / "leaflet", dirs_exist_ok=True)
        config = {
            "name": info.name,
            "attribution": info.attribution,
            "bounds": list(info.bounds),
            "minzoom": info.minzoom,
            "maxzoom": info.maxzoom,
            "tiles": f"{{z}}/{{x}}/{{y}}.{self.extension}",
            "input": input_layer and f"{input_layer}/{{z}}/{{x}}/{{y}}.{self.extension}",
        }
        page = (viewer / "index.html").read_text().replace("/*CONFIG*/", json.dumps(config))
        atomic_write_bytes(self.root / "index.html", page.encode())

    @property
    def job(self) -> str | None:
        path = self.root / ".geo-p2p-tiles.json"
        return path.read_text() if path.exists() else None

    @job.setter
    def job(self, value: str) -> None:
        atomic_write_bytes(self.root / ".geo-p2p-tiles.json", value.encode())


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink()


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
