"""The crisp style on the render's own blocks: CrispStream fed by the stream executor (in
strips, as render assembles them; what geo-p2p tiles does) gives exactly the crisp form of the
painted GeoTIFF (what geo-p2p render does)."""

from __future__ import annotations

import math

import numpy as np
import rasterio
from conftest import CHARLOTTE, tiny_unet

from geo_p2p import Translator
from geo_p2p.mapclasses import CrispStream, learn_palette
from geo_p2p.mapclasses.classraster import crisp_geotiff
from geo_p2p.mapclasses.crisp import ClassBlock
from geo_p2p.render.mosaic import DEFAULT_BLOCK
from geo_p2p.render.options import RenderOptions
from geo_p2p.run.executors import BlockSink, StreamExecutor


def test_crisp_stream_on_render_blocks_equals_the_painted_render_made_crisp(tmp_path):
    translator = Translator(tiny_unet(), tile=32, batch_size=4, device="cpu", strip_width=128)
    painted = tmp_path / "painted.tif"
    translator.render(CHARLOTTE, painted, resolution="native", progress=False)
    with rasterio.open(painted) as src:  # an untrained model's colours: learn classes of them
        palette = learn_palette([src.read([1, 2, 3]).transpose(1, 2, 0)], k=4, seed=0)
    crisp_geotiff(painted, palette, 3, classes=tmp_path / "classes.tif")

    job = translator.job(CHARLOTTE, RenderOptions(resolution="native"))
    source = job.source
    block = (DEFAULT_BLOCK[0], math.gcd(DEFAULT_BLOCK[1], translator.strip_width))
    out: list[ClassBlock] = []
    stream = CrispStream(source.height, source.width, block, palette, 3, out.append)
    StreamExecutor(translator.engine, translator.strip_width).run(
        job, range(len(job.parts)), BlockSink(stream.add), None
    )
    stream.finish()
    assert len(job.parts) > 2  # blocks came strip by strip

    values = np.zeros((source.height, source.width), np.uint8)
    for b in out:
        h, w = b.values.shape
        values[b.row : b.row + h, b.col : b.col + w] = b.values
    with rasterio.open(tmp_path / "classes.tif") as src:
        expected = src.read(1)
    assert len(np.unique(expected)) == 4
    assert np.array_equal(values, expected)
