"""What a training run leaves behind: checkpoints (everything needed to resume), the model
directory and its card, per-step losses (``log.jsonl``, TensorBoard), and sample grids."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import platform
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..card import ModelCard, save_model
from ..domain import domain_distance, imagery_record, sample_features
from ..files import atomic_write_bytes
from ..mapclasses.palette import Palette
from ..nets import set_inference_stats
from ..render.adapt import sample_tiles
from ..render.mosaic import signed_to_u8
from .config import CHECKPOINT, TrainConfig
from .data import Augment, PairDataset, load_pair
from .finetune import Parent

N_SAMPLES = 4
IMAGERY_IMAGES = 200
"""Pair images (spread over the set) whose aerials the card's imagery record summarises."""
IMAGERY_TILES = 16
"""Tiles of each aerial in the record, as the render's plan samples an input."""


def imagery(
    files: list[Path],
    held_out: list[Path],
    direction: str,
    tile: int,
    load_size: int | None,
) -> dict[str, Any]:
    """The card's record of the training imagery (:func:`geo_p2p.domain.imagery_record`, the
    aerials as the model saw them: resized to ``load_size`` where set), with the threshold of
    the plan's out-of-domain warning: the largest distance of a held-out aerial from it (the
    training ones where there are none), rounded up to a tenth."""

    def samples(paths: list[Path]) -> Iterator[np.ndarray]:
        step = max(1, math.ceil(len(paths) / IMAGERY_IMAGES))
        for path in paths[::step]:
            aerial = load_pair(path, direction)[0]
            if load_size is not None:
                aerial = aerial.resize((load_size, load_size), Image.BILINEAR)
            yield sample_tiles(np.asarray(aerial), tile, IMAGERY_TILES)

    record = imagery_record(samples(files))
    distances = [domain_distance(sample_features(s), record) for s in samples(held_out or files)]
    return {**record, "threshold": math.ceil(max(distances) * 10) / 10}


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


class TrainerRecords:
    """Checkpoints, model card and samples of a :class:`~geo_p2p.train.trainer.Trainer`, which
    sets the attributes declared here."""

    cfg: TrainConfig
    run_dir: Path
    rank: int
    world: int
    device: torch.device
    use_cuda: bool
    memory_format: torch.memory_format
    G: nn.Module
    D: nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    sched_G: torch.optim.lr_scheduler.LRScheduler
    sched_D: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    epoch: int
    step_in_epoch: int
    global_step: int
    wall_time: float
    train_files: list[Path]
    val_files: list[Path]
    half_size: int
    amp_dtype: torch.dtype | None
    parent: Parent | None
    palette: Palette
    imagery: dict[str, Any]

    def state(self) -> dict[str, Any]:
        rng = {"cpu": torch.get_rng_state()}
        if self.use_cuda:
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "G": _unwrap(self.G).state_dict(),
            "D": _unwrap(self.D).state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "sched_G": self.sched_G.state_dict(),
            "sched_D": self.sched_D.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "wall_time": self.wall_time,
            "rng": rng,
            "config": dataclasses.asdict(self.cfg),
        }

    def save_checkpoint(self) -> Path:
        """Write checkpoint.pt and the model directory atomically (rank 0 only)."""
        path = self.run_dir / CHECKPOINT
        if self.rank != 0:
            return path
        buffer = io.BytesIO()
        torch.save(self.state(), buffer)
        atomic_write_bytes(path, buffer.getvalue())
        save_model(
            self.run_dir / "model", _unwrap(self.G), self.card(), discriminator=_unwrap(self.D)
        )
        return path

    def load_checkpoint(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        _unwrap(self.G).load_state_dict(state["G"])
        _unwrap(self.D).load_state_dict(state["D"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.sched_G.load_state_dict(state["sched_G"])
        self.sched_D.load_state_dict(state["sched_D"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step, self.wall_time = state["global_step"], state["wall_time"]
        torch.set_rng_state(state["rng"]["cpu"].cpu())
        if self.use_cuda and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"].cpu(), self.device)

    def card(self) -> ModelCard:
        cfg = self.cfg
        gsd = cfg.gsd
        if gsd is not None and cfg.load_size is not None:
            gsd = gsd * (self.half_size / cfg.load_size)
        return ModelCard(
            architecture=cfg.architecture,
            ngf=cfg.ngf,
            tile=cfg.tile,
            direction=cfg.direction,
            inference_stats=cfg.inference_stats,
            gsd=gsd,
            classes=self.palette.as_card(),
            training={
                "data": str(cfg.data),
                "pairs": len(self.train_files),
                "epochs_done": self.epoch,
                "steps": self.global_step,
                "schedule": f"{cfg.epochs} constant + {cfg.epochs_decay} decay",
                "batch_size": cfg.batch_size * self.world,
                "load_size": cfg.load_size,
                "lr": cfg.lr,
                "ndf": cfg.ndf,
                **({"parent": self.parent.record()} if self.parent is not None else {}),
                **(
                    {"augment": dataclasses.asdict(cfg.augment())}
                    if cfg.augment() != Augment()
                    else {}
                ),
                **{
                    k: getattr(cfg, k)
                    for k in ("oversample", "l1_class_weight")
                    if getattr(cfg, k) is not None
                },
                "imagery": self.imagery,
                "command": cfg.command,
                "wall_time_s": round(self.wall_time, 1),
                "device": self.device_name(),
                "machine": f"{platform.machine()} {os.cpu_count()} cpus",
                "torch": torch.__version__,
            },
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )

    def device_name(self) -> str:
        if self.use_cuda:
            return f"{self.world} x {torch.cuda.get_device_name(self.device)}"
        return self.device.type

    @torch.no_grad()
    def write_samples(self) -> Path:
        """Save a PNG grid (rows: input | output | target) of a few fixed validation pairs."""
        files = (self.val_files or self.train_files)[:N_SAMPLES]
        fixed = PairDataset(
            files, self.cfg.direction, self.cfg.tile, self.cfg.load_size, jitter=False
        )
        g = _unwrap(self.G)
        g.eval()
        set_inference_stats(g, self.cfg.inference_stats)
        rows = []
        for i in range(len(fixed)):
            a, b = fixed[i]
            x = a[None].to(self.device).contiguous(memory_format=self.memory_format)
            with self.autocast():
                y = g(x)[0].float().cpu()
            rows.append(torch.cat([a, y, b], 2))
        g.train()
        grid = torch.cat(rows, 1)
        arr = signed_to_u8(grid.numpy()).transpose(1, 2, 0)
        out = self.run_dir / "samples" / f"epoch_{self.epoch:03d}.png"
        out.parent.mkdir(exist_ok=True)
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(arr)).save(buffer, format="PNG")
        atomic_write_bytes(out, buffer.getvalue())
        return out

    def write_config(self) -> None:
        """``config.json``: the run's configuration, readable without torch."""
        text = json.dumps(dataclasses.asdict(self.cfg), indent=2) + "\n"
        atomic_write_bytes(self.run_dir / "config.json", text.encode())

    def autocast(self) -> Any:
        """Mixed precision where the run uses it (for training steps and samples alike)."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


class StepLogger:
    """Per-step losses to log.jsonl, and to TensorBoard when it is installed."""

    def __init__(self, run_dir: Path) -> None:
        self.file = open(run_dir / "log.jsonl", "a")  # noqa: SIM115 (closed in close())
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb: Any = SummaryWriter(str(run_dir / "tensorboard"))
        except ImportError:
            self.tb = None

    def write(self, step: int, epoch: int, lr: float, losses: dict[str, float]) -> None:
        record = {"step": step, "epoch": epoch, "lr": lr, **losses}
        self.file.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in losses.items():
                self.tb.add_scalar(f"loss/{k}", v, step)

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()
