"""Runs the QGIS plugin's algorithms in a real, headless QGIS and prints the results as JSON.

Run by tests/test_qgis_plugin.py with the system Python that has QGIS's bindings (Debian's
python3-qgis), not the virtual environment: ``python3 tests/qgis_driver.py SPEC.json``. SPEC
names the plugin's zip (installed as QGIS installs one), the geo-p2p executable, the input
rasters, a QGIS profile folder and a work folder. Each scenario's result goes under its name
in the JSON printed last on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

sys.path.insert(0, "/usr/share/qgis/python/plugins")  # Debian's home of the processing plugin
sys.path.insert(0, "/usr/share/qgis/python")  # and of the plugin installer

import qgis.utils  # noqa: E402
from qgis.core import (  # noqa: E402
    Qgis,
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterRasterLayer,
    QgsProject,
    QgsRasterLayer,
)

PLUGIN = "geo_p2p_qgis"


class Feedback(QgsProcessingFeedback):
    """Records progress and errors; cancels at the first progress report short of 100 when
    ``cancel_at_progress``."""

    def __init__(self, cancel_at_progress: bool = False) -> None:
        super().__init__()
        self.progress: list[float] = []
        self.errors: list[str] = []
        self.infos: list[str] = []
        self.commands: list[str] = []
        self.cancel_at_progress = cancel_at_progress
        self.progressChanged.connect(self._progress)

    def _progress(self, value: float) -> None:
        self.progress.append(value)
        if self.cancel_at_progress and 0 < value < 100:
            self.cancel()

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802, N803
        self.errors.append(error)

    def pushInfo(self, info: str) -> None:  # noqa: N802
        self.infos.append(info)

    def pushCommandInfo(self, info: str) -> None:  # noqa: N802
        self.commands.append(info)


def run(algorithm: object, parameters: dict, feedback: Feedback, load: bool = False) -> dict:
    """Run through processing.run (or runAndLoadResults): the outputs, or the error."""
    import processing

    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    runner = processing.runAndLoadResults if load else processing.run
    try:
        return {"outputs": runner(algorithm, parameters, feedback=feedback, context=context)}
    except QgsProcessingException as e:
        return {"exception": str(e)}


def layer_facts(layer: QgsRasterLayer) -> dict:
    return {
        "valid": layer.isValid(),
        "crs": layer.crs().authid(),
        "width": layer.width(),
        "height": layer.height(),
        "bands": layer.bandCount(),
        "provider": layer.providerType(),
        "source": layer.source(),
    }


def loaded_layers() -> list[dict]:
    return [layer_facts(layer) for layer in QgsProject.instance().mapLayers().values()]


def provider_facts() -> dict:
    provider = QgsApplication.processingRegistry().providerById("geo_p2p")
    return {
        "name": provider.name(),
        "algorithms": {
            a.id(): [p.name() for p in a.parameterDefinitions()] for a in provider.algorithms()
        },
    }


def render(spec: dict) -> dict:
    out = Path(spec["work"]) / "render" / "map.tif"
    out.parent.mkdir()
    feedback = Feedback()
    parameters = {"INPUT": spec["input"], "OUTPUT": str(out), "BATCH_SIZE": 1}
    result = run("geo_p2p:render", parameters, feedback, load=True)
    reference = QgsRasterLayer(spec["input"])
    return {
        **result,
        "progress": feedback.progress,
        "infos": feedback.infos,
        "errors": feedback.errors,
        "input_crs": reference.crs().authid(),
        "layers": loaded_layers(),
    }


def crisp(spec: dict) -> dict:
    """render in the crisp style with vegetation and a class raster, both loaded into the
    project."""
    QgsProject.instance().removeAllMapLayers()
    out = Path(spec["work"]) / "crisp"
    out.mkdir()
    parameters = {
        "INPUT": spec["input"],
        "OUTPUT": str(out / "map.tif"),
        "CLASSES": str(out / "classes.tif"),
        "STYLE": 1,
        "VEGETATION": 1,  # always
        "BATCH_SIZE": 1,
    }
    feedback = Feedback()
    result = run("geo_p2p:render", parameters, feedback, load=True)
    from osgeo import gdal

    # The class names are in classes.tif.aux.xml, which GDAL reads only with its side files on
    # (the tests turn them off, so that QGIS writes no statistics beside examples/area.tif).
    gdal.SetConfigOption("GDAL_PAM_ENABLED", "YES")
    classes = QgsRasterLayer(str(out / "classes.tif"))
    gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")
    renderer = classes.renderer()
    labels = [c.label for c in renderer.classes()] if hasattr(renderer, "classes") else []
    layers = loaded_layers()
    return {**result, "layers": layers, "class_labels": labels, "commands": feedback.commands}


def cancel(spec: dict) -> dict:
    out = Path(spec["work"]) / "cancel" / "map.tif"
    out.parent.mkdir()
    feedback = Feedback(cancel_at_progress=True)
    parameters = {
        "INPUT": spec["input"],
        "OUTPUT": str(out),
        "RESOLUTION": 2,
        "PIXEL_SIZE": 0.25,  # 4 times the pixels of the input: some seconds of work to cancel
        "BATCH_SIZE": 1,
    }
    result = run("geo_p2p:render", parameters, feedback)
    return {
        **result,
        "progress": feedback.progress,
        "errors": feedback.errors,
        "left": sorted(p.name for p in out.parent.iterdir()),
        "temp_left": sorted(
            p.name for p in Path(tempfile.gettempdir()).iterdir() if p.name.startswith("geo-p2p")
        ),
    }


def bad_input(spec: dict) -> dict:
    out = Path(spec["work"]) / "bad" / "map.tif"
    out.parent.mkdir()
    feedback = Feedback()
    result = run("geo_p2p:render", {"INPUT": spec["bad_input"], "OUTPUT": str(out)}, feedback)
    return {**result, "errors": feedback.errors, "left": sorted(os.listdir(out.parent))}


def tiles_and_pairs(spec: dict) -> dict:
    """Tiles (--map) of the render's map into MBTiles and an XYZ folder, loaded into the
    project; pairs from the aerial and that map."""
    rendered = str(Path(spec["work"]) / "render" / "map.tif")
    results = {}
    for name in ("map.mbtiles", "xyz"):
        QgsProject.instance().removeAllMapLayers()
        dst = Path(spec["work"]) / "tiles" / name
        dst.parent.mkdir(exist_ok=True)
        parameters = {"INPUT": rendered, "MAP": True, "ZOOM": [15, 17], "OUTPUT": str(dst)}
        feedback = Feedback()
        results[name] = {
            **run("geo_p2p:tiles", parameters, feedback, load=True),
            "errors": feedback.errors,
            "layers": loaded_layers(),
        }
    dst = Path(spec["work"]) / "pairs"
    parameters = {
        "INPUT": spec["input"],
        "MAP": rendered,
        "GSD": 0.9,
        "SIZE": 64,
        "VAL_FRACTION": 0.0,
        "OUTPUT": str(dst),
    }
    feedback = Feedback()
    results["pairs"] = {**run("geo_p2p:pairs", parameters, feedback), "errors": feedback.errors}
    dataset = dst / "dataset.json"
    results["pairs"]["dataset"] = json.loads(dataset.read_text()) if dataset.exists() else None
    return results


def model(spec: dict) -> dict:
    """A model as the graphical modeler builds it: render, then tiles of its map (--map)."""
    m = QgsProcessingModelAlgorithm("render_then_tiles", "tests")
    m.addModelParameter(
        QgsProcessingParameterRasterLayer("aerial", "aerial"), QgsProcessingModelParameter("aerial")
    )
    render_step = QgsProcessingModelChildAlgorithm("geo_p2p:render")
    render_step.setChildId("render")
    render_step.addParameterSources(
        "INPUT", [QgsProcessingModelChildParameterSource.fromModelParameter("aerial")]
    )
    tiles_step = QgsProcessingModelChildAlgorithm("geo_p2p:tiles")
    tiles_step.setChildId("tiles")
    tiles_step.addParameterSources(
        "INPUT", [QgsProcessingModelChildParameterSource.fromChildOutput("render", "OUTPUT")]
    )
    tiles_step.addParameterSources(
        "MAP", [QgsProcessingModelChildParameterSource.fromStaticValue(True)]
    )
    output = QgsProcessingModelOutput("tiles_out")
    output.setChildId("tiles")
    output.setChildOutputName("OUTPUT")
    tiles_step.setModelOutputs({"tiles_out": output})
    m.addChildAlgorithm(render_step)
    m.addChildAlgorithm(tiles_step)
    m.updateDestinationParameters()
    dst = Path(spec["work"]) / "model" / "chain.mbtiles"
    dst.parent.mkdir()
    feedback = Feedback()
    parameters = {"aerial": spec["input"], "tiles:tiles_out": str(dst)}
    return {**run(m, parameters, feedback), "errors": feedback.errors, "exists": dst.is_file()}


def install(spec: dict) -> dict:
    """Install the plugin's zip as Plugins > Install from ZIP does (QGIS's own unzip into the
    profile's plugin folder), then start it as QGIS starts a plugin with a Processing provider."""
    from pyplugin_installer.unzip import unzip

    plugins = Path(spec["profile"]) / "python" / "plugins"
    unzip(spec["plugin_zip"], str(plugins))
    sys.path.insert(0, str(plugins))
    qgis.utils.plugin_paths = [str(plugins)]
    qgis.utils.updateAvailablePlugins()
    return {
        "folders": sorted(p.name for p in plugins.iterdir()),
        "has_processing_provider": qgis.utils.pluginMetadata(PLUGIN, "hasProcessingProvider"),
        "started": qgis.utils.loadPlugin(PLUGIN) and qgis.utils.startProcessingPlugin(PLUGIN),
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    app = QgsApplication([], False, spec["profile"])
    app.initQgis()
    from processing.core.Processing import Processing
    from processing.core.ProcessingConfig import ProcessingConfig

    Processing.initialize()
    results: dict = {"qgis": Qgis.version(), "install": install(spec)}
    ProcessingConfig.setSettingValue("GEO_P2P_EXECUTABLE", spec["executable"])
    for name, scenario in [
        ("provider", lambda _: provider_facts()),
        ("render", render),
        ("crisp", crisp),
        ("cancel", cancel),
        ("bad_input", bad_input),
        ("tiles_and_pairs", tiles_and_pairs),
        ("model", model),
    ]:
        try:
            results[name] = scenario(spec)
        except Exception:  # a scenario's own failure: reported, the others still run
            results[name] = {"driver_error": traceback.format_exc()}
    qgis.utils.unloadPlugin(PLUGIN)
    print(json.dumps(results))
    app.exitQgis()


if __name__ == "__main__":
    main()
