"""The ``geo-p2p`` command group: each subcommand lives in its own module."""

from __future__ import annotations

import logging

import click

from geo_p2p import __version__
from geo_p2p.allocator import keep_freed_memory

from .evaluate import evaluate
from .export import export
from .options import terminate_as_interrupt
from .pairs import pairs
from .render import render
from .tiles import tiles
from .train import train
from .vectorize import vectorize


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="geo-p2p")
@click.option("-v", "--verbose", is_flag=True, help="Log debugging detail.")
def cli(verbose: bool) -> None:
    """Turn georeferenced aerial rasters into map-style rasters with a pix2pix generator.

    \b
    geo-p2p render area.tif -o map.tif     translate a raster, georeferencing kept
    geo-p2p pairs a.tif m.tif -o pairs/    cut training pairs from two rasters
    geo-p2p tiles area.tif -o web/         a web map: XYZ tiles and a viewer (or MBTiles, PMTiles)
    geo-p2p train maps/ -o runs/maps       learn the translation from paired images
    geo-p2p evaluate MODEL_DIR pairs/      score a model on held-out pairs
    geo-p2p export -o model.onnx           the generator as ONNX (onnxruntime, QGIS)
    geo-p2p vectorize c.tif -o map.gpkg    class polygons and road centrelines
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="geo-p2p: %(message)s"
    )
    keep_freed_memory()  # the command owns the process: torch on the CPU runs faster
    terminate_as_interrupt()


cli.add_command(train)
cli.add_command(evaluate)
cli.add_command(render)
cli.add_command(pairs)
cli.add_command(export)
cli.add_command(tiles)
cli.add_command(vectorize)

if __name__ == "__main__":  # python -m geo_p2p_cli.main (e.g. under torchrun)
    cli()
