"""Maps as GIS data: map classes, the crisp style, class rasters and vector layers.

- :mod:`.palette`: a map style's classes (:class:`Palette`), the maps style's, learning one
- :mod:`.crisp`: classify, majority-filter and paint a rendered map, block by block
- :mod:`.classraster`: uint8 class GeoTIFFs with colours and names; a painted map made crisp
- :mod:`.vectorize`: class polygons and road centrelines as a GeoPackage (the vectors extra)
- :mod:`.vegetation`: tree cover and lawns from the aerial, painted in the park colour
"""

from .crisp import DEFAULT_SPECKLE_M, ClassBlock, CrispStream, crisp_image, majority_filter
from .palette import MapClass, Palette, learn_palette, maps_palette

__all__ = [
    "DEFAULT_SPECKLE_M",
    "ClassBlock",
    "CrispStream",
    "MapClass",
    "Palette",
    "crisp_image",
    "learn_palette",
    "majority_filter",
    "maps_palette",
]
