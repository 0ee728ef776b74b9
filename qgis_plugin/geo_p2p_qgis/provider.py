"""The Processing provider ``geo_p2p``: render, tiles and pairs, run by the geo-p2p command."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider

from .algorithms import ALGORITHMS
from .settings import add_settings, remove_settings


class GeoP2PProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "geo_p2p"

    def name(self) -> str:
        return "geo-p2p"

    def longName(self) -> str:
        return "geo-p2p: map-style rasters from aerial rasters (pix2pix)"

    def load(self) -> bool:
        add_settings()
        self.refreshAlgorithms()
        return True

    def unload(self) -> None:
        remove_settings()

    def loadAlgorithms(self) -> None:
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())

    def supportedOutputRasterLayerExtensions(self) -> list[str]:
        return ["tif"]  # geo-p2p render writes GeoTIFF
