"""The plugin object QGIS loads: it registers the Processing provider."""

from __future__ import annotations

from qgis.core import QgsApplication

from .provider import GeoP2PProvider


class GeoP2PPlugin:
    def __init__(self, iface: object = None) -> None:
        self.iface = iface
        self.provider: GeoP2PProvider | None = None

    def initProcessing(self) -> None:
        """Called by QGIS (also by qgis_process, without a GUI) for hasProcessingProvider=yes."""
        if self.provider is None:
            self.provider = GeoP2PProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
