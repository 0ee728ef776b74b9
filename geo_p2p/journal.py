"""The output of a render by regions, resumable: a partial GeoTIFF and a journal beside it.

A resumable render writes ``.NAME.partial.tif`` and ``.NAME.partial.json`` next to the output
``NAME``: the journal holds a fingerprint of the input, the model and the options, and the regions
written so far. After each region the partial file is closed (GDAL writes its tile index), synced
to disk and the journal updated, so a render stopped any way (Ctrl-C, a crash, a lost machine)
loses at most the region in progress. A render of the same input, model and options continues
with the regions not yet written; any difference is an error that says what differs. Only a
finished render is renamed to ``NAME``. A render that is not resumable writes under a temporary
name removed on failure, as :meth:`Translator.render` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import rasterio

from .card import CARD_FILE, DEFAULT_MODEL_DIR, WEIGHTS_FILE, atomic_write_bytes
from .geotiff import (
    convert_to_cog,
    output_profile,
    set_colour_interpretation,
    temporary_path,
    write_block,
    write_quicklook,
)
from .inputs import input_identity
from .mosaic import Block
from .raster import RenderError, Source, open_quietly

if TYPE_CHECKING:
    from .regions import ModelSpec, RegionResult

JOURNAL_VERSION = 1


def fingerprint(src: str | Path, model: ModelSpec, options: Mapping[str, object]) -> dict:
    """What must be the same to resume a render: the input (see
    :func:`~geo_p2p.inputs.input_identity`: path, size and modification time of a file; URL,
    size, ETag and Last-Modified of a remote one), the model's files (SHA-256), the model
    options and the render ``options``; as JSON data."""
    source = input_identity(src)
    directory = Path(model.path) if model.path is not None else DEFAULT_MODEL_DIR
    digest = hashlib.sha256()
    for name in (CARD_FILE, WEIGHTS_FILE):
        digest.update(hashlib.sha256((directory / name).read_bytes()).digest())
    settings = {k: v for k, v in dataclasses.asdict(model).items() if k != "path"}
    stamp = {"input": source, "model": digest.hexdigest(), **settings, **options}
    return json.loads(json.dumps(stamp))  # tuples as lists, as read back from the journal


def _difference(old: Mapping, new: Mapping) -> str | None:
    """The first entry that differs between two fingerprints, in words."""
    for key in [*new, *(k for k in old if k not in new)]:
        if old.get(key) != new.get(key):
            if key == "input":
                return "the input (its path or URL, size, modification time or ETag)"
            if key == "model":
                return "the model's weights or card"
            option = "--" + key.replace("_", "-")
            return f"{option} (was {old.get(key)}, now {new.get(key)})"
    return None


class RegionOutput:
    """The output GeoTIFF of a render in ``count`` regions: write results, then :meth:`finish`.

    ``stamp``: the render's :func:`fingerprint` to render resumably, or None. Use as a context
    manager; leaving without :meth:`finish` keeps the partial file and journal when resumable
    and removes the temporary file otherwise. :attr:`done` holds the regions already written.
    """

    def __init__(
        self,
        dst: Path,
        source: Source,
        alpha: bool,
        cog: bool,
        creation_options: Mapping[str, str] | None,
        count: int,
        stamp: dict | None,
    ) -> None:
        self.dst = dst
        self.source = source
        self.alpha = alpha
        self.cog = cog
        self.creation_options = creation_options
        self.count = count
        self.stamp = stamp
        self.done: set[int] = set()
        self.profile = output_profile(source, alpha, None if cog else creation_options)
        self.journal = dst.parent / f".{dst.name}.partial.json"
        self._stack = contextlib.ExitStack()
        self._out: rasterio.io.DatasetWriter | None = None
        self._finished = False

    def __enter__(self) -> RegionOutput:
        if self.stamp is None:
            self.path = self._stack.enter_context(temporary_path(self.dst.parent, self.dst.name))
        else:
            self.path = self.dst.parent / f".{self.dst.name}.partial.tif"
            if self.journal.exists():
                self.done = self._read_journal()
                self._out = open_quietly(self.path, "r+")
                return self
        self._out = open_quietly(self.path, "w", **self.profile)
        set_colour_interpretation(self._out, self.alpha)
        if self.stamp is not None:
            self._checkpoint()
        return self

    def _read_journal(self) -> set[int]:
        journal = json.loads(self.journal.read_text())
        start_over = f"or delete {self.journal.name} and its .tif to start over"
        difference = _difference(journal["fingerprint"], self.stamp)  # type: ignore[arg-type]
        if journal.get("version") != JOURNAL_VERSION or journal.get("regions") != self.count:
            difference = difference or "the layout of the regions"
        if difference:
            raise RenderError(
                f"cannot resume {self.dst.name}: {difference} differs from the interrupted "
                f"render's; resume with the same input, model and options, {start_over}",
                "--resume",
            )
        if not self.path.exists():
            raise RenderError(
                f"cannot resume {self.dst.name}: its partial output {self.path.name} is gone; "
                f"{start_over}",
                "--resume",
            )
        return set(journal["done"])

    def _checkpoint(self) -> None:
        """Close the partial file (GDAL writes its tile index), sync it and record the regions
        done; reopened by the next write."""
        if self._out is not None:
            self._out.close()
            self._out = None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        journal = {
            "version": JOURNAL_VERSION,
            "fingerprint": self.stamp,
            "regions": self.count,
            "done": sorted(self.done),
        }
        atomic_write_bytes(self.journal, (json.dumps(journal) + "\n").encode())

    def write(self, index: int, result: RegionResult) -> None:
        """Write region ``index`` (and record it, when resumable)."""
        if self._out is None:
            self._out = open_quietly(self.path, "r+")
        write_block(self._out, Block(result.top, result.left, result.rgb, result.mask), self.alpha)
        self.done.add(index)
        if self.stamp is not None:
            self._checkpoint()

    def finish(self, quicklook: Path | None) -> None:
        """Complete the output: COG conversion, quicklook, and the rename to the destination."""
        if self._out is not None:
            self._out.close()
            self._out = None
        final = self.path
        if self.cog:
            final = self._stack.enter_context(temporary_path(self.dst.parent, self.dst.name))
            convert_to_cog(self.path, final, self.creation_options)
        if quicklook is not None:
            write_quicklook(self.source, final, quicklook)
        os.replace(final, self.dst)
        if self.stamp is not None:
            self.path.unlink(missing_ok=True)
            self.journal.unlink(missing_ok=True)
        self._finished = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if not self._finished and self._out is not None:
                if self.stamp is not None:
                    self._checkpoint()  # closes it
                else:
                    self._out.close()
        finally:
            self._stack.close()
