"""Resuming: one fingerprint of a job (its input, its model, its settings) for renders and tile
stores alike, what differs between two, and the journal of a resumable render.

A resumable render keeps ``.NAME.partial.json`` next to its output ``NAME``: the fingerprint and
the parts written so far. A render with the same fingerprint continues with the parts not yet
written; any difference is an error that says what differs. A tile store keeps the same
fingerprint inside itself (:mod:`geo_p2p.webtiles.stores`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import RenderError
from ..files import atomic_write_bytes
from ..inputs import input_identity

JOURNAL_VERSION = 3


def module_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's architecture and weights: two models never share one."""
    digest = hashlib.sha256(repr(module).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def fingerprint(
    src: str | Path, module: torch.nn.Module | None, settings: Mapping[str, object]
) -> dict[str, object]:
    """What must be the same to resume a job: the input
    (:func:`~geo_p2p.inputs.input_identity`: path, size and modification time of a file; URL,
    size, ETag and Last-Modified of a remote one), the model
    (:func:`module_digest`; None: no model) and the ``settings`` that change the output, as
    JSON data (tuples as lists, as read back)."""
    model = None if module is None else module_digest(module)
    stamp = {"input": input_identity(src), "model": model, **settings}
    return json.loads(json.dumps(stamp))


def difference(old: Mapping[str, object], new: Mapping[str, object]) -> str | None:
    """The first entry that differs between two fingerprints, in words (None: the same)."""
    for key in [*new, *(k for k in old if k not in new)]:
        if old.get(key) != new.get(key):
            if key == "input":
                return "the input (its path or URL, size, modification time or ETag)"
            if key == "model":
                return "the model's weights"
            option = "--" + key.replace("_", "-")
            return f"{option} (was {old.get(key)}, now {new.get(key)})"
    return None


class Journal:
    """The journal ``.NAME.partial.json`` of a resumable job of ``count`` parts whose output is
    ``dst``, for the fingerprint ``stamp``."""

    def __init__(self, dst: Path, stamp: dict[str, object], count: int) -> None:
        self.dst, self.stamp, self.count = dst, stamp, count
        self.path = dst.parent / f".{dst.name}.partial.json"

    def exists(self) -> bool:
        return self.path.exists()

    def read(self, partial: Path) -> set[int]:
        """The parts already done; a RenderError if the job differs or ``partial`` is gone."""
        journal = json.loads(self.path.read_text())
        start_over = f"or delete {self.path.name} and its .tif to start over"
        if journal.get("version") != JOURNAL_VERSION:
            raise RenderError(
                f"cannot resume {self.dst.name}: its journal was written by another version of "
                f"geo-p2p; resume with that version, {start_over}",
                "--resume",
            )
        changed = difference(journal["fingerprint"], self.stamp)
        if journal.get("regions") != self.count:
            changed = changed or "the layout of the regions"
        if changed:
            raise RenderError(
                f"cannot resume {self.dst.name}: {changed} differs from the interrupted "
                f"render's; resume with the same input, model and options, {start_over}",
                "--resume",
            )
        if not partial.exists():
            raise RenderError(
                f"cannot resume {self.dst.name}: its partial output {partial.name} is gone; "
                f"{start_over}",
                "--resume",
            )
        return set(journal["done"])

    def write(self, done: set[int]) -> None:
        journal = {
            "version": JOURNAL_VERSION,
            "fingerprint": self.stamp,
            "regions": self.count,
            "done": sorted(done),
        }
        atomic_write_bytes(self.path, (json.dumps(journal) + "\n").encode())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
