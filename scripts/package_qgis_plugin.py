"""Zip the QGIS plugin for QGIS's Plugins > Manage and Install Plugins > Install from ZIP.

    python scripts/package_qgis_plugin.py [-o dist/geo_p2p_qgis-VERSION.zip]

The zip holds one folder, geo_p2p_qgis/, with the plugin's files (no caches). The plugin runs
the geo-p2p command, which is installed separately (pip install geo-p2p).
"""

from __future__ import annotations

import argparse
import configparser
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "qgis_plugin" / "geo_p2p_qgis"


def plugin_version() -> str:
    metadata = configparser.ConfigParser()
    metadata.read(PLUGIN / "metadata.txt")
    return metadata["general"]["version"]


def package(output: Path) -> Path:
    """Write the plugin's zip to ``output`` (its folder created if needed); returns it."""
    files = sorted(p for p in PLUGIN.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            zf.write(path, Path(PLUGIN.name) / path.relative_to(PLUGIN))
    partial.replace(output)
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = ROOT / "dist" / f"geo_p2p_qgis-{plugin_version()}.zip"
    parser.add_argument("-o", "--output", type=Path, default=default, help="zip to write")
    args = parser.parse_args()
    print(package(args.output))


if __name__ == "__main__":
    main()
