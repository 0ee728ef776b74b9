"""Bytes a render fetches from a Cloud-Optimized GeoTIFF over HTTP, with and without reading a
row of tiles ahead (geo_p2p.inputs.prefetch.read_ahead), in the same run.

Input: examples/area.tif (a real 0.5 m orthophoto) upsampled to ``--size`` px wide, written as
a COG (DEFLATE, 256 px blocks, overviews), served by the tests' HTTP server on 127.0.0.1 (a
child process; a fresh port for each render, so GDAL's cache of one render does not serve the
next). Renders at native resolution: the whole raster, and an area of interest of a tenth of it
(a 0.316 x 0.316 box at 10 % from the west and 35 % from the south). "needed" is the bytes of
the blocks under the model tiles that meet the area (from the COG's tile index), the least a
render can fetch besides the header. Models: an ngf-4 U-Net with 32 px tiles (the tests'
stand-in) and the bundled model (256 px tiles). Then the bundled model at its own 0.9 m
(--resolution auto), which is coarser than the COG: read from the COG's overview that suits the
grid (geo_p2p.raster.Source.overview), and, for comparison, from the full resolution.

    nice -n 10 python benchmarks/remote_reads.py [--size 4096]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import rasterio
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from cogs import area_of_interest, block_bytes, write_cog  # noqa: E402  # the tests' COGs
from httpserver import RangeServer  # noqa: E402

import geo_p2p.raster  # noqa: E402
import geo_p2p.render.stream  # noqa: E402
from geo_p2p import Translator  # noqa: E402
from geo_p2p.nets import UNetGenerator, set_inference_stats  # noqa: E402

AREA = Path(__file__).parents[1] / "examples" / "area.tif"


def no_read_ahead(reader: object, grid: object, tiles: Iterable) -> Iterator:
    return iter(tiles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="COG width in pixels")
    args = parser.parse_args()
    torch.manual_seed(0)
    net = UNetGenerator(ngf=4, levels=5)
    set_inference_stats(net, "tile")
    models = {
        "ngf 4, 32 px": Translator(net, tile=32, batch_size=8, device="cpu"),
        "bundled, 256 px": Translator.load(batch_size=8, device="cpu"),
    }
    read_ahead = geo_p2p.render.stream.read_ahead
    with tempfile.TemporaryDirectory() as folder:
        cog = Path(folder) / "scene.tif"
        write_cog(AREA, cog, args.size)
        size = cog.stat().st_size
        with rasterio.open(cog) as ds:
            print(
                f"COG {ds.width} x {ds.height} px, {math.ceil(ds.width / 256)} x "
                f"{math.ceil(ds.height / 256)} blocks, {size / 1e6:.2f} MB"
            )
            areas = {name: area_of_interest(ds, t.tile) for name, t in models.items()}
            full = block_bytes(ds, 0, 0, ds.height, ds.width)
        print(
            "| model | render | read ahead | fetched MB | of the file | needed MB | "
            "fetched / needed | requests |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for name, translator in models.items():
            aoi, needed = areas[name]
            for what, options in (("whole", {}), ("area, a tenth", {"aoi": aoi})):
                for ahead in (False, True):
                    geo_p2p.render.stream.read_ahead = read_ahead if ahead else no_read_ahead
                    with RangeServer(Path(folder)) as server:
                        summary = translator.render(
                            server.url("scene.tif"),
                            Path(folder) / "out.tif",
                            resolution="native",
                            vegetation=False,
                            overwrite=True,
                            **options,
                        )
                        sent, requests = server.body_bytes(), len(server.requests())
                    assert summary.fetched == sent, (summary.fetched, sent)
                    least = needed if options else full
                    print(
                        f"| {name} | {what} | {'yes' if ahead else 'no'} | {sent / 1e6:.2f} | "
                        f"{sent / size:.0%} | {least / 1e6:.2f} | {sent / least:.2f} | "
                        f"{requests} |"
                    )
        geo_p2p.render.stream.read_ahead = read_ahead
        coarser(Path(folder), models["bundled, 256 px"], size)


def coarser(folder: Path, translator: Translator, size: int) -> None:
    """The whole COG at the model's resolution, from its overview and from its full resolution."""
    overviews = geo_p2p.raster._overviews
    print("\n| render at the model's 0.9 m | read from | fetched MB | of the file | requests | s |")
    print("|---|---|---|---|---|---|")
    rows = []
    for use in (True, False):
        geo_p2p.raster._overviews = overviews if use else (lambda src, bands: ())
        with RangeServer(folder) as server:
            tick = time.perf_counter()
            plan = translator.plan(server.url("scene.tif"))
            out = folder / "out.tif"
            summary = translator.render(
                server.url("scene.tif"), out, vegetation=False, overwrite=True
            )
            seconds = time.perf_counter() - tick
            sent, requests = server.body_bytes(), len(server.requests())
        assert summary.fetched is not None
        rows.append(sent)
        print(
            f"| whole | {plan.warp} | {sent / 1e6:.2f} | {sent / size:.0%} | {requests} | "
            f"{seconds:.1f} |"
        )
    geo_p2p.raster._overviews = overviews
    print(f"\nfull resolution / overview, bytes: {rows[1] / rows[0]:.1f}x")


if __name__ == "__main__":
    main()
