"""ONNX export of a generator: its inference normalisation, a dynamic batch size, and metadata.

Per-tile BatchNorm statistics (``TileBatchNorm`` with ``inference_stats="tile"``) export as
``InstanceNormalization``; running statistics are folded into the convolutions first (see
:mod:`geo_p2p.fusion`), so the graph holds Conv, ConvTranspose, InstanceNormalization,
activations and Concat only. The graph maps ``input`` (N, 3, T, T) float32 RGB in [-1, 1]
(``value / 127.5 - 1``) to ``output`` of the same shape and range.

Metadata (``metadata_props``, every value JSON): the model card's facts, plus the keys the QGIS
plugin Deepness and the GeoDeep tool read where they fit an image-to-image model (README.md,
"ONNX export"). The exporter is torch's TorchScript-based one: its torch.export-based
successor (``dynamo=True``) wrote the same graph, but took 17-30 s per export on a 2-core CPU
against about 1 s, and the onnxruntime backend exports in-process before a render.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .card import DEFAULT_MODEL_DIR, ModelCard, load_model
from .errors import RenderError
from .files import atomic_write_bytes, check_output
from .fusion import fuse_batchnorm
from .render.tiling import default_overlap

OPSET = 17
"""ONNX opset of the export: onnxruntime 1.12 and later run it."""
INPUT, OUTPUT = "input", "output"
MODEL_TYPE = "Superresolution"
"""Deepness's only model type whose output is an image (with a scale factor of 1)."""


def require(name: str, param: str | None = None) -> Any:
    """Import ``name`` (onnx, onnxruntime) from the onnx extra; RenderError if it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise RenderError(
            f"{name} is not installed: install the onnx extra, pip install 'geo-p2p[onnx]'", param
        ) from e


def export_onnx(module: torch.nn.Module, tile: int, channels: int = 3) -> bytes:
    """The ONNX model (serialised) of the CPU float32 ``module``, put in eval mode, on
    (N, channels, tile, tile) inputs, N dynamic, opset :data:`OPSET`; no metadata.
    Needs the onnx package."""
    require("onnx", "--backend")
    example = torch.zeros(1, channels, tile, tile)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter's deprecation notice, tracer notes on shape checks, and
        # "instance_norm is set to train=True": per-tile statistics are meant.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (example,),
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
        )
    return buffer.getvalue()


def model_metadata(card: ModelCard) -> dict[str, str]:
    """ONNX metadata for a generator with this card: key -> JSON text."""
    overlap = default_overlap(card.tile)
    facts: dict[str, Any] = {
        # geo-p2p's own keys: what the graph expects and gives.
        "geo_p2p_version": __version__,
        "tile": card.tile,
        "gsd": card.gsd,
        "direction": card.direction,
        "inference_stats": card.inference_stats,
        "value_range": [-1.0, 1.0],
        "input": "RGB, value / 127.5 - 1",
        "output": "RGB, (value + 1) * 127.5",
        "overlap": overlap,
        "card": dataclasses.asdict(card),
        # Deepness (and GeoDeep, which reads model_type, resolution and tiles_overlap too).
        "model_type": MODEL_TYPE,
        "tile_size": card.tile,
        "tiles_overlap": round(100 * overlap / card.tile, 1),
        "standardization_mean": [0.5, 0.5, 0.5],
        "standardization_std": [0.5, 0.5, 0.5],
    }
    if card.gsd is not None:
        facts["resolution"] = round(card.gsd * 100, 4)  # centimetres per pixel
    return {key: json.dumps(value) for key, value in facts.items() if value is not None}


def export_model(
    directory: str | Path | None, output: str | Path, *, overwrite: bool = False
) -> Path:
    """Export the generator of a model directory (None: the bundled model) to the ONNX file
    ``output`` with its metadata, written atomically; returns ``output``.

    Raises RenderError for a missing or broken model directory or an unusable output path.
    """
    onnx = require("onnx")
    output = Path(output)
    check_output(output, directory or DEFAULT_MODEL_DIR, overwrite)
    try:
        module, card = load_model(directory)
    except (FileNotFoundError, ValueError) as e:
        raise RenderError(str(e), "MODEL_DIR") from e
    if card.inference_stats == "running":
        fuse_batchnorm(module)
    model = onnx.load_from_string(export_onnx(module, card.tile))
    model.producer_name, model.producer_version = "geo-p2p", __version__
    model.doc_string = (
        f"pix2pix U-Net generator (ngf {card.ngf}, {card.direction}): {card.tile} px RGB tiles "
        "in [-1, 1] to map-style RGB tiles in [-1, 1]"
    )
    for key, value in model_metadata(card).items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    atomic_write_bytes(output, model.SerializeToString())
    return output
