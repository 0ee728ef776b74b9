"""Progress without a terminal: log lines with the count, rate and time left."""

from __future__ import annotations

import logging

import pytest

import geo_p2p.progress
from geo_p2p.progress import Progress


def test_log_lines_every_ten_percent_or_ten_seconds(monkeypatch, caplog) -> None:
    clock = [0.0]
    monkeypatch.setattr(geo_p2p.progress.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(geo_p2p.progress.sys.stderr, "isatty", lambda: False, raising=False)
    with caplog.at_level(logging.INFO, logger="geo_p2p"), Progress(1000, "x", "tile") as bar:
        for _ in range(50):  # 5 %, 2 s: nothing yet
            clock[0] += 0.04
            bar.update(1)
        assert not caplog.records
        for _ in range(60):  # past 10 %
            clock[0] += 0.04
            bar.update(1)
        assert len(caplog.records) == 1
        assert caplog.records[0].getMessage() == "100/1,000 tiles (10 %), 25 tiles/s, 36 s left"
        clock[0] += 12  # a slow stretch: a line after 10 s even without a new 10 %
        bar.update(1)
        assert len(caplog.records) == 2 and "111/1,000 tiles" in caplog.records[1].getMessage()


@pytest.mark.parametrize("show", [True, False])
def test_no_log_lines_when_asked_for_a_bar_or_nothing(monkeypatch, caplog, show) -> None:
    clock = [0.0]
    monkeypatch.setattr(geo_p2p.progress.time, "monotonic", lambda: clock[0])
    with caplog.at_level(logging.INFO, logger="geo_p2p"), Progress(10, "x", "tile", show) as bar:
        for _ in range(10):
            clock[0] += 20
            bar.update(1)
    assert not caplog.records


def test_interval_from_the_environment(monkeypatch, caplog) -> None:
    """GEO_P2P_PROGRESS_EVERY=0 (what the QGIS plugin sets): a line after every update."""
    clock = [0.0]
    monkeypatch.setattr(geo_p2p.progress.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(geo_p2p.progress.sys.stderr, "isatty", lambda: False, raising=False)
    monkeypatch.setenv(geo_p2p.progress.EVERY_ENV, "0")
    with caplog.at_level(logging.INFO, logger="geo_p2p"), Progress(1000, "x", "tile") as bar:
        for _ in range(3):
            clock[0] += 0.01
            bar.update(8)
    assert [r.getMessage().split(" tiles")[0] for r in caplog.records] == [
        "8/1,000",
        "16/1,000",
        "24/1,000",
    ]
    caplog.clear()
    monkeypatch.setenv(geo_p2p.progress.EVERY_ENV, "2")
    with caplog.at_level(logging.INFO, logger="geo_p2p"), Progress(1000, "x", "tile") as bar:
        for _ in range(10):  # one update a second: a line every 2 s
            clock[0] += 1
            bar.update(1)
    assert len(caplog.records) == 5


def test_bad_interval_is_ignored_with_a_warning(monkeypatch, caplog) -> None:
    monkeypatch.setattr(geo_p2p.progress.sys.stderr, "isatty", lambda: False, raising=False)
    monkeypatch.setenv(geo_p2p.progress.EVERY_ENV, "soon")
    with caplog.at_level(logging.INFO, logger="geo_p2p"), Progress(10, "x", "tile"):
        pass
    assert "ignoring GEO_P2P_PROGRESS_EVERY='soon'" in caplog.text
