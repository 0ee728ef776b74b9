"""``geo-p2p train``: learn the aerial -> map translation from side-by-side pair images."""

from __future__ import annotations

import os
from pathlib import Path

import click

from geo_p2p.nets import ARCHITECTURES

from . import options as o


def parse_load_size(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> int | str | None:
    if value is None or value == "native":
        return value
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter("give a size in pixels (e.g. 286) or 'native'") from None


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@o.output(
    "Run directory: checkpoint, logs, samples and the trained model (in RUN/model).",
    type=click.Path(path_type=Path),
    default=Path("runs/geo-p2p"),
    show_default=True,
)
@click.option(
    "--out", "out_alias", type=click.Path(path_type=Path), hidden=True, help="Old name of -o."
)
@click.option(
    "--resume",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Continue the run in this directory where it stopped (its settings are kept; "
    "--max-steps, --device and --workers may change).",
)
@click.option(
    "--init",
    metavar="MODEL_DIR|default",
    help="Fine-tune: start G (and D, when saved there) from this model directory, or from the "
    "bundled model with 'default'. Unset architecture options then take its values, crops "
    "are native, and the schedule is 5 + 5 epochs at --lr 5e-5.",
)
@o.direction("AtoB")
@click.option(
    "--architecture",
    type=click.Choice(ARCHITECTURES),
    help="Generator: 'unet', the paper's U-Net; 'unet-lite0', a U-Net on an EfficientNet-Lite0 "
    "encoder that starts from ImageNet weights (needs the 'pretrained' extra) [default: unet; "
    "with --init, the initial model's].",
)
@click.option(
    "--ngf", type=click.IntRange(1), help="U-Net generator width [default: 64, the paper's]."
)
@click.option(
    "--ndf", type=click.IntRange(1), help="Discriminator width [default: 64, the paper's]."
)
@click.option(
    "--tile",
    type=int,
    help="Training crop size; a power of two >= 32 (it sets the U-Net depth, 256 -> 8 levels) "
    "[default: 256].",
)
@click.option(
    "--load-size",
    callback=parse_load_size,
    help="Resize each half to this before the random crop (paper: 286), or 'native' to crop "
    "at the images' own resolution [default: 286; native with --init].",
)
@click.option(
    "--epochs",
    type=click.IntRange(0),
    help="Epochs at the initial rate [default: 100; 5 with --init].",
)
@click.option(
    "--epochs-decay",
    type=click.IntRange(0),
    help="Further epochs over which the learning rate decays linearly to zero "
    "[default: 100; 5 with --init].",
)
@o.batch_size("Pairs per step (paper: 1).", default=1)
@click.option("--lr", type=float, help="Adam learning rate [default: 2e-4; 5e-5 with --init].")
@click.option("--lambda-l1", default=100.0, show_default=True, help="Weight of the L1 loss.")
@click.option("--seed", default=0, show_default=True, help="Seed of weights, order and jitter.")
@o.device
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
@o.gsd
@o.inference_stats("running; with --init, the initial model's")
@click.option(
    "--dihedral",
    is_flag=True,
    help="Augment with the 8 rotations and flips of the square (A and B alike) instead of "
    "the mirror only.",
)
@click.option(
    "--colour-jitter",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    metavar="C",
    help="Jitter the input's brightness, contrast and saturation by up to C (0.2: +-20 %) "
    "and its hue by up to C/4 of a turn; 0: off.",
)
@click.option(
    "--scale-jitter",
    type=click.FloatRange(1),
    default=1.0,
    show_default=True,
    metavar="F",
    help="Resample A and B by a random factor in [1/F, F] (1.33: 0.75-1.33x); 1: off. "
    "Zooming out needs halves larger than --tile.",
)
@click.option(
    "--domain-randomise",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    metavar="S",
    help="Randomise the input as imagery from elsewhere differs (white balance, gamma, "
    "saturation and hue, haze, blur or sharpening, noise, JPEG), each effect with "
    "probability 1/2, ranges times S (1: the README's recipe); 0: off.",
)
@click.option(
    "--shadows",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    metavar="P",
    help="With probability P, darken the input under a synthetic cast shadow (up to three "
    "turned rectangles, 0.2-0.5 of the light, a little bluer), its map unchanged, so that "
    "shadowed streets and roofs are not read as water; 0: off.",
)
@click.option(
    "--oversample",
    metavar="CLASS[:FACTOR]",
    help="Draw training pairs with replacement, pair i with weight 1 + FACTOR x its target's "
    "share of map CLASS / the mean share (land, road, water, park or highway, by nearest "
    "palette colour; FACTOR default 4): 'highway' draws a pair with the average highway share "
    "5 times as often as one without. Reproducible from the seed, like the shuffle.",
)
@click.option(
    "--l1-class-weight",
    metavar="CLASS[:WEIGHT]",
    help="Target pixels of map CLASS (as for --oversample) weigh WEIGHT (default 5) in the L1 "
    "loss, the others 1.",
)
@click.option(
    "--map-classes",
    metavar="K|NAMES",
    help="The map's classes, learnt from the training targets' colours and stored in the model "
    "card (for render --style crisp, --classes, --vectors): K classes (class_1..K), or names, "
    "largest first (land,road,water,park; a name twice joins two colours) [as many as the "
    "colours show; with --init, the parent's].",
)
@click.option(
    "--skip-bad",
    is_flag=True,
    help="Leave out unreadable or non-pair images with a warning instead of stopping.",
)
@o.reports_errors("train")
def train(
    data: Path, output: Path, out_alias: Path | None, resume: Path | None, **options: object
) -> None:
    """Train a pix2pix model on the side-by-side A|B pair images in DATA.

    DATA holds the pairs directly, or in train/ (and optionally val/, used for the sample
    grids) subfolders, as the pix2pix datasets do. The result is RUN/model, a model
    directory that `geo-p2p render --model` and `geo-p2p evaluate` take; its card records the
    --gsd, so that render resamples rasters to what the model saw. Ctrl-C saves a
    checkpoint; --resume RUN continues it. Multi-GPU: torchrun --nproc_per_node N
    -m geo_p2p_cli.main train DATA ...
    """
    from geo_p2p.train import TrainConfig, resume_config
    from geo_p2p.train import train as run_training
    from geo_p2p.train.finetune import unset_to_defaults

    out = out_alias or output
    if resume is not None:
        keep = {k: options[k] for k in ("max_steps", "device", "workers")}
        config = resume_config(resume, data=str(data), out=str(resume), **keep)
    else:
        if (out / "checkpoint.pt").exists():
            raise o.InputError(
                f"{out} already holds a run: pass --resume {out} to continue it, or choose "
                "another output",
                "-o/--output",
            )
        given = unset_to_defaults(options, options["init"])  # type: ignore[arg-type]
        config = TrainConfig(data=str(data), out=str(out), **given)
    model_dir = run_training(config, resume=resume)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one report
        click.echo(f"model written to {model_dir}")
