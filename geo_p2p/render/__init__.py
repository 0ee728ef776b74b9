"""The render path: options, planner, inference engine, tile stream, and the Translator facade.

Data flows one way: raster windows -> float tiles in [-1, 1] -> batched generator -> weighted
sums in the blocks being assembled -> finished uint8 blocks -> a writer (:mod:`geo_p2p.run`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["Job", "RenderOptions", "RenderPlan", "RenderSummary", "Translator"]

if TYPE_CHECKING:
    from ..run.driver import RenderSummary
    from .options import RenderOptions
    from .planner import Job, RenderPlan
    from .translator import Translator

_HOMES = {
    "Job": ".planner",
    "RenderOptions": ".options",
    "RenderPlan": ".planner",
    "RenderSummary": "..run.driver",
    "Translator": ".translator",
}


def __getattr__(name: str) -> Any:
    # Imported on first use: the leaf modules of this package (tiling, say) import nothing else.
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
