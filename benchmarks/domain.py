"""The training imagery's record (colour and texture statistics) and the out-of-domain distance
of New York, Moscow, US suburbs and the real GeoTIFFs from it, to choose the warning's threshold.

The record summarises the aerial halves of the training pairs (every --step-th, at their 0.9 m);
each evaluation image is resampled to the model's ground resolution first, as a render would,
and every image is seen through a sample of up to 16 of its 256 px tiles.
Per set the distances' percentiles are printed, and for candidate thresholds the share of
images flagged in each set. ``--write-card DIR`` stores the record and the chosen
``--threshold`` in that model directory's card (``training["imagery"]``).

    python benchmarks/domain.py --train ../shared/data/maps/train --write-card geo_p2p/weights
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from travel import moscow, newyork, us  # noqa: E402

from geo_p2p.card import load_card, save_card  # noqa: E402
from geo_p2p.domain import domain_distance, imagery_record, sample_features  # noqa: E402
from geo_p2p.raster import inspect_source
from geo_p2p.reader import RasterReader  # noqa: E402
from geo_p2p.render.adapt import sample_tiles  # noqa: E402
from geo_p2p.train.data import load_pair  # noqa: E402
from geo_p2p.travel import model_input  # noqa: E402

GSD = 0.9
TILE, SAMPLE = 256, 16


def sample(image: np.ndarray) -> np.ndarray:
    """The sample a render would take: up to 16 of the image's 256 px tiles."""
    return sample_tiles(image, TILE, SAMPLE)


def distance(image: np.ndarray, record: dict) -> float:
    return domain_distance(sample_features(sample(image)), record)


def geotiff_images(folder: Path) -> dict[str, np.ndarray]:
    """Every GeoTIFF under ``folder`` read whole at 0.9 m, no-data filled with the valid mean."""
    images = {}
    for path in sorted(folder.rglob("*.tif")):
        if "tiles" in path.parts:
            continue
        source = inspect_source(path, gsd=GSD)
        with RasterReader(source) as reader:
            data, valid = reader.read(0, 0, source.height, source.width)
        fill = data[:, valid].mean(axis=1) if valid.any() else np.full(3, 128.0)
        data = np.where(valid, data, fill.round().astype(np.uint8)[:, None, None])
        images[path.name] = np.ascontiguousarray(data.transpose(1, 2, 0))
    return images


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True, help="training pairs (0.9 m)")
    parser.add_argument("--step", type=int, default=2, help="every N-th training pair")
    parser.add_argument("--data", type=Path, default=root.parent / "shared" / "data")
    parser.add_argument("--threshold", type=float, default=None, help="threshold to record")
    parser.add_argument("--write-card", type=Path, metavar="MODEL_DIR")
    parser.add_argument("--record", type=Path, default=Path("runs/bench/imagery.json"))
    args = parser.parse_args()

    if args.record.is_file():
        record = json.loads(args.record.read_text())
    else:
        files = sorted(args.train.glob("*.jpg"))[:: args.step]
        record = imagery_record(sample(np.asarray(load_pair(f)[0])) for f in files)
        record["from"] = f"{args.train}: every {args.step}-th of its aerials ({len(files)})"
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps(record) + "\n")
    sets = {"newyork": newyork(args.data, 5), "moscow": moscow(args.data, 1), "us": us(args.data)}
    distances = {}
    for name, pairs in sets.items():
        distances[name] = np.array(
            [distance(model_input(load_pair(p)[0], gsd, GSD), record) for p, gsd in pairs]
        )
    tiffs = geotiff_images(args.data / "geotiff")
    print("set        images   min    p5   p50   p95   max")
    for name, d in distances.items():
        q = np.percentile(d, [0, 5, 50, 95, 100])
        print(f"{name:<10} {len(d):6d}" + "".join(f"{v:6.2f}" for v in q))
    for name, image in tiffs.items():
        print(f"  {name:<42} {distance(image, record):6.2f}")
    print("threshold  flagged: newyork  moscow  us")
    for t in (1.5, 2.0, 2.3, 2.5, 3.0, 3.5, 4.0):
        shares = [(distances[s] > t).mean() for s in ("newyork", "moscow", "us")]
        print(f"{t:9.1f}          " + "".join(f"{v:8.2f}" for v in shares))
    if args.write_card:
        if args.threshold is None:
            raise SystemExit("--write-card needs --threshold")
        card = load_card(args.write_card)
        imagery = {**record, "threshold": args.threshold}
        training = {**card.training, "imagery": imagery}
        save_card(args.write_card, dataclasses.replace(card, training=training))
        print(f"imagery record and threshold {args.threshold} written to {args.write_card}")


if __name__ == "__main__":
    main()
