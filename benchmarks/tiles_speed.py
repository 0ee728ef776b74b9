"""A web tile pyramid against a render of the same area at the same resolution, in the same run.

Input: the EPSG:3857 test raster at zoom 17's resolution, mirrored and repeated (as
render_memory.py builds it). ``geo-p2p render --resolution native`` translates it into a GeoTIFF;
``geo_p2p.webtiles.make_tiles`` translates it onto the grid of its zoom-17 tiles (the same pixel
size; a little more area, padded to whole tiles) and builds zooms 11-16 from them. Each is timed
end to end as the command runs it (model loaded beforehand, as for both commands), best of
``--repeat``, interleaved. The ratio also comes per pixel of the max-zoom grid, to leave the
padding out. Like the command line, it keeps freed memory for reuse.

    nice -n 10 python benchmarks/tiles_speed.py [--model DIR] [--size 3072] [--repeat 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import rasterio
from render_memory import build_raster  # benchmarks/ is on the path when run as a script

from geo_p2p import Translator
from geo_p2p.allocator import keep_freed_memory
from geo_p2p.webtiles import WEB_TILE, make_tiles


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
        grid_px = counts[zoom17] * WEB_TILE**2
        shutil.rmtree(folder / "web")
    render = best["render (GeoTIFF)"]
    tiles = sum(counts.values())
    print(
        f"{args.size} x {args.size} px input, {counts[zoom17]} tiles at zoom {zoom17} "
        f"({grid_px / args.size**2:.2f}x the render's pixels), {tiles} in the pyramid "
        f"(zooms {min(counts)}-{zoom17}), {translator.batch_size} per batch"
    )
    print("| run | seconds | tiles/s | vs render | vs render per pixel |")
    print("|---|---|---|---|---|")
    for name, seconds in best.items():
        ratio = seconds / render
        per_px = ratio / (grid_px / args.size**2) if name != "render (GeoTIFF)" else 1.0
        rate = tiles / seconds if name != "render (GeoTIFF)" else float("nan")
        print(f"| {name} | {seconds:.2f} | {rate:.1f} | {ratio:.2f} | {per_px:.2f} |")


if __name__ == "__main__":
    main()
