"""How far models travel: the style-free class reading (geo_p2p.travel) on New York, Moscow and
US suburbs, for models and test-time variants, with the maps metrics on the New York pairs.

Sets (paths under --data, the project's shared data):
  newyork  maps/val, every --newyork-step-th pair (default 5: 110 of 549), 0.9 m/px
  moscow   moscow_osm, every --moscow-step-th pair (default 1: all 296), Bing aerial vs
           OpenStreetMap Carto, zoom 17 at 55.75 N (0.672 m/px); never trained on
  us       sat2map_zoom17, the two side-by-side pairs (Houston, Charlotte), zoom 17 at the
           latitude in each file name (1.04 and 0.98 m/px)
Each aerial half is resampled (bicubic) to the model's ground resolution, translated, and its
reading compared with the map half's (see geo_p2p.travel).

Variants (--variants):
  card           the model as its card says (the bundled model: per-tile statistics)
  running        the training's running BatchNorm statistics
  adabn-image    BatchNorm statistics from the image being translated (all its 256 px tiles
                 of a non-overlapping grid, tile pooling; geo_p2p.render.adapt)
  adabn-image-pop  the same with population variance (AdaBN's)
  adabn-set      one set of statistics per set: the centre tile of 64 pairs spread over it
  moments-image  input bands moved to the training's mean and std (geo_p2p.domain), the
                 image's own moments taken
  histogram-image  input bands histogram-matched to the training's
  moments-set, histogram-set  the same with one mapping per set, from the sample of adabn-set
  moments-ood, histogram-ood  moments-image or histogram-image, only where the image's domain
                 distance (from 16 of its tiles) is over the card's threshold
  tta            the mean over the 8 rotations and flips of each tile (8x the model's cost)
  vegetation     the card's translation with vegetation painted green, as render --vegetation
                 (geo_p2p.mapclasses.vegetation)
  vegetation-ood the same, only where the image's domain distance is over the card's threshold
                 (what render does by default)
  crisp          the card's translation in render's --style crisp: each pixel takes its map
                 class's colour, speckle voted away over the default window
  crisp-vegetation  both: render --style crisp --vegetation
  coarser-ood    vegetation-ood, and where it paints vegetation (the image is out of domain)
                 the image translated at 1.5 times the ground resolution (coarser,
                 geo_p2p.domain.COARSER): what render does by default
  water-consensus  vegetation-ood, its water kept only where a second translation of the image
                 at 1.5 times the ground resolution (coarser) paints water too (the model's
                 palette); elsewhere that second translation's colours, upsampled

--gsd-factor F translates every aerial at F times the model's ground resolution (as render
--resolution F x gsd; F > 1 is coarser), vegetation sized in those ground metres.
--input-filter gaussian:SIGMA or unsharp:RADIUS,PERCENT filters every aerial (PIL's GaussianBlur
or UnsharpMask, threshold 0) after that resampling, before the variant sees it.

--vegetation-window and --vegetation-share try other cover windows in the vegetation variants
(the render's constants, replaced for this run).

    python benchmarks/travel.py --model bundled=geo_p2p/weights --variants card adabn-image
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

from geo_p2p import Translator
from geo_p2p.card import load_card
from geo_p2p.domain import (
    COARSER,
    domain_distance,
    match_histograms,
    match_moments,
    sample_features,
)
from geo_p2p.mapclasses import crisp_image, vegetation
from geo_p2p.mapclasses.crisp import speckle_radius
from geo_p2p.mapclasses.vegetation import paints_vegetation
from geo_p2p.metrics import MetricAccumulator
from geo_p2p.render.adapt import (
    DihedralMean,
    normalisation_statistics,
    sample_tiles,
    spread,
    use_statistics,
)
from geo_p2p.train.data import load_pair
from geo_p2p.travel import TravelScore, model_input, score_pairs, web_mercator_gsd

MOSCOW_LATITUDE = 55.75
Pairs = list[tuple[Path, float]]


def newyork(data: Path, step: int) -> Pairs:
    return [(p, 0.9) for p in sorted((data / "maps" / "val").glob("*.jpg"))[::step]]


def moscow(data: Path, step: int) -> Pairs:
    files = sorted((data / "moscow_osm").glob("*.jpg"), key=lambda p: int(p.stem))
    return [(p, web_mercator_gsd(MOSCOW_LATITUDE, 17)) for p in files[::step]]


def us(data: Path) -> Pairs:
    pattern = re.compile(r"^\d+_\w+_(-?\d+\.\d+)_(-?\d+\.\d+)\.png$")
    return [
        (p, web_mercator_gsd(float(m.group(1)), 17))
        for p in sorted((data / "sat2map_zoom17").iterdir())
        if (m := pattern.match(p.name))
    ]


def set_sample(translator: Translator, pairs: Pairs) -> np.ndarray:
    """A whole set seen as one raster: the centre tile of up to 64 pairs spread over it."""
    tiles = []
    for i in spread(len(pairs), 64):
        path, gsd = pairs[i]
        image = model_input(load_pair(path)[0], gsd, translator.gsd or gsd)
        h, w = image.shape[:2]
        t = translator.tile
        r, c = max(0, (h - t) // 2), max(0, (w - t) // 2)
        tiles.append(sample_tiles(image[r : r + t, c : c + t], t, 1)[0])
    return np.stack(tiles)


def unlike_training(image: np.ndarray, tile: int, imagery: dict) -> bool:
    """Whether an image's domain distance, from 16 of its tiles as a render measures it, is over
    the imagery record's threshold (the -ood variants' test)."""
    features = sample_features(sample_tiles(image, tile, 16))
    return domain_distance(features, imagery) > imagery["threshold"]


def coarser(
    translator: Translator, factor: float = COARSER
) -> Callable[[np.ndarray, bool], np.ndarray]:
    """Translate an image (at the translator's ground resolution) resampled to ``factor`` times
    its pixel size, as render's coarser grid: the same module, vegetation (where painted) sized
    in the coarser grid's metres."""
    wide = copy.copy(translator)
    wide.gsd = translator.gsd * factor if translator.gsd else None

    def translate(image: np.ndarray, paint: bool) -> np.ndarray:
        return wide.translate(model_input(Image.fromarray(image), 1, factor), vegetation=paint)

    return translate


def coarser_ood(translator: Translator, imagery: dict) -> Callable[[np.ndarray], np.ndarray]:
    """The coarser-ood variant: out-of-domain images translated :data:`COARSER` times coarser,
    vegetation painted (what render does by default)."""
    wide = coarser(translator)

    def translate(image: np.ndarray) -> np.ndarray:
        if unlike_training(image, translator.tile, imagery):
            return wide(image, True)
        return translator.translate(image)

    return translate


def water_consensus(translator: Translator, imagery: dict) -> Callable[[np.ndarray], np.ndarray]:
    """The water-consensus variant: vegetation-ood whose water must also be water
    :data:`COARSER` times coarser."""
    palette, tile = translator.palette, translator.tile
    if palette is None or "water" not in palette.names:
        raise SystemExit("water-consensus needs a model whose card names a 'water' map class")
    water = palette.index("water")
    wide = coarser(translator)

    def translate(image: np.ndarray) -> np.ndarray:
        paint = unlike_training(image, tile, imagery)
        fine = translator.translate(image, vegetation=paint)
        h, w = fine.shape[:2]
        coarse = wide(image, paint)
        coarse = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BILINEAR))
        drop = (palette.classify(fine) == water) & (palette.classify(coarse) != water)
        fine[drop] = coarse[drop]
        return fine

    return translate


def variant_translate(
    name: str, model: str, pairs: Pairs, imagery: dict | None, gsd_factor: float = 1.0
) -> Callable[[np.ndarray], np.ndarray]:
    """The translate function of a variant of the model in directory ``model``, fed images at
    ``gsd_factor`` times its ground resolution."""
    if name == "running":
        return Translator.load(model, inference_stats="running", device="cpu").translate
    translator = Translator.load(model, device="cpu", fuse=False)
    if translator.gsd:
        translator.gsd *= gsd_factor  # vegetation's window in the ground metres translated at
    module, tile = translator.module, translator.tile
    if name == "tta":
        return Translator(DihedralMean(module), tile=tile, gsd=translator.gsd).translate
    if name.startswith("adabn-image"):
        pooling = "population" if name.endswith("-pop") else "tile"

        def adapted(image: np.ndarray) -> np.ndarray:
            stats = normalisation_statistics(module, sample_tiles(image, tile, 16), pooling)
            use_statistics(module, stats)
            return translator.translate(image)

        return adapted
    if name == "adabn-set":
        use_statistics(module, normalisation_statistics(module, set_sample(translator, pairs)))
        return translator.translate
    if name.startswith(("moments-", "histogram-")):
        if imagery is None:
            raise SystemExit(f"{name} needs the training imagery record (--imagery or the card)")
        match = match_moments if name.startswith("moments-") else match_histograms
        if name.endswith("-set"):
            sample = set_sample(translator, pairs).transpose(0, 2, 3, 1)
            return lambda image: translator.translate(match(image, sample, imagery))
        if name.endswith("-ood"):

            def matched_if_unlike(image: np.ndarray) -> np.ndarray:
                if unlike_training(image, tile, imagery):
                    sample = sample_tiles(image, tile, 16).transpose(0, 2, 3, 1)
                    image = match(image, sample, imagery)
                return translator.translate(image)

            return matched_if_unlike
        return lambda image: translator.translate(match(image, image, imagery))
    if "vegetation" in name and not paints_vegetation(translator.palette):
        raise SystemExit(f"{name} needs a model whose card names 'land' and 'park' map classes")
    if name.startswith("vegetation"):
        gated = name.endswith("-ood")
        if gated and imagery is None:
            raise SystemExit(f"{name} needs the training imagery record (--imagery or the card)")

        def greened(image: np.ndarray) -> np.ndarray:
            paint = not gated or unlike_training(image, tile, imagery)
            return translator.translate(image, vegetation=paint)

        return greened
    if name in ("crisp", "crisp-vegetation"):
        if translator.palette is None:
            raise SystemExit("the crisp variant needs a model whose card names its map classes")
        palette, radius = translator.palette, speckle_radius(None, translator.gsd)
        green = name.endswith("-vegetation")
        return lambda image: crisp_image(
            palette, translator.translate(image, vegetation=green), radius
        )
    if name in ("water-consensus", "coarser-ood"):
        if imagery is None:
            raise SystemExit(f"{name} needs the training imagery record (--imagery or the card)")
        chosen = water_consensus if name == "water-consensus" else coarser_ood
        return chosen(translator, imagery)
    if name != "card":
        raise SystemExit(f"unknown variant {name}")
    return translator.translate


def input_filter(spec: str | None) -> Callable[[np.ndarray], np.ndarray] | None:
    """The --input-filter function of ``spec`` (None: no filter)."""
    if spec is None:
        return None
    kind, _, values = spec.partition(":")
    try:
        numbers = [float(v) for v in values.split(",")]
    except ValueError:
        numbers = []
    if kind == "gaussian" and len(numbers) == 1:
        chosen = ImageFilter.GaussianBlur(numbers[0])
    elif kind == "unsharp" and len(numbers) == 2:
        chosen = ImageFilter.UnsharpMask(numbers[0], round(numbers[1]), 0)
    else:
        raise SystemExit(f"--input-filter: expected gaussian:S or unsharp:R,P, got {spec}")
    return lambda image: np.asarray(Image.fromarray(image).filter(chosen))


def compose(
    translate: Callable[[np.ndarray], np.ndarray], prefilter: Callable[[np.ndarray], np.ndarray]
) -> Callable[[np.ndarray], np.ndarray]:
    """``translate`` of the filtered image."""
    return lambda image: translate(prefilter(image))


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", metavar="NAME=DIR", help="default: bundled")
    parser.add_argument("--variants", nargs="+", default=["card"])
    parser.add_argument("--sets", nargs="+", default=["newyork", "moscow", "us"])
    parser.add_argument("--data", type=Path, default=root.parent / "shared" / "data")
    parser.add_argument("--newyork-step", type=int, default=5)
    parser.add_argument("--moscow-step", type=int, default=1)
    parser.add_argument("--imagery", type=Path, help="imagery record JSON (default: the card's)")
    parser.add_argument("--json", type=Path, help="append the results to this JSON file")
    parser.add_argument("--gsd-factor", type=float, default=1.0, metavar="F")
    parser.add_argument("--input-filter", metavar="KIND:VALUES")
    parser.add_argument("--vegetation-window", type=float, metavar="METRES", help="0: per pixel")
    parser.add_argument("--vegetation-share", type=float, metavar="FRACTION")
    args = parser.parse_args()
    if args.vegetation_window is not None:
        vegetation.VEGETATION_WINDOW_M = args.vegetation_window
    if args.vegetation_share is not None:
        vegetation.VEGETATION_SHARE = args.vegetation_share
    torch.set_num_threads(2)
    prefilter = input_filter(args.input_filter)
    sets = {
        "newyork": lambda: newyork(args.data, args.newyork_step),
        "moscow": lambda: moscow(args.data, args.moscow_step),
        "us": lambda: us(args.data),
    }
    models = dict(m.split("=", 1) for m in args.model or [f"bundled={root / 'geo_p2p/weights'}"])
    print(
        "set      pairs  model / variant                         road  water  green   mean"
        "   rmse   acc5   mIoU  seconds"
    )
    results = json.loads(args.json.read_text()) if args.json and args.json.exists() else {}
    for model_name, directory in models.items():
        card = load_card(directory)
        imagery = (
            json.loads(args.imagery.read_text()) if args.imagery else card.training.get("imagery")
        )
        for variant in args.variants:
            for set_name in args.sets:
                pairs = sets[set_name]()
                translate = variant_translate(variant, directory, pairs, imagery, args.gsd_factor)
                if prefilter is not None:
                    translate = compose(translate, prefilter)
                travel, maps = TravelScore(), MetricAccumulator()
                scores = [travel, maps] if set_name == "newyork" else [travel]
                tick = time.perf_counter()
                score_pairs(translate, pairs, (card.gsd or 0.9) * args.gsd_factor, scores)
                seconds = time.perf_counter() - tick
                row = travel.summary()
                if set_name == "newyork":
                    m = maps.summary()
                    row.update(rmse=m["rmse"], acc5=m["acc5"], miou=m["miou"])
                row["seconds"] = seconds
                label = f"{model_name} / {variant}"
                if args.gsd_factor != 1:
                    label += f" x{args.gsd_factor:g}"
                if args.input_filter:
                    label += f" {args.input_filter}"
                results.setdefault(label, {})[set_name] = row
                extra = [row.get(k, math.nan) for k in ("rmse", "acc5", "miou")]
                print(
                    f"{set_name:<8} {len(pairs):5d}  {label:<38}"
                    + "".join(f"{row[k]:7.3f}" for k in ("iou_road", "iou_water", "iou_green"))
                    + f"{row['mean']:7.3f}"
                    + f"{extra[0]:7.2f}{extra[1]:7.3f}{extra[2]:7.3f}{seconds:9.1f}",
                    flush=True,
                )
                if args.json:
                    args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
