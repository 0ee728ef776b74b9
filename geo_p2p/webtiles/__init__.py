"""Web map tiles from a render: Web Mercator maths (:mod:`.mercator`), planning (:mod:`.plan`),
making (:mod:`.make`: the max zoom cut from the render's blocks, the lower zooms built as they
come, :mod:`.pyramid`), and the containers behind one writer protocol (:mod:`.stores`: an XYZ
folder with a viewer, MBTiles, PMTiles). Example::

    from geo_p2p import Translator
    from geo_p2p.webtiles import make_tiles

    make_tiles("area.tif", "web/", Translator.load())   # web/index.html: map over the input
    make_tiles("map.tif", "map.pmtiles")                 # tile an existing map, no model
"""

from .make import INPUT_LAYER, TileCutter, TilesSummary, make_tiles
from .mercator import CIRCUMFERENCE, MAX_ZOOM, WEB_TILE, coverage, mercator_resolution
from .plan import DEFAULT_ATTRIBUTION, TilePlan, TilesJob, TilesOptions, plan_tiles

__all__ = [
    "CIRCUMFERENCE",
    "DEFAULT_ATTRIBUTION",
    "INPUT_LAYER",
    "MAX_ZOOM",
    "WEB_TILE",
    "TileCutter",
    "TilePlan",
    "TilesJob",
    "TilesOptions",
    "TilesSummary",
    "coverage",
    "make_tiles",
    "mercator_resolution",
    "plan_tiles",
]
