"""geo-p2p: translate georeferenced aerial rasters into map-style rasters with pix2pix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["ModelCard", "Translator", "load_model", "save_model", "__version__"]

if TYPE_CHECKING:
    from .card import ModelCard, load_model, save_model
    from .render.translator import Translator


def __getattr__(name: str) -> Any:
    # Lazy imports keep `import geo_p2p` light (the trainer needs no rasterio).
    if name in ("ModelCard", "load_model", "save_model"):
        from . import card

        return getattr(card, name)
    if name == "Translator":
        from .render.translator import Translator

        return Translator
    raise AttributeError(f"module 'geo_p2p' has no attribute {name!r}")
