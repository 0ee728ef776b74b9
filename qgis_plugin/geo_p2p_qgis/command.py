"""Running the installed ``geo-p2p`` command: progress from its log lines, Cancel, its error.

Plain Python (no QGIS import), so that it is tested outside QGIS too. Without a terminal the
command logs ``geo-p2p: 96/410 tiles (23 %), ...`` lines; ``GEO_P2P_PROGRESS_EVERY=0`` makes it
log one after every batch. SIGTERM stops it as Ctrl-C does: it removes its temporary output
and exits with ``Error: interrupted``. Every failure ends in one ``Error: ...`` line.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

EXECUTABLE = "geo-p2p"
PROGRESS = re.compile(r"^geo-p2p: ([\d,]+)/([\d,]+) \w+ \(")
"""A progress line: done and total (with thousands separators)."""
POLL_S = 0.1
"""How often Cancel is checked while the command runs."""
STOP_WAIT_S = 60.0
"""How long a cancelled command may take to clean up before it is killed."""


class CommandError(Exception):
    """The command failed (or could not start): the message is its one-line error."""


class Canceled(Exception):
    """The command was stopped on request and has exited."""


def find_executable(configured: str | None = None) -> str:
    """The ``geo-p2p`` executable: ``configured`` (a path from the provider's settings) when
    given, else the one on PATH; CommandError saying what to do when there is none."""
    if configured:
        if os.path.isfile(configured) and os.access(configured, os.X_OK):
            return configured
        raise CommandError(
            f"the geo-p2p executable set in the provider's settings, {configured}, is not an "
            "executable file: correct it in Settings > Options > Processing > Providers > geo-p2p"
        )
    found = shutil.which(EXECUTABLE)
    if found is None:
        raise CommandError(
            "geo-p2p was not found on PATH: install it (pip install geo-p2p) and give the path "
            "of its executable in Settings > Options > Processing > Providers > geo-p2p"
        )
    return found


def child_environment() -> dict[str, str]:
    """QGIS's environment for the command, less the Python settings QGIS may carry for its
    own interpreter (which would break the command's), with a progress line per batch."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["GEO_P2P_PROGRESS_EVERY"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def progress_of(line: str) -> float | None:
    """Percent done from a progress line, None for any other line."""
    match = PROGRESS.match(line)
    if match is None:
        return None
    done, total = (int(g.replace(",", "")) for g in match.groups())
    return 100.0 * done / total if total else None


def error_of(lines: Sequence[str]) -> str:
    """The command's one-line error (its last ``Error: ...`` line, without the prefix), or
    its last line when it died without one."""
    for line in reversed(lines):
        if line.startswith("Error: "):
            return line[len("Error: ") :]
    last = next((line for line in reversed(lines) if line.strip()), "no output")
    return f"geo-p2p failed: {last}"


def run(
    args: Sequence[str],
    progress: Callable[[float], None],
    info: Callable[[str], None],
    canceled: Callable[[], bool],
) -> list[str]:
    """Run ``args`` (the executable first), calling ``progress`` with the percent done on each
    progress line and ``info`` with every other line (without the ``geo-p2p: `` prefix);
    returns the lines. Once ``canceled()`` is true it stops the command (SIGTERM, then a kill
    after :data:`STOP_WAIT_S`) and raises Canceled, unless the command had already succeeded;
    CommandError with the command's error when it fails."""
    try:
        proc = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=child_environment(),
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=os.name == "posix",  # a Ctrl-C meant for QGIS stays QGIS's
        )
    except OSError as e:
        raise CommandError(f"cannot start {args[0]}: {e}") from e
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_read, args=(proc, lines), daemon=True)
    reader.start()
    seen: list[str] = []
    stop_at: float | None = None
    while True:
        try:
            line = lines.get(timeout=POLL_S)
        except queue.Empty:
            line = ""
        if line is None:
            break
        if line:
            seen.append(line)
            percent = progress_of(line)
            if percent is not None:
                progress(percent)
            else:
                info(line.removeprefix("geo-p2p: "))
        if stop_at is None and canceled():
            _stop(proc)
            stop_at = time.monotonic() + STOP_WAIT_S
        elif stop_at is not None and time.monotonic() > stop_at:
            proc.kill()
    code = proc.wait()
    reader.join()
    if stop_at is not None and code != 0:  # 0: it had finished before it was asked to stop
        raise Canceled()
    if code != 0:
        raise CommandError(error_of(seen))
    return seen


def _read(proc: subprocess.Popen, lines: queue.Queue[str | None]) -> None:
    assert proc.stdout is not None
    with proc.stdout:
        for line in proc.stdout:
            lines.put(line.rstrip("\r\n"))
    lines.put(None)


def _stop(proc: subprocess.Popen) -> None:
    """Ask the command to stop as Ctrl-C does: SIGTERM on POSIX (geo-p2p then cleans up).
    Windows has no such signal for a console-less child: there it is terminated outright."""
    if os.name == "posix":
        proc.send_signal(signal.SIGTERM)
    else:
        proc.terminate()
