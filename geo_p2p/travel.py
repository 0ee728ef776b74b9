"""How far a model travels: a style-free reading of map images into classes, and its scores.

RGB distances only mean something between maps of one style. To compare a prediction in the
bundled model's style (Google's of about 2013) with a map of another style (OpenStreetMap's
standard "Carto" style, Google's newer one), both are read into four classes by colour rules
that hold across these styles, and the classes are compared. Each pixel of an RGB ``uint8``
map is, by the first rule it meets:

- ``road``: white lines, all three channels >= 251; or a yellow, orange or salmon major road:
  ``max(R, G) >= 235`` (bright), ``R - B >= 40`` (warm), ``G - B >= 15`` (yellow to orange,
  not pink), ``G - R <= 12`` (not green) and ``G >= 130`` (not red). This takes the maps/
  Google highways (248,158,40), (248,200,72), (248,232,104), the newer Google's yellow (about
  250,240,170) and OpenStreetMap Carto's trunk (249,178,156), primary (252,214,164) and
  secondary (247,250,191) roads, also where JPEG has moved them by several levels, and leaves
  out Carto's red footway dashes (250,128,114), its retail and commercial pinks (255,214,209),
  (242,218,217), its pale yellow school grounds (255,255,229) and the land colours of all three
  styles (Carto's sand, 255,241,186, would read as road: rare in cities);
- ``water``: light blue, ``B - R > 25``, ``B >= G`` and ``R >= 120``;
- ``green``: parks, woods and grass, ``G - R > 10``, ``G - B > 10`` and ``G >= 150``;
- ``other``: the rest (land, buildings, labels).

(The rules are exclusive except where a colour meets two; road is then taken first, water
second.) A set is scored by summing, for each of road, water and green, the pixels in both
readings (intersection) and in either (union) over all pairs; its figure is the mean of the
three IoUs, leaving out a class that neither reading shows anywhere in the set (no union).

A prediction made at the model's ground resolution has another size than its target: its
reading is resampled to the target's pixel grid (nearest neighbour), so colours are never
mixed before they are read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .train.data import load_pair

TRAVEL_CLASSES: tuple[str, ...] = ("other", "road", "water", "green")
"""Classes of the style-free reading, in class-index order."""
SCORED: tuple[str, ...] = ("road", "water", "green")
"""The classes whose IoUs make a set's figure."""

Translate = Callable[[np.ndarray], np.ndarray]
"""An (H, W, 3) uint8 aerial -> (H, W, 3) uint8 map function (e.g. ``Translator.translate``)."""


def read_classes(image: np.ndarray) -> np.ndarray:
    """The reading of an (H, W, 3) uint8 RGB map: an (H, W) uint8 array of class indices of
    :data:`TRAVEL_CLASSES` (rules in the module docstring).

    >>> px = np.array([[[253, 253, 253], [248, 158, 40], [180, 212, 252], [204, 220, 172],
    ...                 [236, 228, 220], [250, 128, 114]]], np.uint8)
    >>> [TRAVEL_CLASSES[c] for c in read_classes(px)[0]]
    ['road', 'road', 'water', 'green', 'other', 'other']
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    x = image.astype(np.int16)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    white = (r >= 251) & (g >= 251) & (b >= 251)
    major = (np.maximum(r, g) >= 235) & (r - b >= 40) & (g - b >= 15) & (g - r <= 12) & (g >= 130)
    water = (b - r > 25) & (b >= g) & (r >= 120)
    green = (g - r > 10) & (g - b > 10) & (g >= 150)
    out = np.zeros(image.shape[:2], np.uint8)
    out[green] = 3
    out[water] = 2
    out[white | major] = 1
    return out


def resample_classes(classes: np.ndarray, height: int, width: int) -> np.ndarray:
    """A class reading resampled to ``height x width`` by nearest neighbour."""
    if classes.shape == (height, width):
        return classes
    return np.asarray(Image.fromarray(classes).resize((width, height), Image.Resampling.NEAREST))


class TravelScore:
    """Road, water and green IoUs pooled over a set of (prediction, target) maps."""

    def __init__(self) -> None:
        n = len(TRAVEL_CLASSES)
        self.confusion = np.zeros((n, n), np.int64)
        """Pixel counts, rows = predicted class, columns = target class."""
        self.n = 0

    def add(self, pred: np.ndarray, target: np.ndarray) -> None:
        """Read both maps (the prediction resampled to the target's grid) and count them."""
        truth = read_classes(target)
        guess = resample_classes(read_classes(pred), *truth.shape)
        n = len(TRAVEL_CLASSES)
        idx = guess.ravel().astype(np.int64) * n + truth.ravel()
        self.confusion += np.bincount(idx, minlength=n * n).reshape(n, n)
        self.n += 1

    def summary(self) -> dict[str, float]:
        """``iou_road``, ``iou_water``, ``iou_green`` (NaN: class in neither reading),
        ``mean`` of those that are not NaN, the target's share of each (``share_*``) and
        ``n``."""
        inter = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(axis=0) + self.confusion.sum(axis=1) - inter
        total = max(1, int(self.confusion.sum()))
        out: dict[str, float] = {}
        for name in SCORED:
            k = TRAVEL_CLASSES.index(name)
            out[f"iou_{name}"] = float(inter[k] / union[k]) if union[k] > 0 else math.nan
        for name in SCORED:
            k = TRAVEL_CLASSES.index(name)
            out[f"share_{name}"] = float(self.confusion[:, k].sum() / total)
        ious = [out[f"iou_{name}"] for name in SCORED if not math.isnan(out[f"iou_{name}"])]
        out["mean"] = sum(ious) / len(ious) if ious else math.nan
        out["n"] = float(self.n)
        return out


def model_input(aerial: Image.Image, data_gsd: float, model_gsd: float) -> np.ndarray:
    """The aerial half resampled (bicubic) from the data's ground resolution to the model's."""
    w, h = aerial.size
    size = (max(1, round(w * data_gsd / model_gsd)), max(1, round(h * data_gsd / model_gsd)))
    return np.asarray(aerial.resize(size, Image.Resampling.BICUBIC))


def score_pairs(
    translate: Translate,
    pairs: Iterable[tuple[Path, float]],
    model_gsd: float,
    scores: Sequence[TravelScore | object],
    direction: str = "AtoB",
) -> None:
    """Translate each pair's aerial half at the model's ground resolution and add prediction
    and target map to every accumulator of ``scores`` (objects with ``add(pred, target)``,
    such as :class:`TravelScore` or :class:`~geo_p2p.metrics.MetricAccumulator`).

    ``pairs``: (side-by-side pair file, ground resolution of its halves in m/px).
    """
    for path, gsd in pairs:
        aerial, target = load_pair(path, direction)
        pred = translate(model_input(aerial, gsd, model_gsd))
        for score in scores:
            score.add(pred, np.asarray(target))  # type: ignore[attr-defined]


def web_mercator_gsd(latitude: float, zoom: int) -> float:
    """Ground metres per pixel of a 256 px Web Mercator tile pyramid at ``zoom`` and latitude.

    >>> round(web_mercator_gsd(55.75, 17), 3), round(web_mercator_gsd(0.0, 17), 4)
    (0.672, 1.1943)
    """
    return 2 * math.pi * 6378137 / (256 * 2**zoom) * math.cos(math.radians(latitude))
