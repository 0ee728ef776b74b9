"""The installed package: every subpackage of the source tree is listed in setup.cfg."""

from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_every_subpackage_is_installed() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    found = {
        ".".join((name, *init.parent.relative_to(ROOT / folder).parts))
        for folder, name in (("geo_p2p", "geo_p2p"), ("cli", "geo_p2p_cli"))
        for init in (ROOT / folder).rglob("__init__.py")
    }
    assert "geo_p2p.nets" in found and "geo_p2p_cli" in found
    assert listed == found
