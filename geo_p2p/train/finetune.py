"""Fine-tuning: a training run that starts from an existing model directory (its parent).

``init="default"`` is the bundled model. The generator starts from the parent's weights, and the
discriminator too when the parent directory holds one (``geo-p2p train`` saves it beside the
generator); the architecture must match. Options left unset take the parent's architecture,
native-resolution crops (pairs from ``geo-p2p pairs`` are cut at the resolution wanted) and the
shorter, slower :data:`FINETUNE_SCHEDULE`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import safe_open
from torch import nn

from ..card import (
    DEFAULT_MODEL_DIR,
    DISCRIMINATOR_FILE,
    ModelCard,
    load_card,
    load_model,
    read_weights,
)
from ..nets import levels_for_tile

log = logging.getLogger(__name__)

FINETUNE_SCHEDULE: dict[str, Any] = {"epochs": 5, "epochs_decay": 5, "lr": 5e-5}
"""Fine-tuning defaults: 5 epochs at a quarter of the paper's rate, then 5 of linear decay."""


@dataclass(frozen=True)
class Parent:
    """The model directory a run starts from."""

    spec: str
    """As given: a path, or "default"."""
    directory: Path
    card: ModelCard
    ndf: int | None
    """Width of the saved discriminator; None when the directory has none."""

    @classmethod
    def read(cls, spec: str) -> Parent:
        directory = DEFAULT_MODEL_DIR if spec == "default" else Path(spec)
        card = load_card(directory)
        ndf, weights = None, directory / DISCRIMINATOR_FILE
        if weights.is_file():
            try:
                with safe_open(weights, "pt") as f:
                    ndf = int(f.get_slice("net.0.weight").get_shape()[0])
            except Exception as e:  # not safetensors, or not our discriminator
                raise ValueError(f"{weights} is not a discriminator saved by geo-p2p: {e}") from e
        return cls(spec, directory, card, ndf)

    def defaults(self) -> dict[str, Any]:
        """Training options that follow from this parent when the user leaves them unset."""
        inherited = {
            "architecture": self.card.architecture,
            "ngf": self.card.ngf,
            "tile": self.card.tile,
            "inference_stats": self.card.inference_stats,
            "direction": self.card.direction,
            "load_size": None,
            **FINETUNE_SCHEDULE,
        }
        if self.ndf is not None:
            inherited["ndf"] = self.ndf
        return inherited

    def check(self, architecture: str, ngf: int, ndf: int, tile: int) -> None:
        """Raise ValueError (one line) when the run's networks cannot take these weights."""
        where = "the bundled model" if self.spec == "default" else str(self.directory)
        theirs = self.card.architecture
        mismatches = [
            ("--architecture", architecture, theirs, architecture != theirs),
            ("--ngf", ngf, self.card.ngf, architecture == "unet" and ngf != self.card.ngf),
            (
                "--tile",
                tile,
                self.card.tile,
                levels_for_tile(tile) != levels_for_tile(self.card.tile),
            ),
            ("--ndf", ndf, self.ndf, self.ndf is not None and ndf != self.ndf),
        ]
        for option, given, theirs, differs in mismatches:
            if differs:
                raise ValueError(
                    f"{option} {given} does not match {where} ({theirs}): leave {option} out "
                    "to take the initial model's"
                )

    def load_into(self, generator: nn.Module, discriminator: nn.Module) -> None:
        """Copy the parent's weights into the (unwrapped, matching) networks."""
        parent_g, _ = load_model(self.directory)
        generator.load_state_dict(parent_g.state_dict())
        if self.ndf is None:
            log.info("%s has no discriminator: D starts from scratch", self.directory)
            return
        try:
            discriminator.load_state_dict(read_weights(self.directory / DISCRIMINATOR_FILE))
        except RuntimeError as e:
            raise ValueError(
                f"{self.directory / DISCRIMINATOR_FILE} does not hold a PatchGAN "
                f"discriminator of width {self.ndf}: {str(e).splitlines()[0]}"
            ) from e

    def record(self) -> dict[str, Any]:
        """What the child's model card says about its parent."""
        return {
            "model": "default (bundled)" if self.spec == "default" else str(self.directory),
            "created": self.card.created,
            "data": self.card.training.get("data"),
            "steps": self.card.training.get("steps"),
            "gsd": self.card.gsd,
        }


def warn_if_mismatched(parent: Parent, direction: str, data_gsd: float | None) -> None:
    """Log what makes a fine-tune likely to waste the parent's training."""
    if direction != parent.card.direction:
        log.warning(
            "the initial model translates %s; this run trains %s", parent.card.direction, direction
        )
    theirs = parent.card.gsd
    if theirs and data_gsd and abs(data_gsd / theirs - 1) > 0.1:
        log.warning(
            "the pairs are at %.3g m/px and the initial model was trained at %.3g m/px: "
            "cut them with geo-p2p pairs --gsd %.3g to build on what it learnt",
            data_gsd,
            theirs,
            theirs,
        )


def unset_to_defaults(options: dict[str, Any], init: str | None) -> dict[str, Any]:
    """Training options with the unset (None) ones filled from the parent, if any; a
    ``load_size`` of "native" becomes None. Options still unset keep
    :class:`~geo_p2p.train.TrainConfig`'s defaults.
    """
    given = {k: v for k, v in options.items() if v is not None}
    if init is not None:
        given = {**Parent.read(init).defaults(), **given}
    if given.get("load_size") == "native":
        given["load_size"] = None
    return given
