"""What runs the generator for a :class:`~geo_p2p.render.Translator`: torch, or onnxruntime on
an in-process ONNX export of the same module.

A backend maps a batch (N, 3, T, T) float in [-1, 1] to the same. ``auto`` picks the faster
of the two on this CPU by timing both on one batch before the render (:func:`fastest`), where
onnxruntime is installed and applies (CPU, fp32, not compiled); torch otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import torch

from ..errors import RenderError
from ..export import INPUT, export_onnx, require

log = logging.getLogger(__name__)

BackendName = Literal["auto", "torch", "onnxruntime"]
BACKENDS = ("auto", "torch", "onnxruntime")


class Backend(Protocol):
    name: str

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


class TorchBackend:
    """The torch module under inference mode, autocast to ``autocast_dtype`` (if any), on
    inputs in ``memory_format``."""

    name = "torch"

    def __init__(
        self,
        module: torch.nn.Module,
        device: torch.device,
        autocast_dtype: torch.dtype | None,
        memory_format: torch.memory_format,
    ) -> None:
        self.module = module
        self.device = device
        self.autocast_dtype = autocast_dtype
        self.memory_format = memory_format

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        autocast = (
            torch.autocast(self.device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            return self.module(x.contiguous(memory_format=self.memory_format))


class OnnxRuntimeBackend:
    """An ONNX model on onnxruntime's CPU execution provider. Each calling thread's torch
    thread count (which :class:`~geo_p2p.render.Translator` sets for its model workers) is the
    session's intra-op thread count: one session per count, shared by the threads using it."""

    name = "onnxruntime"

    def __init__(self, model: bytes) -> None:
        self._ort = require("onnxruntime", "--backend")
        self._model = model
        self._sessions: dict[int, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_module(cls, module: torch.nn.Module, tile: int) -> OnnxRuntimeBackend:
        """Export the CPU float32 ``module`` (see :func:`geo_p2p.export.export_onnx`)."""
        require("onnxruntime", "--backend")  # before spending the export on it
        return cls(export_onnx(module, tile))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        session = self._session(torch.get_num_threads())
        (y,) = session.run(None, {INPUT: x.float().contiguous().numpy()})
        return torch.from_numpy(y)

    def _session(self, threads: int) -> Any:
        with self._lock:
            if threads not in self._sessions:
                options = self._ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.execution_mode = self._ort.ExecutionMode.ORT_SEQUENTIAL
                self._sessions[threads] = self._ort.InferenceSession(
                    self._model, options, providers=["CPUExecutionProvider"]
                )
            return self._sessions[threads]


def onnxruntime_applies(device: torch.device, autocast_dtype: torch.dtype | None, compiled: bool):
    """Why onnxruntime cannot run this translator's model (None: it can)."""
    if device.type != "cpu":
        return f"it runs on the CPU here, not {device.type}: pass --device cpu"
    if autocast_dtype is not None:
        return "it runs in fp32: pass --precision fp32"
    if compiled:
        return "--compile applies to the torch backend only"
    return None


def installed(name: str) -> bool:
    try:
        require(name)
    except RenderError:
        return False
    return True


def fastest(backends: Sequence[Backend], x: torch.Tensor, rounds: int = 2) -> Backend:
    """The backend that runs batch ``x`` fastest in the calling thread: each is called once to
    warm up, then timed ``rounds`` times, interleaved, best of; logged."""
    for backend in backends:
        backend(x)
    best = [float("inf")] * len(backends)
    for _ in range(rounds):
        for i, backend in enumerate(backends):
            start = time.perf_counter()
            backend(x)
            best[i] = min(best[i], time.perf_counter() - start)
    winner = min(range(len(backends)), key=best.__getitem__)
    log.info(
        "backend auto: %s (%s tiles/s on %d thread(s) in a probe)",
        backends[winner].name,
        ", ".join(f"{b.name} {len(x) / s:.1f}" for b, s in zip(backends, best, strict=True)),
        torch.get_num_threads(),
    )
    return backends[winner]
