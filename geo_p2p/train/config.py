"""What defines a training run: :class:`TrainConfig` (stored in the checkpoint and
``config.json``), the paper's learning-rate schedule, and the configuration of a run to resume."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import RenderError
from ..nets import InferenceStats
from .data import Augment

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint and config.json)."""

    data: str
    out: str = "runs/geo-p2p"
    direction: str = "AtoB"
    architecture: str = "unet"
    """Generator architecture (:data:`geo_p2p.nets.ARCHITECTURES`)."""
    ngf: int = 64
    ndf: int = 64
    tile: int = 256
    load_size: int | None = 286
    """Resize each half to this before the random crop (None: crop at native resolution)."""
    epochs: int = 100
    epochs_decay: int = 100
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_l1: float = 100.0
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None
    """Mixed precision: bf16 autocast (fp16 with loss scaling on GPUs without bf16).
    None: on for CUDA, off elsewhere; True on CPU uses bf16 (fast where AVX-512 BF16 exists)."""
    channels_last: bool = True
    save_every: int = 5
    workers: int | None = None
    max_steps: int | None = None
    gsd: float | None = None
    """Ground resolution of the pair images as stored (m/px); None: from the data folder."""
    inference_stats: InferenceStats = "running"
    skip_bad: bool = False
    init: str | None = None
    """Model directory (or "default", the bundled model) that G and D start from."""
    dihedral: bool = False
    colour_jitter: float = 0.0
    scale_jitter: float = 1.0
    domain_randomise: float = 0.0
    shadows: float = 0.0
    """Augmentations: see :class:`~geo_p2p.train.data.Augment`."""
    oversample: str | None = None
    """``"CLASS[:FACTOR]"``: draw pairs with replacement, weighted by their target's share of
    that map class (:func:`~geo_p2p.train.data.oversampling_weights`; FACTOR default 4)."""
    l1_class_weight: str | None = None
    """``"CLASS[:WEIGHT]"``: target pixels of that map class weigh WEIGHT (default 5) in the
    L1 loss, the others 1."""
    map_classes: str | None = None
    """The map's classes, learnt from the training targets: ``"K"`` (K classes, named
    class_1..K), or names in order of size, largest first (``"land,road,water"``; a name given
    twice makes one class of two colour clusters); None: as many as the colours show, or with
    ``init`` the parent model's classes (a fine-tune keeps its parent's map style)."""
    command: str = ""

    def augment(self) -> Augment:
        return Augment(
            self.dihedral,
            self.colour_jitter,
            self.scale_jitter,
            self.domain_randomise,
            self.shadows,
        )


def lr_factor(epochs: int, epochs_decay: int) -> Callable[[int], float]:
    """Learning-rate multiplier per epoch: 1 for ``epochs``, then linear decay to 0."""
    return lambda e: 1.0 - max(0, e + 1 - epochs) / float(epochs_decay + 1)


def parse_map_classes(spec: str) -> tuple[int | None, tuple[str, ...] | None]:
    """``--map-classes``: a number of classes, or their names.

    >>> parse_map_classes("6"), parse_map_classes("land, road,land")
    ((6, None), (None, ('land', 'road', 'land')))
    """
    if spec.strip().isdigit():
        return int(spec), None
    names = tuple(name.strip() for name in spec.split(","))
    if not all(names):
        raise RenderError(
            f"give a number of classes or their names separated by commas, not {spec!r}",
            "--map-classes",
        )
    return None, names


def resume_config(run_dir: str | Path, **changes: Any) -> TrainConfig:
    """The configuration a run was started with, with ``changes`` (e.g. max_steps) applied."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} holds no {CHECKPOINT} to resume from")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return dataclasses.replace(TrainConfig(**state["config"]), **changes)
