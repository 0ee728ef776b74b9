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
import io
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from affine import Affine
from PIL import Image
from render_memory import build_raster  # benchmarks/ is on the path when run as a script

from geo_p2p import Translator
from geo_p2p.allocator import keep_freed_memory
from geo_p2p.webtiles import CIRCUMFERENCE, WEB_TILE, make_tiles, mercator_resolution
from geo_p2p.webtiles.codec import encode_png


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def pillow_png(pixels: np.ndarray) -> bytes:
    """PNG through Pillow at zlib level 2, as tiles were encoded before (adaptive filters)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=2)
    return buffer.getvalue()


def encoders(tiles: list[np.ndarray], repeat: int) -> None:
    """Milliseconds and KiB per tile of the map tiles, by PNG encoder, best of ``repeat``."""
    print(f"\nPNG encoding of {len(tiles)} translated 256 px tiles (RGB), best of {repeat}:")
    print("| encoder | ms per tile | KiB per tile |")
    print("|---|---|---|")
    results = {}
    for name, encode in {
        "geo-p2p (up filter, zlib 1)": encode_png,
        "Pillow, level 2": pillow_png,
    }.items():
        seconds = min(timed(lambda e=encode: [e(t) for t in tiles]) for _ in range(repeat))
        size = sum(len(encode(t)) for t in tiles) / len(tiles) / 1024
        results[name] = seconds
        print(f"| {name} | {1000 * seconds / len(tiles):.2f} | {size:.1f} |")
    ours, pillow = results.values()
    print(f"Pillow / geo-p2p time: {pillow / ours:.2f}")


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
        quiet = {"overwrite": True, "progress": False}
        # The generator alone (vegetation=False): no painting, whatever the imagery.
        runs = {
            "render (GeoTIFF)": lambda: translator.render(
                raster, folder / "map.tif", resolution="native", vegetation=False, **quiet
            ),
            "tiles, MBTiles": lambda: make_tiles(
                raster, folder / "map.mbtiles", translator, vegetation=False, **quiet
            ),
            "tiles, folder + input layer": lambda: make_tiles(
                raster, folder / "web", translator, vegetation=False, **quiet
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
        with rasterio.open(folder / "map.tif") as ds:
            rgb = ds.read().transpose(1, 2, 0)
        cut = [
            np.ascontiguousarray(rgb[r : r + WEB_TILE, c : c + WEB_TILE])
            for r in range(0, rgb.shape[0] - WEB_TILE + 1, WEB_TILE)
            for c in range(0, rgb.shape[1] - WEB_TILE + 1, WEB_TILE)
        ]
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
    encoders(cut, args.repeat)


if __name__ == "__main__":
    main()
