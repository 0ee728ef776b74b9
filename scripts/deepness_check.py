"""Run the QGIS plugin Deepness's own code on `geo-p2p export --for deepness`, headless, and
compare its map with `geo-p2p render --resolution native`.

Deepness is not part of this project: give the path of a checkout of
PUTvision/qgis-plugin-deepness (read at commit f450c63). Run this with a Python that has QGIS's
bindings and Deepness's requirements (onnxruntime, opencv), for example on Debian bookworm:

    apt-get install python3-qgis
    python3 -m venv --system-site-packages /tmp/deepness-venv
    /tmp/deepness-venv/bin/pip install onnxruntime "opencv-python-headless<4.12" numpy==1.24.2
    QT_QPA_PLATFORM=offscreen /tmp/deepness-venv/bin/python scripts/deepness_check.py \\
        --deepness ../qgis-plugin-deepness --geo-p2p .venv/bin/geo-p2p --out /tmp/deepness

(numpy stays at Debian's version, which GDAL's Python bindings were built with.)

1. The panel: Deepness's dock widget loads the export as its model, takes the model type from
   it, and its "Load default parameters" button reads resolution, tile size, overlap and output
   scaling from the metadata; its Regressor processor then runs on INPUT as the panel set it.
2. The comparison: the same processor at INPUT's own resolution for several overlaps, against
   `geo-p2p render --resolution native`: mean absolute difference in DN (all pixels; within
   32 px of the raster's edge; the rest), and seams: the mean difference between neighbouring
   pixels across Deepness's tile borders over its median at the other positions of the tile
   grid (about 1 where the grid does not show), for Deepness's map and for geo-p2p's.

Writes PNGs (geo-p2p | Deepness | difference x4) to --out and prints a table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest.mock import MagicMock

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EDGE = 32


def geo_p2p(executable: str, *args: str) -> None:
    subprocess.run([executable, *args, "--overwrite"], check=True)


def start_qgis(settings: Path):  # noqa: ANN201 - QGIS types
    """A headless QgsApplication whose settings stay under ``settings``."""
    for name in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        os.environ[name] = str(settings)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication

    app = QgsApplication([], True, str(settings / "profile"))  # the dock widget needs a GUI app
    app.initQgis()
    return app


def panel_parameters(model: Path, layer):  # noqa: ANN001, ANN201 - QGIS and Deepness types
    """What Deepness's panel makes of the export: the model loaded (its type from the
    metadata), "Load default parameters" clicked, the whole layer chosen."""
    from deepness.common.processing_parameters.map_processing_parameters import (
        ProcessedAreaType,
    )
    from deepness.deepness_dockwidget import DeepnessDockWidget

    panel = DeepnessDockWidget(iface=MagicMock())
    panel.mMapLayerComboBox_inputLayer.setLayer(layer)
    panel.comboBox_processedAreaSelection.setCurrentText(ProcessedAreaType.ENTIRE_LAYER.value)
    panel.lineEdit_modelPath.setText(str(model))
    panel.pushButton_reloadModel.click()
    panel.pushButton_loadDefaultModelParameters.click()
    return panel.get_inference_parameters()


def run_regressor(params, layer):  # noqa: ANN001, ANN201
    """Deepness's Regressor processor, run as its tests run it; (3, H, W) uint8 and itself."""
    from deepness.processing.map_processor.map_processor_regression import (
        MapProcessorRegression,
    )

    processor = MapProcessorRegression(
        rlayer=layer, vlayer_mask=None, map_canvas=MagicMock(), params=params
    )
    processor.run()
    return np.asarray(processor.get_result_img()), processor


def seams(image: np.ndarray, origin: tuple[int, int], stride: int, half: int) -> float:
    """Mean |difference| between neighbouring pixels across the tile borders (at ``half`` +
    k x ``stride`` from the grid's ``origin``, (x, y) in the image) over its median at the
    other positions of the grid, columns and rows together; 1: no visible grid."""
    img = image.astype(np.float32)
    sums, counts = np.zeros(stride), np.zeros(stride)
    for axis, start in ((2, origin[0]), (1, origin[1])):
        profile = np.abs(np.diff(img, axis=axis)).mean(axis=(0, 3 - axis))
        positions = np.arange(len(profile)) + 1 - start - half  # border: pixel p-1 | p
        sums += np.bincount(positions % stride, profile, minlength=stride)
        counts += np.bincount(positions % stride, minlength=stride)
    folded = sums / np.maximum(counts, 1)
    return float(folded[0] / np.median(folded[1:]))


def picture(path: Path, *images: np.ndarray) -> None:
    """(3, H, W) images side by side, and the difference x 4 of the first two if two."""
    from PIL import Image

    if len(images) == 2:
        diff = np.abs(images[0].astype(int) - images[1]) * 4
        images = (*images, np.clip(diff, 0, 255).astype(np.uint8))
    strip = np.concatenate(images, axis=2).transpose(1, 2, 0)
    Image.fromarray(np.ascontiguousarray(strip)).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deepness", type=Path, required=True, help="Deepness checkout")
    parser.add_argument("--geo-p2p", default="geo-p2p", help="the geo-p2p executable")
    parser.add_argument("--input", type=Path, default=ROOT / "examples" / "area.tif")
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="deepness-")))
    parser.add_argument("--onnx", type=Path, help="an export to use instead of a fresh one")
    parser.add_argument("--overlaps", type=int, nargs="+", default=[0, 12, 25, 50])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = args.onnx or args.out / "geo-p2p-deepness.onnx"
    if args.onnx is None:
        geo_p2p(args.geo_p2p, "export", "--for", "deepness", "-o", str(model))
    reference_path = args.out / "reference.tif"
    native = ["--resolution", "native", "--no-vegetation"]  # the bare generator, as exported
    geo_p2p(args.geo_p2p, "render", str(args.input), "-o", str(reference_path), *native)

    app = start_qgis(args.out / "qgis")  # noqa: F841 - kept alive until the end
    sys.path.insert(0, str(args.deepness / "src"))
    from deepness.common.processing_overlap import ProcessingOverlap, ProcessingOverlapOptions
    from osgeo import gdal
    from qgis.core import QgsProject, QgsRasterLayer

    layer = QgsRasterLayer(str(args.input), args.input.stem)
    QgsProject.instance().addMapLayer(layer)
    params = panel_parameters(model, layer)
    print(
        f"panel: {type(params).__name__} with {type(params.model).__name__}, "
        f"{params.resolution_cm_per_px} cm/px, tile {params.tile_size_px}, overlap "
        f"{params.processing_overlap_px} px, output scaling {params.output_scaling}"
    )
    panel_map, _ = run_regressor(params, layer)
    picture(args.out / "panel.png", panel_map)
    print(f"panel run: a {panel_map.shape[2]} x {panel_map.shape[1]} map -> {args.out}/panel.png")

    reference = gdal.Open(str(reference_path)).ReadAsArray()
    params.resolution_cm_per_px = layer.rasterUnitsPerPixelX() * 100  # INPUT's own grid
    rows = []
    for percent in args.overlaps:
        params.processing_overlap = ProcessingOverlap(
            ProcessingOverlapOptions.OVERLAP_IN_PERCENT, percentage=percent
        )
        result, processor = run_regressor(params, layer)
        assert result.shape == reference.shape, (result.shape, reference.shape)
        diff = np.abs(result.astype(int) - reference)
        edge = np.ones(diff.shape[1:], bool)
        edge[EDGE:-EDGE, EDGE:-EDGE] = False
        box = processor.base_extent_bbox_in_full_image
        grid = (-box.x_min, -box.y_min), processor.stride_px, params.processing_overlap_px // 2
        rows.append(
            (
                percent,
                params.processing_overlap_px,
                diff.mean(),
                diff[:, edge].mean(),
                diff[:, ~edge].mean(),
                seams(result, *grid),
                seams(reference, *grid),
            )
        )
        picture(args.out / f"overlap_{percent}.png", reference, result)
    print(f"\n{args.input.name}, own resolution: Deepness vs geo-p2p render --resolution native")
    print(
        "| tiles_overlap | overlap px | mean abs DN | within 32 px of the edge | inside "
        "| seams, Deepness | seams, geo-p2p |\n|---|---|---|---|---|---|---|"
    )
    for row in rows:
        print("| {} % | {} | {:.2f} | {:.2f} | {:.2f} | {:.2f} | {:.2f} |".format(*row))
    sys.stdout.flush()
    os._exit(0)  # QGIS's teardown crashes on the dock widget Deepness made; nothing is left to do


if __name__ == "__main__":
    main()
