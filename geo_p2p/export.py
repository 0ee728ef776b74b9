"""ONNX export of a generator: its inference normalisation, a dynamic batch size, and metadata.

Per-tile BatchNorm statistics (``TileBatchNorm`` with ``inference_stats="tile"``) export as
``InstanceNormalization``; running statistics are folded into the convolutions first (see
:mod:`geo_p2p.fusion`), so the graph holds Conv, ConvTranspose, InstanceNormalization,
activations and Concat only. The graph maps ``input`` (N, 3, T, T) float32 RGB in [-1, 1]
(``value / 127.5 - 1``) to ``output`` of the same shape and range, with the model card's facts
as metadata (``metadata_props``, every value JSON). ``target="deepness"`` writes instead the
graph and metadata that the QGIS plugin Deepness runs (see :mod:`geo_p2p.deepness`).

The exporter is torch's TorchScript-based one: its torch.export-based successor
(``dynamo=True``) wrote the same graph, but took 17-30 s per export on a 2-core CPU against
about 1 s, and the onnxruntime backend exports in-process before a render.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from . import __version__, deepness
from .card import DEFAULT_MODEL_DIR, ModelCard, load_model
from .errors import RenderError
from .files import atomic_write_bytes, check_output
from .fusion import fuse_batchnorm
from .nets import describe
from .render.tiling import default_overlap

OPSET = 17
"""ONNX opset of the export: onnxruntime 1.12 and later run it."""
INPUT, OUTPUT = "input", "output"
TARGETS = ("onnxruntime", "deepness")
"""What an export is for: any ONNX runtime (the plain graph), or the QGIS plugin Deepness."""


def require(name: str, param: str | None = None) -> Any:
    """Import ``name`` (onnx, onnxruntime) from the onnx extra; RenderError if it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise RenderError(
            f"{name} is not installed: install the onnx extra, pip install 'geo-p2p[onnx]'", param
        ) from e


def export_onnx(
    module: torch.nn.Module, tile: int, channels: int = 3, outputs: Sequence[str] = (OUTPUT,)
) -> bytes:
    """The ONNX model (serialised) of the CPU float32 ``module``, put in eval mode, on
    (N, channels, tile, tile) inputs, N dynamic, opset :data:`OPSET`, with ``module``'s
    outputs named ``outputs``; no metadata. Needs the onnx package."""
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
            output_names=list(outputs),
            dynamic_axes={name: {0: "batch"} for name in (INPUT, *outputs)},
        )
    return buffer.getvalue()


def model_metadata(card: ModelCard, target: str = "onnxruntime") -> dict[str, str]:
    """ONNX metadata for a generator with this card, exported for ``target``: key -> JSON."""
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
        "overlap": default_overlap(card.tile),
        "card": dataclasses.asdict(card),
    }
    if target == "deepness":
        facts.update(deepness.deepness_metadata(card))
    return deepness.encoded(facts)


def export_model(
    directory: str | Path | None,
    output: str | Path,
    *,
    overwrite: bool = False,
    target: str = "onnxruntime",
) -> Path:
    """Export the generator of a model directory (None: the bundled model) to the ONNX file
    ``output`` with its metadata, for ``target`` (one of :data:`TARGETS`), written
    atomically; returns ``output``.

    Raises RenderError for a missing or broken model directory or an unusable output path.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    onnx = require("onnx")
    output = Path(output)
    check_output(output, directory or DEFAULT_MODEL_DIR, overwrite)
    try:
        module, card = load_model(directory)
    except (FileNotFoundError, ValueError) as e:
        raise RenderError(str(e), "MODEL_DIR") from e
    if card.inference_stats == "running":
        fuse_batchnorm(module)
    if target == "deepness":
        graph = export_onnx(deepness.DeepnessGraph(module), card.tile, outputs=deepness.OUTPUTS)
        gives = "red, green and blue (DN + 0.5) / 255 for Deepness's Regressor"
    else:
        graph, gives = export_onnx(module, card.tile), "map-style RGB tiles in [-1, 1]"
    model = onnx.load_from_string(graph)
    model.producer_name, model.producer_version = "geo-p2p", __version__
    model.doc_string = (
        f"{describe(card.architecture, card.ngf)}, {card.direction}: {card.tile} px RGB tiles "
        f"in [-1, 1] to {gives}"
    )
    for key, value in model_metadata(card, target).items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    atomic_write_bytes(output, model.SerializeToString())
    return output
