"""Paired-image datasets: side-by-side ``A | B`` files as in the pix2pix datasets.

A data folder holds the pair images directly, or in ``train/`` (and optionally ``val/``)
subfolders. Every file is one image of width 2H x H: the left half is A, the right half B.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Sampler

from ..errors import DataError
from ..metrics import CLASS_NAMES, classify
from ..render.mosaic import u8_to_signed
from .randomise import cast_shadow, randomise

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
PAIR_TOLERANCE_PX = 4
MAPS_PAIR_SIZE = (1200, 600)
MAPS_GSD = 0.9
"""Ground resolution of the pix2pix "maps" pairs at their native 600 px (Google zoom 17, 40.7 N)."""


@dataclass(frozen=True)
class PairFolders:
    """The pair images found in a data folder."""

    train: list[Path]
    val: list[Path]


def list_images(folder: Path) -> list[Path]:
    """The pair images directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def find_pairs(root: str | Path) -> PairFolders:
    """Find the training (and validation) pairs under ``root``.

    ``root/train`` (and ``root/val``) when present, else the images directly in ``root``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist or is not a folder")
    train_dir = root / "train"
    if train_dir.is_dir():
        train = list_images(train_dir)
        val = list_images(root / "val") if (root / "val").is_dir() else []
        where = train_dir
    else:
        train, val, where = list_images(root), [], root
    if not train:
        raise DataError(
            f"no pair images (.jpg/.jpeg/.png) in {where}: put side-by-side A|B images there"
        )
    return PairFolders(train, val)


def check_pairs(files: Sequence[Path], skip_bad: bool = False) -> list[Path]:
    """Return the usable pair files; a file that is unreadable or not 2:1 is an error.

    With ``skip_bad`` such files are left out with a warning instead.
    """
    good, bad = [], []
    for path in files:
        try:
            with Image.open(path) as im:
                w, h = im.size
        except (OSError, UnidentifiedImageError):
            bad.append(f"{path}: not a readable image")
            continue
        if abs(w - 2 * h) > PAIR_TOLERANCE_PX:
            bad.append(f"{path}: {w}x{h} is not a side-by-side pair (width must be twice height)")
            continue
        good.append(path)
    if bad and not skip_bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise DataError(f"{bad[0]}{more}; fix or remove it, or pass --skip-bad to leave such out")
    for message in bad:
        log.warning("skipping %s", message)
    if not good:
        raise DataError("no usable pair images left")
    return good


def dataset_gsd(root: str | Path, files: Sequence[Path]) -> float | None:
    """Ground resolution (m/px) of the pair images as stored, if the data says so.

    Read from ``root/dataset.json`` (``{"gsd": 0.9}``); else, for 1200x600 pairs (the layout of
    the pix2pix "maps" dataset), its 0.9 m/px; else None.
    """
    meta = Path(root) / "dataset.json"
    if meta.is_file():
        gsd = json.loads(meta.read_text()).get("gsd")
        return float(gsd) if gsd is not None else None
    with Image.open(files[0]) as im:
        if im.size == MAPS_PAIR_SIZE:
            log.info("1200x600 pairs: assuming the pix2pix maps data's %.1f m/px", MAPS_GSD)
            return MAPS_GSD
    return None


def load_pair(path: Path, direction: str = "AtoB") -> tuple[Image.Image, Image.Image]:
    """Split a side-by-side file into (input, target) halves following ``direction``."""
    with Image.open(path) as im:
        im = im.convert("RGB")
    w, h = im.size
    half = w // 2
    a, b = im.crop((0, 0, half, h)), im.crop((half, 0, 2 * half, h))
    return (a, b) if direction == "AtoB" else (b, a)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB image -> float tensor (3, H, W) in [-1, 1]."""
    return torch.from_numpy(u8_to_signed(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)))


DIHEDRAL: tuple[Image.Transpose | None, ...] = (
    None,
    Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_180,
    Image.Transpose.ROTATE_270,
    Image.Transpose.FLIP_LEFT_RIGHT,
    Image.Transpose.FLIP_TOP_BOTTOM,
    Image.Transpose.TRANSPOSE,
    Image.Transpose.TRANSVERSE,
)
"""The 8 symmetries of the square: identity, 3 rotations, 4 reflections."""
_GREY_AXIS = np.full(3, 1 / math.sqrt(3), np.float32)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class Augment:
    """Training augmentations beyond the paper's crop and mirror (all off by default)."""

    dihedral: bool = False
    """One of the 8 rotations and flips of the square, A and B alike (instead of the mirror)."""
    colour: float = 0.0
    """Input-only colour jitter of strength c: brightness, contrast and saturation times
    [1 - c, 1 + c], hue turned by up to c / 4 of a full turn (0: off)."""
    scale: float = 1.0
    """Scale jitter: A and B resampled by a factor in [1 / scale, scale] (log-uniform) by
    cropping a larger or smaller square and resizing it to the crop size (1: off). A factor
    below 1 needs halves larger than the crop; it is limited to what they hold."""
    domain: float = 0.0
    """Input-only domain randomisation of this strength (:func:`~geo_p2p.train.randomise.randomise`;
    0: off)."""
    shadows: float = 0.0
    """Probability of one synthetic cast shadow on the input
    (:func:`~geo_p2p.train.randomise.cast_shadow`; 0: off)."""


def colour_jitter(image: Image.Image, rng: np.random.Generator, strength: float) -> Image.Image:
    """Random brightness, contrast, saturation and hue (see :attr:`Augment.colour`)."""
    x = np.asarray(image, np.float32) / 255.0
    brightness, contrast, saturation = rng.uniform(1 - strength, 1 + strength, 3)
    turn = 2 * math.pi * rng.uniform(-strength / 4, strength / 4)
    x = x * brightness
    luma = x @ _LUMA
    x = luma.mean() + contrast * (x - luma.mean())
    luma = (x @ _LUMA)[..., None]
    x = luma + saturation * (x - luma)
    # hue: rotate colours about the grey axis (Rodrigues)
    k = _GREY_AXIS
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], np.float32)
    rot = (
        math.cos(turn) * np.eye(3) + math.sin(turn) * cross + (1 - math.cos(turn)) * np.outer(k, k)
    )
    x = x @ rot.T.astype(np.float32)
    return Image.fromarray(np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8))


class PairDataset(Dataset):
    """Pairs with the paper's jitter: resize to ``load_size``, random crop ``size``, mirror,
    plus the optional ``augment`` ones.

    ``load_size=None`` keeps the native resolution (crop only). Items are indexed by
    ``(epoch, index)`` and their jitter is drawn from ``(seed, epoch, index)``, so a run is
    reproducible whatever the number of workers, and a resumed run sees the same data.
    Without ``jitter``, the crop is the centre one (the same scale as training, no mirror,
    no augmentation).
    """

    def __init__(
        self,
        files: Sequence[Path],
        direction: str = "AtoB",
        size: int = 256,
        load_size: int | None = 286,
        jitter: bool = True,
        seed: int = 0,
        augment: Augment = Augment(),
    ) -> None:
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"direction must be AtoB or BtoA, got {direction!r}")
        self.files = list(files)
        self.direction, self.size, self.load_size = direction, size, load_size
        self.jitter, self.seed, self.augment = jitter, seed, augment

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        a, b = load_pair(self.files[index], self.direction)
        if self.load_size is not None:
            square = (self.load_size, self.load_size)
            a, b = (im.resize(square, Image.BICUBIC) for im in (a, b))
        w, h = a.size
        if w < self.size or h < self.size:
            raise DataError(f"{self.files[index]}: halves of {w}x{h} are smaller than {self.size}")
        rng = np.random.default_rng([self.seed, epoch, index])
        aug, side = self.augment, self.size
        if self.jitter:
            if aug.scale > 1:
                factor = math.exp(rng.uniform(-math.log(aug.scale), math.log(aug.scale)))
                side = min(w, h, round(self.size / factor))
            x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        else:
            x, y = (w - side) // 2, (h - side) // 2
        a, b = (im.crop((x, y, x + side, y + side)) for im in (a, b))
        if side != self.size:
            a, b = (im.resize((self.size, self.size), Image.BICUBIC) for im in (a, b))
        if self.jitter:
            if aug.dihedral:
                op = DIHEDRAL[int(rng.integers(len(DIHEDRAL)))]
                if op is not None:
                    a, b = a.transpose(op), b.transpose(op)
            elif rng.random() < 0.5:
                a, b = (im.transpose(Image.FLIP_LEFT_RIGHT) for im in (a, b))
            if aug.colour > 0:
                a = colour_jitter(a, rng, aug.colour)
            if aug.domain > 0:
                a = randomise(a, rng, aug.domain)
            if aug.shadows > 0 and rng.random() < aug.shadows:
                a = cast_shadow(a, rng)
        return to_tensor(a), to_tensor(b)


def parse_class_factor(spec: str, default: float) -> tuple[str, float]:
    """``"CLASS[:FACTOR]"`` (a map class of :data:`~geo_p2p.metrics.CLASS_NAMES`) -> (class,
    factor); ValueError (one line) when it is not."""
    name, _, factor = spec.partition(":")
    try:
        value = float(factor) if factor else default
    except ValueError:
        value = math.nan
    if name not in CLASS_NAMES or not value >= 0:
        raise ValueError(
            f"{spec!r} is not CLASS[:FACTOR] with CLASS one of {', '.join(CLASS_NAMES)} and "
            "FACTOR a number >= 0"
        )
    return name, value


def class_shares(
    files: Sequence[Path], name: str, direction: str = "AtoB", step: int = 4
) -> np.ndarray:
    """Share of each pair's target pixels (every ``step``-th row and column) whose nearest
    palette colour (:func:`~geo_p2p.metrics.classify`) is of class ``name``."""
    index = CLASS_NAMES.index(name)
    return np.array(
        [
            (classify(np.asarray(load_pair(p, direction)[1])[::step, ::step]) == index).mean()
            for p in files
        ]
    )


def oversampling_weights(shares: np.ndarray, factor: float) -> np.ndarray:
    """Drawing weight per pair: ``1 + factor * share / mean share``, so a pair holding the
    class at its mean share is drawn ``1 + factor`` times as often as one without it (all 1
    when no pair holds it)."""
    mean = float(shares.mean())
    return 1 + factor * shares / mean if mean > 0 else np.ones_like(shares)


class EpochSampler(Sampler):
    """Yields ``(epoch, index)`` keys in a shuffled order fixed by ``(seed, epoch)``.

    ``start`` skips the first keys of the epoch (to resume mid-epoch); ``rank``/``world`` give each
    distributed process its own share of the order. With ``weights`` (one per pair) an epoch is
    ``n`` draws with replacement, pair i with probability ``weights[i] / sum(weights)``.
    """

    def __init__(
        self,
        n: int,
        seed: int,
        epoch: int,
        start: int = 0,
        rank: int = 0,
        world: int = 1,
        weights: np.ndarray | None = None,
    ) -> None:
        self.n, self.seed, self.epoch, self.start = n, seed, epoch, start
        self.rank, self.world, self.weights = rank, world, weights

    def order(self) -> list[int]:
        rng = np.random.default_rng([self.seed, self.epoch, 7])
        if self.weights is None:
            perm = rng.permutation(self.n)
        else:
            perm = rng.choice(self.n, self.n, p=self.weights / self.weights.sum())
        usable = self.n - self.n % self.world  # every process takes the same number of steps
        return perm[:usable].tolist()[self.rank :: self.world]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self.order()[self.start :]:
            yield (self.epoch, index)

    def __len__(self) -> int:
        return max(0, len(self.order()) - self.start)
