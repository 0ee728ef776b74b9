"""geo-p2p for QGIS: a Processing provider whose algorithms run the installed geo-p2p command."""


def classFactory(iface):  # noqa: N802, ANN001, ANN201 - the name and signature QGIS calls
    from .plugin import GeoP2PPlugin

    return GeoP2PPlugin(iface)
