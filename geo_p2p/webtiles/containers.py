"""The tile container an output's name chooses, opened new, resumed or replaced."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import RenderError
from ..files import check_output
from ..run.journal import difference
from .sqlite import MBTilesStore, PMTilesStore
from .stores import TILE_FORMATS, TileStore
from .xyz import XYZDirectory


def open_store(
    path: str | Path,
    fmt: str,
    overwrite: bool = False,
    resume: bool = False,
    job: dict[str, object] | None = None,
) -> TileStore:
    """The store for ``path``: ``*.mbtiles``, ``*.pmtiles``, else an XYZ folder.

    ``job`` is the run's fingerprint (:func:`geo_p2p.run.journal.fingerprint`); ``resume``
    carries on a store started with the same one, ``overwrite`` starts again. Raises
    RenderError when the output exists and neither is given, or when a resume would mix
    settings.
    """
    path = Path(path)
    if fmt not in TILE_FORMATS:
        raise RenderError(f"unknown tile format {fmt!r}: use png, webp or jpeg", "--format")
    if overwrite and resume:
        raise RenderError("choose --overwrite or --resume, not both", "--resume")
    suffix = path.suffix.lower()
    if suffix in (".mbtiles", ".pmtiles"):
        if resume and path.exists():
            raise RenderError(
                f"{path} exists: pass --overwrite to replace it (it is complete)", "--output"
            )
        check_output(path, overwrite=overwrite)
        partial = path.parent / f".{path.name}.partial"
        if partial.exists() and not (resume or overwrite):
            raise RenderError(
                f"an interrupted run left {partial}: pass --resume to finish it "
                "or --overwrite to start again",
                "--output",
            )
        if not resume:
            partial.unlink(missing_ok=True)
        cls = MBTilesStore if suffix == ".mbtiles" else PMTilesStore
        store: TileStore = cls(path, partial, fmt)
    else:
        check_output(path, overwrite=True)  # the folder's own checks follow
        store = XYZDirectory(path, fmt, overwrite, resume)
    stamp, started = json.dumps(job or {}), store.job
    if resume and started not in (None, stamp):
        store.close()
        changed = difference(json.loads(started or "{}"), job or {})
        raise RenderError(
            f"{path} was started with other settings ({changed} differs): pass --overwrite to "
            "start again",
            "--resume",
        )
    store.job = stamp
    return store
