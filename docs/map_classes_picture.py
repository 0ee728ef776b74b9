"""Draw docs/map_classes.png: an aerial, its painted and crisp maps, and the vector layers over
the aerial (Pillow and rasterio only).

    python docs/map_classes_picture.py examples/area.tif docs/map_classes.png
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pyogrio
import rasterio
import shapely
from PIL import Image, ImageDraw
from rasterio.features import rasterize
from rasterio.warp import Resampling

from geo_p2p import Translator
from geo_p2p.allocator import keep_freed_memory
from geo_p2p.card import DEFAULT_MODEL_DIR, load_card
from geo_p2p.mapclasses import DEFAULT_SPECKLE_M, Palette
from geo_p2p.mapclasses.classraster import crisp_geotiff
from geo_p2p.mapclasses.crisp import window_radius
from geo_p2p.mapclasses.vectorize import CENTRELINES, vectorize

CENTRELINE_RGB = (220, 30, 30)


def label(image: Image.Image, text: str) -> Image.Image:
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, 8 + 6 * len(text), 16], fill=(255, 255, 255))
    draw.text((4, 3), text, fill=(0, 0, 0))
    return image


def read_rgb(path: Path, shape: tuple[int, int]) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read([1, 2, 3], out_shape=(3, *shape), resampling=Resampling.nearest)


def layers_over(aerial: np.ndarray, gpkg: Path, transform, palette: Palette) -> Image.Image:
    """The aerial, faded, with each class's polygons filled half-transparent in its colour and
    outlined darker, and the centrelines in red."""
    h, w = aerial.shape[1:]
    out = aerial.transpose(1, 2, 0).astype(np.float32) * 0.75 + 64
    inverse = ~transform
    to_pixels = [inverse.a, inverse.b, inverse.d, inverse.e, inverse.xoff, inverse.yoff]
    outlines = []
    for c in palette.classes:
        if c.name == "land":
            continue  # the background: leave the aerial visible
        _, _, wkb, _ = pyogrio.raw.read(gpkg, layer=c.name)
        geoms = shapely.from_wkb(wkb)
        if not len(geoms):
            continue
        inside = rasterize(geoms, out_shape=(h, w), transform=transform) > 0
        out[inside] = out[inside] * 0.45 + np.array(c.colour) * 0.55
        outlines += [(shapely.affinity.affine_transform(g, to_pixels), c.colour) for g in geoms]
    image = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for polygon, colour in outlines:
        dark = tuple(int(v * 0.6) for v in colour)
        for ring in [polygon.exterior, *polygon.interiors]:
            draw.line([tuple(p) for p in np.asarray(ring.coords)], fill=dark, width=1)
    _, _, wkb, _ = pyogrio.raw.read(gpkg, layer=CENTRELINES)
    for line in shapely.from_wkb(wkb):
        pixels = np.asarray(shapely.affinity.affine_transform(line, to_pixels).coords)
        draw.line([tuple(p) for p in pixels], fill=CENTRELINE_RGB, width=3)
    return image


def main() -> None:
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    keep_freed_memory()
    card = load_card(DEFAULT_MODEL_DIR)
    palette = Palette.from_card(card.classes)
    with tempfile.TemporaryDirectory() as tmp:
        painted, crisp = Path(tmp) / "painted.tif", Path(tmp) / "crisp.tif"
        classes, gpkg = Path(tmp) / "classes.tif", Path(tmp) / "map.gpkg"
        Translator.load(device="cpu").render(src, painted, progress=False)
        radius = window_radius(DEFAULT_SPECKLE_M, card.gsd)
        crisp_geotiff(painted, palette, radius, crisp, classes)
        vectorize(classes, gpkg)
        with rasterio.open(src) as aerial_src:
            aerial, transform = aerial_src.read([1, 2, 3]), aerial_src.transform
        shape = aerial.shape[1:]
        panels = {
            "aerial (0.5 m)": Image.fromarray(aerial.transpose(1, 2, 0)),
            "painted": Image.fromarray(read_rgb(painted, shape).transpose(1, 2, 0)),
            "crisp": Image.fromarray(read_rgb(crisp, shape).transpose(1, 2, 0)),
            "vector layers over the aerial": layers_over(aerial, gpkg, transform, palette),
        }
    top = shape[0] * 2 // 5  # open water above: little to see
    panels = [label(p.crop((0, top, p.width, p.height)), text) for text, p in panels.items()]
    w, h = panels[0].size
    sheet = Image.new("RGB", (2 * w + 6, 2 * h + 6), (255, 255, 255))
    for i, panel in enumerate(panels):
        sheet.paste(panel, ((i % 2) * (w + 6), (i // 2) * (h + 6)))
    sheet = sheet.resize((sheet.width * 3 // 4, sheet.height * 3 // 4), Image.Resampling.LANCZOS)
    sheet.save(dst, optimize=True)


if __name__ == "__main__":
    main()
