"""Progress of long work: a bar on a terminal, log lines elsewhere (batch jobs, log files)."""

from __future__ import annotations

import logging
import os
import sys
import time

from tqdm import tqdm

log = logging.getLogger("geo_p2p")

LOG_EVERY_S = 10.0
"""Without a terminal, a progress line at least this often (seconds) while work is done..."""
LOG_EVERY_PERCENT = 10
"""...and each time this many more percent are done, but at most once a second."""
EVERY_ENV = "GEO_P2P_PROGRESS_EVERY"
"""Environment variable: when set to S (seconds, >= 0), a progress line whenever work was done
and S seconds have passed since the last one (0: after every batch), instead of the rule above.
The QGIS plugin sets it to 0 to move its progress bar with each batch."""


def _every_from_env() -> float | None:
    """The seconds between progress lines that :data:`EVERY_ENV` asks for, or None."""
    value = os.environ.get(EVERY_ENV)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # NaN and negative numbers too
        log.warning("ignoring %s=%r: expected seconds >= 0", EVERY_ENV, value)
        return None
    return seconds


class Progress:
    """Counts ``total`` items, ``done`` of them already (a resumed job): a tqdm bar when
    ``show`` is True (None: when stderr is a terminal), log lines with the count, rate and time
    left when ``show`` is None and stderr is not a terminal, nothing when ``show`` is False.
    Use as a context manager."""

    def __init__(
        self, total: int, desc: str, unit: str, show: bool | None = None, done: int = 0
    ) -> None:
        self.total, self.unit, self.done = total, unit, done
        terminal = sys.stderr.isatty()
        disable = not (show or terminal)
        self._bar = tqdm(total=total, initial=done, unit=unit, desc=desc, disable=disable)
        self._first = done
        self._log = show is None and not terminal
        self._start = self._last = time.monotonic()
        self._step = 0
        self._every = _every_from_env() if self._log else None

    def update(self, n: int) -> None:
        self._bar.update(n)
        self.done += n
        if not self._log or not self.total:
            return
        now = time.monotonic()
        step = self.done * 100 // (self.total * LOG_EVERY_PERCENT)
        if self._every is not None:
            due = now - self._last >= self._every
        else:
            due = now - self._last >= LOG_EVERY_S or (step > self._step and now - self._last >= 1)
        if due:
            self._step, self._last = step, now
            rate = (self.done - self._first) / max(now - self._start, 1e-9)
            left = duration((self.total - self.done) / rate) if rate > 0 else "unknown"
            log.info(
                "%s/%s %ss (%d %%), %.3g %ss/s, %s left",
                f"{self.done:,}",
                f"{self.total:,}",
                self.unit,
                self.done * 100 // self.total,
                rate,
                self.unit,
                left,
            )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()


def duration(seconds: float) -> str:
    """A duration in words, to two units.

    >>> duration(42.3), duration(3725), duration(2 * 86400 + 7200)
    ('42 s', '1 h 2 min', '2 days 2 h')
    """
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} days {s % 86400 // 3600} h"
