"""pix2pix training: losses, optimisers and schedule of the paper, checkpoints and resume.

G loss = BCEWithLogits(D(A, G(A)), 1) + lambda_l1 * L1(G(A), B); D loss = 0.5 * (real + fake);
Adam(lr 2e-4, betas 0.5/0.999) for both; the learning rate stays constant for ``epochs`` epochs
and then decays linearly to zero over ``epochs_decay`` more (Isola et al. 2017).

A run directory holds ``checkpoint.pt`` (everything needed to resume), ``config.json``,
``log.jsonl`` (losses per step), ``samples/`` (input | output | target grids per epoch) and
``model/`` (the generator as safetensors + model card, what ``render`` and ``evaluate`` take).
Multi-GPU: launch with ``torchrun --nproc_per_node N -m geo_p2p_cli.main train ...``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .card import ModelCard, atomic_write_bytes, save_model
from .data import (
    Augment,
    DataError,
    EpochSampler,
    PairDataset,
    check_pairs,
    class_shares,
    dataset_gsd,
    find_pairs,
    oversampling_weights,
    parse_class_factor,
)
from .device import cuda_autocast_dtype, resolve_device
from .finetune import Parent, warn_if_mismatched
from .metrics import CLASS_NAMES, classify
from .mosaic import signed_to_u8
from .nets import (
    InferenceStats,
    PatchDiscriminator,
    UNetGenerator,
    init_weights,
    levels_for_tile,
    set_inference_stats,
)

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
N_SAMPLES = 4
OVERSAMPLE_FACTOR = 4.0
L1_CLASS_WEIGHT = 5.0


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the checkpoint and config.json)."""

    data: str
    out: str = "runs/geo-p2p"
    direction: str = "AtoB"
    ngf: int = 64
    ndf: int = 64
    tile: int = 256
    load_size: int | None = 286
    """Resize each half to this before the random crop (None: crop at native resolution)."""
    epochs: int = 100
    epochs_decay: int = 100
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_l1: float = 100.0
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None
    """Mixed precision: bf16 autocast (fp16 with loss scaling on GPUs without bf16).
    None: on for CUDA, off elsewhere; True on CPU uses bf16 (fast where AVX-512 BF16 exists)."""
    channels_last: bool = True
    save_every: int = 5
    workers: int | None = None
    max_steps: int | None = None
    gsd: float | None = None
    """Ground resolution of the pair images as stored (m/px); None: from the data folder."""
    inference_stats: InferenceStats = "running"
    skip_bad: bool = False
    init: str | None = None
    """Model directory (or "default", the bundled model) that G and D start from."""
    dihedral: bool = False
    colour_jitter: float = 0.0
    scale_jitter: float = 1.0
    domain_randomise: float = 0.0
    """Augmentations: see :class:`~geo_p2p.data.Augment`."""
    oversample: str | None = None
    """``"CLASS[:FACTOR]"``: draw pairs with replacement, weighted by their target's share of
    that map class (:func:`~geo_p2p.data.oversampling_weights`; FACTOR default 4)."""
    l1_class_weight: str | None = None
    """``"CLASS[:WEIGHT]"``: target pixels of that map class weigh WEIGHT (default 5) in the
    L1 loss, the others 1."""
    command: str = ""

    def augment(self) -> Augment:
        return Augment(self.dihedral, self.colour_jitter, self.scale_jitter, self.domain_randomise)


def lr_factor(epochs: int, epochs_decay: int) -> Callable[[int], float]:
    """Learning-rate multiplier per epoch: 1 for ``epochs``, then linear decay to 0."""
    return lambda e: 1.0 - max(0, e + 1 - epochs) / float(epochs_decay + 1)


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


class Trainer:
    """Trains a pix2pix pair of networks on a data folder; see the module docstring."""

    def __init__(self, config: TrainConfig) -> None:
        self.cfg = config
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = resolve_device(config.device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
        self.run_dir = Path(config.out)
        folders = find_pairs(config.data)
        self.train_files = check_pairs(folders.train, config.skip_bad)
        self.val_files = check_pairs(folders.val, config.skip_bad) if folders.val else []
        if config.gsd is None:
            config.gsd = dataset_gsd(config.data, self.train_files)
        with Image.open(self.train_files[0]) as im:
            self.half_size = half = im.size[1]  # side of one half as stored
        if (config.load_size or half) < config.tile:
            raise DataError(
                f"the {config.tile} px training crop does not fit in {half} px halves "
                f"{f'resized to {config.load_size} px' if config.load_size else 'at native size'}"
                ": use a larger --load-size or a smaller --tile"
            )
        for name in ("save_every", "batch_size", "ngf", "ndf"):
            if getattr(config, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1")
        self.parent = Parent.read(config.init) if config.init is not None else None
        self.weights = None
        if config.oversample is not None:
            name, factor = parse_class_factor(config.oversample, OVERSAMPLE_FACTOR)
            shares = class_shares(self.train_files, name, config.direction)
            self.weights = oversampling_weights(shares, factor)
            log.info(
                "oversampling %s: %.1f %% of the target pixels, in %.0f %% of the pairs",
                name,
                100 * shares.mean(),
                100 * (shares > 0).mean(),
            )
        self.l1_class = None
        if config.l1_class_weight is not None:
            self.l1_class = parse_class_factor(config.l1_class_weight, L1_CLASS_WEIGHT)
        if self.parent is not None:
            self.parent.check(config.ngf, config.ndf, config.tile)
            warn_if_mismatched(self.parent, config.direction, config.gsd)
        self.dataset = PairDataset(
            self.train_files,
            config.direction,
            config.tile,
            config.load_size,
            seed=config.seed,
            augment=config.augment(),
        )
        per_rank = len(EpochSampler(len(self.dataset), 0, 0, rank=self.rank, world=self.world))
        self.steps_per_epoch = -(-per_rank // config.batch_size)

        torch.manual_seed(config.seed)
        levels = levels_for_tile(config.tile)
        self.G = UNetGenerator(config.ngf, levels).to(self.device)
        self.D = PatchDiscriminator(config.ndf).to(self.device)
        init_weights(self.G)
        init_weights(self.D)
        if self.parent is not None:
            self.parent.load_into(self.G, self.D)
        self.use_cuda = self.device.type == "cuda"
        if self.use_cuda:
            torch.backends.cudnn.benchmark = True  # fixed tile size: pick the fastest kernels
        self.memory_format = (
            torch.channels_last
            if self.use_cuda and config.channels_last
            else torch.contiguous_format
        )
        self.G.to(memory_format=self.memory_format)
        self.D.to(memory_format=self.memory_format)
        betas = (config.beta1, 0.999)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=config.lr, betas=betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=config.lr, betas=betas)
        rule = lr_factor(config.epochs, config.epochs_decay)
        self.sched_G = torch.optim.lr_scheduler.LambdaLR(self.opt_G, rule)
        self.sched_D = torch.optim.lr_scheduler.LambdaLR(self.opt_D, rule)
        self.amp_dtype = None
        if config.amp or (config.amp is None and self.use_cuda):
            self.amp_dtype = cuda_autocast_dtype() if self.use_cuda else torch.bfloat16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.wall_time = 0.0
        if self.world > 1:
            if self.use_cuda:
                self.G = nn.SyncBatchNorm.convert_sync_batchnorm(self.G)
                self.D = nn.SyncBatchNorm.convert_sync_batchnorm(self.D)
            ids = [self.device.index] if self.use_cuda else None
            self.G = nn.parallel.DistributedDataParallel(self.G, device_ids=ids)
            self.D = nn.parallel.DistributedDataParallel(self.D, device_ids=ids)

    # ----------------------------------------------------------------- checkpoints
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
            ngf=cfg.ngf,
            tile=cfg.tile,
            direction=cfg.direction,
            inference_stats=cfg.inference_stats,
            gsd=gsd,
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

    # ----------------------------------------------------------------- training
    def autocast(self) -> Any:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train_step(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
        """One optimisation step of D then G on a batch; returns the losses."""
        bce = F.binary_cross_entropy_with_logits
        with self.autocast():
            fake = self.G(a)
            pred_fake = self.D(torch.cat([a, fake.detach()], 1))
            pred_real = self.D(torch.cat([a, b], 1))
            loss_d = 0.5 * (
                bce(pred_fake, torch.zeros_like(pred_fake))
                + bce(pred_real, torch.ones_like(pred_real))
            )
        self.opt_D.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d).backward()
        self.scaler.step(self.opt_D)
        for p in self.D.parameters():
            p.requires_grad_(False)
        with self.autocast():
            pred = self.D(torch.cat([a, fake], 1))
            loss_gan = bce(pred, torch.ones_like(pred))
            loss_l1 = self.l1_loss(fake.float(), b.float())
            loss_g = loss_gan + self.cfg.lambda_l1 * loss_l1
        self.opt_G.zero_grad(set_to_none=True)
        self.scaler.scale(loss_g).backward()
        self.scaler.step(self.opt_G)
        self.scaler.update()
        for p in self.D.parameters():
            p.requires_grad_(True)
        return {"G_gan": loss_gan.item(), "L1": loss_l1.item(), "D": loss_d.item()}

    def l1_loss(self, fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean absolute error; with ``l1_class_weight``, the target pixels of that class
        (nearest palette colour) weigh more."""
        if self.l1_class is None:
            return F.l1_loss(fake, target)
        name, weight = self.l1_class
        n, _, h, w = target.shape
        rgb = signed_to_u8(target.detach().cpu().numpy()).transpose(0, 2, 3, 1)
        hit = classify(np.ascontiguousarray(rgb).reshape(n * h, w, 3)) == CLASS_NAMES.index(name)
        weights = 1 + (weight - 1) * torch.from_numpy(hit).view(n, 1, h, w).to(target)
        return ((fake - target).abs() * weights).mean()

    def loader(self) -> DataLoader:
        workers = self.cfg.workers
        if workers is None:
            workers = min(8, (os.cpu_count() or 2) - 1) if self.use_cuda else 1
        sampler = EpochSampler(
            len(self.dataset),
            self.cfg.seed,
            self.epoch,
            self.step_in_epoch * self.cfg.batch_size,
            self.rank,
            self.world,
            self.weights,
        )
        return DataLoader(
            self.dataset,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            num_workers=workers,
            pin_memory=self.use_cuda,
            # its own generator, so that making a loader never draws from the global RNG
            generator=torch.Generator().manual_seed(self.cfg.seed),
        )

    def fit(self, resume: Path | None = None) -> Path:
        """Train until the schedule (or ``max_steps``) ends; returns the model directory.

        Ctrl-C saves a checkpoint at the current step before it propagates.
        """
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume is not None:
            self.load_checkpoint(resume)
            log.info("resumed at epoch %d, step %d", self.epoch + 1, self.step_in_epoch)
        if self.rank == 0:
            text = json.dumps(dataclasses.asdict(cfg), indent=2) + "\n"
            atomic_write_bytes(self.run_dir / "config.json", text.encode())
        logger = StepLogger(self.run_dir) if self.rank == 0 else None
        total_epochs = cfg.epochs + cfg.epochs_decay
        try:
            while self.epoch < total_epochs and not self.reached_max_steps():
                self.run_epoch(logger, total_epochs)
                if self.step_in_epoch < self.steps_per_epoch:
                    break  # stopped by max_steps within the epoch
                self.epoch += 1
                self.step_in_epoch = 0
                self.sched_G.step()
                self.sched_D.step()
                if self.rank == 0:
                    self.write_samples()
                if self.epoch % cfg.save_every == 0 and self.epoch < total_epochs:
                    self.save_checkpoint()  # the last one is saved below
        except KeyboardInterrupt:
            log.warning("interrupted: saving a checkpoint at epoch %d", self.epoch + 1)
            self.save_checkpoint()
            raise
        finally:
            if logger is not None:
                logger.close()
        self.save_checkpoint()
        return self.run_dir / "model"

    def reached_max_steps(self) -> bool:
        return self.cfg.max_steps is not None and self.global_step >= self.cfg.max_steps

    def run_epoch(self, logger: StepLogger | None, total_epochs: int) -> None:
        self.G.train()
        self.D.train()
        bar = tqdm(
            self.loader(),
            total=self.steps_per_epoch,
            initial=self.step_in_epoch,
            desc=f"epoch {self.epoch + 1}/{total_epochs}",
            disable=self.rank != 0 or None,
            dynamic_ncols=True,
        )
        running: dict[str, float] = {}
        tick = time.perf_counter()
        for a, b in bar:
            a = a.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            b = b.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            losses = self.train_step(a, b)
            now = time.perf_counter()
            self.wall_time, tick = self.wall_time + now - tick, now
            self.global_step += 1
            self.step_in_epoch += 1
            for k, v in losses.items():
                running[k] = v if k not in running else 0.98 * running[k] + 0.02 * v
            bar.set_postfix({k: f"{v:.3f}" for k, v in running.items()})
            if logger is not None:
                lr = self.opt_G.param_groups[0]["lr"]
                logger.write(self.global_step, self.epoch + 1, lr, losses)
            if self.reached_max_steps():
                break
        bar.close()

    # ----------------------------------------------------------------- samples
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


def train(config: TrainConfig, resume: str | Path | None = None) -> Path:
    """Train (or resume) a run; sets up and tears down torch.distributed under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and config.device != "cpu" else "gloo"
        dist.init_process_group(backend)
    try:
        if not config.command:
            config.command = " ".join(["geo-p2p", *sys.argv[1:]])
        checkpoint = Path(resume) / CHECKPOINT if resume is not None else None
        return Trainer(config).fit(checkpoint)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def resume_config(run_dir: str | Path, **changes: Any) -> TrainConfig:
    """The configuration a run was started with, with ``changes`` (e.g. max_steps) applied."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} holds no {CHECKPOINT} to resume from")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return dataclasses.replace(TrainConfig(**state["config"]), **changes)
