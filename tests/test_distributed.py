"""Rendering on a Dask cluster of two worker processes on 127.0.0.1: the same output as the
single-process render, also when a task raises and when a worker process dies mid-region; the
bytes a remote input's workers fetched are counted."""

from __future__ import annotations

import faulthandler
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cogs import write_cog
from httpserver import RangeServer
from test_regions import assert_same_output, mosaic_raster

from geo_p2p import Translator
from geo_p2p.regions import ModelSpec, render_regions

distributed = pytest.importorskip(
    "distributed", reason="the distributed extra is not installed: pip install -e '.[distributed]'"
)
from geo_p2p.distributed import dask_client, dask_compute  # noqa: E402

TIMEOUT_S = 240
"""The whole module is stopped (with a traceback) if it runs longer: nothing may hang."""


@pytest.fixture(scope="module")
def client() -> Iterator[distributed.Client]:
    faulthandler.dump_traceback_later(TIMEOUT_S, exit=True)
    try:
        with dask_client(workers=2) as client:
            yield client
    finally:
        faulthandler.cancel_dump_traceback_later()


def claim(marker: Path) -> bool:
    """True for the first caller across all processes, False after."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        return True
    except FileExistsError:
        return False


class Saboteur(distributed.WorkerPlugin):
    """Makes the generator call of one worker raise once, and later kill its process once."""

    name = "saboteur"

    def __init__(self, folder: Path, raise_at: int, kill_at: int) -> None:
        self.folder, self.raise_at, self.kill_at = folder, raise_at, kill_at

    def setup(self, worker: object) -> None:
        from geo_p2p.render.engine import InferenceEngine

        original = InferenceEngine._infer
        calls = [0]
        folder, raise_at, kill_at = self.folder, self.raise_at, self.kill_at

        def infer(engine: InferenceEngine, *args):  # noqa: ANN202
            calls[0] += 1
            if calls[0] == raise_at and claim(folder / "raised"):
                raise RuntimeError("a task that fails once")
            if calls[0] == kill_at and claim(folder / "killed"):
                os._exit(1)  # the worker process dies mid-region
            return original(engine, *args)

        InferenceEngine._infer = infer  # type: ignore[method-assign]


def plain_render(model_dir: Path, src: Path, dst: Path) -> None:
    Translator.load(model_dir, device="cpu").render(src, dst, resolution="native")


def test_cluster_render_equals_the_plain_render(
    client: distributed.Client, model_dir: Path, tmp_path: Path, one_thread: None
) -> None:
    src = mosaic_raster(tmp_path / "in.tif", 600, 1024)
    plain, on_cluster = tmp_path / "plain.tif", tmp_path / "cluster.tif"
    plain_render(model_dir, src, plain)
    spec = ModelSpec(str(model_dir), batch_size=5)
    compute = dask_compute(client, spec)
    render_regions(
        spec, src, on_cluster, compute=compute, region_size=512, resolution="native", cog=True
    )
    assert_same_output(plain, on_cluster)


def test_cluster_render_paints_vegetation_as_the_plain_render(
    client: distributed.Client, land_park_model: Path, tmp_path: Path, one_thread: None
) -> None:
    src = mosaic_raster(tmp_path / "in.tif", 600, 1024)
    plain, on_cluster = tmp_path / "plain.tif", tmp_path / "cluster.tif"
    options = {"resolution": "native", "vegetation": True}
    Translator.load(land_park_model, device="cpu").render(src, plain, **options)
    spec = ModelSpec(str(land_park_model), batch_size=5)
    compute = dask_compute(client, spec)
    render_regions(spec, src, on_cluster, compute=compute, region_size=512, **options)
    assert_same_output(plain, on_cluster)


def test_the_bytes_the_workers_fetch_are_counted(
    client: distributed.Client, model_dir: Path, tmp_path: Path, one_thread: None
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    write_cog(mosaic_raster(tmp_path / "in.tif", 600, 1024), served / "in.tif")
    spec = ModelSpec(str(model_dir), batch_size=5)
    with RangeServer(served) as server:
        summary = render_regions(
            spec,
            server.url("in.tif"),
            tmp_path / "out.tif",
            compute=dask_compute(client, spec),
            region_size=512,
            resolution="native",
        )
        # The header read here for the plan, and every block read by the two workers: what
        # GDAL counted in the three processes is what the server sent.
        assert summary.fetched == server.body_bytes() > 0
    assert "fetched" in str(summary)


def test_failed_task_and_dead_worker_do_not_change_the_output(
    client: distributed.Client, model_dir: Path, tmp_path: Path, one_thread: None
) -> None:
    src = mosaic_raster(tmp_path / "in.tif", 800, 1024)
    plain, on_cluster = tmp_path / "plain.tif", tmp_path / "cluster.tif"
    plain_render(model_dir, src, plain)
    client.register_plugin(Saboteur(tmp_path, raise_at=12, kill_at=40))
    try:
        spec = ModelSpec(str(model_dir))
        compute = dask_compute(client, spec)
        render_regions(spec, src, on_cluster, compute=compute, region_size=512, resolution="native")
    finally:
        client.unregister_worker_plugin("saboteur")
    assert (tmp_path / "raised").exists() and (tmp_path / "killed").exists()
    assert_same_output(plain, on_cluster)


def test_cli_cluster_render_logs_only_its_own_lines(model_dir: Path, tmp_path: Path) -> None:
    """``--workers``: the plan, progress and summary; none of Dask's own INFO lines (closing
    streams, losing workers, the scheduler closing) unless ``-v``."""
    import subprocess
    import sys

    src = mosaic_raster(tmp_path / "in.tif", 300, 400)
    args = [str(src), "-o", str(tmp_path / "map.tif"), "--model", str(model_dir)]
    command = [sys.executable, "-m", "geo_p2p_cli.main", "render", *args, "--workers", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("geo-p2p: plan:") and lines[-1].startswith("geo-p2p: rendered")
    assert not [line for line in lines if "close-stream" in line or "worker" in line.lower()]
    assert len(lines) <= 4, done.stderr
