"""Quality of a model on held-out pairs next to baselines, all measured by the same code.

Baselines: a flat image of the median map colour of the training targets, and (optional)
other model directories, e.g. the same recipe after its first epoch. With ``--write-card``
the table goes into the model card (``metrics``), as the bundled model's card holds it.

    python benchmarks/model_quality.py geo_p2p/weights --train ../shared/data/maps/train \
        --val ../shared/data/maps/val --baseline first_epoch=runs/epoch1/model --write-card
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from geo_p2p.card import load_card, save_card
from geo_p2p.evaluate import ConstantImage, evaluate, evaluation_files, median_colour
from geo_p2p.render.translator import Translator
from geo_p2p.train.data import dataset_gsd, list_images

COLUMNS = [
    "rmse",
    "acc5",
    "acc10",
    "iou_land",
    "iou_road",
    "iou_water",
    "iou_park",
    "iou_highway",
    "miou",
    "l1",
    "ssim",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model directory")
    parser.add_argument("--train", type=Path, required=True, help="training pairs (median colour)")
    parser.add_argument("--val", type=Path, required=True, help="held-out pairs")
    parser.add_argument("--baseline", action="append", default=[], metavar="NAME=MODEL_DIR")
    parser.add_argument("--limit", type=int, help="first N held-out pairs only")
    parser.add_argument("--write-card", action="store_true")
    args = parser.parse_args()

    files = evaluation_files(args.val)[: args.limit]
    gsd = dataset_gsd(args.val, files)
    card = load_card(args.model)
    colour = median_colour(list_images(args.train), card.direction)
    candidates = {
        "model": Translator.load(args.model, device="cpu"),
        f"flat median colour {colour}": Translator(ConstantImage(colour), tile=card.tile),
    }
    for spec in args.baseline:
        name, path = spec.split("=", 1)
        candidates[name] = Translator.load(path, device="cpu")
    results = {
        name: evaluate(t, files, card.direction, gsd, progress=False)
        for name, t in candidates.items()
    }
    print(f"{len(files)} pairs of {args.val}, scored at 256x256")
    print(f"{'':<34}" + "".join(f"{c:>12}" for c in COLUMNS))
    for name, summary in results.items():
        print(f"{name:<34}" + "".join(f"{summary[c]:>12.4f}" for c in COLUMNS))
    if args.write_card:
        metrics = {"data": str(args.val), "pairs": len(files), **results}
        save_card(args.model, dataclasses.replace(card, metrics=metrics))
        print(json.dumps(metrics["model"], indent=1))


if __name__ == "__main__":
    main()
