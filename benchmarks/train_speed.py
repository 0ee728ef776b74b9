"""Training speed: our loop against the plain loop of the pix2pix tutorials, in one run.

The plain loop is the same losses and networks in fp32, batch 1, default memory format. Ours
adds, where the device supports them, mixed precision and channels-last (CUDA, by default),
bf16 autocast on CPU (``--amp``) and a larger batch. On CUDA the plain loop also runs at each
larger batch size, to isolate the mixed-precision gain. All run ``--steps`` optimisation steps
on real pairs already in memory (not the data loader), after ``--warmup`` steps; each figure is
the best of ``--repeat`` interleaved rounds. Like the command line, it keeps freed memory for
reuse (``geo_p2p.allocator``) unless given ``--system-allocator``.

    python benchmarks/train_speed.py --data examples/pairs --ngf 32 --batch-size 1 4
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from geo_p2p.allocator import keep_freed_memory
from geo_p2p.train import TrainConfig, Trainer


def images_per_second(config: TrainConfig, steps: int, warmup: int) -> float:
    trainer = Trainer(config)
    batches = []
    for i in range(steps + warmup):
        pairs = [
            trainer.dataset[(0, (i * config.batch_size + j) % len(trainer.dataset))]
            for j in range(config.batch_size)
        ]
        a = torch.stack([p[0] for p in pairs]).to(trainer.device)
        b = torch.stack([p[1] for p in pairs]).to(trainer.device)
        fmt = trainer.memory_format
        batches.append((a.contiguous(memory_format=fmt), b.contiguous(memory_format=fmt)))
    for a, b in batches[:warmup]:
        trainer.train_step(a, b)
    sync = torch.cuda.synchronize if trainer.use_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    for a, b in batches[warmup:]:
        trainer.train_step(a, b)
    sync()
    return steps * config.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="examples/pairs", help="folder of A|B pair images")
    parser.add_argument("--ngf", type=int, default=32)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[1])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many rounds")
    parser.add_argument(
        "--system-allocator", action="store_true", help="leave malloc's settings as they are"
    )
    args = parser.parse_args()
    kept = not args.system_allocator and keep_freed_memory()

    base = TrainConfig(
        data=args.data,
        ngf=args.ngf,
        tile=args.tile,
        device=args.device,
        workers=0,
        out="/nonexistent",
    )
    cuda = Trainer(base).use_cuda
    configs = [("plain (fp32, batch 1)", replace(base, amp=False, channels_last=False))]
    for bs in args.batch_size:
        ours = replace(base, batch_size=bs)
        name = "geo-p2p, bf16 + channels-last" if cuda else "geo-p2p"
        configs.append((f"{name} (batch {bs})", ours))
        if cuda and bs > 1:  # the mixed-precision gain alone, at the same batch size
            configs.append((f"fp32 (batch {bs})", replace(ours, amp=False, channels_last=False)))
        if not cuda:
            configs.append((f"geo-p2p --amp, bf16 (batch {bs})", replace(ours, amp=True)))
    best = {name: 0.0 for name, _ in configs}
    for _ in range(args.repeat):  # interleaved, best of: other load on the machine hurts least
        for name, config in configs:
            best[name] = max(best[name], images_per_second(config, args.steps, args.warmup))
    rows = list(best.items())
    device = Trainer(base).device_name()
    print(
        f"device: {device}, ngf {args.ngf}, tile {args.tile}, {args.steps} timed steps, "
        f"freed memory {'kept for reuse' if kept else 'returned (system allocator settings)'}"
    )
    print(f"{'loop':<44}{'images/s':>10}{'vs plain':>10}")
    for name, ips in rows:
        print(f"{name:<44}{ips:>10.2f}{ips / rows[0][1]:>10.2f}")


if __name__ == "__main__":
    main()
