"""The one writer of a render's output GeoTIFF: finished blocks, the map-class outputs, COG,
quicklook, and the rename into place; resumable with a journal.

The output is written under a temporary name next to the destination and renamed at the end, so a
failure or Ctrl-C never leaves a partial file at the destination. A resumable render writes
``.NAME.partial.tif`` instead, closed, synced and recorded in its
:class:`~geo_p2p.run.journal.Journal` after each part, so an interruption of any kind loses at
most the parts in progress.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import rasterio

from ..files import temporary_path
from ..geotiff import (
    convert_to_cog,
    output_profile,
    set_colour_interpretation,
    write_block,
    write_quicklook,
)
from ..mapclasses.outputs import wanted, write_class_outputs
from ..mapclasses.palette import Palette
from ..raster import Source, open_quietly
from ..render.mosaic import Block
from ..render.options import RenderOptions
from .journal import Journal


class GeoTIFFWriter:
    """The output GeoTIFF ``dst`` of a render of ``source`` in ``count`` parts: :meth:`write`
    finished blocks (from one thread at a time), mark parts :meth:`done`, then :meth:`finish`.

    ``journal``: render resumably (see the module's docstring); :attr:`done` then holds the
    parts already written by an interrupted render. ``palette``: the map's classes, for the
    crisp style, a class raster or vector layers, made from the finished painted map. Use as a
    context manager: leaving without :meth:`finish` keeps the partial file and journal when
    resumable, and removes the temporary file otherwise.
    """

    def __init__(
        self,
        dst: Path,
        source: Source,
        options: RenderOptions,
        journal: Journal | None = None,
        palette: Palette | None = None,
    ) -> None:
        self.dst, self.source, self.options, self.journal = dst, source, options, journal
        self.palette = palette
        self.done: set[int] = set()
        creation = None if options.cog else options.creation_options
        self.profile = output_profile(source, options.alpha, creation)
        self._stack = contextlib.ExitStack()
        self._out: rasterio.io.DatasetWriter | None = None
        self._finished = False

    def __enter__(self) -> GeoTIFFWriter:
        if self.journal is None:
            self.path = self._stack.enter_context(temporary_path(self.dst.parent, self.dst.name))
        else:
            self.path = self.dst.parent / f".{self.dst.name}.partial.tif"
            if self.journal.exists():
                self.done = self.journal.read(self.path)
                return self
        self._out = open_quietly(self.path, "w", **self.profile)
        set_colour_interpretation(self._out, self.options.alpha)
        if self.journal is not None:
            self._checkpoint()
        return self

    def write(self, block: Block) -> None:
        """Write a finished block (a region's pixels are one block)."""
        if self._out is None:
            self._out = open_quietly(self.path, "r+")
        write_block(self._out, block, self.options.alpha)

    def part_done(self, index: int) -> None:
        """Record that part ``index`` is written (and checkpoint, when resumable)."""
        self.done.add(index)
        if self.journal is not None:
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Close the partial file (GDAL writes its tile index), sync it and record the parts
        done; reopened by the next write."""
        if self._out is not None:
            self._out.close()
            self._out = None
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        assert self.journal is not None
        self.journal.write(self.done)

    def finish(self) -> None:
        """Complete the output: the map-class outputs, COG conversion, quicklook, and the
        rename to the destination."""
        if self._out is not None:
            self._out.close()
            self._out = None
        final = self.path
        if wanted(self.options):
            assert self.palette is not None, "the planner checks that the model has classes"
            gsd = self.source.gsd
            final = write_class_outputs(final, self.options, self.palette, gsd, self._stack)
        if self.options.cog:
            final = self._stack.enter_context(temporary_path(self.dst.parent, self.dst.name))
            convert_to_cog(self.path, final, self.options.creation_options)
        if self.options.quicklook is not None:
            write_quicklook(self.source, final, self.options.quicklook)
        os.replace(final, self.dst)
        if self.journal is not None:
            self.path.unlink(missing_ok=True)
            self.journal.remove()
        self._finished = True

    def __exit__(self, *exc: object) -> None:
        try:
            if not self._finished and self._out is not None:
                if self.journal is not None:
                    self._checkpoint()  # closes it
                else:
                    self._out.close()
        finally:
            self._stack.close()
