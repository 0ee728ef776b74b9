"""A web tile pyramid against a render of the same area at the same resolution, in the same run.

Input: the EPSG:3857 test raster at zoom 17's resolution, mirrored and repeated (as
render_memory.py builds it) and moved onto zoom 17's tile grid, so that the render and the
pyramid translate the same pixels: ``Translator.render(resolution="native")`` into a GeoTIFF,
``geo_p2p.webtiles.make_tiles`` into zoom-17 tiles and zooms 11-16 built from them. Each is timed
end to end as its command runs it, model loaded beforehand, best of ``--repeat``, interleaved.
Like the command line, it keeps freed memory for reuse.

    nice -n 10 python benchmarks/tiles_speed.py [--model DIR] [--size 3072] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import rasterio
import torch
from affine import Affine
from render_memory import build_raster  # benchmarks/ is on the path when run as a script

from geo_p2p import Translator
from geo_p2p.allocator import keep_freed_memory
from geo_p2p.webtiles import CIRCUMFERENCE, WEB_TILE, make_tiles, mercator_resolution


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory (default: the bundled model)")
    parser.add_argument("--size", type=int, default=3072)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    keep_freed_memory()
    translator = Translator.load(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        raster = folder / "area.tif"
        build_raster(raster, args.size)
        with rasterio.open(raster, "r+") as ds:  # onto the tile grid: the same pixels for both
            t, span = ds.transform, WEB_TILE * mercator_resolution(17)
            left = -CIRCUMFERENCE / 2 + (t.c + CIRCUMFERENCE / 2) // span * span
            top = CIRCUMFERENCE / 2 - (CIRCUMFERENCE / 2 - t.f) // span * span
            ds.transform = Affine(t.a, 0, left, 0, t.e, top)
        runs = {
            "render (GeoTIFF)": lambda: translator.render(
                raster, folder / "map.tif", resolution="native", overwrite=True, progress=False
            ),
            "tiles, MBTiles": lambda: make_tiles(
                raster, folder / "map.mbtiles", translator, overwrite=True, progress=False
            ),
            "tiles, folder + input layer": lambda: make_tiles(
                raster, folder / "web", translator, overwrite=True, progress=False
            ),
            "tiles --map (no model), MBTiles": lambda: make_tiles(
                folder / "map.tif", folder / "copy.mbtiles", overwrite=True, progress=False
            ),
        }
        best = {name: float("inf") for name in runs}
        for _ in range(args.repeat):
            for name, run in runs.items():
                best[name] = min(best[name], timed(run))
        with rasterio.open(folder / "map.mbtiles") as ds:
            zoom17 = int(ds.tags()["ZOOM_LEVEL"])
        counts = {
            z: len(list((folder / "web").glob(f"{z}/*/*.png")))
            for z in range(zoom17 - 6, zoom17 + 1)
        }
        shutil.rmtree(folder / "web")
    render = best["render (GeoTIFF)"]
    tiles = sum(counts.values())
    print(
        f"{args.size} x {args.size} px, {counts[zoom17]} tiles at zoom {zoom17}, {tiles} in the "
        f"pyramid (zooms {min(counts)}-{zoom17}), batch {translator.batch_size}, "
        f"{torch.get_num_threads()} torch threads"
    )
    print("| run | seconds | pyramid tiles/s | vs render |")
    print("|---|---|---|---|")
    for name, seconds in best.items():
        rate = f"{tiles / seconds:.1f}" if name.startswith("tiles") else "-"
        print(f"| {name} | {seconds:.2f} | {rate} | {seconds / render:.2f} |")


if __name__ == "__main__":
    main()
