"""Peak memory of a render against raster size: 1k, 4k and 16k pixels square.

Each input is real imagery (the EPSG:3857 test raster, mirrored so that it tiles without jumps)
repeated to the size and written as a tiled, DEFLATE-compressed GeoTIFF with a real CRS. Each
render runs in a fresh Python process set up as the command line sets it up (freed memory kept
for reuse, torch's default threads), with a small generator (ngf 4, per-tile statistics as the
bundled model) or ``--model``'s, 256 px tiles, default overlap and margin, batch 8, on the CPU,
native resolution, and reports its peak resident set size (``ru_maxrss``) before and after the
render.

    python benchmarks/render_memory.py [--sizes 1024 4096 16384] [--model DIR] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "data" / "charlotte_sat_3857.tif"


def build_raster(path: Path, size: int) -> None:
    """Write a ``size`` x ``size`` GeoTIFF tiled from the mirrored test raster, row band by band."""
    with rasterio.open(SOURCE) as src:
        image = src.read()
        profile = src.profile
        transform = src.transform
    row = np.concatenate([image, image[:, :, ::-1]], axis=2)
    motif = np.concatenate([row, row[:, ::-1]], axis=1)  # mirrored: no jumps where it repeats
    _, mh, mw = motif.shape
    band_rows = 512
    reps_x = -(-size // mw)
    profile.update(
        width=size,
        height=size,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
        zlevel=1,
        transform=transform,
    )
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, size, band_rows):
            h = min(band_rows, size - top)
            rows = np.arange(top, top + h) % mh
            band = np.tile(motif[:, rows], (1, 1, reps_x))[:, :, :size]
            dst.write(band, window=Window(0, top, size, h))


def child(src: str, dst: str, model: str) -> None:
    """Render ``src`` with ``model`` (a directory, or "" for a small random one) and print JSON
    figures (runs in a fresh process)."""
    from geo_p2p.allocator import keep_freed_memory

    keep_freed_memory()  # as the command line
    import torch

    from geo_p2p import Translator
    from geo_p2p.nets import UNetGenerator, init_weights, set_inference_stats

    if model:
        translator = Translator.load(model, batch_size=8, device="cpu")
    else:
        torch.manual_seed(0)
        net = UNetGenerator(ngf=4, levels=8)
        init_weights(net)
        set_inference_stats(net, "tile")  # as the bundled model
        translator = Translator(net, tile=256, batch_size=8, device="cpu")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = translator.render(src, dst, resolution="native", vegetation=False, progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "tiles": summary.tiles,
                "seconds": summary.seconds,
                "before_mb": before,
                "peak_mb": peak,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument(
        "--workdir", type=Path, help="where to put the rasters (default: a temp dir)"
    )
    parser.add_argument("--model", default="", help="model directory (default: ngf-4 random)")
    parser.add_argument("--child", nargs=2, metavar=("SRC", "DST"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.model)
        return
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        rows = []
        for size in args.sizes:
            src, dst = Path(tmp) / f"in_{size}.tif", Path(tmp) / f"out_{size}.tif"
            start = time.perf_counter()
            build_raster(src, size)
            built = time.perf_counter() - start
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(src), str(dst), "--model", args.model],
                check=True,
                capture_output=True,
                text=True,
            )
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append((size, figures))
            print(f"{size}px: input built in {built:.0f} s, {figures}", file=sys.stderr)
            src.unlink()
            dst.unlink()
    print("| raster | tiles | render s | RSS before render MB | peak RSS MB |")
    print("|---|---|---|---|---|")
    for size, f in rows:
        print(
            f"| {size} x {size} | {f['tiles']} | {f['seconds']:.1f} | {f['before_mb']:.0f} "
            f"| {f['peak_mb']:.0f} |"
        )
    if len(rows) > 1:
        ratio = rows[-1][1]["peak_mb"] / rows[0][1]["peak_mb"]
        print(f"\npeak RSS {rows[-1][0]}px / {rows[0][0]}px: {ratio:.2f}")


if __name__ == "__main__":
    main()
