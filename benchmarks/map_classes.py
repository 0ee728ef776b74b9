"""Map classes measured: paint colours, painted vs crisp on held-out pairs, centrelines, and
the vectoriser's time and memory.

    python benchmarks/map_classes.py colours --train ../shared/data/maps/train
    python benchmarks/map_classes.py quality --val ../shared/data/maps/val --predictions P/
    python benchmarks/map_classes.py margins --val ../shared/data/maps/val --predictions P/
    python benchmarks/map_classes.py centrelines --val ../shared/data/maps/val --predictions P/
    python benchmarks/map_classes.py vectorize --size 8192

``quality`` translates every held-out pair with the bundled model as ``geo-p2p evaluate`` does
(the painted style; its predictions are kept in ``--predictions`` and reused when there), then
scores the crisp style of the same predictions for each majority window size, on the first
``--select`` pairs (where the default size is chosen), on the rest, and on all.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from model_quality import COLUMNS  # the model-quality table's columns (run from benchmarks/)
from PIL import Image

from geo_p2p.card import DEFAULT_MODEL_DIR, load_card
from geo_p2p.evaluate import evaluate, evaluation_files
from geo_p2p.mapclasses import DEFAULT_SPECKLE_M, Palette, maps_palette
from geo_p2p.mapclasses.crisp import class_values, majority_filter, paint_values, window_radius
from geo_p2p.mapclasses.palette import paint_colours
from geo_p2p.metrics import MetricAccumulator
from geo_p2p.train.data import dataset_gsd, list_images, load_pair


def cpu_line() -> str:
    """The machine, its core count and the vector instruction sets the CPU has."""
    text = Path("/proc/cpuinfo").read_text()
    flags = " ".join(sorted(set(re.findall(r"avx512[a-z_0-9]*|amx[a-z_]*|avx2", text))))
    return f"{platform.machine()}, {os.cpu_count()} cores, {flags}"


def table(rows: dict[str, dict[str, float]]) -> str:
    width = max(len(n) for n in rows)
    lines = [f"| {'':{width}} | " + " | ".join(COLUMNS) + " |"]
    lines.append(
        "|" + "-" * (width + 2) + "|" + "|".join("-" * (len(c) + 2) for c in COLUMNS) + "|"
    )
    for name, s in rows.items():
        cells = " | ".join(f"{s[c]:.3f}" if c == "rmse" else f"{s[c]:.4f}" for c in COLUMNS)
        lines.append(f"| {name:{width}} | {cells} |")
    return "\n".join(lines)


def colours(args: argparse.Namespace) -> None:
    files = list_images(args.train)[:: args.step]
    targets = (np.asarray(load_pair(f)[1]) for f in files)
    palette = paint_colours(maps_palette(), targets)
    print(f"paint colours from {len(files)} training targets (every {args.step}th):")
    for c in palette.classes:
        print(f"  {c.name}: {c.colour}")


def quality(args: argparse.Namespace) -> None:
    from geo_p2p.render.translator import Translator

    files = evaluation_files(args.val)[: args.limit]
    card = load_card(DEFAULT_MODEL_DIR)
    palette = Palette.from_card(card.classes)
    out = args.predictions
    if not all((out / f"{f.stem}.png").exists() for f in files):
        translator = Translator.load(device="cpu")
        gsd = dataset_gsd(args.val, files)
        evaluate(translator, files, card.direction, gsd, predictions=out, progress=True)
    sizes = [float(s) for s in args.sizes.split(",")]
    names = ["painted", *map(str, sizes)]
    parts = {
        f"pairs 0-{args.select - 1} (where the window size is chosen)": range(args.select),
        f"pairs {args.select}-{len(files) - 1} (held out from that choice)": range(
            args.select, len(files)
        ),
        "all pairs": range(len(files)),
    }
    accs = {(name, p): MetricAccumulator() for name in names for p in parts}
    for i, f in enumerate(files):
        pred = np.asarray(Image.open(out / f"{f.stem}.png").convert("RGB"))
        target = np.asarray(load_pair(f, card.direction)[1])
        values = class_values(palette, np.moveaxis(pred, -1, 0), np.ones(pred.shape[:2], bool))
        images = {"painted": pred}
        for size in sizes:
            radius = window_radius(size, card.gsd)
            filtered = majority_filter(values, radius, len(palette.classes))
            images[str(size)] = paint_values(palette, filtered)
        for part, ids in parts.items():
            if i in ids:
                for name, image in images.items():
                    accs[name, part].add(image, target)
    print(f"{len(files)} pairs of {args.val}, bundled model, {cpu_line()}")
    for part in parts:
        rows = {}
        for name in names:
            px = 2 * window_radius(float(name), card.gsd) + 1 if name != "painted" else 0
            label = name if name == "painted" else f"crisp, window {name} m ({px} px)"
            rows[label] = accs[name, part].summary()
        print(f"\n{part}:")
        print(table(rows))


def margins(args: argparse.Namespace) -> None:
    """The crisp style of the saved predictions of the first ``--select`` pairs for several
    margins of one class (the others as in the bundled card), one window size."""
    files = evaluation_files(args.val)[: args.select]
    card = load_card(DEFAULT_MODEL_DIR)
    palette = Palette.from_card(card.classes)
    index = palette.index(args.name)
    radius = window_radius(args.size, card.gsd)
    variants = {}
    for margin in (float(m) for m in args.margins.split(",")):
        classes = list(palette.classes)
        classes[index] = replace(classes[index], margin=margin)
        variants[f"{args.name} margin {margin:g}"] = Palette(tuple(classes))
    accs = {name: MetricAccumulator() for name in ["painted", *variants]}
    for f in files:
        pred = np.asarray(Image.open(args.predictions / f"{f.stem}.png").convert("RGB"))
        target = np.asarray(load_pair(f, card.direction)[1])
        accs["painted"].add(pred, target)
        for name, variant in variants.items():
            values = class_values(variant, np.moveaxis(pred, -1, 0), np.ones(pred.shape[:2], bool))
            filtered = majority_filter(values, radius, len(variant.classes))
            accs[name].add(paint_values(variant, filtered), target)
    print(f"pairs 0-{len(files) - 1} of {args.val}, crisp with a {2 * radius + 1} px window")
    print(table({name: acc.summary() for name, acc in accs.items()}))


def _classes_tif(values: np.ndarray, path: Path, gsd: float) -> Path:
    from affine import Affine

    from geo_p2p.mapclasses.classraster import class_profile, class_raster_output

    profile = class_profile(
        values.shape[1], values.shape[0], "EPSG:32618", Affine(gsd, 0, 580000, 0, -gsd, 4510000)
    )
    with class_raster_output(path, maps_palette(), profile) as out:
        for row in range(0, values.shape[0], 512):
            out.write(
                values[row : row + 512],
                1,
                window=((row, min(row + 512, values.shape[0])), (0, values.shape[1])),
            )
    return path


def centrelines(args: argparse.Namespace) -> None:
    """Total centreline length of the crisp prediction's road classes against that of the
    target map classified with the same palette and filter, per pair."""
    import pyogrio

    from geo_p2p.mapclasses.vectorize import CENTRELINES, vectorize

    files = evaluation_files(args.val)[args.start : args.start + args.pairs]
    card = load_card(DEFAULT_MODEL_DIR)
    palette = Palette.from_card(card.classes)
    radius = window_radius(args.size, card.gsd)
    print("| pair | predicted centrelines (m) | target's (m) | ratio | lines predicted / target |")
    print("|---|---|---|---|---|")
    total = np.zeros(2)
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            pred = np.asarray(Image.open(args.predictions / f"{f.stem}.png").convert("RGB"))
            target = np.asarray(load_pair(f, card.direction)[1])
            lengths, counts = [], []
            for name, image in (("pred", pred), ("target", target)):
                values = class_values(
                    palette, np.moveaxis(image, -1, 0), np.ones(image.shape[:2], bool)
                )
                values = majority_filter(values, radius, len(palette.classes))
                tif = _classes_tif(values, Path(tmp) / f"{f.stem}_{name}.tif", card.gsd)
                gpkg = Path(tmp) / f"{f.stem}_{name}.gpkg"
                vectorize(tif, gpkg, overwrite=True)
                meta, _, _, fields = pyogrio.raw.read(gpkg, layer=CENTRELINES)
                lengths.append(float(np.sum(fields[0])) if len(fields[0]) else 0.0)
                counts.append(len(fields[0]))
            total += lengths
            ratio = lengths[0] / lengths[1] if lengths[1] else math.nan
            cells = [f.stem, f"{lengths[0]:.0f}", f"{lengths[1]:.0f}", f"{ratio:.2f}"]
            print("| " + " | ".join([*cells, f"{counts[0]} / {counts[1]}"]) + " |")
    print(f"| all | {total[0]:.0f} | {total[1]:.0f} | {total[0] / total[1]:.2f} | |")


def vectorize_speed(args: argparse.Namespace) -> None:
    """Time and peak memory of vectorising class rasters made by tiling real maps-style target
    classes, each size in its own process (peak RSS of that process)."""
    if args.child:
        from geo_p2p.mapclasses.vectorize import vectorize

        start = time.perf_counter()
        summary = vectorize(Path(args.child[0]), Path(args.child[1]), overwrite=True)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"RESULT {seconds:.1f} {peak:.0f} {sum(summary.features.values())}")
        return
    files = evaluation_files(args.val)[:16]
    tiles = []
    for f in files:
        target = np.asarray(load_pair(f)[1])
        values = class_values(
            maps_palette(), np.moveaxis(target, -1, 0), np.ones(target.shape[:2], bool)
        )
        tiles.append(majority_filter(values, 2, 5))
    print(f"vectorize (default options: 1024 px blocks), {cpu_line()}")
    print("| class raster | seconds | peak RSS (MB) | features | s per Mpx | MB per Mpx |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in [int(s) for s in args.size.split(",")]:
            reps = -(-size // 600)
            mosaic = np.concatenate(
                [
                    np.concatenate(
                        [tiles[(r * reps + c) % len(tiles)] for c in range(reps)], axis=1
                    )
                    for r in range(reps)
                ],
                axis=0,
            )[:size, :size]
            tif = _classes_tif(np.ascontiguousarray(mosaic), Path(tmp) / f"c{size}.tif", 0.9)
            del mosaic
            run = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "vectorize",
                    "--child",
                    str(tif),
                    str(Path(tmp) / f"m{size}.gpkg"),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            seconds, peak, features = run.stdout.split("RESULT ")[1].split()
            mpx = size * size / 1e6
            cells = f"{float(seconds) / mpx:.2f} | {float(peak) / mpx:.1f}"
            print(f"| {size} x {size} | {seconds} | {peak} | {features} | {cells} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("colours")
    p.add_argument("--train", type=Path, required=True)
    p.add_argument("--step", type=int, default=4)
    p = sub.add_parser("quality")
    p.add_argument("--val", type=Path, required=True)
    p.add_argument("--predictions", type=Path, required=True)
    p.add_argument("--sizes", default="0,2.7,4.5,6.3,8.1", help="majority window sides, metres")
    p.add_argument("--select", type=int, default=200)
    p.add_argument("--limit", type=int)
    p = sub.add_parser("margins")
    p.add_argument("--val", type=Path, required=True)
    p.add_argument("--predictions", type=Path, required=True)
    p.add_argument("--name", default="road", help="the class whose margin varies")
    p.add_argument("--margins", default="0,4,8,12,16,20,24,32", help="digital numbers")
    p.add_argument("--size", type=float, default=4.5, help="majority window side, metres")
    p.add_argument("--select", type=int, default=200)
    p = sub.add_parser("centrelines")
    p.add_argument("--val", type=Path, required=True)
    p.add_argument("--predictions", type=Path, required=True)
    p.add_argument("--pairs", type=int, default=6)
    p.add_argument("--start", type=int, default=300)
    p.add_argument("--size", type=float, default=DEFAULT_SPECKLE_M)
    p = sub.add_parser("vectorize")
    p.add_argument("--val", type=Path, default=Path("../shared/data/maps/val"))
    p.add_argument("--size", default="4096,8192")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    commands = {
        "colours": colours,
        "quality": quality,
        "margins": margins,
        "centrelines": centrelines,
        "vectorize": vectorize_speed,
    }
    commands[args.what](args)


if __name__ == "__main__":
    main()
