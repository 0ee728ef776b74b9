"""Files written whole or not at all: temporary names beside the destination, atomic renames,
and the checks on an output path before any work starts."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import RenderError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files readable by their owner only
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def temporary_path(folder: Path, name: str) -> Iterator[Path]:
    """An unused hidden file path in ``folder``, removed on exit whatever happens."""
    tmp = folder / f".{name}.{secrets.token_hex(6)}.tmp"
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_output(dst: Path) -> Iterator[Path]:
    """A temporary path next to ``dst`` that replaces ``dst`` only if the block succeeds."""
    with temporary_path(dst.parent, dst.name) as tmp:
        yield tmp
        os.replace(tmp, dst)


def check_output(
    dst: Path,
    src: str | Path | None = None,
    overwrite: bool = False,
    param: str = "--output",
    empty_folder_ok: bool = False,
) -> None:
    """Refuse an output whose folder is missing, that is the input ``src``, or that exists
    (unless ``overwrite``; an empty folder is not in the way where ``empty_folder_ok``)."""
    if not dst.parent.is_dir():
        raise RenderError(f"folder {dst.parent} does not exist", param)
    if not dst.exists():
        return
    if src is not None and Path(src).exists() and dst.resolve() == Path(src).resolve():
        raise RenderError("the output cannot be the input file", param)
    if empty_folder_ok and dst.is_dir() and not any(dst.iterdir()):
        return
    if not overwrite:
        raise RenderError(f"{dst} exists: pass --overwrite to replace it", param)
