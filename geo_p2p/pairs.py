"""Training pairs cut from two georeferenced rasters: an aerial image and a map of the same area.

Both rasters are read onto one grid, in the aerial's CRS at a chosen ground resolution, over
the area they share (the map through a ``WarpedVRT``, so its CRS, resolution and extent may
differ). Square windows with enough valid data in both are written as side-by-side ``A | B``
PNGs into ``train/`` and ``val/``; the split is by spatial blocks, so that validation pairs lie
apart from training pairs. ``dataset.json`` records the grid, the ground resolution (which
``geo-p2p train`` reads) and the counts. The folder is built under a temporary name and renamed
at the end.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from PIL import Image
from shapely import affinity
from tqdm import tqdm

from .aoi import AreaOfInterest, pixel_geometry
from .errors import RenderError
from .files import check_output
from .inputs import redact
from .raster import (
    NODATA_FILL,
    Source,
    inspect_source,
    onto_grid,
    open_quietly,
    require_georeferencing,
)
from .reader import RasterReader

log = logging.getLogger(__name__)

DATASET_FILE = "dataset.json"
GEOREFERENCING_NEEDED = (
    "pairs need both rasters georeferenced (gdal_translate -a_srs / -a_ullr, or a world file "
    "with a .prj)"
)
BLOCK_WINDOWS = 4
"""Side of a split block, in windows: validation blocks are this many window sides across."""


@dataclass(frozen=True)
class Window:
    """A square pair window on the common grid, and the split it went to."""

    row: int
    col: int
    split: str

    def name(self) -> str:
        return f"r{self.row:06d}_c{self.col:06d}.png"


@dataclass(frozen=True)
class PairsSummary:
    """What :func:`make_pairs` wrote."""

    train: int
    val: int
    skipped: int
    gsd: float
    folder: Path

    def __str__(self) -> str:
        return (
            f"{self.train} training and {self.val} validation pairs at {self.gsd:.3g} m/px "
            f"({self.skipped} windows skipped for missing data): {self.folder}"
        )


def make_pairs(
    aerial: str | Path,
    map_raster: str | Path,
    out: str | Path,
    gsd: float | None = None,
    size: int = 256,
    stride: int | None = None,
    val_fraction: float = 0.1,
    min_valid: float = 0.95,
    aoi: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> PairsSummary:
    """Cut ``size``-pixel ``aerial | map`` pairs every ``stride`` pixels (default: ``size``).

    ``gsd``: metres per pixel on the ground (default: the aerial's own). Windows with less than
    ``min_valid`` of their pixels valid in either raster (or inside ``aoi``) are skipped; the
    few invalid pixels of the others are filled with grey in both halves. Spatial blocks of
    ``BLOCK_WINDOWS`` window sides go to ``val/`` (chosen at random by ``seed``) until about
    ``val_fraction`` of the pairs are there; a window that straddles both splits is dropped.
    """
    out = Path(out)
    stride = stride or size
    if size < 32 or stride < 1:
        raise RenderError("the window size must be at least 32 px and the stride positive")
    if not 0 <= val_fraction < 1:
        raise RenderError(f"--val-fraction must be in [0, 1), got {val_fraction}", "--val-fraction")
    check_output(out, overwrite=overwrite, empty_folder_ok=True)
    for path, param in ((aerial, "AERIAL"), (map_raster, "MAP")):
        require_georeferencing(path, GEOREFERENCING_NEEDED, param)
    grid = inspect_source(aerial, resolution=gsd if gsd is not None else "native")
    assert grid.crs is not None and grid.transform is not None
    ground_gsd = gsd if gsd is not None else grid.ground_resolution()
    map_native = inspect_source(map_raster, resolution="native")
    map_source = onto_grid(map_native, grid.crs, grid.transform, grid.width, grid.height)
    footprint, area = _footprint(map_source, grid, size)
    region = AreaOfInterest(aoi, grid) if aoi else None

    candidates = list(_windows(area, size, stride))
    tmp = out.parent / f".{out.name}.{secrets.token_hex(6)}.tmp"
    try:
        kept, skipped = _write_windows(
            tmp, candidates, grid, map_source, [footprint, region], size, min_valid, progress
        )
        if not kept:
            raise RenderError(
                f"no {size} px window has {min_valid:.0%} valid data in both rasters: "
                "lower --min-valid or --size, or check the rasters' no-data"
            )
        windows = split_windows(kept, size, val_fraction, seed)
        for w in windows:
            cut = tmp / "all" / w.name()
            if w.split == "dropped":
                cut.unlink()
            else:
                (tmp / w.split).mkdir(exist_ok=True)
                os.replace(cut, tmp / w.split / w.name())
        (tmp / "all").rmdir()
        counts = {s: sum(w.split == s for w in windows) for s in ("train", "val", "dropped")}
        meta = {
            "gsd": round(ground_gsd, 6),
            "crs": grid.crs.to_string() if grid.crs else None,
            "transform": list(grid.transform)[:6] if grid.transform else None,
            "size": size,
            "stride": stride,
            "names": "r<row>_c<col>.png: top-left pixel of the window on this grid",
            "sources": {"aerial": redact(str(aerial)), "map": redact(str(map_raster))},
            "counts": {**counts, "skipped_no_data": skipped},
            "split": {"val_fraction": val_fraction, "block_px": size * BLOCK_WINDOWS, "seed": seed},
        }
        (tmp / DATASET_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        old = out.parent / f".{out.name}.{secrets.token_hex(6)}.old"
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return PairsSummary(counts["train"], counts["val"], skipped, ground_gsd, out)


def _footprint(map_source: Source, grid: Source, size: int) -> tuple[AreaOfInterest, tuple]:
    """The map's outline on the grid, and (row0, col0, row1, col1) of the grid pixels it covers
    (a WarpedVRT reads zeros, not no-data, outside its source)."""
    with open_quietly(map_source.path) as src:
        outline = shapely.segmentize(
            shapely.box(0, 0, src.width, src.height), max(src.width, src.height) / 32
        )
        t = src.transform
        geom = affinity.affine_transform(outline, [t.a, t.b, t.d, t.e, t.c, t.f])
        pixels = pixel_geometry(geom, src.crs, grid)
    left, top, right, bottom = pixels.bounds
    row0, col0 = max(0, math.ceil(top)), max(0, math.ceil(left))
    row1, col1 = min(grid.height, math.floor(bottom)), min(grid.width, math.floor(right))
    if row1 <= row0 or col1 <= col0:
        raise RenderError(
            f"{grid.path} and {map_source.path} do not overlap: are they of the same place, and "
            "are their CRSs right?"
        )
    if row1 - row0 < size or col1 - col0 < size:
        raise RenderError(
            f"the rasters share only {col1 - col0}x{row1 - row0} px at this resolution, less than "
            f"one {size} px window: pass a smaller --size or a coarser --gsd",
            "--size",
        )
    return AreaOfInterest(pixels, grid), (row0, col0, row1, col1)


def _windows(area: tuple[int, int, int, int], size: int, stride: int) -> Iterator[tuple[int, int]]:
    row0, col0, row1, col1 = area
    for row in range(row0, row1 - size + 1, stride):
        for col in range(col0, col1 - size + 1, stride):
            yield row, col


def _write_windows(
    folder: Path,
    candidates: list[tuple[int, int]],
    grid: Source,
    map_source: Source,
    regions: list[AreaOfInterest | None],
    size: int,
    min_valid: float,
    progress: bool,
) -> tuple[list[tuple[int, int]], int]:
    """Write every candidate window with enough valid data to ``folder/all``; (kept, skipped)."""
    (folder / "all").mkdir(parents=True)
    kept, skipped = [], 0
    with RasterReader(grid) as aerial_reader, RasterReader(map_source) as map_reader:
        for row, col in tqdm(candidates, desc="pairs", unit="window", disable=not progress or None):
            a, valid_a = aerial_reader.read(row, col, size, size)
            b, valid_b = map_reader.read(row, col, size, size)
            valid = valid_a & valid_b
            for region in filter(None, regions):
                valid &= region.mask(row, col, size, size)
            if valid.mean() < min_valid:
                skipped += 1
                continue
            pair = np.concatenate([a, b], axis=2)
            pair[:, ~np.concatenate([valid, valid], axis=1)] = NODATA_FILL
            buffer = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(pair.transpose(1, 2, 0))).save(buffer, "PNG")
            (folder / "all" / Window(row, col, "").name()).write_bytes(buffer.getvalue())
            kept.append((row, col))
    return kept, skipped


def split_windows(
    windows: list[tuple[int, int]], size: int, val_fraction: float, seed: int = 0
) -> list[Window]:
    """Assign windows to train or val by spatial blocks of ``BLOCK_WINDOWS * size`` pixels.

    Blocks are taken in a random order (``seed``) into val until it holds ``val_fraction`` of
    the windows; a window touching blocks of both splits is "dropped", so that no validation
    window overlaps a training one.
    """
    block = size * BLOCK_WINDOWS

    def blocks(row: int, col: int) -> set[tuple[int, int]]:
        return {
            (r // block, c // block) for r in (row, row + size - 1) for c in (col, col + size - 1)
        }

    home = {w: (w[0] // block, w[1] // block) for w in windows}
    order = sorted(set(home.values()))
    np.random.default_rng(seed).shuffle(order)
    val_blocks: set[tuple[int, int]] = set()
    target = val_fraction * len(windows)
    for b in order[: max(0, len(order) - 1)]:  # leave at least one block for training
        if sum(home[w] in val_blocks for w in windows) >= target:
            break
        val_blocks.add(b)
    result = []
    for row, col in windows:
        touched = blocks(row, col)
        if touched <= val_blocks:
            split = "val"
        elif touched.isdisjoint(val_blocks):
            split = "train"
        else:
            split = "dropped"
        result.append(Window(row, col, split))
    return result
