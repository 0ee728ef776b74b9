"""Digests of geo-p2p's outputs, to check that a change of code leaves them bit for bit the same.

Runs the command line of the tree it is given (its ``cli`` and ``geo_p2p`` come first on the path)
on ``examples/area.tif`` and on a 4096 px raster built from real imagery (as ``render_memory.py``
builds it), with the bundled model: the plain render (torch backend), ``--resume``, ``--workers 2``
(a local Dask cluster) and an MBTiles pyramid. For each output it records the SHA-256 of the file,
of its pixels and mask (GeoTIFF) or of its tile rows and metadata (MBTiles), and the CRS and
transform. ``--compare`` prints a table of two such records::

    git worktree add /tmp/before a49ad64                       # the code before the change
    python benchmarks/identical_outputs.py --tree /tmp/before -o before.json
    python benchmarks/identical_outputs.py --tree . -o after.json
    python benchmarks/identical_outputs.py --compare before.json after.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rasterio

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE))
from render_memory import build_raster  # noqa: E402

MODES = {
    # --backend torch: "auto" times torch against onnxruntime before a large render and keeps
    # the faster, whose last bits differ, so two runs of the same code may differ under "auto".
    "render": ["--backend", "torch"],
    "render --resume": ["--resume"],
    "render --workers 2": ["--workers", "2"],
    "tiles (MBTiles)": None,
}
LARGE = 4096


def geotiff_digest(path: Path) -> dict[str, str]:
    """SHA-256 of the file, of the pixels of every band and of the mask; the CRS and transform."""
    with rasterio.open(path) as ds:
        pixels = hashlib.sha256(ds.read().tobytes()).hexdigest()
        mask = hashlib.sha256(ds.dataset_mask().tobytes()).hexdigest()
        grid = f"{ds.crs} {tuple(ds.transform)} {ds.width}x{ds.height}"
    return {"file": _file_digest(path), "pixels": pixels, "mask": mask, "grid": grid}


def mbtiles_digest(path: Path) -> dict[str, str]:
    """SHA-256 of the file, of the tile rows in order and of the metadata rows in order."""
    with sqlite3.connect(path) as db:
        tiles = hashlib.sha256()
        query = "SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles ORDER BY 1, 2, 3"
        count = 0
        for z, x, y, data in db.execute(query):
            tiles.update(f"{z}/{x}/{y}".encode() + data)
            count += 1
        meta = sorted(db.execute("SELECT name, value FROM metadata"))
    return {
        "file": _file_digest(path),
        "tiles": f"{count} {tiles.hexdigest()}",
        "metadata": hashlib.sha256(json.dumps(meta).encode()).hexdigest(),
    }


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(tree: Path, args: list[str]) -> float:
    """Run ``geo-p2p ARGS`` from ``tree``'s code; returns the seconds it took."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    command = [sys.executable, "-c", "from cli.main import cli; cli()", *args]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"geo-p2p {' '.join(args)} failed:\n{done.stderr}")
    return time.perf_counter() - start


def record(tree: Path, work: Path) -> dict[str, dict[str, object]]:
    large = work / f"in_{LARGE}.tif"
    build_raster(large, LARGE)
    inputs = {"examples/area.tif": tree / "examples" / "area.tif", f"{LARGE} px": large}
    results: dict[str, dict[str, object]] = {}
    for name, src in inputs.items():
        for mode, extra in MODES.items():
            if extra is None:
                dst = work / "out.mbtiles"
                seconds = run(tree, ["tiles", str(src), "-o", str(dst)])
                digest: dict[str, object] = mbtiles_digest(dst)
            else:
                dst = work / "out.tif"
                seconds = run(tree, ["render", str(src), "-o", str(dst), *extra])
                digest = geotiff_digest(dst)
            results[f"{name}: {mode}"] = {**digest, "seconds": round(seconds, 1)}
            print(f"{name}: {mode}: {seconds:.1f} s", file=sys.stderr)
            dst.unlink()
    return results


def compare(before: Path, after: Path) -> int:
    old, new = (json.loads(p.read_text()) for p in (before, after))
    print(f"| output | {before.name} s | {after.name} s | identical |")
    print("|---|---|---|---|")
    differ = 0
    for key in old:
        same = [k for k in old[key] if k != "seconds" and old[key][k] == new[key].get(k)]
        fields = [k for k in old[key] if k != "seconds"]
        verdict = (
            "yes"
            if len(same) == len(fields)
            else "NO: " + ", ".join(k for k in fields if k not in same)
        )
        differ += verdict != "yes"
        print(f"| {key} | {old[key]['seconds']} | {new[key]['seconds']} | {verdict} |")
    return differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=HERE.parent, help="source tree to run")
    parser.add_argument("-o", "--output", type=Path, help="JSON record to write")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        sys.exit(1 if compare(*args.compare) else 0)
    if args.output is None:
        parser.error("give -o RECORD.json or --compare BEFORE AFTER")
    with tempfile.TemporaryDirectory() as tmp:
        results = record(args.tree.resolve(), Path(tmp))
    args.output.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
