"""Rendering by regions: the unit of work of resumable and distributed renders.

The output is cut into square regions aligned with its 512 px internal tiles
(:func:`~geo_p2p.render.tiling.regions`). :func:`render_regions` hands the regions still to do
to an executor (in this process: :class:`~geo_p2p.run.executors.LocalRegions`; on a Dask
cluster: :func:`geo_p2p.distributed.dask_compute`) and writes the results in output order with
the one GeoTIFF writer, into a journaled partial file when resuming
(:mod:`geo_p2p.run.journal`). Each region comes out bit for bit as the same window of a plain
render (on a CPU without ``torch.compile``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .inputs import network_bytes
from .render.options import RenderOptions
from .render.translator import Translator
from .run.driver import RenderSummary, execute
from .run.executors import LocalRegions, RegionExecutor
from .run.journal import Journal, fingerprint
from .run.writer import GeoTIFFWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """A model directory and the options :meth:`Translator.load` takes: how to build the same
    translator anywhere (small and picklable, what a Dask task carries instead of the model)."""

    path: str | None = None
    """Model directory; None: the bundled model (each machine's own installation)."""
    batch_size: int = 8
    device: str = "auto"
    precision: str = "auto"
    torch_compile: bool = False
    backend: str = "torch"
    """torch by default: "auto" could choose differently from worker to worker, or between a
    render and its resumption, and the backends differ in the last bits."""

    def settings(self) -> dict[str, object]:
        """The options beside the path, for the resume fingerprint."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "path"}

    def load(self, **override: Any) -> Translator:
        """The translator, with some options overridden (e.g. ``device="cpu"``)."""
        return Translator.load(self.path, **{**self.settings(), **override})


def render_regions(
    model: ModelSpec,
    src: str | Path,
    dst: str | Path,
    options: RenderOptions | None = None,
    *,
    compute: RegionExecutor | None = None,
    resume: bool = False,
    progress: bool | None = None,
    **keywords: Any,
) -> RenderSummary:
    """Render ``src`` into ``dst`` region by region: :meth:`Translator.render`'s output.

    ``compute`` renders the regions (default: in this process, with ``model`` loaded here).
    ``resume``: keep the partial output and a journal next to ``dst`` while rendering, and if
    they are there from an interrupted render of the same input, model and options, continue it.
    ``options`` (or ``keywords`` over them) are :meth:`Translator.render`'s; their
    ``region_size`` is the side of the regions.
    """
    options = RenderOptions.build(options, **keywords)
    dst = Path(dst)
    # The grid needs the model's tile and ground resolution only: loaded on the CPU here when
    # the regions are rendered elsewhere.
    local = compute is None
    counted = network_bytes()  # here the plan's reads; a cluster's workers count their own
    translator = model.load() if local else model.load(device="cpu", precision="fp32")
    executor = LocalRegions(translator.engine) if compute is None else compute
    # The rate here says nothing of a cluster's.
    job = translator.job(src, options, dst=dst, by_regions=True, estimate=None if local else False)
    assert job.plan is not None
    job.plan.log()
    journal = None
    if resume:
        layout = translator.layout_for(options)
        area = None if job.area is None else job.area.pixels.wkt
        settings = {
            **model.settings(),
            "overlap": layout.overlap,
            "margin": layout.margin,
            **options.changing_output(area),
            "vegetation": None if job.vegetation is None else job.vegetation.radius,
        }
        journal = Journal(dst, fingerprint(src, translator.module, settings), len(job.parts))
    writer = GeoTIFFWriter(dst, job.source, options, journal, translator.palette)
    return execute(job, executor, writer, progress, counted)
