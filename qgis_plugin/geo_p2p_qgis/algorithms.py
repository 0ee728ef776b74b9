"""The Processing algorithms: each builds a ``geo-p2p`` command line from QGIS parameters,
runs it (see :mod:`.command`) and hands its output to QGIS."""

from __future__ import annotations

import json
import os
import shlex
import tempfile
from pathlib import Path

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRange,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsRasterLayer,
)

from . import command
from .settings import configured_executable

RESOLUTIONS = [
    "auto (the model's ground resolution, 1.5x coarser for unlike imagery)",
    "native (the input's grid)",
    "PIXEL_SIZE",
]
DEVICES = ["auto", "cpu", "cuda", "mps"]
PRECISIONS = ["auto", "fp32", "bf16", "fp16"]
STYLES = ["painted (the generator's colours)", "crisp (each pixel its map class's colour)"]
VEGETATION = [
    "where the imagery looks unlike the model's training imagery",
    "always",
    "never",
]
"""The choices of VEGETATION: the command's default, --vegetation, --no-vegetation."""
FORMATS = ["png", "webp", "jpeg"]


def advanced(parameter: QgsProcessingParameterDefinition) -> QgsProcessingParameterDefinition:
    parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
    return parameter


class GeoP2PAlgorithm(QgsProcessingAlgorithm):
    """Shared parts: the command run, the model folder, the area of interest, extra options."""

    def createInstance(self) -> QgsProcessingAlgorithm:
        return type(self)()

    def add_model(self) -> None:
        self.addParameter(
            QgsProcessingParameterFile(
                "MODEL",
                "Model folder (from geo-p2p train; empty: the bundled model)",
                behavior=QgsProcessingParameterFile.Folder,
                optional=True,
            )
        )

    def add_area(self, what: str) -> None:
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                "AOI",
                f"Area of interest (polygons limiting {what})",
                [QgsProcessing.TypeVectorPolygon],
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterExtent(
                "EXTENT", f"Extent limiting {what} (with AOI: their intersection)", optional=True
            )
        )

    def add_reading(self) -> None:
        self.addParameter(
            advanced(
                QgsProcessingParameterBand(
                    "BANDS",
                    "Input bands (1 or 3; empty: red, green, blue)",
                    parentLayerParameterName="INPUT",
                    optional=True,
                    allowMultiple=True,
                )
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterRange(
                    "SCALE",
                    "Input values mapped to 0 and 255 (empty: a 2-98 % stretch)",
                    QgsProcessingParameterNumber.Double,
                    optional=True,
                )
            )
        )

    def add_compute(self) -> None:
        self.addParameter(
            advanced(QgsProcessingParameterEnum("DEVICE", "Device", DEVICES, defaultValue=0))
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterEnum("PRECISION", "Precision", PRECISIONS, defaultValue=0)
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterNumber(
                    "BATCH_SIZE", "Tiles per forward pass", defaultValue=8, minValue=1
                )
            )
        )

    def add_style(self) -> None:
        self.addParameter(QgsProcessingParameterEnum("STYLE", "Map style", STYLES, defaultValue=0))
        self.addParameter(
            QgsProcessingParameterEnum(
                "VEGETATION",
                "Paint tree cover and lawns green, from the aerial",
                VEGETATION,
                defaultValue=0,
            )
        )

    def style_args(self, parameters: dict, context: QgsProcessingContext) -> list[str]:
        return ["--style", ("painted", "crisp")[self.parameterAsEnum(parameters, "STYLE", context)]]

    def vegetation_args(self, parameters: dict, context: QgsProcessingContext) -> list[str]:
        choice = self.parameterAsEnum(parameters, "VEGETATION", context)
        return [[], ["--vegetation"], ["--no-vegetation"]][choice]

    def add_extra(self) -> None:
        self.addParameter(
            advanced(
                QgsProcessingParameterString(
                    "EXTRA",
                    "More geo-p2p options (as on the command line)",
                    optional=True,
                )
            )
        )

    def model_args(self, parameters: dict, context: QgsProcessingContext) -> list[str]:
        model = self.parameterAsFile(parameters, "MODEL", context)
        return ["--model", model] if model else []

    def reading_args(self, parameters: dict, context: QgsProcessingContext) -> list[str]:
        args = []
        bands = self.parameterAsInts(parameters, "BANDS", context)
        if bands:
            args += ["--bands", ",".join(str(b) for b in bands)]
        if parameters.get("SCALE") not in (None, ""):
            low, high = self.parameterAsRange(parameters, "SCALE", context)
            args += ["--scale", f"{low:g},{high:g}"]
        return args

    def compute_args(self, parameters: dict, context: QgsProcessingContext) -> list[str]:
        return [
            "--device",
            DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)],
            "--precision",
            PRECISIONS[self.parameterAsEnum(parameters, "PRECISION", context)],
            "--batch-size",
            str(self.parameterAsInt(parameters, "BATCH_SIZE", context)),
        ]

    def extra_args(self, parameters: dict, context: QgsProcessingContext) -> list[str]:
        return shlex.split(self.parameterAsString(parameters, "EXTRA", context) or "")

    def area_file(
        self,
        parameters: dict,
        context: QgsProcessingContext,
        crs: QgsCoordinateReferenceSystem,
        folder: str,
    ) -> str | None:
        """The AOI polygons and/or EXTENT, in ``crs``, as a GeoJSON file in ``folder`` (which
        the caller removes), or None when neither is given."""
        area = None
        source = self.parameterAsSource(parameters, "AOI", context)
        if source is not None:
            to_crs = QgsCoordinateTransform(source.sourceCrs(), crs, context.transformContext())
            request = QgsFeatureRequest().setNoAttributes()
            parts = []
            for feature in source.getFeatures(request):
                geometry = QgsGeometry(feature.geometry())
                geometry.transform(to_crs)
                parts.append(geometry)
            if not parts:
                raise QgsProcessingException("AOI: the layer has no polygons")
            area = QgsGeometry.unaryUnion(parts)
        if parameters.get("EXTENT") not in (None, ""):
            box = QgsGeometry.fromRect(self.parameterAsExtent(parameters, "EXTENT", context, crs))
            area = box if area is None else area.intersection(box)
        if area is None:
            return None
        if area.isEmpty():
            raise QgsProcessingException("AOI and EXTENT do not intersect: nothing to do")
        path = os.path.join(folder, "aoi.geojson")
        feature = {"type": "Feature", "properties": {}, "geometry": json.loads(area.asJson())}
        Path(path).write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
        return path

    def run_geo_p2p(
        self,
        args: list[str],
        parameters: dict,
        context: QgsProcessingContext,
        crs: QgsCoordinateReferenceSystem,
        feedback: QgsProcessingFeedback,
    ) -> None:
        """Run ``geo-p2p ARGS`` with the area of interest (in ``crs``) and the extra options;
        QgsProcessingException with its one-line error if it fails or is cancelled (after it
        stopped and cleaned up)."""
        with tempfile.TemporaryDirectory(prefix="geo-p2p-qgis-") as folder:
            aoi = self.area_file(parameters, context, crs, folder)
            args = args + (["--aoi", aoi] if aoi else []) + self.extra_args(parameters, context)
            self._run(args, feedback)

    def _run(self, args: list[str], feedback: QgsProcessingFeedback) -> None:
        try:
            executable = command.find_executable(configured_executable())
            feedback.pushCommandInfo(shlex.join([executable, *args]))
            command.run(
                [executable, *args], feedback.setProgress, feedback.pushInfo, feedback.isCanceled
            )
        except command.Canceled:
            raise QgsProcessingException("canceled: geo-p2p stopped and left nothing") from None
        except command.CommandError as e:
            raise QgsProcessingException(str(e)) from None
        feedback.setProgress(100)


class RenderAlgorithm(GeoP2PAlgorithm):
    def name(self) -> str:
        return "render"

    def displayName(self) -> str:
        return "Render a map from an aerial raster"

    def shortHelpString(self) -> str:
        return (
            "Translates a georeferenced aerial or satellite raster into a map-style GeoTIFF "
            "(3-band RGB, no-data masked) in the input's CRS, with geo-p2p render: tiles "
            "overlapping and blended without seams, bounded memory. Resolution auto resamples "
            "the input to the ground resolution the model was trained at (0.9 m for the "
            "bundled model), 1.5 times coarser for imagery unlike the model's training imagery "
            "(the log says so), where it maps better; native keeps the input's grid."
        )

    def initAlgorithm(self, config: dict | None = None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Aerial raster"))
        self.add_model()
        self.addParameter(
            QgsProcessingParameterEnum(
                "RESOLUTION", "Output resolution", RESOLUTIONS, defaultValue=0
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "PIXEL_SIZE",
                "Pixel size in metres on the ground (with resolution PIXEL_SIZE)",
                QgsProcessingParameterNumber.Double,
                optional=True,
                minValue=0.0,
            )
        )
        self.add_area("the render; outside it the output is no-data")
        self.add_style()
        self.add_reading()
        self.add_compute()
        self.addParameter(
            advanced(QgsProcessingParameterBoolean("COG", "Cloud-Optimized GeoTIFF", False))
        )
        self.addParameter(
            advanced(QgsProcessingParameterBoolean("ALPHA", "No-data as an alpha band", False))
        )
        self.add_extra()
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", "Map"))
        self.addParameter(
            QgsProcessingParameterRasterDestination(
                "CLASSES",
                "Map classes (a class raster with names and colours)",
                optional=True,
                createByDefault=False,
            )
        )

    def processAlgorithm(
        self, parameters: dict, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict:
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        if not output.lower().endswith((".tif", ".tiff")):
            raise QgsProcessingException(
                f"OUTPUT: geo-p2p writes GeoTIFF: name a .tif, not {output}"
            )
        args = ["render", layer.source(), "-o", output, "--overwrite"]
        args += self.model_args(parameters, context)
        resolution = self.parameterAsEnum(parameters, "RESOLUTION", context)
        if resolution == 2:
            size = self.parameterAsDouble(parameters, "PIXEL_SIZE", context)
            if parameters.get("PIXEL_SIZE") in (None, "") or not size > 0:
                raise QgsProcessingException("PIXEL_SIZE: give the output's metres per pixel")
            args += ["--resolution", f"{size:g}"]
        else:
            args += ["--resolution", ("auto", "native")[resolution]]
        args += self.reading_args(parameters, context) + self.compute_args(parameters, context)
        args += ["--cog"] if self.parameterAsBoolean(parameters, "COG", context) else []
        args += ["--alpha"] if self.parameterAsBoolean(parameters, "ALPHA", context) else []
        args += self.style_args(parameters, context) + self.vegetation_args(parameters, context)
        classes = self.parameterAsOutputLayer(parameters, "CLASSES", context)
        args += ["--classes", classes] if classes else []
        self.run_geo_p2p(args, parameters, context, layer.crs(), feedback)
        return {"OUTPUT": output, "CLASSES": classes or None}


class TilesAlgorithm(GeoP2PAlgorithm):
    def name(self) -> str:
        return "tiles"

    def displayName(self) -> str:
        return "Make web map tiles (MBTiles, PMTiles, XYZ folder)"

    def shortHelpString(self) -> str:
        return (
            "Translates a raster once, at the highest zoom, into a web map tile pyramid with "
            "geo-p2p tiles. The output's name chooses the container: .mbtiles, .pmtiles, or a "
            "folder of z/x/y tiles with a viewer (any other name). MBTiles and XYZ folders are "
            "loaded into the project; PMTiles need GDAL 3.8 or newer (QGIS 3.22 has 3.6)."
        )

    def initAlgorithm(self, config: dict | None = None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Raster"))
        self.addParameter(
            QgsProcessingParameterBoolean(
                "MAP", "The raster is already a map (from render): only tile it", False
            )
        )
        self.add_model()
        self.addParameter(
            QgsProcessingParameterRange(
                "ZOOM",
                "Zoom levels (empty: max from the model's resolution, min to fit the footprint)",
                QgsProcessingParameterNumber.Integer,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum("FORMAT", "Tile format", FORMATS, defaultValue=0)
        )
        self.add_area("the tiles")
        self.add_style()
        self.add_reading()
        self.add_compute()
        self.add_extra()
        self.addParameter(
            QgsProcessingParameterFileDestination(
                "OUTPUT",
                "Tiles",
                fileFilter="MBTiles (*.mbtiles);;PMTiles (*.pmtiles);;XYZ folder (*)",
            )
        )

    def processAlgorithm(
        self, parameters: dict, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict:
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        args = ["tiles", layer.source(), "-o", output, "--overwrite"]
        if self.parameterAsBoolean(parameters, "MAP", context):
            args.append("--map")
        else:
            args += self.model_args(parameters, context)
        if parameters.get("ZOOM") not in (None, ""):
            low, high = (int(z) for z in self.parameterAsRange(parameters, "ZOOM", context))
            args += ["--zoom", f"{low}-{high}"]
        args += ["--format", FORMATS[self.parameterAsEnum(parameters, "FORMAT", context)]]
        if self.parameterAsEnum(parameters, "STYLE", context):
            args += self.style_args(parameters, context)  # crisp: the model's classes
        args += self.vegetation_args(parameters, context)  # with MAP: the command's error
        args += self.reading_args(parameters, context) + self.compute_args(parameters, context)
        self.run_geo_p2p(args, parameters, context, layer.crs(), feedback)
        self.load_tiles(output, context, feedback)
        return {"OUTPUT": output}

    def load_tiles(
        self, output: str, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> None:
        """Add the tiles to the layers QGIS loads into the project when the algorithm ends."""
        name = Path(output).stem or Path(output).name
        if os.path.isdir(output):
            info = json.loads((Path(output) / "tilejson.json").read_text())
            url = f"{Path(output).resolve().as_uri()}/{info['tiles'][0]}"
            uri = f"type=xyz&url={url}&zmin={info['minzoom']}&zmax={info['maxzoom']}"
            layer = QgsRasterLayer(uri, name, "wms")
        else:
            layer = QgsRasterLayer(output, name, "gdal")
        if not layer.isValid():
            feedback.pushWarning(
                f"QGIS cannot open {output} (PMTiles need GDAL 3.8 or newer): the tiles are "
                "written, use them on the web or with a newer QGIS"
            )
            return
        context.temporaryLayerStore().addMapLayer(layer)
        details = QgsProcessingContext.LayerDetails(name, context.project(), "OUTPUT")
        context.addLayerToLoadOnCompletion(layer.id(), details)


class PairsAlgorithm(GeoP2PAlgorithm):
    def name(self) -> str:
        return "pairs"

    def displayName(self) -> str:
        return "Cut training pairs from an aerial raster and a map raster"

    def shortHelpString(self) -> str:
        return (
            "Cuts side-by-side aerial | map PNG pairs (train/ and val/, dataset.json) for "
            "geo-p2p train from two rasters of the same area, with geo-p2p pairs. The map may "
            "have another CRS, resolution and extent: both are read onto one grid in the "
            "aerial's CRS. Then: geo-p2p train OUTPUT --init default."
        )

    def initAlgorithm(self, config: dict | None = None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Aerial raster"))
        self.addParameter(QgsProcessingParameterRasterLayer("MAP", "Map raster"))
        self.addParameter(
            QgsProcessingParameterNumber(
                "GSD",
                "Ground resolution of the pairs, metres per pixel (empty: the aerial's; 0.9 to "
                "fine-tune the bundled model)",
                QgsProcessingParameterNumber.Double,
                optional=True,
                minValue=0.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber("SIZE", "Window side (px)", defaultValue=256, minValue=32)
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "STRIDE", "Step between windows (px; empty: the side)", optional=True, minValue=1
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                "VAL_FRACTION",
                "Share of the pairs held out in val/",
                QgsProcessingParameterNumber.Double,
                defaultValue=0.1,
                minValue=0.0,
                maxValue=0.99,
            )
        )
        self.addParameter(
            advanced(
                QgsProcessingParameterNumber(
                    "MIN_VALID",
                    "Skip windows with less than this share of valid pixels",
                    QgsProcessingParameterNumber.Double,
                    defaultValue=0.95,
                    minValue=0.0,
                    maxValue=1.0,
                )
            )
        )
        self.add_area("the pairs")
        self.addParameter(
            advanced(
                QgsProcessingParameterNumber(
                    "SEED", "Seed of the choice of val blocks", defaultValue=0
                )
            )
        )
        self.add_extra()
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT", "Pairs folder"))

    def processAlgorithm(
        self, parameters: dict, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict:
        aerial = self.parameterAsRasterLayer(parameters, "INPUT", context)
        map_layer = self.parameterAsRasterLayer(parameters, "MAP", context)
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        args = ["pairs", aerial.source(), map_layer.source(), "-o", output]
        if parameters.get("GSD") not in (None, ""):
            args += ["--gsd", f"{self.parameterAsDouble(parameters, 'GSD', context):g}"]
        args += ["--size", str(self.parameterAsInt(parameters, "SIZE", context))]
        if parameters.get("STRIDE") not in (None, ""):
            args += ["--stride", str(self.parameterAsInt(parameters, "STRIDE", context))]
        for name in ("VAL_FRACTION", "MIN_VALID"):
            value = self.parameterAsDouble(parameters, name, context)
            args += [f"--{name.lower().replace('_', '-')}", f"{value:g}"]
        args += ["--seed", str(self.parameterAsInt(parameters, "SEED", context))]
        self.run_geo_p2p(args, parameters, context, aerial.crs(), feedback)
        return {"OUTPUT": output}


ALGORITHMS = (RenderAlgorithm, TilesAlgorithm, PairsAlgorithm)
