"""``geo-p2p export``: a model directory's generator as an ONNX file with its metadata."""

from __future__ import annotations

from pathlib import Path

import click

from geo_p2p.export import OPSET, TARGETS, export_model

from . import options as o


@click.command(short_help="Export a generator to ONNX (for onnxruntime, or QGIS's Deepness).")
@click.argument("model_dir", required=False, type=click.Path(exists=True, file_okay=False))
@o.output("ONNX file to write.", required=True, type=click.Path(dir_okay=False))
@click.option(
    "--for",
    "target",
    default="onnxruntime",
    show_default=True,
    type=click.Choice(TARGETS),
    help="onnxruntime: the plain graph, for any ONNX runtime. deepness: three outputs and the "
    "metadata that the QGIS plugin Deepness runs as a Regressor (README.md, QGIS).",
)
@o.overwrite
@o.reports_errors("export")
def export(model_dir: str | None, output: str, target: str, overwrite: bool) -> None:
    """Export the generator of MODEL_DIR (default: the bundled model) to an ONNX file.

    \b
    geo-p2p export -o geo-p2p.onnx
    geo-p2p export runs/maps/model -o maps.onnx
    geo-p2p export --for deepness -o geo-p2p-deepness.onnx

    Opset 17, dynamic batch size; input and output (N, 3, tile, tile) float32 RGB in
    [-1, 1]; the model card's facts as metadata. Needs the onnx extra.
    """
    model = Path(model_dir) if model_dir else None
    path = export_model(model, output, overwrite=overwrite, target=target)
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, opset {OPSET})")
