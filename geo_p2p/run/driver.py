"""The one way a render is carried out: an executor renders the job's parts still to do into a
writer, with one progress bar, and the writer finishes the output."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import rasterio

from ..geotiff import GDAL_OPTIONS
from ..inputs import fetched_since, format_bytes
from ..progress import Progress
from ..render.planner import Job
from .executors import Executor
from .writer import GeoTIFFWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderSummary:
    """What a render did."""

    tiles: int
    skipped: int
    seconds: float
    output: Path
    fetched: int | None = None
    """Bytes fetched over the network for a remote input (None: local, or not counted)."""

    def __str__(self) -> str:
        rate = self.tiles / self.seconds if self.seconds > 0 else float("inf")
        fetched = "" if self.fetched is None else f", {format_bytes(self.fetched)} fetched"
        return (
            f"rendered {self.tiles} tiles in {self.seconds:.1f} s ({rate:.1f} tiles/s, "
            f"{self.skipped} all-no-data tiles skipped{fetched}): {self.output}"
        )


def execute(
    job: Job,
    executor: Executor,
    writer: GeoTIFFWriter,
    progress: bool | None = None,
    counted: int | None = None,
) -> RenderSummary:
    """Render ``job`` with ``executor`` into ``writer`` (the parts it has not done already, when
    resuming) and finish the output; logs and returns the summary. ``progress``: a bar (None:
    when stderr is a terminal, else log lines). ``counted``: the bytes GDAL had fetched in this
    process before the job was planned (:func:`~geo_p2p.inputs.network_bytes`; None: not
    counted), for the summary, with what the executor's workers fetched."""
    start = time.perf_counter()
    with rasterio.Env(**GDAL_OPTIONS, **executor.gdal_settings(job)), writer:
        parts = job.parts
        todo = [i for i in range(len(parts)) if i not in writer.done]
        if len(todo) < len(parts):
            log.info(
                "resuming: %d of %d regions already rendered", len(parts) - len(todo), len(parts)
            )
        tiles = sum(len(parts[i].tiles) for i in todo)
        with Progress(tiles, "geo-p2p render", "tile", progress) as bar:
            translated, total = executor.run(job, todo, writer, bar)
        writer.finish()
    seconds, fetched = time.perf_counter() - start, fetched_since(counted, job.source.path)
    elsewhere = executor.fetched_elsewhere()
    fetched = None if fetched is None or elsewhere is None else fetched + elsewhere
    summary = RenderSummary(translated, total - translated, seconds, writer.dst, fetched)
    log.info("%s", summary)
    return summary
