"""Headless Chromium for the tile viewer's test, and for the README's screenshot of it:

python tests/browser.py web/index.html docs/viewer.png
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=5000",
    "--window-size=800,500",
]


def chromium() -> str | None:
    """The Chromium executable, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def run(page: Path, *args: str) -> str:
    """Open ``page`` from disk in a fresh headless Chromium; returns what it prints."""
    exe = chromium()
    assert exe is not None
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [exe, *FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    return done.stdout


def dom(page: Path) -> str:
    """The page's DOM once its scripts have run and its images loaded."""
    return run(page, "--dump-dom")


def screenshot(page: Path, png: Path) -> None:
    """An 800 x 500 screenshot of ``page``."""
    run(page, f"--screenshot={png.resolve()}")


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]))
