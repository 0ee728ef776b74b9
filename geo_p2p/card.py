"""Model directories: generator weights as safetensors plus a JSON model card.

A model directory holds ``generator.safetensors`` (no pickle anywhere), ``card.json``, which
says how to rebuild and use the generator: width, tile size, direction, BatchNorm statistics at
inference, the ground resolution it expects, and where it came from, and for models that
``geo-p2p train`` wrote, ``discriminator.safetensors`` (what fine-tuning starts D from).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn

from .files import atomic_write_bytes
from .nets import InferenceStats, build_generator, set_inference_stats

WEIGHTS_FILE = "generator.safetensors"
DISCRIMINATOR_FILE = "discriminator.safetensors"
CARD_FILE = "card.json"
DEFAULT_MODEL_DIR = Path(__file__).parent / "weights"


@dataclass
class ModelCard:
    """What a generator is and how to run it."""

    ngf: int = 64
    tile: int = 256
    direction: str = "AtoB"
    inference_stats: InferenceStats = "running"
    gsd: float | None = None
    """Ground resolution the generator expects, metres per pixel (None: unknown)."""
    architecture: str = "unet"
    classes: list[dict[str, Any]] | None = None
    """The map's classes (:meth:`geo_p2p.mapclasses.Palette.as_card`); None: not recorded."""
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown model card fields: {', '.join(sorted(unknown))}")
        return cls(**data)

    def build_generator(self) -> nn.Module:
        return build_generator(self.architecture, self.ngf, self.tile)


def save_model(
    directory: str | Path,
    generator: torch.nn.Module,
    card: ModelCard,
    dtype: torch.dtype = torch.float32,
    discriminator: torch.nn.Module | None = None,
) -> Path:
    """Write ``generator``, ``card`` (and ``discriminator``) into ``directory`` (created if
    needed), each atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    nets = {WEIGHTS_FILE: generator, DISCRIMINATOR_FILE: discriminator}
    for name, net in nets.items():
        if net is None:
            continue
        tensors = {
            k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().contiguous()
            for k, v in net.state_dict().items()
        }
        atomic_write_bytes(directory / name, save(tensors, metadata={"format": "pt"}))
    save_card(directory, card)
    return directory


def save_card(directory: str | Path, card: ModelCard) -> None:
    """Write (or replace) the model card of a model directory, atomically."""
    text = json.dumps(dataclasses.asdict(card), indent=2) + "\n"
    atomic_write_bytes(Path(directory) / CARD_FILE, text.encode())


def load_card(directory: str | Path) -> ModelCard:
    """Read the model card of a model directory."""
    path = Path(directory) / CARD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a model directory: it has no {CARD_FILE}")
    try:
        return ModelCard.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError) as e:
        raise ValueError(f"{path} is not a valid model card: {e}") from e


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors, floating-point ones as float32."""
    return {k: v.float() if v.is_floating_point() else v for k, v in load_file(path).items()}


def load_model(directory: str | Path | None = None) -> tuple[nn.Module, ModelCard]:
    """Load a model directory (None: the bundled default model) as an eval-mode fp32 generator."""
    directory = Path(directory) if directory is not None else DEFAULT_MODEL_DIR
    card = load_card(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{directory} has a model card but no {WEIGHTS_FILE}")
    generator = card.build_generator()
    try:
        generator.load_state_dict(read_weights(weights))
    except Exception as e:  # a corrupt file, or weights of another architecture or width
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(
            f"{weights} does not hold the generator its card describes: {first}"
        ) from e
    set_inference_stats(generator, card.inference_stats)
    return generator.eval(), card
