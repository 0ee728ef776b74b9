"""An XYZ tile folder ``z/x/y.ext`` with ``tilejson.json`` and a viewer (``index.html``)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from ..errors import RenderError
from ..files import atomic_write_bytes, temporary_path
from .stores import TILE_FORMATS, TileSetInfo, TileStore


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
