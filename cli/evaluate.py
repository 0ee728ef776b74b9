"""``geo-p2p evaluate``: score a model on held-out pairs."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import click

from . import options as o


@click.command()
@click.argument("model", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the metrics to this JSON file.",
)
@click.option(
    "--predictions",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write each predicted image into this folder as PNG.",
)
@click.option(
    "--limit", type=click.IntRange(1), help="Score only the first N pairs (sorted by name)."
)
@o.direction("the model card's")
@o.gsd
@o.inference_stats("the model card's")
@o.batch_size()
@o.device
@click.option(
    "--write-card",
    is_flag=True,
    help="Store the metrics in the model card (metrics[DATA name]).",
)
@o.reports_errors("evaluate")
def evaluate(
    model: Path,
    data: Path,
    json_path: Path | None,
    predictions: Path | None,
    limit: int | None,
    direction: str | None,
    gsd: float | None,
    inference_stats: str | None,
    batch_size: int,
    device: str,
    write_card: bool,
) -> None:
    """Translate every pair image in DATA with the model in MODEL and score it.

    DATA holds side-by-side A|B images (directly, or in DATA/val). Prints L1, PSNR, SSIM, the
    literature's RMSE and acc@5/acc@10, and the map-class IoU (land, road, water, park,
    highway) with its mean; all are computed at 256x256. The pairs are resampled to the
    model's ground resolution (from --gsd; unknown: each half resized to one tile).
    """
    from geo_p2p.card import load_card, save_card
    from geo_p2p.errors import RenderError
    from geo_p2p.evaluate import evaluate as run_evaluation
    from geo_p2p.evaluate import evaluation_files
    from geo_p2p.metrics import format_table
    from geo_p2p.render.translator import Translator
    from geo_p2p.train.data import dataset_gsd

    try:
        card = load_card(model)
    except (FileNotFoundError, ValueError) as e:
        raise RenderError(str(e), "MODEL") from e
    files = evaluation_files(data)[:limit]
    translator = Translator.load(
        model,
        inference_stats=inference_stats,  # type: ignore[arg-type]
        batch_size=batch_size,
        device=device,
    )
    data_gsd = gsd if gsd is not None else dataset_gsd(data, files)
    summary = run_evaluation(translator, files, direction or card.direction, data_gsd, predictions)
    click.echo(format_table(summary))
    finite = {k: v if math.isfinite(v) else None for k, v in summary.items()}  # strict JSON
    if json_path is not None:
        json_path.write_text(json.dumps(finite, indent=2) + "\n")
    if write_card:
        key = data.resolve().name
        stats = inference_stats or card.inference_stats
        card = dataclasses.replace(card, metrics={**card.metrics, key: {**finite, "stats": stats}})
        save_card(model, card)
        click.echo(f"metrics stored in {model / 'card.json'}")
