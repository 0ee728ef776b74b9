"""The generator architectures a model card can name, and how to build and start each."""

from __future__ import annotations

from typing import Literal, get_args

from torch import nn

from .effnet import Lite0UNetGenerator, load_imagenet_encoder
from .unet import UNetGenerator, levels_for_tile

Architecture = Literal["unet", "unet-lite0"]
ARCHITECTURES: tuple[str, ...] = get_args(Architecture)
"""``unet``: the paper's U-Net (width ``ngf``); ``unet-lite0``: a U-Net on an ImageNet-pretrained
EfficientNet-Lite0 encoder (:mod:`geo_p2p.nets.effnet`; ``ngf`` does not apply)."""


LITE0_MIN_TILE = 64
"""Its stride-32 features are 2x2 there: BatchNorm needs more than one value a channel."""


def build_generator(architecture: str, ngf: int, tile: int) -> nn.Module:
    """A freshly initialised generator of that architecture for ``tile`` px tiles."""
    levels = levels_for_tile(tile)
    if architecture == "unet":
        return UNetGenerator(ngf=ngf, levels=levels)
    if architecture == "unet-lite0":
        if tile < LITE0_MIN_TILE:
            raise ValueError(f"the unet-lite0 generator needs tiles of {LITE0_MIN_TILE} px or more")
        return Lite0UNetGenerator()
    raise ValueError(
        f"unknown generator architecture {architecture!r}: use one of {', '.join(ARCHITECTURES)}"
    )


def start_from_pretrained(generator: nn.Module) -> bool:
    """Load the pretrained weights an architecture starts a training from; False if none."""
    if isinstance(generator, Lite0UNetGenerator):
        load_imagenet_encoder(generator)
        return True
    return False


def describe(architecture: str, ngf: int) -> str:
    """A few words for a generator, as in an exported model's description."""
    if architecture == "unet-lite0":
        return "U-Net generator on an EfficientNet-Lite0 encoder"
    return f"pix2pix U-Net generator (ngf {ngf})"
