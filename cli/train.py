"""``geo-p2p train``: learn the aerial -> map translation from side-by-side pair images."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .options import device_option, fail_cleanly


def parse_load_size(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    if value == "native":
        return None
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter("give a size in pixels (e.g. 286) or 'native'") from None


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    default=Path("runs/geo-p2p"),
    show_default=True,
    help="Run directory: checkpoint, logs, samples and the trained model (in RUN/model).",
)
@click.option(
    "--resume",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Continue the run in this directory where it stopped (its settings are kept; "
    "--max-steps, --device and --workers may change).",
)
@click.option(
    "--direction",
    type=click.Choice(["AtoB", "BtoA"]),
    default="AtoB",
    show_default=True,
    help="AtoB: left half -> right half (aerial -> map for the maps pairs).",
)
@click.option(
    "--ngf",
    default=64,
    type=click.IntRange(1),
    show_default=True,
    help="Generator width (paper: 64).",
)
@click.option(
    "--ndf",
    default=64,
    type=click.IntRange(1),
    show_default=True,
    help="Discriminator width (paper: 64).",
)
@click.option(
    "--tile",
    default=256,
    show_default=True,
    help="Training crop size; a power of two >= 32 (it sets the U-Net depth, 256 -> 8 levels).",
)
@click.option(
    "--load-size",
    default="286",
    show_default=True,
    callback=parse_load_size,
    help="Resize each half to this before the random crop (paper: 286), or 'native' to crop "
    "at the images' own resolution.",
)
@click.option(
    "--epochs",
    default=100,
    show_default=True,
    type=click.IntRange(0),
    help="Epochs at the initial rate.",
)
@click.option(
    "--epochs-decay",
    default=100,
    type=click.IntRange(0),
    show_default=True,
    help="Further epochs over which the learning rate decays linearly to zero.",
)
@click.option(
    "--batch-size",
    default=1,
    type=click.IntRange(1),
    show_default=True,
    help="Pairs per step (paper: 1).",
)
@click.option("--lr", default=2e-4, show_default=True, help="Adam learning rate.")
@click.option("--lambda-l1", default=100.0, show_default=True, help="Weight of the L1 loss.")
@click.option("--seed", default=0, show_default=True, help="Seed of weights, order and jitter.")
@device_option
@click.option(
    "--amp/--no-amp",
    default=None,
    help="Mixed precision: bf16 autocast (fp16 with loss scaling on GPUs without bf16) "
    "[default: on for CUDA, off on CPU; --amp on a CPU with AVX-512 BF16 trains about 1.4x "
    "faster].",
)
@click.option(
    "--channels-last/--no-channels-last",
    default=True,
    show_default=True,
    help="Channels-last memory format on CUDA.",
)
@click.option(
    "--save-every",
    default=5,
    type=click.IntRange(1),
    show_default=True,
    help="Checkpoint every N epochs.",
)
@click.option(
    "--workers",
    type=click.IntRange(0),
    default=None,
    help="Data-loading processes [default: cpus - 1 (at most 8) on CUDA, 1 otherwise].",
)
@click.option(
    "--max-steps", type=click.IntRange(1), default=None, help="Stop after this many steps in all."
)
@click.option(
    "--gsd",
    type=float,
    default=None,
    help="Ground resolution of the pair images as stored, metres per pixel [default: "
    "DATA/dataset.json, or 0.9 for 1200x600 pix2pix maps pairs]. Recorded in the model card "
    "so that render resamples rasters to what the model saw.",
)
@click.option(
    "--inference-stats",
    type=click.Choice(["running", "tile"]),
    default="running",
    show_default=True,
    help="BatchNorm statistics the saved model uses at inference: running averages, or each "
    "tile's own (as in training at batch size 1).",
)
@click.option(
    "--skip-bad",
    is_flag=True,
    help="Leave out unreadable or non-pair images with a warning instead of stopping.",
)
@fail_cleanly
def train(data: Path, out: Path, resume: Path | None, **options: object) -> None:
    """Train a pix2pix model on the side-by-side A|B pair images in DATA.

    DATA holds the pairs directly, or in train/ (and optionally val/, used for the sample
    grids) subfolders, as the pix2pix datasets do. The result is RUN/model, a model
    directory that `geo-p2p render --model` and `geo-p2p evaluate` take. Ctrl-C saves a
    checkpoint; --resume RUN continues it. Multi-GPU: torchrun --nproc_per_node N
    -m geo_p2p_cli.main train DATA ...
    """
    from geo_p2p.train import TrainConfig, resume_config
    from geo_p2p.train import train as run_training

    if resume is not None:
        keep = {k: options[k] for k in ("max_steps", "device", "workers")}
        config = resume_config(resume, data=str(data), out=str(resume), **keep)
    else:
        if (out / "checkpoint.pt").exists():
            raise click.UsageError(
                f"{out} already holds a run: pass --resume {out} to continue it, or choose "
                "another -o/--out"
            )
        config = TrainConfig(data=str(data), out=str(out), **options)  # type: ignore[arg-type]
    model_dir = run_training(config, resume=resume)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one report
        click.echo(f"model written to {model_dir}")
