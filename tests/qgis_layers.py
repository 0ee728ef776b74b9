"""Print, as JSON, what QGIS makes of a class raster and a GeoPackage: the raster's renderer, its
class labels and colours, and each vector layer's geometry type, CRS and feature count.

Run by tests/test_vectorize.py with a Python that has QGIS's bindings (Debian: python3-qgis):
    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_layers.py classes.tif map.gpkg
"""

import json
import sys

from qgis.core import QgsApplication, QgsRasterLayer, QgsVectorLayer, QgsWkbTypes

app = QgsApplication([], False)
app.initQgis()
raster = QgsRasterLayer(sys.argv[1], "classes")
renderer = raster.renderer()
out = {
    "qgis": app.applicationVersion() if hasattr(app, "applicationVersion") else "",
    "raster_valid": raster.isValid(),
    "raster_crs": raster.crs().authid(),
    "renderer": renderer.type(),
    "classes": [
        [int(c.value), c.label, c.color.name()] for c in getattr(renderer, "classes", list)()
    ],
    "layers": {},
}
layer = None
for name in sys.argv[3:]:
    layer = QgsVectorLayer(f"{sys.argv[2]}|layername={name}", name, "ogr")
    out["layers"][name] = {
        "valid": layer.isValid(),
        "crs": layer.crs().authid(),
        "geometry": QgsWkbTypes.displayString(layer.wkbType()),
        "features": layer.featureCount(),
    }
print(json.dumps(out), flush=True)
del raster, renderer, layer
app.exitQgis()
