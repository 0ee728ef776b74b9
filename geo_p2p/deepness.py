"""The generator as the QGIS plugin Deepness runs it: a graph and metadata its Regressor handles.

Deepness (PUTvision/qgis-plugin-deepness, read at commit f450c63) has no image-to-image model
type. What its own processing code does with a model, and so what this export is made for:

- Superresolution, its only type with an image output, pastes every tile whole into a slot of
  the tile stride (overlap must be 0, so tile seams show) and needs a scale factor of at least
  2 in its panel, whose code that would read 1 from the model never runs.
- Regressor crops each tile to its core by the overlap (its ``tiles_overlap`` metadata, an
  integer percentage read with ``int()``) and keeps the first channel of each output; it
  collects results in uint8 after multiplying them by ``reg_output_scaling``, which its panel
  reads from the metadata, and it makes one float32 layer per output.

So the graph has three outputs, ``red``, ``green`` and ``blue``, each (N, 1, T, T) holding
``(DN + 0.5) / 255`` with DN the map's digital number, so that Deepness's scaling by 255 and
its truncation to uint8 give DN itself (rounded, not floored). Deepness reads tiles reaching
beyond the raster as black: the graph gives black pixels (0, 0, 0 in all three bands) the mean
colour of the tile's other pixels first, as ``geo-p2p render`` does with no-data, so that the
per-tile statistics of the bundled model follow the image and edge tiles are not washed out.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from .card import ModelCard

MODEL_TYPE = "Regressor"
"""Deepness's model type whose processor crops overlapping tiles and accepts a same-size output."""
OUTPUTS = ("red", "green", "blue")
OUTPUT_SCALING = 255.0
OVERLAP_PERCENT = 50
"""``tiles_overlap``: Deepness overlaps tiles by int(tile * 50 / 100) px (128 at 256) and keeps
each tile's core, without its outer 64 px: 4 times the tiles of no overlap, and the fewest
seams of 0, 12, 25, 37 and 50 % in scripts/deepness_check.py (README.md, "QGIS")."""


class DeepnessGraph(torch.nn.Module):
    """``generator`` between Deepness's input (N, 3, T, T) RGB in [-1, 1], where -1 in all
    three bands is no data, and three outputs (N, 1, T, T) of ``(DN + 0.5) / 255``."""

    def __init__(self, generator: torch.nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        black = (x <= -1).all(dim=1, keepdim=True)
        valid = (~black).to(x.dtype)
        count = valid.sum(dim=(2, 3), keepdim=True).clamp(min=1)
        mean = (x * valid).sum(dim=(2, 3), keepdim=True) / count  # all black: mean of 0 px, 0
        y = self.generator(torch.where(black, mean, x))
        dn = ((y + 1) * 127.5).clamp(0, 255)
        out = (dn + 0.5) / OUTPUT_SCALING
        return out[:, 0:1], out[:, 1:2], out[:, 2:3]


def deepness_metadata(card: ModelCard) -> dict[str, Any]:
    """The keys Deepness's panel and its Regressor read (values before JSON encoding)."""
    facts: dict[str, Any] = {
        "model_type": MODEL_TYPE,
        "class_names": [{"0": name} for name in OUTPUTS],  # Deepness's layer names
        "tile_size": card.tile,
        "tiles_overlap": OVERLAP_PERCENT,
        "reg_output_scaling": OUTPUT_SCALING,
        # Deepness scales to [0, 1], then standardises: (v / 255 - 0.5) / 0.5 = v / 127.5 - 1.
        "standardization_mean": [0.5, 0.5, 0.5],
        "standardization_std": [0.5, 0.5, 0.5],
        "output": "red, green, blue: (N, 1, T, T), (DN + 0.5) / 255",
    }
    if card.gsd is not None:
        facts["resolution"] = round(card.gsd * 100, 4)  # centimetres per pixel
    return facts


def encoded(facts: dict[str, Any]) -> dict[str, str]:
    """Metadata values as JSON text (what Deepness decodes), None values left out."""
    return {key: json.dumps(value) for key, value in facts.items() if value is not None}
