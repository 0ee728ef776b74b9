"""Training recipes (augmentations, class balancing) compared by equal short fine-tunes of one
model (same seed and steps).

Each recipe fine-tunes MODEL on TRAIN for ``--steps`` steps with the fine-tuning defaults of
``geo-p2p train --init`` (and ``--amp`` when asked); then the starting model and every fine-tuned
one are scored on each evaluation folder. Runs already in ``--out`` are reused, so an
interrupted comparison continues where it stopped; the scores go to ``--out``/scores.json too.

    python benchmarks/augmentations.py geo_p2p/weights --train pairs/houston --steps 120 \\
        --eval maps_val=../shared/data/maps/val:50 --eval charlotte=eval/charlotte --out runs/aug
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from geo_p2p.evaluate import evaluate, evaluation_files
from geo_p2p.render.translator import Translator
from geo_p2p.train import TrainConfig, train
from geo_p2p.train.data import dataset_gsd
from geo_p2p.train.finetune import unset_to_defaults

RECIPES: dict[str, dict[str, object]] = {
    "current (crop + mirror)": {},
    "dihedral": {"dihedral": True},
    "colour jitter 0.2": {"colour_jitter": 0.2},
    "scale jitter 1.33": {"scale_jitter": 1.33},
    "all three": {"dihedral": True, "colour_jitter": 0.2, "scale_jitter": 1.33},
    "oversample highway:4": {"oversample": "highway:4"},
    "L1 weight highway:5": {"l1_class_weight": "highway:5"},
}
COLUMNS = ("rmse", "acc5", "iou_road", "iou_highway", "miou")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model directory to fine-tune (or 'default')")
    parser.add_argument("--train", required=True, help="training pairs")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--seed", type=int, default=0, help="(another seed: another --out)")
    parser.add_argument("--eval", action="append", required=True, metavar="NAME=DIR[:N]")
    parser.add_argument("--out", type=Path, default=Path("runs/augmentations"))
    parser.add_argument("--recipes", nargs="*", default=list(RECIPES), choices=list(RECIPES))
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    models = {"starting model": Path(args.model)}
    for name in args.recipes:
        run = args.out / name.split(" (")[0].replace(" ", "_").replace(":", "")
        if not (run / "model" / "card.json").is_file():
            options = unset_to_defaults({}, args.model)
            config = TrainConfig(
                data=args.train,
                out=str(run),
                init=args.model,
                max_steps=args.steps,
                device="cpu",
                amp=args.amp,
                seed=args.seed,
                command=_command(args, run, RECIPES[name]),
                **{**options, **RECIPES[name]},  # type: ignore[arg-type]
            )
            tick = time.perf_counter()
            train(config)
            print(f"{name}: {args.steps} steps in {time.perf_counter() - tick:.0f} s", flush=True)
        models[name] = run / "model"

    header = f"{'':<26}" + "".join(
        f"{name + ':' + c:>24}" for name, _ in map(_split, args.eval) for c in COLUMNS
    )
    print(header)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, directory in models.items():
        translator = Translator.load(None if str(directory) == "default" else directory)
        row = f"{name:<26}"
        for set_name, (folder, limit) in map(_split, args.eval):
            files = evaluation_files(folder)[:limit]
            scores = evaluate(
                translator, files, data_gsd=dataset_gsd(folder, files), progress=False
            )
            results.setdefault(name, {})[set_name] = scores
            row += "".join(f"{scores[c]:>24.4f}" for c in COLUMNS)
        print(row, flush=True)
        (args.out / "scores.json").write_text(json.dumps(results, indent=1) + "\n")


def _command(args: argparse.Namespace, run: Path, recipe: dict[str, object]) -> str:
    """The ``geo-p2p train`` command that makes the same run (for its model card)."""
    flags = [f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in recipe.items()]
    amp = ["--amp"] if args.amp else []
    return " ".join(
        ["geo-p2p train", args.train, "-o", str(run), "--init", args.model, "--device cpu"]
        + amp
        + [f"--seed {args.seed}", f"--max-steps {args.steps}", *flags]
    )


def _split(spec: str) -> tuple[str, tuple[str, int | None]]:
    name, rest = spec.split("=", 1)
    folder, _, limit = rest.partition(":")
    return name, (folder, int(limit) if limit else None)


if __name__ == "__main__":
    main()
