"""Render speed end to end against the generator alone (the ceiling), at the same batch size.

Input: real imagery (the EPSG:3857 test raster, mirrored and repeated, as render_memory.py builds
it) written as a tiled DEFLATE GeoTIFF with its CRS. For each precision: the generator alone on
in-memory batches of real tiles, as many as the render translates, run two ways (one batch at a
time on all threads with ``Translator.infer``, and as render runs them with
``Translator.infer_stream``); then a whole render of the raster with default overlap and margin.
End to end over the faster of the two is the pipeline's efficiency. Also: the generator alone
with each inference option off (BatchNorm folding, channels-last), the cost of the overlap, and
the output difference between precisions. Like the command line, it keeps freed memory for reuse
(``geo_p2p.allocator``) unless given ``--system-allocator``.

``--vegetation`` also renders each time with ``render --vegetation`` (a model whose card names
land and park classes, such as the bundled one) and gives its speed against the plain render's.

``--backend torch onnxruntime`` runs the generator alone and end to end with each backend (the
onnxruntime one in fp32, uncompiled). Throughputs also come as achieved GFLOP/s of the
generator's convolutions (which are nearly all of its arithmetic), against the fp32 peak of a
large matrix product measured in the same run, beside the CPU's vector features.

    python benchmarks/render_speed.py [--model DIR | --ngf 64] [--size 3072] [--batch-size 8]
        [--backend torch onnxruntime] [--vegetation]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
import torch
from render_memory import build_raster  # benchmarks/ is on the path when run as a script

from geo_p2p import Translator
from geo_p2p.allocator import keep_freed_memory
from geo_p2p.card import ModelCard, save_model
from geo_p2p.device import resolve_device
from geo_p2p.nets import UNetGenerator, init_weights


def generator_alone(
    translator: Translator, tiles: torch.Tensor, batches: int, stream: bool = False
) -> float:
    """Tiles per second of the generator on in-memory batches of ``translator.batch_size``,
    after a warm-up: one batch at a time with ``infer``, or as render runs them with
    ``infer_stream`` (``stream``)."""
    x = tiles[: translator.batch_size]
    translator.infer(x)
    start = time.perf_counter()
    if stream:
        for _, y in translator.infer_stream(range(batches), lambda _: x):
            y.cpu()  # waits for a GPU to finish
    else:
        for _ in range(batches):
            translator.infer(x).cpu()
    return batches * len(x) / (time.perf_counter() - start)


def cpu_features() -> str:
    """The vector features that decide CPU speed here (Linux), e.g. "avx2 avx512f amx_bf16"."""
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    return " ".join(f for f in wanted if f in flags) or "none of " + " ".join(wanted)


def matmul_peak(n: int = 2048, repeat: int = 5) -> float:
    """GFLOP/s of an fp32 (n x n) matrix product on torch's threads, best of ``repeat``."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeat))
    return 2 * n**3 / best / 1e9


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def conv_gflop(module: torch.nn.Module, tile: int) -> float:
    """GFLOP (2 per multiply-add) of the convolutions of ``module`` on one (3, tile, tile) tile:
    12.1 for the ngf-64 U-Net at 256 px."""
    total = 0

    def count(layer: torch.nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        nonlocal total
        taps = layer.kernel_size[0] * layer.kernel_size[1] // layer.groups
        if isinstance(layer, torch.nn.ConvTranspose2d):  # each input value meets each tap
            total += 2 * inputs[0].numel() * layer.out_channels * taps
        else:
            total += 2 * output.numel() * layer.in_channels * taps

    convs = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)
    hooks = [m.register_forward_hook(count) for m in module.modules() if isinstance(m, convs)]
    try:
        with torch.inference_mode():
            module(torch.zeros(1, 3, tile, tile))
    finally:
        for hook in hooks:
            hook.remove()
    return total / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory (default: a random U-Net of --ngf)")
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--size", type=int, default=3072)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--batches", type=int, help="batches timed alone (default: as many tiles as the render)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--device", default="auto", help="auto: CUDA when there is one")
    parser.add_argument(
        "--system-allocator", action="store_true", help="leave malloc's settings as they are"
    )
    parser.add_argument(
        "--compile", action="store_true", help="also end to end with torch.compile, each precision"
    )
    parser.add_argument(
        "--backend",
        nargs="+",
        default=["torch"],
        choices=["torch", "onnxruntime"],
        help="end to end with each (onnxruntime: fp32, uncompiled)",
    )
    parser.add_argument(
        "--vegetation", action="store_true", help="also end to end with render --vegetation"
    )
    args = parser.parse_args()
    device = str(resolve_device(args.device))
    kept = not args.system_allocator and keep_freed_memory()
    compile_options = (False, True) if args.compile else (False,)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
        f"freed memory {'kept for reuse' if kept else 'returned (system allocator settings)'}"
    )
    features = cpu_features()
    peak = matmul_peak()
    print(f"CPU features: {features}; fp32 matmul peak {peak:.0f} GFLOP/s on torch's threads")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model
        if model is None:
            torch.manual_seed(0)
            net = UNetGenerator(ngf=args.ngf, levels=8)
            init_weights(net)
            model = save_model(tmp / "model", net, ModelCard(ngf=args.ngf))
        src = tmp / "input.tif"
        build_raster(src, args.size)
        with rasterio.open(src) as ds:
            per_row = args.size // 256
            crops = [
                ds.read(window=((r * 256, r * 256 + 256), (c * 256, c * 256 + 256)))
                for r, c in (divmod(i, per_row) for i in range(args.batch_size))
            ]
        tiles = torch.from_numpy(np.stack(crops).astype(np.float32) / 127.5 - 1)
        common = {"batch_size": args.batch_size, "device": device}
        print(f"model {model}; raster {args.size} x {args.size}; batch {args.batch_size}")
        probe = Translator.load(model, backend="torch", **common)
        batches = args.batches or -(-len(probe.grid(args.size, args.size).tiles) // args.batch_size)
        gflop = conv_gflop(probe.module, probe.tile)
        print(f"generator: {gflop:.2f} GFLOP per {probe.tile} px tile in its convolutions")

        def efficiency(rate: float) -> str:
            return f"{rate * gflop:.0f} GFLOP/s ({rate * gflop / peak:.0%} of peak; {features})"

        print("\ngenerator alone, tiles/s, by inference option (best of --repeat, interleaved):")
        options = [
            (precision, fuse, channels_last)
            for precision in args.precision
            for fuse, channels_last in ((False, False), (True, False), (True, True))
        ]
        translators = [
            Translator.load(model, fuse=f, channels_last=c, precision=p, backend="torch", **common)
            for p, f, c in options
        ]
        rates = [0.0] * len(options)
        for _ in range(args.repeat):
            for i, t in enumerate(translators):
                rates[i] = max(rates[i], generator_alone(t, tiles, batches))
        for (precision, fuse, channels_last), rate in zip(options, rates, strict=True):
            print(
                f"  {precision}  BatchNorm folded {fuse!s:5}  channels-last "
                f"{channels_last!s:5}  {rate:7.2f}"
            )
        del translators

        print(
            "\nend to end (default options) against the generator alone, one batch at a time "
            "and as render runs it:"
        )
        outputs = {}
        runs = [
            (p, c, b)
            for p in args.precision
            for c in compile_options
            for b in args.backend
            if b == "torch" or (p == "fp32" and not c)
        ]
        for precision, compiled, backend in runs:
            name = f"{precision}{' compiled' if compiled else ''} {backend}"
            start = time.perf_counter()
            t = Translator.load(
                model, precision=precision, torch_compile=compiled, backend=backend, **common
            )
            t.prepare()  # compiles, as render does before it starts the clock
            if compiled:
                print(f"  ({name}: compiled in {time.perf_counter() - start:.0f} s)")
            single, stream, seconds, green = 0.0, 0.0, float("inf"), float("inf")
            for _ in range(args.repeat):  # best of: other jobs on the machine only slow things
                single = max(single, generator_alone(t, tiles, batches))
                stream = max(stream, generator_alone(t, tiles, batches, stream=True))
                dst = tmp / f"out_{precision}_{compiled}_{backend}.tif"
                render = {"resolution": "native", "progress": False, "overwrite": True}
                if args.vegetation:
                    painted = t.render(src, tmp / "green.tif", vegetation=True, **render)
                    green = min(green, painted.seconds)
                summary = t.render(src, dst, vegetation=False, **render)
                seconds = min(seconds, summary.seconds)
            rate = summary.tiles / seconds
            print(
                f"  {name}: {summary.tiles} tiles in {seconds:.1f} s, {rate:.2f} tiles/s, "
                f"{args.size**2 / seconds / 1e6:.3f} Mpx/s; generator alone {single:.2f} / "
                f"{stream:.2f} tiles/s; efficiency {rate / max(single, stream):.2f}"
            )
            print(
                f"    generator alone {efficiency(max(single, stream))}; "
                f"end to end {efficiency(rate)}"
            )
            if args.vegetation:
                print(
                    f"    with --vegetation: {summary.tiles / green:.2f} tiles/s, "
                    f"{seconds / green:.2f}x the plain render's speed"
                )
            with rasterio.open(dst) as ds:
                outputs[name] = ds.read().astype(np.int16)
        here = summary.tiles * t.tile**2 / args.size**2
        large = (t.tile / (t.tile - t.overlap)) ** 2
        print(
            f"\noverlap {t.overlap} px, margin {t.margin} px: {here:.2f} model tiles per output "
            f"tile here, {large:.2f} on a large raster"
        )
        for name, out in outputs.items():
            reference = f"{name.split()[0]} torch" if "compiled" in name else "fp32 torch"
            if name != reference and reference in outputs:
                diff = np.abs(out - outputs[reference])
                print(
                    f"{name} vs {reference} output: mean abs difference {diff.mean():.3f} DN, "
                    f"99th percentile {np.percentile(diff, 99):.0f} DN, max {diff.max()} DN"
                )


if __name__ == "__main__":
    main()
