"""pix2pix training: the trainer, with the losses, optimisers and schedule of the paper.

G loss = BCEWithLogits(D(A, G(A)), 1) + lambda_l1 * L1(G(A), B); D loss = 0.5 * (real + fake);
Adam(lr 2e-4, betas 0.5/0.999) for both; the learning rate stays constant for ``epochs`` epochs
and then decays linearly to zero over ``epochs_decay`` more (Isola et al. 2017).

A run directory holds ``checkpoint.pt`` (everything needed to resume), ``config.json``,
``log.jsonl`` (losses per step), ``samples/`` (input | output | target grids per epoch) and
``model/`` (the generator as safetensors + model card, what ``render`` and ``evaluate`` take).
Multi-GPU: launch with ``torchrun --nproc_per_node N -m geo_p2p_cli.main train ...``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..card import CARD_FILE, load_card
from ..device import cuda_autocast_dtype, resolve_device
from ..errors import DataError
from ..mapclasses.palette import Palette, learn_palette, pair_targets
from ..metrics import CLASS_NAMES, classify
from ..nets import PatchDiscriminator, build_generator, init_weights, start_from_pretrained
from ..render.mosaic import signed_to_u8
from .config import CHECKPOINT, TrainConfig, lr_factor, parse_map_classes
from .data import (
    EpochSampler,
    PairDataset,
    check_pairs,
    class_shares,
    dataset_gsd,
    find_pairs,
    oversampling_weights,
    parse_class_factor,
)
from .finetune import Parent, warn_if_mismatched
from .records import StepLogger, TrainerRecords, imagery

log = logging.getLogger(__name__)

OVERSAMPLE_FACTOR = 4.0
L1_CLASS_WEIGHT = 5.0


class Trainer(TrainerRecords):
    """Trains a pix2pix pair of networks on a data folder; see the module docstring."""

    def __init__(self, config: TrainConfig, resume: Path | None = None) -> None:
        """``resume``: the checkpoint that :meth:`fit` will continue from (its run's card then
        gives the map classes and the imagery record, which a run does not change)."""
        self.cfg = config
        self.run_dir = Path(config.out)
        self.resume = resume
        self._set_up_processes()
        self._set_up_data()
        self._set_up_networks()
        self._set_up_optimisers()
        self._set_up_distributed()

    def _set_up_processes(self) -> None:
        """This process's rank among ``torchrun``'s, and its device."""
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = resolve_device(self.cfg.device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
        self.use_cuda = self.device.type == "cuda"

    def _set_up_data(self) -> None:
        """The pairs checked, their ground resolution, the parent model of a fine-tune, the
        class balancing, and the dataset."""
        config = self.cfg
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
            self.parent.check(config.architecture, config.ngf, config.ndf, config.tile)
            warn_if_mismatched(self.parent, config.direction, config.gsd)
        self._set_up_records()
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

    def _set_up_records(self) -> None:
        """The map's classes and the training imagery's record: those of the card that a
        resumed run's checkpoints wrote, else measured on the pairs (which reads hundreds)."""
        card_dir = self.run_dir / "model"
        if self.resume is not None and (card_dir / CARD_FILE).is_file():
            card = load_card(card_dir)
            if card.classes and "imagery" in card.training:
                self.palette = Palette.from_card(card.classes)
                self.imagery = card.training["imagery"]
                return
        cfg = self.cfg
        self.palette = self._map_palette()
        self.imagery = imagery(
            self.train_files, self.val_files, cfg.direction, cfg.tile, cfg.load_size
        )

    def _map_palette(self) -> Palette:
        """The map's classes: the parent's for a fine-tune without ``map_classes``, else
        learnt from the training targets (see :class:`~geo_p2p.train.config.TrainConfig`)."""
        cfg = self.cfg
        parent = self.parent
        if cfg.map_classes is None and parent is not None and parent.card.classes:
            return Palette.from_card(parent.card.classes)
        k, names = (None, None) if cfg.map_classes is None else parse_map_classes(cfg.map_classes)
        targets = pair_targets(self.train_files, cfg.direction)
        palette = learn_palette(targets, k, names, seed=cfg.seed)
        described = ", ".join(f"{c.name} {c.colour}" for c in palette.classes)
        log.info("map classes learnt from the training targets: %s", described)
        return palette

    def _set_up_networks(self) -> None:
        """G and D initialised as in the paper, then from the parent model when fine-tuning or
        from an architecture's pretrained weights; a resumed run's come from its checkpoint."""
        config = self.cfg
        torch.manual_seed(config.seed)
        self.G = build_generator(config.architecture, config.ngf, config.tile).to(self.device)
        self.D = PatchDiscriminator(config.ndf).to(self.device)
        init_weights(self.G)
        init_weights(self.D)
        if self.resume is None:  # a resumed run's G and D come from its checkpoint, in fit()
            if self.parent is not None:
                self.parent.load_into(self.G, self.D)
            elif start_from_pretrained(self.G):
                log.info("the %s encoder starts from its ImageNet weights", config.architecture)
        if self.use_cuda:
            torch.backends.cudnn.benchmark = True  # fixed tile size: pick the fastest kernels
        self.memory_format = (
            torch.channels_last
            if self.use_cuda and config.channels_last
            else torch.contiguous_format
        )
        self.G.to(memory_format=self.memory_format)
        self.D.to(memory_format=self.memory_format)

    def _set_up_optimisers(self) -> None:
        """Adam for both, the schedule, mixed precision, and the step counters."""
        config = self.cfg
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

    def _set_up_distributed(self) -> None:
        """Under ``torchrun``: synchronised BatchNorm on GPUs, and DistributedDataParallel."""
        if self.world > 1:
            if self.use_cuda:
                self.G = nn.SyncBatchNorm.convert_sync_batchnorm(self.G)
                self.D = nn.SyncBatchNorm.convert_sync_batchnorm(self.D)
            ids = [self.device.index] if self.use_cuda else None
            self.G = nn.parallel.DistributedDataParallel(self.G, device_ids=ids)
            self.D = nn.parallel.DistributedDataParallel(self.D, device_ids=ids)

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

    def fit(self) -> Path:
        """Train (from the checkpoint given as ``resume``, if any) until the schedule (or
        ``max_steps``) ends; returns the model directory.

        Ctrl-C saves a checkpoint at the current step before it propagates.
        """
        cfg = self.cfg
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.resume is not None:
            self.load_checkpoint(self.resume)
            log.info("resumed at epoch %d, step %d", self.epoch + 1, self.step_in_epoch)
        if self.rank == 0:
            self.write_config()
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
        model = Trainer(config, checkpoint).fit()
        if dist.is_initialized():
            # Rank 0 writes the model after the last step: the others wait for it before any
            # closes its connections, which gloo may answer by aborting a peer (seen once in CI).
            dist.barrier()
        return model
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
