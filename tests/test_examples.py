"""The example script and the benchmarks run as documented (benchmarks on CPU, tiny sizes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_scripting_example() -> None:
    out = run("examples/scripting.py")
    assert "translated an array of (200, 300, 3) -> (200, 300, 3)" in out
    assert "output: 875x400, EPSG:2056" in out


def test_render_speed_benchmark_falls_back_to_the_cpu() -> None:
    out = run(
        "benchmarks/render_speed.py",
        "--ngf",
        "4",
        "--size",
        "512",
        "--batch-size",
        "2",
        "--batches",
        "1",
        "--repeat",
        "1",
        "--precision",
        "fp32",
    )
    assert "device cpu" in out and "efficiency" in out


def test_train_speed_benchmark_on_the_cpu() -> None:
    out = run(
        "benchmarks/train_speed.py",
        "--ngf",
        "4",
        "--tile",
        "32",
        "--steps",
        "1",
        "--warmup",
        "1",
        "--repeat",
        "1",
        "--batch-size",
        "1",
    )
    assert "plain (fp32, batch 1)" in out and "geo-p2p --amp, bf16 (batch 1)" in out
