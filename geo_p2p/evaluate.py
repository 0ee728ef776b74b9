"""Score a translator on held-out pair images (A -> B), at the ground resolution it expects."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .errors import DataError
from .metrics import MetricAccumulator
from .render.mosaic import u8_to_signed
from .render.translator import Translator
from .train.data import list_images, load_pair


def evaluation_files(folder: str | Path) -> list[Path]:
    """The pair images of an evaluation folder: directly in it, else in its ``val/``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"evaluation folder {folder} does not exist or is not a folder")
    files = list_images(folder)
    if not files and (folder / "val").is_dir():
        files = list_images(folder / "val")
    if not files:
        raise DataError(f"no pair images (.jpg/.jpeg/.png) in {folder} or {folder / 'val'}")
    return files


def input_size(native: int, data_gsd: float | None, translator: Translator) -> int:
    """Side in pixels at which a ``native``-pixel input half is fed to the translator.

    The input is resampled from the data's ground resolution to the model's; when either is
    unknown it is resized to one tile (the paper's test-time transform).
    """
    if data_gsd is None or translator.gsd is None:
        return translator.tile
    return max(1, round(native * data_gsd / translator.gsd))


def evaluate(
    translator: Translator,
    files: Sequence[Path],
    direction: str = "AtoB",
    data_gsd: float | None = None,
    predictions: str | Path | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """Translate every pair's input and score it against its target (see :mod:`.metrics`).

    ``predictions``: a folder to write each prediction into as PNG (same file stem).
    """
    acc = MetricAccumulator()
    out_dir = Path(predictions) if predictions is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    for path in tqdm(files, desc="evaluate", unit="pair", disable=not progress or None):
        a, b = load_pair(path, direction)
        size = input_size(a.height, data_gsd, translator)
        image = np.asarray(a.resize((size, size), Image.BICUBIC))
        pred = translator.translate(image)
        acc.add(pred, np.asarray(b))
        if out_dir is not None:
            Image.fromarray(pred).save(out_dir / f"{path.stem}.png")
    return acc.summary()


class ConstantImage(torch.nn.Module):
    """A 'translator' that outputs one colour everywhere: the flat-image baseline."""

    def __init__(self, rgb: Sequence[int]) -> None:
        super().__init__()
        colour = torch.from_numpy(u8_to_signed(np.array(rgb, np.uint8)))
        self.register_buffer("colour", colour.view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.colour.expand(x.shape[0], 3, x.shape[2], x.shape[3]).to(x.dtype)


def median_colour(files: Sequence[Path], direction: str = "AtoB", step: int = 4) -> tuple[int, ...]:
    """Per-channel median of the target halves (every ``step``-th pixel) over ``files``."""
    samples = [np.asarray(load_pair(p, direction)[1])[::step, ::step].reshape(-1, 3) for p in files]
    return tuple(int(v) for v in np.median(np.concatenate(samples), axis=0))
