"""A map style's classes: names, the colour each is painted in, the colours that classify into it.

A :class:`Palette` classifies map pixels (each takes the class of its nearest prototype colour,
Euclidean in RGB, as :func:`geo_p2p.metrics.classify` does for the maps style) and paints class
indices back in each class's colour. It is stored in the model card as a list of
``{"name", "colour", "prototypes"}`` entries (:meth:`Palette.as_card`).

:func:`maps_palette` is the pix2pix maps style (the prototypes of :data:`geo_p2p.metrics.PALETTE`),
:func:`learn_palette` learns a palette from target maps of any style: k-means clustering of their
colours, each class painted in the colour most of its pixels are within 4 digital numbers of.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics import CLASS_NAMES, PALETTE

Colour = tuple[int, int, int]
MAX_CLASSES = 254
"""Class values 1..254 in a uint8 class raster (0 is no data, 255 is kept free)."""
TOLERANCE = 4
"""A pixel matches a colour when no channel differs by more than this (acc@5's test, < 5)."""
MAPS_COLOURS: dict[str, Colour] = {
    "land": (232, 229, 222),
    "road": (251, 251, 251),
    "water": (174, 205, 251),
    "park": (204, 222, 172),
    "highway": (251, 158, 37),
}
"""The colours the maps style paints its classes in: for each class of
:data:`~geo_p2p.metrics.PALETTE`, the colour most of its pixels in the maps training targets are
within :data:`TOLERANCE` of (:func:`paint_colours` on every fourth of the 1096 training pairs,
``benchmarks/map_classes.py colours``). JPEG noise spreads the targets around these."""


def _colour(value: Sequence[int], what: str) -> Colour:
    if len(value) != 3 or any(not 0 <= int(v) <= 255 or int(v) != v for v in value):
        raise ValueError(f"{what} must be three integers 0..255, got {list(value)}")
    return (int(value[0]), int(value[1]), int(value[2]))


@dataclass(frozen=True)
class MapClass:
    """One class of a map style: its name, the colour it is painted in, the prototype colours
    whose nearest pixels belong to it, and a margin: how many digital numbers (Euclidean, RGB)
    nearer than its competitors the class's prototypes count when a pixel is classified (0:
    plain nearest prototype)."""

    name: str
    colour: Colour
    prototypes: tuple[Colour, ...]
    margin: float = 0.0


@dataclass(frozen=True)
class Palette:
    """The classes of a map style, in class-index order (index ``i`` is value ``i + 1`` in a
    class raster)."""

    classes: tuple[MapClass, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.classes) <= MAX_CLASSES:
            raise ValueError(f"a palette has 1 to {MAX_CLASSES} classes, got {len(self.classes)}")
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names) or not all(n.strip() for n in names):
            raise ValueError(f"class names must be distinct and not empty, got {names}")
        if any(not c.prototypes for c in self.classes):
            raise ValueError("every class needs at least one prototype colour")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @property
    def colours(self) -> np.ndarray:
        """(k, 3) uint8: the colour of each class."""
        return np.array([c.colour for c in self.classes], np.uint8)

    def index(self, name: str) -> int:
        """The index of the class called ``name``; ValueError naming the classes otherwise."""
        if name not in self.names:
            raise ValueError(f"no class {name!r}: the classes are {', '.join(self.names)}")
        return self.names.index(name)

    def classify(self, rgb: np.ndarray) -> np.ndarray:
        """Class index (uint8) of each pixel of ``rgb`` (..., 3) uint8: the class of its nearest
        prototype, Euclidean in RGB, less the class's margin; an exact tie goes to the prototype
        listed first."""
        protos = np.array([p for c in self.classes for p in c.prototypes], np.float32)
        owner = np.array([i for i, c in enumerate(self.classes) for _ in c.prototypes], np.uint8)
        flat = rgb.reshape(-1, 3).astype(np.float32)
        # ||x - p||^2 - ||x||^2: integers below 2^24, so float32 is exact and ties deterministic.
        d = (protos**2).sum(axis=1)[None, :] - 2.0 * (flat @ protos.T)
        margins = np.array([c.margin for c in self.classes], np.float32)[owner]
        if margins.any():
            d += (flat**2).sum(axis=1, keepdims=True)
            d = np.sqrt(np.maximum(d, 0.0)) - margins[None, :]
        return owner[d.argmin(axis=1)].reshape(rgb.shape[:-1])

    def paint(self, labels: np.ndarray) -> np.ndarray:
        """(..., 3) uint8: each class index of ``labels`` in its class's colour."""
        return self.colours[labels]

    def as_card(self) -> list[dict[str, Any]]:
        """The palette as the model card stores it (JSON-ready; ``margin`` only where not 0)."""
        return [
            {
                "name": c.name,
                "colour": list(c.colour),
                "prototypes": [list(p) for p in c.prototypes],
                **({"margin": c.margin} if c.margin else {}),
            }
            for c in self.classes
        ]

    @classmethod
    def from_card(cls, entries: Iterable[dict[str, Any]]) -> Palette:
        """A palette from a model card's ``classes``; ValueError saying what is wrong."""
        required, allowed = (
            {"name", "colour", "prototypes"},
            {"name", "colour", "prototypes", "margin"},
        )
        classes = []
        for i, entry in enumerate(entries):
            keys = set(entry) if isinstance(entry, dict) else set()
            if not required <= keys <= allowed:
                raise ValueError(
                    f"class {i + 1} must have name, colour and prototypes (and may have margin)"
                )
            name = str(entry["name"])
            protos = tuple(_colour(p, f"a prototype of {name}") for p in entry["prototypes"])
            colour = _colour(entry["colour"], f"the colour of {name}")
            margin = entry.get("margin", 0.0)
            if not isinstance(margin, (int, float)) or not 0 <= margin < 256:
                raise ValueError(f"the margin of {name} must be 0..255 digital numbers")
            classes.append(MapClass(name, colour, protos, float(margin)))
        return cls(tuple(classes))


MAPS_MARGINS: dict[str, float] = {"road": 16.0}
"""Class margins of the maps style for the bundled model: its roads are painted soft at their
edges and come out thinner than the targets' (road pixels at 0.9 m: 9.8 % of its predictions,
11.6 % of the targets on held-out pairs); a road margin of 16 digital numbers gave the best
mean class IoU of the crisp style on the first 200 held-out maps pairs, among 0-32
(benchmarks/README.md)."""


def maps_palette() -> Palette:
    """The pix2pix maps style: the classes and prototypes of :data:`geo_p2p.metrics.PALETTE`,
    painted in :data:`MAPS_COLOURS`, with :data:`MAPS_MARGINS`."""
    return Palette(
        tuple(
            MapClass(n, MAPS_COLOURS[n], PALETTE[n], MAPS_MARGINS.get(n, 0.0)) for n in CLASS_NAMES
        )
    )


def best_colour(pixels: np.ndarray, candidates: int = 64) -> Colour:
    """The colour that most of ``pixels`` (N, 3) uint8 are within :data:`TOLERANCE` of, among
    their ``candidates`` most frequent exact colours (a map's flat paint colour, found through
    JPEG noise and anti-aliased edges)."""
    if len(pixels) == 0:
        raise ValueError("no pixels to choose a colour from")
    flat = pixels.reshape(-1, 3).astype(np.int32)
    keys, counts = np.unique(
        (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2], return_counts=True
    )
    colours = np.stack([keys >> 16, (keys >> 8) & 255, keys & 255], axis=1)
    top = colours[np.argsort(-counts, kind="stable")[:candidates]]
    near = [counts[np.abs(colours - t).max(axis=1) <= TOLERANCE].sum() for t in top]
    best = top[int(np.argmax(near))]
    return (int(best[0]), int(best[1]), int(best[2]))


def paint_colours(palette: Palette, images: Iterable[np.ndarray]) -> Palette:
    """``palette`` with each class painted in :func:`best_colour` of the pixels of ``images``
    ((H, W, 3) uint8 target maps) that it classifies into the class (a class absent from every
    image keeps its colour)."""
    pixels: list[list[np.ndarray]] = [[] for _ in palette.classes]
    for image in images:
        flat = image.reshape(-1, 3)
        labels = palette.classify(flat)
        for i in range(len(palette.classes)):
            pixels[i].append(flat[labels == i])
    classes = []
    for c, parts in zip(palette.classes, pixels, strict=True):
        found = np.concatenate(parts) if parts else np.zeros((0, 3), np.uint8)
        classes.append(replace(c, colour=best_colour(found)) if len(found) else c)
    return Palette(tuple(classes))


def sample_pixels(images: Iterable[np.ndarray], per_image: int, seed: int) -> np.ndarray:
    """Up to ``per_image`` pixels drawn without replacement from each (H, W, 3) uint8 image,
    concatenated (N, 3) uint8; the same for the same images and seed."""
    rng = np.random.default_rng(seed)
    parts = []
    for image in images:
        flat = image.reshape(-1, 3)
        take = min(per_image, len(flat))
        parts.append(flat[rng.choice(len(flat), take, replace=False)])
    if not parts:
        raise ValueError("no images to learn map classes from")
    return np.concatenate(parts)


def kmeans(pixels: np.ndarray, k: int, seed: int, iterations: int = 50) -> np.ndarray:
    """k-means centres (k, 3) float64 of ``pixels`` (N, 3): k-means++ seeding with ``seed``, then
    Lloyd iterations until the assignment no longer changes. Deterministic."""
    x = pixels.astype(np.float64)
    distinct = np.unique(pixels.reshape(-1, 3), axis=0)
    if len(distinct) < k:
        raise ValueError(f"the targets have only {len(distinct)} distinct colours: ask for fewer")
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    closest = ((x - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        centres.append(x[rng.choice(len(x), p=closest / closest.sum())])
        closest = np.minimum(closest, ((x - centres[-1]) ** 2).sum(axis=1))
    c = np.array(centres)
    assign = np.full(len(x), -1)
    for _ in range(iterations):
        new = _nearest(x, c)
        if np.array_equal(new, assign):
            break
        assign = new
        for j in range(k):
            members = x[assign == j]
            if len(members):
                c[j] = members.mean(axis=0)
    return c


def _nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre of each row of ``x`` (||x||^2 is the same for all)."""
    return ((centres**2).sum(axis=1)[None, :] - 2.0 * (x @ centres.T)).argmin(axis=1)


def choose_k(pixels: np.ndarray, seed: int, largest: int = 12, gain: float = 0.15) -> int:
    """The number of colour clusters in ``pixels``: the smallest k after which one more
    cluster lowers the k-means squared error by less than ``gain`` (a fraction of it)."""
    error = None
    for k in range(1, largest + 1):
        centres = kmeans(pixels, k, seed)
        x = pixels.astype(np.float64)
        e = float(((x - centres[_nearest(x, centres)]) ** 2).sum())
        if error is not None and e > (1 - gain) * error:
            return k - 1
        error = e
        if e == 0:
            return k
    return largest


def learn_palette(
    images: Iterable[np.ndarray],
    k: int | None = None,
    names: Sequence[str] | None = None,
    seed: int = 0,
    per_image: int = 2000,
) -> Palette:
    """Learn a map style's classes from target maps ((H, W, 3) uint8 images).

    Colours are sampled (``per_image`` pixels of each image, with ``seed``) and clustered by
    k-means into ``k`` clusters (None: :func:`choose_k`, or the number of ``names``). Clusters
    are ordered by size, largest first. ``names`` names them in that order; a name given twice
    makes one class of several clusters (a style with two shades of land, say); without names
    they are ``class_1..k``. Each class's prototypes are its cluster centres, its colour the one
    most of its sampled pixels are within :data:`TOLERANCE` of. The same images and seed give
    the same palette.
    """
    pixels = sample_pixels(images, per_image, seed)
    if k is None:
        k = len(names) if names else choose_k(pixels, seed)
    if names is not None and len(names) != k:
        raise ValueError(f"{len(names)} class names given for {k} classes")
    if not 1 <= k <= MAX_CLASSES:
        raise ValueError(f"the number of classes must be 1..{MAX_CLASSES}, got {k}")
    centres = kmeans(pixels, k, seed)
    assign = _nearest(pixels.astype(np.float64), centres)
    order = np.argsort(-np.bincount(assign, minlength=k), kind="stable")
    labels = list(names) if names is not None else [f"class_{i + 1}" for i in range(k)]
    classes = []
    for name in dict.fromkeys(labels):  # first appearance order
        clusters = [int(order[i]) for i, n in enumerate(labels) if n == name]
        members = pixels[np.isin(assign, clusters)]
        protos = tuple(_colour(np.rint(centres[j]).astype(int).tolist(), name) for j in clusters)
        colour = best_colour(members) if len(members) else protos[0]
        classes.append(MapClass(name, colour, protos))
    return Palette(tuple(classes))


def pair_targets(
    files: Sequence[Path], direction: str = "AtoB", limit: int = 200
) -> Iterator[np.ndarray]:
    """The target maps ((H, W, 3) uint8) of up to ``limit`` pair images spread evenly over
    ``files``: what :func:`learn_palette` learns a training set's classes from."""
    from ..train.data import load_pair

    step = max(1, math.ceil(len(files) / limit))
    for path in files[::step]:
        yield np.asarray(load_pair(path, direction)[1])
