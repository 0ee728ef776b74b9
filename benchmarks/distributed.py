"""Rendering on a Dask cluster against the single-process render: speed, overhead per region,
and the client's peak memory at two raster sizes.

For each size, the same raster (real imagery, as ``render_memory.py`` builds it) is rendered
with the same model (an ngf-4 U-Net with per-tile statistics, 256 px tiles, or ``--model``):
single process (the streaming render, torch's default threads, as the command line), by regions
in this process on one torch thread (``--resume``'s path, and what one worker does), and on a
LocalCluster of 1 and of 2 worker processes on 127.0.0.1, one thread each (``--workers``). Each
render runs in a fresh process that reports its own peak RSS (the client's, workers excluded).
The workers have imported geo-p2p (and torch) before the render starts. The overhead per region
is the time a 1-worker cluster takes beyond the regions rendered on one thread in process, per
region: Dask's scheduling, moving the pixels, and the model loaded once on the worker.

    nice -n 10 python benchmarks/distributed.py [--sizes 2048 4096] [--region-size 1024]
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# This script's folder comes first on the path, and this file's name would hide Dask's
# distributed package (here and in the worker processes, which inherit the path and import this
# file again, so it imports nothing from that folder at the top).
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

MODES = ("single process", "regions, 1 thread", "cluster, 1 worker", "cluster, 2 workers")


def child(mode: str, src: str, dst: str, model: str, region_size: int) -> None:
    """Render ``src`` in ``mode`` and print JSON figures (runs in a fresh process)."""
    from geo_p2p.allocator import keep_freed_memory

    keep_freed_memory()  # as the command line
    from geo_p2p.regions import ModelSpec, regions, render_regions

    spec = ModelSpec(model, device="cpu")
    options = {"resolution": "native", "vegetation": False, "progress": False}
    if mode == "single process":
        summary = spec.load().render(src, dst, **options)
        count = len(regions(spec.load().grid(*_shape(src)), region_size))
    elif mode == "regions, 1 thread":  # what a worker of one thread does, without Dask
        import torch

        torch.set_num_threads(1)
        summary = render_regions(spec, src, dst, region_size=region_size, **options)
    else:
        from geo_p2p.distributed import dask_client, dask_compute

        workers = int(mode.split()[1])
        with dask_client(workers=workers) as client:
            client.wait_for_workers(workers, timeout=120)
            client.run(importlib.import_module, "geo_p2p.render")  # torch imported: warm
            compute = dask_compute(client, spec)
            summary = render_regions(
                spec, src, dst, compute=compute, region_size=region_size, **options
            )
    if mode != "single process":
        count = len(regions(spec.load().grid(*_shape(src)), region_size))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {"tiles": summary.tiles, "seconds": summary.seconds, "regions": count}
    print(json.dumps({**figures, "peak_mb": peak}))


def _shape(path: str) -> tuple[int, int]:
    import rasterio

    with rasterio.open(path) as ds:
        return ds.height, ds.width


def stand_in(folder: Path) -> str:
    """Save an ngf-4 U-Net for 256 px tiles with per-tile statistics (as the bundled model)."""
    import torch

    from geo_p2p.card import ModelCard, save_model
    from geo_p2p.nets import UNetGenerator, init_weights, set_inference_stats

    torch.manual_seed(0)
    net = UNetGenerator(ngf=4, levels=8)
    init_weights(net)
    set_inference_stats(net, "tile")
    card = ModelCard(ngf=4, tile=256, inference_stats="tile")
    return str(save_model(folder / "ngf4", net, card))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--region-size", type=int, default=1024)
    parser.add_argument("--model", default="", help="model directory (default: ngf-4 random)")
    parser.add_argument("--workdir", type=Path, help="where to put the rasters (default: temp)")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "SRC", "DST"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.model, args.region_size)
        return
    sys.path.append(str(HERE))
    from render_memory import build_raster

    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        model = args.model or stand_in(Path(tmp))
        for size in args.sizes:
            src = Path(tmp) / f"in_{size}.tif"
            build_raster(src, size)
            for mode in MODES:
                dst = Path(tmp) / f"out_{size}.tif"
                start = time.perf_counter()
                out = subprocess.run(
                    [sys.executable, __file__, "--child", mode, str(src), str(dst)]
                    + ["--model", model, "--region-size", str(args.region_size)],
                    capture_output=True,
                    text=True,
                    timeout=1800,
                )
                if out.returncode:
                    sys.exit(f"{mode} failed:\n{out.stderr}")
                figures = json.loads(out.stdout.strip().splitlines()[-1])
                figures["wall"] = time.perf_counter() - start
                rows.append((size, mode, figures))
                print(f"{size}px {mode}: {figures}", file=sys.stderr)
                dst.unlink()
    print(
        f"regions of {args.region_size} px; render s: the render's own clock (a cluster is "
        "started before it, loading the model on the workers is in it); process s: all of it"
    )
    print(
        "| raster | mode | regions | tiles | render s | tiles/s | vs single | process s "
        "| client peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        single = next(f for s, m, f in rows if s == size and m == MODES[0])
        rate = single["tiles"] / single["seconds"]
        for s, mode, f in rows:
            if s != size:
                continue
            tiles_s = f["tiles"] / f["seconds"]
            print(
                f"| {size} | {mode} | {f['regions']} | {f['tiles']} | {f['seconds']:.1f} "
                f"| {tiles_s:.1f} | {tiles_s / rate:.2f} | {f['wall']:.1f} | {f['peak_mb']:.0f} |"
            )
        local, one = (next(f for s, m, f in rows if s == size and m == k) for k in MODES[1:3])
        overhead = (one["seconds"] - local["seconds"]) / one["regions"]
        print(f"\n{size} px: a 1-worker cluster: {overhead:.2f} s per region more than 1 thread")
    print()


if __name__ == "__main__":
    main()
