"""Seam visibility of the tile blending for several overlaps and margins, on real aerial images.

Each aerial half of the maps validation pairs (600 px) is mirrored into a seamless 1200 px square,
cropped to a whole number of tile strides, translated tile by tile with blending, and scored with
:func:`geo_p2p.render.tiling.seam_score` at the grid's stride (the seams) and at a stride 16 px
longer (the noise floor: the generator's transposed convolutions leave patterns of period 2, 4, 8
and 16 px, which fold alike at both strides, so "seams" equal to "floor" means no visible grid).
Without ``--model``, a randomly initialised ngf-16 U-Net with per-tile normalisation stands in for a
trained generator (its per-tile statistics make tile borders plainly visible). ``--vegetation``
translates as ``render --vegetation`` does (a model whose card names land and park classes).

    python benchmarks/seams.py [--model DIR] [--images 16] [--data ../shared/data] [--config 32,8]
        [--vegetation]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from geo_p2p import Translator
from geo_p2p.nets import UNetGenerator, init_weights, set_inference_stats
from geo_p2p.render.tiling import seam_score

TILE = 256
CONFIGS = [(0, 0), (32, 0), (32, 8), (64, 0), (64, 8), (64, 16), (96, 0), (96, 16), (96, 24)]
CONFIGS += [(128, 0), (128, 16), (128, 32)]
EDGE = 32
"""Pixels along each image's own edges left out of the score (raster edges are not seams)."""


def mirrored(image: np.ndarray) -> np.ndarray:
    """The image and its mirror images as a 2x larger square without jumps at the joins."""
    top = np.concatenate([image, image[:, ::-1]], axis=1)
    return np.ascontiguousarray(np.concatenate([top, top[::-1]], axis=0))


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory (default: random ngf-16 U-Net)")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--data", type=Path, default=root.parent / "shared" / "data")
    parser.add_argument(
        "--config", action="append", metavar="OVERLAP,MARGIN", help="only these (repeatable)"
    )
    parser.add_argument("--vegetation", action="store_true", help="as render --vegetation")
    args = parser.parse_args()
    configs = [tuple(map(int, c.split(","))) for c in args.config] if args.config else CONFIGS
    torch.set_num_threads(2)
    files = sorted((args.data / "maps" / "val").glob("*.jpg"))[: args.images]
    aerials = [mirrored(np.asarray(Image.open(f).convert("RGB"))[:, :600]) for f in files]
    palette = None
    if args.model:
        loaded = Translator.load(args.model)
        module, palette, what = loaded.module, loaded.palette, args.model
    else:
        torch.manual_seed(0)
        module = UNetGenerator(ngf=16, levels=8)
        init_weights(module)
        set_inference_stats(module, "tile")
        what = "random ngf-16 U-Net, per-tile statistics"
    what += ", with --vegetation" if args.vegetation else ""
    print(f"model: {what}; {len(aerials)} maps/val aerial images, tile {TILE}")
    print("overlap margin  stride  tiles/out-tile  seams  floor  seconds")
    for overlap, margin in configs:
        stride = TILE - overlap
        size = TILE + stride * ((1200 - TILE) // stride)
        layout = {"tile": TILE, "overlap": overlap, "margin": margin}
        translator = Translator(module, **layout, device="cpu", palette=palette)
        start = time.perf_counter()
        outputs = [
            translator.translate(np.ascontiguousarray(a[:size, :size]), vegetation=args.vegetation)
            for a in aerials
        ]
        seconds = time.perf_counter() - start
        cost = (TILE / stride) ** 2
        print(
            f"{overlap:7d} {margin:6d} {stride:7d} {cost:15.2f} "
            f"{seam_score(outputs, stride, EDGE):6.3f} "
            f"{seam_score(outputs, stride + 16, EDGE):6.3f} {seconds:8.1f}"
        )


if __name__ == "__main__":
    main()
