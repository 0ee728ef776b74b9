"""README's QGIS picture: the plugin renders a map of the left part of examples/area.tif in a
headless QGIS, and QGIS draws that map over the aerial into a PNG.

    QT_QPA_PLATFORM=offscreen python3 scripts/qgis_screenshot.py \\
        --geo-p2p .venv/bin/geo-p2p -o docs/qgis_map.png

Run it with the system Python that has QGIS's bindings (Debian's python3-qgis).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--geo-p2p", required=True, help="the geo-p2p executable")
    parser.add_argument("--input", type=Path, default=ROOT / "examples" / "area.tif")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    parser.add_argument("--width", type=int, default=1200, help="picture width in pixels")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="geo-p2p-screenshot-"))
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        os.environ[name] = str(work)  # QGIS's settings stay out of the user's
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["GDAL_PAM_ENABLED"] = "NO"  # no .aux.xml beside the input
    sys.path[:0] = [str(ROOT / "qgis_plugin"), "/usr/share/qgis/python/plugins"]

    from qgis.core import (
        QgsApplication,
        QgsMapRendererParallelJob,
        QgsMapSettings,
        QgsRasterLayer,
        QgsRectangle,
    )
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor

    app = QgsApplication([], False, str(work / "profile"))
    app.initQgis()
    import geo_p2p_qgis
    import processing
    from processing.core.Processing import Processing
    from processing.core.ProcessingConfig import ProcessingConfig

    Processing.initialize()
    plugin = geo_p2p_qgis.classFactory(None)  # kept: it owns the provider
    plugin.initProcessing()
    ProcessingConfig.setSettingValue("GEO_P2P_EXECUTABLE", args.geo_p2p)

    aerial = QgsRasterLayer(str(args.input), "aerial")
    full = aerial.extent()
    part = QgsRectangle(  # the map over the left 55 % of the aerial: the houses and railway
        full.xMinimum(), full.yMinimum(), full.xMinimum() + 0.55 * full.width(), full.yMaximum()
    )
    extent = f"{part.xMinimum()},{part.xMaximum()},{part.yMinimum()},{part.yMaximum()}"
    result = processing.run(
        "geo_p2p:render",
        {
            "INPUT": str(args.input),
            "EXTENT": f"{extent} [{aerial.crs().authid()}]",
            "OUTPUT": str(work / "map.tif"),
        },
    )
    geo_map = QgsRasterLayer(result["OUTPUT"], "geo-p2p map")

    settings = QgsMapSettings()
    settings.setLayers([geo_map, aerial])  # first drawn on top
    settings.setDestinationCrs(aerial.crs())
    settings.setExtent(full)
    settings.setBackgroundColor(QColor("white"))
    height = round(args.width * full.height() / full.width())
    settings.setOutputSize(QSize(args.width, height))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if not job.renderedImage().save(str(args.output), "PNG"):
        raise SystemExit(f"could not write {args.output}")
    print(f"{args.output}: {args.width} x {height}, {geo_map.width()} x {geo_map.height()} px map")
    app.exitQgis()


if __name__ == "__main__":
    main()
