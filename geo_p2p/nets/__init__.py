"""The networks: the paper's U-Net generator and PatchGAN discriminator (:mod:`.unet`), a U-Net
on an ImageNet-pretrained EfficientNet-Lite0 encoder (:mod:`.effnet`), and the architectures a
model card can name (:mod:`.architectures`)."""

from .architectures import (
    ARCHITECTURES,
    Architecture,
    build_generator,
    describe,
    start_from_pretrained,
)
from .effnet import Lite0UNetGenerator, load_imagenet_encoder
from .unet import (
    InferenceStats,
    PatchDiscriminator,
    TileBatchNorm,
    UNetGenerator,
    count_parameters,
    init_weights,
    levels_for_tile,
    set_inference_stats,
)

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "InferenceStats",
    "Lite0UNetGenerator",
    "PatchDiscriminator",
    "TileBatchNorm",
    "UNetGenerator",
    "build_generator",
    "count_parameters",
    "describe",
    "init_weights",
    "levels_for_tile",
    "load_imagenet_encoder",
    "set_inference_stats",
    "start_from_pretrained",
]
