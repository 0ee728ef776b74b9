"""Reading windows of a :class:`~geo_p2p.raster.Source`'s output grid as uint8 RGB and a validity
mask: through a ``WarpedVRT`` when the grid is resampled or warped (no temporary copy), from the
input's overview that suits the grid (see :meth:`~geo_p2p.raster.Source.overview`), with the
source's bands, value scaling and colour table applied."""

from __future__ import annotations

from contextlib import ExitStack

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from .errors import RenderError
from .grids import warp_north_up, warp_resampling
from .inputs import is_remote, prepare_remote, read_with_retries
from .raster import Source, open_quietly


class ReadError(RenderError):
    """GDAL could not read a window of the input: names the file, the window and GDAL's reason."""

    def __init__(self, source: Source, window: Window, error: Exception) -> None:
        cause = error.__cause__ or error.__context__ or error
        reason = " ".join(str(cause).split()) or type(cause).__name__
        grid = "" if source.resampling is None else " of the grid it is resampled to"
        hint = f"the file may be damaged; check it with 'gdalinfo -checksum {source.path}'"
        if is_remote(source.path):
            hint = "the server did not deliver it; try again later (--resume keeps what is done)"
        super().__init__(
            f"cannot read {source.path} at pixels x {window.col_off}-"
            f"{window.col_off + window.width}, y {window.row_off}-"
            f"{window.row_off + window.height}{grid} ({reason}): {hint}",
            "INPUT",
        )


class RasterReader:
    """Reads windows of a :class:`Source`'s output grid; one per thread (GDAL handles are not
    shared between threads). Use as a context manager."""

    def __init__(self, source: Source) -> None:
        self.source = source
        prepare_remote(source.path)  # in a worker process too
        self._open = ExitStack()
        self._ds = self._dataset()
        self._palette = None if source.palette is None else np.array(source.palette, np.uint8)

    def _dataset(self) -> rasterio.DatasetReader | WarpedVRT:
        """Open the input and the warps that bring it onto the source's grid."""
        source = self.source
        overview = source.overview()
        level = {} if overview is None else {"OVERVIEW_LEVEL": overview[0]}
        ds = self._open.enter_context(open_quietly(source.path, **level))
        if source.warp is not None:
            categorical = warp_resampling(source.palette is not None)
            ds = self._open.enter_context(warp_north_up(ds, source.crs, categorical))
        grid = (source.width, source.height, source.transform)
        if source.transform is not None and (ds.width, ds.height, ds.transform) != grid:
            # The grid may reach beyond the input (web tiles): no-data there, also for an
            # input without a mask, which then gets an alpha band.
            flags = ds.mask_flag_enums
            unmasked = all(MaskFlags.all_valid in flags[b - 1] for b in source.bands)
            ds = self._open.enter_context(
                WarpedVRT(
                    ds,
                    crs=source.crs,
                    transform=source.transform,
                    width=source.width,
                    height=source.height,
                    resampling=source.resampling,
                    add_alpha=unmasked,
                )
            )
        return ds

    def _reopen(self) -> None:
        self._open.close()
        self._ds = self._dataset()

    def __enter__(self) -> RasterReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._open.close()

    def read(
        self, row: int, col: int, height: int, width: int, out_shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Window at ``(row, col)``: (3, height, width) uint8 RGB and (height, width) bool valid,
        or decimated to ``out_shape`` (nearest pixel)."""
        window = Window(col, row, width, height)
        bands = self.source.bands
        shape = None if out_shape is None else (len(bands), *out_shape)

        def read() -> tuple[np.ndarray, np.ndarray]:
            data = self._ds.read(bands, window=window, out_shape=shape)
            return data, self._ds.read_masks(bands, window=window, out_shape=shape).any(axis=0)

        try:  # a remote input is reopened and read again after a dropped connection
            data, valid = read_with_retries(self.source.path, read, self._reopen)
        except RasterioError as e:
            raise ReadError(self.source, window, e) from e
        if data.dtype.kind == "f":
            valid &= np.isfinite(data).all(axis=0)
        if self._palette is not None:
            rgba = self._palette[np.minimum(data[0], len(self._palette) - 1)]
            return np.moveaxis(rgba[..., :3], -1, 0), valid & (rgba[..., 3] > 0)
        if self.source.scale is not None:
            lo, hi = self.source.scale
            data = np.nan_to_num((data.astype(np.float32) - lo) * (255.0 / (hi - lo)))
            data = np.clip(np.rint(data), 0, 255)
        data = data.astype(np.uint8, copy=False)
        if len(bands) == 1:
            data = np.repeat(data, 3, axis=0)
        return data, valid
