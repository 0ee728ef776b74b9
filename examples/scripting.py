"""geo-p2p from a GIS script: load the default model, translate an array, render a file.

python examples/scripting.py            (run from the repository root)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from geo_p2p import Translator
from geo_p2p.allocator import keep_freed_memory

HERE = Path(__file__).parent


def main() -> None:
    # What the command line does for its process: keep freed memory for torch's next batch
    # (no page faults per forward pass; much faster on a CPU). Returns False off glibc.
    keep_freed_memory()
    # The bundled model; Translator.load("runs/mine/model") takes one from `geo-p2p train`.
    translator = Translator.load(batch_size=4)
    print(f"model: tile {translator.tile} px, expects {translator.gsd} m/px")

    # 1. An in-memory array of any size (H, W, 3) uint8: same tiling and blending as render.
    with rasterio.open(HERE / "area.tif") as src:
        rgb = src.read((1, 2, 3), window=Window(0, 0, 300, 200)).transpose(1, 2, 0)
    map_rgb = translator.translate(rgb)
    print(
        f"translated an array of {rgb.shape} -> {map_rgb.shape}, mean colour "
        f"{np.round(map_rgb.reshape(-1, 3).mean(0)).astype(int).tolist()}"
    )

    # 2. A georeferenced file, with options: limit to a polygon (WKT in the raster's CRS),
    #    keep the native grid, write a Cloud-Optimized GeoTIFF.
    with rasterio.open(HERE / "area.tif") as src:
        left, bottom, right, top = src.bounds
    mid_x, mid_y = (left + right) / 2, (bottom + top) / 2
    aoi = f"POLYGON(({left} {top}, {mid_x} {top}, {mid_x} {mid_y}, {left} {mid_y}, {left} {top}))"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "map.tif"
        summary = translator.render(HERE / "area.tif", out, aoi=aoi, resolution="native", cog=True)
        print(summary)
        with rasterio.open(out) as dst:
            print(f"output: {dst.width}x{dst.height}, {dst.crs}, bounds {tuple(dst.bounds)}")


if __name__ == "__main__":
    main()
