"""Two thread helpers that overlap I/O with the model: a prefetching producer, an ordered consumer.

Errors in either thread reach the caller; stopping early (an error, Ctrl-C) stops the threads.
GDAL, numpy and torch release the GIL in their heavy work, so the threads run in parallel.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
_END = object()
_POLL_S = 0.1
BACKGROUND_NICE = 10
"""How much lower the helper threads' scheduling priority is than the caller's (Linux)."""


def _lower_priority() -> None:
    """Let the caller's thread (the model and its thread pool) come first, so that I/O fills the
    gaps rather than stalling the pool's threads at their barriers (Linux: per-thread nice)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICE)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at the same priority
        pass


def prefetch(
    items: Generator[T, None, None], depth: int = 2, setup: Callable[[], None] | None = None
) -> Iterator[T]:
    """Iterate ``items`` in a background thread, up to ``depth`` items ahead of the caller;
    ``setup`` is called first in that thread.

    The generator runs (and is closed) entirely in that thread, so it may hold resources that
    belong to one thread, like a GDAL dataset.

    >>> list(prefetch(x * x for x in range(4)))
    [0, 1, 4, 9]
    """
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(entry: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                pass
        return False

    def run() -> None:
        _lower_priority()
        try:
            if setup is not None:
                setup()
            for item in items:
                if not put((True, item)):
                    break
            else:
                put((True, _END))
        except BaseException as e:  # handed to the consumer, which re-raises it
            put((False, e))
        finally:
            items.close()

    thread = threading.Thread(target=run, name="geo-p2p-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item  # type: ignore[misc]
            if item is _END:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


class OrderedWorker(Generic[T]):
    """Calls ``fn(item)`` in a background thread for each item put, in order (after ``setup()``,
    if given, in that thread).

    Use as a context manager: leaving it waits for the queued items; an error in ``fn`` is
    raised by the next :meth:`put` or on leaving; leaving on an error discards the rest.
    """

    def __init__(
        self, fn: Callable[[T], None], depth: int = 2, setup: Callable[[], None] | None = None
    ) -> None:
        self._fn = fn
        self._setup = setup
        self._queue: queue.Queue = queue.Queue(depth)
        self._error: BaseException | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name="geo-p2p-worker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        _lower_priority()
        if self._setup is not None:
            try:
                self._setup()
            except BaseException as e:  # re-raised in the caller's thread
                self._error = e
        while (item := self._queue.get()) is not _END:
            if self._error is None and not self._cancelled:
                try:
                    self._fn(item)
                except BaseException as e:  # re-raised in the caller's thread
                    self._error = e

    def put(self, item: T) -> None:
        """Queue ``item`` (blocks while ``depth`` items wait); raises the worker's error if any."""
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def __enter__(self) -> OrderedWorker[T]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self._cancelled = exc_type is not None
        self._queue.put(_END)
        self._thread.join()
        if self._error is not None and exc_type is None:
            raise self._error
