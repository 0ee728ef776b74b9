"""The inference engine: runs a tile module on batches, on its device and precision, through a
backend chosen once, in model worker threads.

Before a job's first batch, :meth:`InferenceEngine.prepare` takes three named steps, each done
once (per torch thread count where kernels depend on it) and never changed by a later job:
:meth:`~InferenceEngine.backend_for` (torch, onnxruntime, or for "auto" the faster of the two,
timed once), :meth:`~InferenceEngine.compile` (with ``torch_compile``) and
:meth:`~InferenceEngine.batch_is_exact` (whether whole batches give what tile-by-tile calls
give).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Literal, TypeVar

import torch

from ..device import cuda_autocast_dtype, resolve_device
from ..errors import RenderError
from .backends import (
    BACKENDS,
    Backend,
    BackendName,
    OnnxRuntimeBackend,
    TorchBackend,
    fastest,
    installed,
    onnxruntime_applies,
)

log = logging.getLogger(__name__)

Precision = Literal["auto", "fp32", "bf16", "fp16"]
SMALL_JOB_TILES = 200
"""Jobs of at most this many tiles skip the one-off measurements (the rate for the plan's
estimate, the backends timed for "auto"): they would cost more than they save (under a second
for the bundled model on a CPU, a few for an ngf-64 generator)."""
_Item = TypeVar("_Item")


class InferenceEngine:
    """Runs ``module`` ((N, 3, tile, tile) float in [-1, 1] to the same) on batches.

    ``precision``: "auto" is mixed precision (bf16, or fp16 without bf16 support) on CUDA and fp32
    elsewhere. ``channels_last``: NHWC memory layout; by default for modules without per-tile
    normalisation (15-26 % faster on a CPU there, slower with per-tile statistics).
    ``torch_compile`` compiles the module on the first batch. ``backend``: "torch",
    "onnxruntime" (an in-process ONNX export; CPU and fp32 only) or "auto" (the faster of the
    two for large jobs, timed once; torch where onnxruntime is missing or does not apply).
    """

    def __init__(
        self,
        module: torch.nn.Module,
        tile: int,
        batch_size: int = 8,
        device: str = "auto",
        precision: Precision = "auto",
        channels_last: bool | None = None,
        torch_compile: bool = False,
        backend: BackendName = "torch",
    ) -> None:
        if batch_size < 1:
            raise RenderError(
                f"the batch size must be at least 1, got {batch_size}", "--batch-size"
            )
        self.tile = tile
        self.batch_size = batch_size
        try:
            self.device = resolve_device(device)
        except ValueError as e:
            raise RenderError(str(e), "--device") from e
        self.autocast_dtype = autocast_dtype(self.device, precision)
        if backend not in BACKENDS:
            raise RenderError(
                f"unknown backend {backend!r}: use auto, torch or onnxruntime", "--backend"
            )
        unusable = onnxruntime_applies(self.device, self.autocast_dtype, torch_compile)
        if backend == "onnxruntime" and unusable:
            raise RenderError(f"the onnxruntime backend cannot run this: {unusable}", "--backend")
        if channels_last is None:
            channels_last = not normalises_per_tile(module)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.module = module.eval().to(self.device, memory_format=self.memory_format)
        self.compiled = torch_compile
        if torch_compile:
            self.module = torch.compile(self.module, dynamic=False)  # compiled on the first batch
        self.torch = TorchBackend(self.module, self.device, self.autocast_dtype, self.memory_format)
        self._fixed: Backend | None = self.torch  # None: "auto", timed on the first large job
        if backend == "onnxruntime":
            self._fixed = OnnxRuntimeBackend.from_module(self.module, tile)
        elif backend == "auto" and not unusable and installed("onnxruntime") and installed("onnx"):
            self._fixed = None
        self._fastest: Backend | None = None
        self._compiled_threads: set[int] = set()
        self._exact: dict[tuple[str, int], bool] = {}

    def backend_for(self, tiles: int | None = None) -> Backend:
        """The backend that runs a job of ``tiles`` model tiles (None: of any size). With
        "auto": torch for jobs of at most :data:`SMALL_JOB_TILES` tiles, else the faster of
        torch and onnxruntime, timed on the first such job (in the calling thread, on one batch
        of random tiles) and kept."""
        if self._fixed is not None:
            return self._fixed
        if tiles is not None and tiles <= SMALL_JOB_TILES:
            return self.torch
        if self._fastest is None:
            self._fastest = self._time_backends()
        return self._fastest

    def _time_backends(self) -> Backend:
        try:
            onnx = OnnxRuntimeBackend.from_module(self.module, self.tile)
        except Exception as e:  # any module may be given; export failures take many forms
            log.debug("backend auto: torch, the module does not export to ONNX: %s", e)
            return self.torch
        return fastest([self.torch, onnx], self._probe_batch())

    def _probe_batch(self) -> torch.Tensor:
        """The random batch the one-off checks run: the same every time."""
        g = torch.Generator().manual_seed(0)
        return torch.rand(self.batch_size, 3, self.tile, self.tile, generator=g) * 2 - 1

    def compile(self, backend: Backend) -> None:
        """With ``torch_compile``: compile the module for this torch thread count (it compiles
        again for a thread count it has not run with); a failure as RenderError."""
        threads = torch.get_num_threads()
        if not self.compiled or threads in self._compiled_threads:
            return
        start = time.perf_counter()
        try:
            backend(self._probe_batch().to(self.device))
        except torch._dynamo.exc.TorchDynamoException as e:  # the first line says what failed
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RenderError(
                f"torch.compile failed ({reason}): translate without compiling", "--compile"
            ) from e
        self._compiled_threads.add(threads)
        log.info("compiled the generator in %.0f s", time.perf_counter() - start)

    def batch_is_exact(self, backend: Backend) -> bool:
        """Whether whole batches run on ``backend`` give bit for bit what tile-by-tile calls
        give at this torch thread count (oneDNN picks other kernels by batch size for narrow
        layers), checked once on a random batch. On a GPU or compiled, batches always run
        whole: kernels chosen per shape are not bit-exact across batch sizes anyway, and
        tile-by-tile calls would compile again or waste the GPU."""
        key = (backend.name, torch.get_num_threads())
        if key not in self._exact:
            if self.compiled or self.device.type != "cpu":
                self._exact[key] = True
            else:
                x = self._probe_batch()
                whole = backend(x)
                single = torch.cat([backend(x[i : i + 1]) for i in range(len(x))])
                self._exact[key] = bool(torch.equal(whole, single))
                log.debug(
                    "batches of %d run %s with %d threads",
                    self.batch_size,
                    "whole" if self._exact[key] else "tile by tile",
                    key[1],
                )
        return self._exact[key]

    def prepare(self, tiles: int | None = None) -> tuple[Backend, bool]:
        """The one-off work before the first batch of a job of ``tiles`` model tiles, at the
        torch thread count of the model workers: choose the backend, compile, check batch
        exactness. Returns the backend and whether batches run whole. Runs in the calling
        thread, whose thread count it sets for the call and restores, so that torch settings
        made there (such as ``torch._inductor.config``, which is per thread) apply."""
        with restored_torch_threads() as threads:
            torch.set_num_threads(threads // self.worker_count(threads))
            backend = self.backend_for(tiles)
            self.compile(backend)
            return backend, self.batch_is_exact(backend)

    def infer_stream(
        self,
        items: Iterable[_Item],
        inputs: Callable[[_Item], torch.Tensor | None],
        tiles: int | None = None,
    ) -> Generator[tuple[_Item, torch.Tensor | None], None, None]:
        """Run the module on the batch ``inputs(item)`` of each item, yielding ``(item,
        output)`` in order (output None where the input is None); ``tiles``: the job's size,
        for :meth:`backend_for`.

        The model runs in worker threads. On a CPU with several threads, two batches run at once
        with half of torch's threads each (an odd one left out): as fast as one batch on all
        threads, and faster end to end beside reading and writing threads, presumably because a
        thread that takes a core then stalls one batch instead of both halves of one (see
        benchmarks/README.md). Elsewhere one batch runs at a time.
        """
        backend, exact = self.prepare(tiles)
        with self._model_workers() as (pool, workers):
            pending: deque[tuple[_Item, Future[torch.Tensor] | None]] = deque()
            for item in items:
                x = inputs(item)
                future = None if x is None else pool.submit(self._infer, x, backend, exact)
                pending.append((item, future))
                # One batch more than there are workers waits in the pool, so none goes idle.
                while pending and (pending[0][1] is None or _queued(pending) > workers):
                    yield _result(*pending.popleft())
            while pending:
                yield _result(*pending.popleft())

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """Run the module on a batch in the calling thread: (N, 3, T, T) float in [-1, 1] to the
        same, on the device (in the module's output dtype and memory format). A batch runs whole
        (padded to ``batch_size``, so the module always sees one shape) where that is exact
        (:meth:`batch_is_exact`), else tile by tile."""
        backend = self.backend_for()
        return self._infer(x, backend, self.batch_is_exact(backend))

    def _infer(self, x: torch.Tensor, backend: Backend, exact: bool) -> torch.Tensor:
        n = len(x)
        x = x.to(self.device, non_blocking=True)
        if exact:
            if n < self.batch_size:
                x = torch.cat([x, x[-1:].expand(self.batch_size - n, -1, -1, -1)])
            return backend(x)[:n]
        return torch.cat([backend(x[i : i + 1]) for i in range(n)])

    def measure_rate(self, rounds: int = 2) -> float:
        """Tiles per second the module sustains here as a render runs it (all model workers,
        this batch size and precision), timed over ``rounds`` batches per worker of random
        tiles after one warm-up batch per worker."""
        with restored_torch_threads() as threads:
            workers = self.worker_count(threads)
        x = self._probe_batch().contiguous(memory_format=self.memory_format)
        start = 0.0
        for i, (_, y) in enumerate(self.infer_stream(range((rounds + 1) * workers), lambda _: x)):
            y.float().cpu()  # type: ignore[union-attr]  # waits for a GPU
            if i == workers - 1:
                start = time.perf_counter()
        return rounds * workers * self.batch_size / (time.perf_counter() - start)

    @contextlib.contextmanager
    def _model_workers(self) -> Iterator[tuple[ThreadPoolExecutor, int]]:
        """The threads that run the model and how many: on a CPU with several torch threads,
        two with half of them each; else one with all of them. Shut down on exit."""
        # The workers' set_num_threads also sets torch's default for threads started later.
        with restored_torch_threads() as threads:
            workers = self.worker_count(threads)
            pool = ThreadPoolExecutor(
                workers,
                thread_name_prefix="geo-p2p-model",
                initializer=torch.set_num_threads,
                initargs=(threads // workers,),
            )
            try:
                yield pool, workers
            finally:
                pool.shutdown(cancel_futures=True)

    def worker_count(self, threads: int) -> int:
        """Model worker threads for ``threads`` torch threads (see :meth:`infer_stream`)."""
        return 2 if self.device.type == "cpu" and threads >= 2 else 1


def _result(item: _Item, future: Future[torch.Tensor] | None) -> tuple[_Item, torch.Tensor | None]:
    return item, None if future is None else future.result()


def _queued(pending: Iterable[tuple[object, Future[torch.Tensor] | None]]) -> int:
    """Batches submitted to the model workers and not yet handed on."""
    return sum(future is not None for _, future in pending)


@contextlib.contextmanager
def restored_torch_threads() -> Iterator[int]:
    """Yields torch's thread count in this thread and sets it back on exit (which also resets
    torch's default for threads started later, which ``set_num_threads`` anywhere changes)."""
    threads = torch.get_num_threads()
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)


def normalises_per_tile(module: torch.nn.Module) -> bool:
    """Whether ``module`` normalises each sample by its own statistics (instance norm)."""
    return any(
        isinstance(m, torch.nn.InstanceNorm2d) or getattr(m, "inference_stats", None) == "tile"
        for m in module.modules()
    )


def autocast_dtype(device: torch.device, precision: Precision) -> torch.dtype | None:
    """The mixed-precision type a ``--precision`` value means on ``device`` (None: fp32)."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return cuda_autocast_dtype()
    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in dtypes:
        raise RenderError(
            f"unknown precision {precision!r}: use auto, fp32, bf16 or fp16", "--precision"
        )
    if precision == "fp16" and device.type == "cpu":
        raise RenderError("fp16 needs a GPU: use bf16 on CPU", "--precision")
    return dtypes[precision]
