"""Domain randomisation of the training input: other sensors, light, seasons and processing.

:func:`randomise` changes an aerial half (never its map) the way imagery from elsewhere
differs from the training imagery: white balance, gamma, saturation and hue, atmospheric
haze, blur (a coarser sensor or a resampled input) or sharpening (a sharpened product), sensor
noise and JPEG compression. Each effect is drawn on its own, with probability one half, from
the generator it is given, so a training item stays reproducible from (seed, epoch, pair).
``strength`` scales every range; 1 is the recipe measured in the README.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _hue_rotation(turn: float) -> np.ndarray:
    """3x3 matrix turning RGB colours about the grey axis by ``turn`` radians."""
    k = np.full(3, 1 / math.sqrt(3))
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return (
        math.cos(turn) * np.eye(3) + math.sin(turn) * cross + (1 - math.cos(turn)) * np.outer(k, k)
    ).astype(np.float32)


def randomise(image: Image.Image, rng: np.random.Generator, strength: float = 1.0) -> Image.Image:
    """A randomised copy of an RGB aerial image (see the module docstring).

    Ranges at ``strength`` s: white balance gains per band in [1 - 0.15 s, 1 + 0.15 s]; gamma
    in [1 / (1 + 0.5 s), 1 + 0.5 s] (log-uniform); saturation times [1 - 0.5 s, 1 + 0.4 s]; hue
    turned by up to 0.06 s of a turn; haze: a blend towards a pale blue-grey of up to 0.35 s;
    Gaussian blur of radius up to 1.5 s px or an unsharp mask of up to 1.5 s (one of the two);
    Gaussian noise of up to 0.03 s (on the [0, 1] scale); JPEG quality 30-90.
    """
    if strength <= 0:
        return image
    s = strength
    x = np.asarray(image.convert("RGB"), np.float32) / 255.0
    if rng.random() < 0.5:
        x = x * rng.uniform(1 - 0.15 * s, 1 + 0.15 * s, 3).astype(np.float32)
    if rng.random() < 0.5:
        gamma = math.exp(rng.uniform(-math.log1p(0.5 * s), math.log1p(0.5 * s)))
        x = np.clip(x, 0, 1) ** gamma
    if rng.random() < 0.5:
        luma = (x @ _LUMA)[..., None]
        x = luma + rng.uniform(max(0.0, 1 - 0.5 * s), 1 + 0.4 * s) * (x - luma)
        x = x @ _hue_rotation(2 * math.pi * rng.uniform(-0.06 * s, 0.06 * s)).T
    if rng.random() < 0.5:
        airlight = np.array([0.78, 0.82, 0.88], np.float32) * rng.uniform(0.9, 1.1)
        haze = rng.uniform(0, 0.35 * s)
        x = (1 - haze) * x + haze * airlight
    out = Image.fromarray(np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8))
    if rng.random() < 0.5:
        if rng.random() < 0.5:
            out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.5 * s)))
        else:
            amount = round(100 * rng.uniform(0.3, 1.5 * s))
            out = out.filter(ImageFilter.UnsharpMask(radius=2, percent=amount, threshold=0))
    if rng.random() < 0.5:
        sigma = 255 * rng.uniform(0, 0.03 * s)
        noisy = np.asarray(out, np.float32) + rng.normal(0, sigma, (out.height, out.width, 3))
        out = Image.fromarray(np.rint(np.clip(noisy, 0, 255)).astype(np.uint8))
    if rng.random() < 0.5:
        buffer = io.BytesIO()
        out.save(buffer, format="JPEG", quality=int(rng.integers(30, 91)))
        out = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return out


def cast_shadow(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A copy of an RGB aerial with one synthetic cast shadow, its map left as it is.

    The shadow is the union of one to three rectangles (each side 5-60 % of the image's, turned
    at random) with a soft edge of 0.5-2 px. Under it the sunlight is gone and only the
    skylight remains: the pixels are scaled by 0.2-0.5, bluer by up to 20 %, so the ground's
    texture stays, darker (a tall building's shadow over streets and roofs). Maps ignore
    shadows; the model, trained on New York, reads dark smooth ground as water.
    """
    w, h = image.size
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    for _ in range(int(rng.integers(1, 4))):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        half = rng.uniform(0.025, 0.3, 2) * (w, h)
        turn = rng.uniform(0, math.pi)
        c, s = math.cos(turn), math.sin(turn)
        corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        draw.polygon(
            [
                (cx + c * u * half[0] - s * v * half[1], cy + s * u * half[0] + c * v * half[1])
                for u, v in corners
            ],
            fill=255,
        )
    soft = np.asarray(mask.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2))), np.float32)
    under = soft[..., None] / 255.0
    gain = rng.uniform(0.2, 0.5) * np.array([1.0, 1.0, 1.0 + rng.uniform(0, 0.2)], np.float32)
    x = np.asarray(image.convert("RGB"), np.float32)
    out = x * (1 - under) + np.clip(x * gain, 0, 255) * under
    return Image.fromarray(np.rint(out).astype(np.uint8))
