"""Regions rendered on a Dask cluster (``pip install 'geo-p2p[distributed]'``).

A :class:`TranslatorPlugin` loads the model once per worker (and again on workers that join or
are restarted). Each task carries the model's :class:`~geo_p2p.regions.ModelSpec`, the source
(its path and reading options), the area of interest and one region (bounds and tiles), never
arrays or modules, and returns the region's pixels. The client keeps a bounded window of regions
submitted and not yet written, so its memory does not grow with the raster, and yields them in
output order. A task that raises is retried; a region whose worker dies is recomputed elsewhere
(Dask's ``distributed.scheduler.allowed-failures``). :class:`DaskRegions` is the executor;
it renders regions with the same :func:`~geo_p2p.run.executors.render_region` as this process
does. Example::

    from geo_p2p.distributed import dask_client, dask_compute
    from geo_p2p.regions import ModelSpec, render_regions

    with dask_client("tcp://10.0.0.1:8786") as client:   # or dask_client(workers=4)
        render_regions(ModelSpec(), "big.tif", "map.tif", compute=dask_compute(client, ModelSpec()))
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator

from .aoi import AreaOfInterest
from .errors import RenderError
from .inputs import network_bytes
from .mapclasses.vegetation import Vegetation
from .raster import Source
from .regions import ModelSpec
from .render.planner import Job
from .render.tiling import Strip, TileGrid
from .run.executors import RegionExecutor, RegionResult, region_grid, render_region

try:
    from distributed import (
        Client,
        Future,
        LocalCluster,
        WorkerPlugin,
        as_completed,
        get_worker,
    )
except ImportError as e:  # the optional extra is missing
    raise RenderError(
        f"rendering on a Dask cluster needs the distributed extra ({e}): "
        "pip install 'geo-p2p[distributed]'"
    ) from e

log = logging.getLogger(__name__)

RETRIES = 2
"""Times a region whose task raised is tried again before the render fails."""
CONNECT_TIMEOUT_S = 30
WORKERS_TIMEOUT_S = 120
"""How long a render waits for the cluster to have a worker."""
REGIONS_PER_THREAD = 2
"""Regions submitted and not yet written, per worker thread: enough to keep every worker busy
while the client writes; the client holds at most this many regions' pixels."""


class TranslatorPlugin(WorkerPlugin):
    """Holds the translator of a :class:`ModelSpec` on each worker, loaded once at setup; one
    per render (a render that ends removes its own plugin, not another's)."""

    def __init__(self, model: ModelSpec) -> None:
        self.model = model
        self.name = f"geo-p2p-{uuid.uuid4().hex[:12]}"

    def setup(self, worker: object) -> None:
        from .allocator import keep_freed_memory

        keep_freed_memory()  # as the command line does: torch on the CPU runs faster
        # Setup runs in the worker's event loop: the one-off checks and compiling of
        # Translator.prepare are left to the first task, so heartbeats are not held up.
        self.translator = self.model.load()

    def teardown(self, worker: object) -> None:
        self.__dict__.pop("translator", None)


def _render_task(
    plugin: str,
    source: Source,
    area: AreaOfInterest | None,
    grid: TileGrid,
    region: Strip,
    vegetation: Vegetation | None,
) -> RegionResult:
    """A Dask task: render ``region`` with the translator of the worker's plugin ``plugin``."""
    translator = get_worker().plugins[plugin].translator  # type: ignore[attr-defined]
    return render_region(translator.engine, source, area, grid, region, vegetation)


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Client]:
    """A client of the Dask scheduler at ``scheduler`` (``tcp://HOST:8786``), or of a cluster
    of ``workers`` processes with one thread each started on this machine, listening on the
    loopback interface only; closed (and the local cluster stopped) on exit."""
    if (scheduler is None) == (workers is None):
        raise ValueError("give a scheduler address or a number of workers")
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                # No dashboard; the scheduler's own HTTP server (health checks) on any free
                # port of the loopback interface, not 8787, which another cluster may hold.
                dashboard_address="127.0.0.1:0",
                scheduler_kwargs={"dashboard": False},
                silence_logs=logging.WARNING,
            )
            address = stack.enter_context(cluster).scheduler_address
        else:
            address = scheduler
        try:
            client = stack.enter_context(Client(address, timeout=CONNECT_TIMEOUT_S))
        except OSError as e:
            raise RenderError(
                f"cannot reach the Dask scheduler at {address} ({e}): is it running?",
                "--scheduler",
            ) from e
        yield client


def dask_compute(client: Client, model: ModelSpec) -> DaskRegions:
    """Regions rendered on ``client``'s cluster with the model ``model`` (which every worker
    must be able to load: a model directory on a shared path, or the bundled model)."""
    return DaskRegions(client, model)


class DaskRegions(RegionExecutor):
    """Regions as tasks on ``client``'s cluster, with ``model`` loaded once per worker.

    Tasks ask for one ``GPU`` resource each when ``model.device`` is CUDA, so that GPU workers
    (``dask worker --resources GPU=1``) take one region at a time.
    """

    def __init__(self, client: Client, model: ModelSpec) -> None:
        self.client, self.model = client, model
        self.fetched: int | None = None

    def fetched_elsewhere(self) -> int | None:
        return self.fetched

    def _worker_bytes(self) -> dict[str, int]:
        """What GDAL has fetched in each worker process (one count a process, whatever its
        threads), by worker address; workers that do not count are left out."""
        counts = self.client.run(network_bytes, on_error="return")
        return {w: n for w, n in counts.items() if isinstance(n, int)}

    def regions(self, job: Job, parts: list[Strip]) -> Iterator[RegionResult]:
        client = self.client
        try:
            client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except TimeoutError as e:
            raise RenderError(
                f"the Dask cluster has no workers after {WORKERS_TIMEOUT_S} s: start some",
                "--scheduler",
            ) from e
        plugin = TranslatorPlugin(self.model)
        client.register_plugin(plugin)
        before, self.fetched = self._worker_bytes(), None
        threads = sum(client.nthreads().values())
        window = max(2, REGIONS_PER_THREAD * threads)
        resources = {"GPU": 1} if self.model.device.startswith("cuda") else None
        futures = as_completed(loop=client.loop)
        pending: dict[str, tuple[int, Future]] = {}
        ready: dict[int, RegionResult] = {}
        submitted = written = 0
        try:
            while written < len(parts):
                while submitted < len(parts) and submitted - written < window:
                    region = parts[submitted]
                    future = client.submit(
                        _render_task,
                        plugin.name,
                        job.source,
                        job.area,
                        region_grid(job.grid, region),
                        region,
                        job.vegetation,
                        key=f"{plugin.name}-region-{submitted}",
                        retries=RETRIES,
                        resources=resources,
                        pure=False,
                    )
                    pending[future.key] = (submitted, future)
                    futures.add(future)
                    submitted += 1
                index, future = pending.pop(next(futures).key)
                ready[index] = future.result()
                future.release()
                while written in ready:
                    yield ready.pop(written)
                    written += 1
        finally:
            client.cancel([future for _, future in pending.values()])
            with contextlib.suppress(Exception):  # the workers may be gone already
                after = self._worker_bytes()
                self.fetched = sum(max(0, n - before.get(w, 0)) for w, n in after.items())
            with contextlib.suppress(Exception):  # the workers may be gone already
                client.unregister_worker_plugin(plugin.name)
