"""The output side of vectorising: the class raster's grid (pixel to CRS, ground scale) and a
buffered GeoPackage writer (pyogrio, the ``vectors`` extra)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from affine import Affine

from ..geodesy import pixel_metres

FLUSH = 5000
"""Features buffered per layer before they are appended to the GeoPackage."""


@dataclass(frozen=True)
class Grid:
    """The raster's size, transform and ground scale (metres per pixel along x and y)."""

    height: int
    width: int
    transform: Affine
    metres: tuple[float, float]

    @classmethod
    def of(cls, src) -> Grid:
        t = src.transform
        measured = None if src.crs is None else pixel_metres(src.crs, t, src.width, src.height)
        return cls(src.height, src.width, t, measured or (abs(t.a), abs(t.e)))

    @property
    def pixel_area(self) -> float:
        """Square ground metres per pixel."""
        return self.metres[0] * self.metres[1]

    def to_crs(self, geometry: shapely.Geometry) -> shapely.Geometry:
        t = self.transform
        return shapely.affinity.affine_transform(geometry, [t.a, t.b, t.d, t.e, t.c, t.f])


class Layers:
    """Buffers features per layer and appends them to a GeoPackage with pyogrio."""

    def __init__(self, path: Path, crs: str | None) -> None:
        self.path, self.crs = path, crs
        self._kinds: dict[str, tuple[str, dict[str, str]]] = {}
        self._buffers: dict[str, tuple[list[bytes], dict[str, list]]] = {}
        self._written: set[str] = set()
        self.counts: dict[str, int] = {}

    def declare(self, layer: str, geometry_type: str, fields: dict[str, str]) -> None:
        """A layer of ``geometry_type`` with ``fields`` (name -> numpy dtype)."""
        self._kinds[layer] = (geometry_type, fields)
        self._buffers[layer] = ([], {f: [] for f in fields})
        self.counts[layer] = 0

    def add(self, layer: str, geometry: shapely.Geometry, **values: object) -> None:
        geoms, columns = self._buffers[layer]
        geoms.append(shapely.to_wkb(geometry))
        for name, column in columns.items():
            column.append(values[name])
        self.counts[layer] += 1
        if len(geoms) >= FLUSH:
            self._flush(layer)

    def close(self) -> None:
        """Write what is buffered, and every declared layer, empty ones included."""
        for layer in self._kinds:
            self._flush(layer)

    def _flush(self, layer: str) -> None:
        import pyogrio.raw

        kind, fields = self._kinds[layer]
        geoms, columns = self._buffers[layer]
        if not geoms and layer in self._written:
            return
        pyogrio.raw.write(
            self.path,
            np.array(geoms, dtype=object),
            [np.array(columns[f], dtype=dtype) for f, dtype in fields.items()],
            list(fields),
            layer=layer,
            driver="GPKG",
            geometry_type=kind,
            crs=self.crs,
            append=bool(self._written),
            # GeoPackage 1.2: what GDAL before 3.7 (QGIS 3.22's, say) reads without warnings.
            dataset_options=None if self._written else {"VERSION": "1.2"},
        )
        self._written.add(layer)
        geoms.clear()
        for column in columns.values():
            column.clear()
