"""The map-class outputs of a render, made from its painted map once it is complete: the crisp
style (the output itself), a class raster and vector layers beside it.

They are made in a pass over the finished painted GeoTIFF (:func:`crisp_geotiff`), whatever
rendered it (one stream, regions resumed, a Dask cluster), so the crisp map is exactly the
majority filter over the whole raster.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RenderError
from ..files import check_output, temporary_path
from .classraster import crisp_geotiff, sidecar_path
from .crisp import speckle_radius
from .palette import Palette

if TYPE_CHECKING:
    from ..render.options import RenderOptions


def wanted(options: RenderOptions) -> bool:
    """Whether the render makes any map-class output."""
    return options.style == "crisp" or options.classes is not None or options.vectors is not None


def check_class_outputs(options: RenderOptions, palette: Palette | None, src: str | Path) -> None:
    """Before any work: the model knows its map classes, and the class raster and GeoPackage
    can be written (and the vectors extra is installed for the latter)."""
    if not wanted(options):
        return
    if palette is None:
        asked = "--style" if options.style == "crisp" else "--classes" if options.classes else None
        raise RenderError(
            "the model's card names no map classes: render --style painted, or use a model "
            "from 'geo-p2p train', which learns its map's classes",
            asked or "--vectors",
        )
    if options.classes is not None:
        check_output(options.classes, src, options.overwrite, "--classes")
    if options.vectors is not None:
        from .vectorize import require_vectors

        require_vectors("--vectors")
        check_output(options.vectors, src, options.overwrite, "--vectors")


def write_class_outputs(
    painted: Path,
    options: RenderOptions,
    palette: Palette,
    gsd: float | None,
    stack: contextlib.ExitStack,
) -> Path:
    """Make the map-class outputs of the finished painted map ``painted``: the class raster
    (``options.classes``) and the GeoPackage (``options.vectors``) where asked; returns the map
    to publish: a crisp copy (a temporary file ``stack`` removes) or ``painted`` itself."""
    crisp = None
    if options.style == "crisp":
        crisp = stack.enter_context(temporary_path(painted.parent, f"{painted.name}.crisp"))
    classes = options.classes
    if classes is None and options.vectors is not None:  # the vectors' source, then removed
        classes = stack.enter_context(temporary_path(painted.parent, f"{painted.name}.classes"))
        stack.callback(sidecar_path(classes).unlink, missing_ok=True)
    if crisp is not None or classes is not None:
        crisp_geotiff(
            painted,
            palette,
            speckle_radius(options.speckle, gsd),
            crisp=crisp,
            classes=classes,
            overwrite=options.overwrite,
            alpha=options.alpha,
        )
    if options.vectors is not None:
        from .vectorize import vectorize

        assert classes is not None
        vectorize(classes, options.vectors, overwrite=options.overwrite)
    return painted if crisp is None else crisp
