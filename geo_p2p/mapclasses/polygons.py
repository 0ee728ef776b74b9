"""Polygons of a class raster read in blocks: each block polygonised, pieces cut by block edges
unioned once their row of blocks is done, then simplified, holes filled and small ones dropped
(see :mod:`geo_p2p.mapclasses.vectorize`)."""

from __future__ import annotations

import math

import numpy as np
import shapely
from affine import Affine
from rasterio.features import shapes

from .vector_layers import Grid, Layers

FIELDS = {"class": "object", "value": "int32", "area_m2": "float64"}
"""The fields of a polygon layer (name -> numpy dtype)."""


class Polygons:
    """Polygon pieces of each block, merged along block edges, finished and written."""

    def __init__(
        self, grid: Grid, names: dict[int, str], layers: Layers, simplify: float, min_area: float
    ):
        """``simplify``: tolerance, ground metres; ``min_area``: square ground metres."""
        self.grid, self.names, self.layers = grid, names, layers
        self.tolerance = simplify / math.sqrt(grid.pixel_area)  # pixels
        self.min_area = min_area / grid.pixel_area  # square pixels
        self._open: dict[int, list[shapely.Geometry]] = {}
        self._declared: set[int] = set()
        for value in sorted(names):
            self._layer(value)

    def _layer(self, value: int) -> str:
        """The layer of a class value, declared on first use."""
        name = self.names.get(value, f"class_{value}")
        if value not in self._declared:
            self.layers.declare(name, "Polygon", FIELDS)
            self._declared.add(value)
        return name

    def add_block(self, row: int, col: int, read: tuple[np.ndarray, int, int]) -> None:
        values, _, _ = read
        h, w = values.shape
        inner = (row > 0, row + h < self.grid.height, col > 0, col + w < self.grid.width)
        for geojson, value in shapes(
            values, mask=values > 0, connectivity=4, transform=Affine.translation(col, row)
        ):
            piece = shapely.geometry.shape(geojson)
            x0, y0, x1, y1 = piece.bounds
            touches = (
                (inner[0] and y0 == row)
                or (inner[1] and y1 == row + h)
                or (inner[2] and x0 == col)
                or (inner[3] and x1 == col + w)
            )
            if touches:
                self._open.setdefault(int(value), []).append(piece)
            else:
                self._finish(int(value), piece)

    def end_row(self, bottom: int) -> None:
        """Merge the open pieces once a row of blocks is done; finish those that do not reach
        into the next row."""
        for value, pieces in list(self._open.items()):
            merged = shapely.get_parts(shapely.union_all(pieces))
            waiting = [p for p in merged if bottom < self.grid.height and p.bounds[3] == bottom]
            for part in merged:
                if not (bottom < self.grid.height and part.bounds[3] == bottom):
                    self._finish(value, part)
            if waiting:
                self._open[value] = waiting
            else:
                del self._open[value]

    def _finish(self, value: int, polygon: shapely.Geometry) -> None:
        if polygon.area < self.min_area:
            return
        holes = [r for r in polygon.interiors if shapely.Polygon(r).area >= self.min_area]
        polygon = shapely.Polygon(polygon.exterior, holes)
        if self.tolerance > 0:
            polygon = shapely.simplify(polygon, self.tolerance, preserve_topology=True)
        if not polygon.is_valid:
            polygon = shapely.make_valid(polygon)
        for part in shapely.get_parts(polygon):
            if isinstance(part, shapely.Polygon) and not part.is_empty:
                area = part.area * self.grid.pixel_area
                name = self._layer(value)
                self.layers.add(
                    name, self.grid.to_crs(part), **{"class": name, "value": value, "area_m2": area}
                )
