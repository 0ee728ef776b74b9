"""What the training imagery looked like: colour and texture statistics, how far an input is
from them (the out-of-domain warning), and colour normalisation towards them.

:func:`imagery_record` summarises a set of aerial images at the model's ground resolution into
a JSON-able record for the model card (``training["imagery"]``): per-band moments and
quantiles of all pixels, and the mean and spread over images of a few per-image features
(:data:`FEATURES`). :func:`domain_distance` scores an input against it: the root mean square
of the input's feature z-scores, and :func:`domain_warnings` words the warning for one over the
card's threshold, which ``--resolution auto`` draws :data:`COARSER` times coarser.
:func:`match_moments` and :func:`match_histograms` move an input's colours towards the
training's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

FEATURES: tuple[str, ...] = (
    "mean_r",
    "mean_g",
    "mean_b",
    "std_r",
    "std_g",
    "std_b",
    "chroma",
    "gradient",
    "laplacian",
)
"""Per-image features: band means and standard deviations, the mean chroma (max - min band),
and two texture measures of the luminance: mean absolute gradient and mean absolute
Laplacian (both on the 0..255 scale, at the model's ground resolution)."""
QUANTILES = np.linspace(0, 100, 101)
"""Percentiles recorded per band for histogram matching."""
WARNING = (
    "this imagery looks unlike the model's training imagery (distance {distance:.2f} from its "
    "colour and texture statistics, over {threshold:.2f}): expect a poor map.{hint} For a better "
    "one, cut pairs of this region with 'geo-p2p pairs AERIAL MAP -o pairs/ --gsd {gsd}' and "
    "fine-tune with 'geo-p2p train pairs/ -o runs/mine --init {model}'"
)
"""The out-of-domain warning (``str.format`` fields: distance, threshold, hint, gsd, model)."""
VEGETATION_HINT = " '--vegetation' paints its tree cover and lawns green, from the aerial."
"""The warning's hint where the model can paint vegetation and the render does not."""
VEGETATION_PAINTED = (
    " Its tree cover and lawns are painted green, from the aerial ('--no-vegetation': as the "
    "model draws them)."
)
"""The warning's note where the render paints vegetation."""
COARSER = 1.5
"""``--resolution auto`` draws an input out of the model's domain at this many times the model's
ground resolution: the bundled model maps such imagery better coarser (Moscow 0.169 -> 0.191 on
the travel measure, New York untouched): of 1.25-3 screened on every 4th Moscow pair, the
smallest within 0.01 of the best (2), as coarser grids lose detail (README, "How far the
model travels")."""
COARSER_NOTE = (
    " It is drawn at {gsd} m, {factor:g} times the model's {model_gsd} m, which maps such imagery "
    "better ('--resolution {model_gsd}' keeps the model's)."
)
"""The warning's note where ``--resolution auto`` draws the input coarser."""


def out_of_domain(distance: float | None, threshold: float | None) -> bool:
    """Whether an input at ``distance`` from the training imagery is over ``threshold`` (False
    where either is unknown)."""
    return distance is not None and threshold is not None and distance > threshold


def domain_warnings(
    distance: float | None,
    threshold: float | None,
    vegetation: bool | None,
    gsd: float | None,
    model: str,
    coarser: float | None = None,
) -> list[str]:
    """The :data:`WARNING` of an input at ``distance`` over ``threshold``, or none: its hint
    says whether ``vegetation`` is painted (None: the model cannot paint it) and, given
    ``coarser``, that the output's ``gsd`` metres per pixel are that many times the model's;
    its advice cuts pairs at the model's ground resolution to fine-tune ``model`` (as ``train
    --init`` takes it)."""
    if not out_of_domain(distance, threshold):
        return []
    hint = {True: VEGETATION_PAINTED, False: VEGETATION_HINT, None: ""}[vegetation]
    if coarser and gsd:
        drawn, gsd = gsd, gsd / coarser
        hint = COARSER_NOTE.format(gsd=f"{drawn:g}", factor=coarser, model_gsd=f"{gsd:g}") + hint
    facts = {"distance": distance, "threshold": threshold, "model": model}
    return [WARNING.format(hint=hint, gsd=f"{gsd:g}" if gsd else "M", **facts)]


def image_features(image: np.ndarray) -> np.ndarray:
    """The :data:`FEATURES` of an (H, W, 3) uint8 RGB image (at least 3 x 3 px), float64."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    x = image.astype(np.float64)
    luma = x @ np.array([0.299, 0.587, 0.114])
    gy, gx = np.diff(luma, axis=0)[:, :-1], np.diff(luma, axis=1)[:-1, :]
    lap = luma[1:-1, :-2] + luma[1:-1, 2:] + luma[:-2, 1:-1] + luma[2:, 1:-1] - 4 * luma[1:-1, 1:-1]
    return np.array(
        [
            *x.mean(axis=(0, 1)),
            *x.std(axis=(0, 1)),
            (x.max(axis=2) - x.min(axis=2)).mean(),
            np.hypot(gx, gy).mean(),
            np.abs(lap).mean(),
        ]
    )


def sample_features(tiles: np.ndarray) -> np.ndarray:
    """The mean :data:`FEATURES` of a sample of tiles, (N, 3, T, T) uint8 RGB."""
    return np.mean([image_features(t.transpose(1, 2, 0)) for t in tiles], axis=0)


def imagery_record(samples: Iterable[np.ndarray], step: int = 4) -> dict[str, Any]:
    """The card record of the training imagery, given as one sample of tiles per image
    ((N, 3, T, T) uint8, at the model's resolution): ``band_mean``, ``band_std``,
    ``band_quantiles`` (3 x 101, of every ``step``-th pixel of every row and column),
    ``features`` (:data:`FEATURES` names, mean and std over images of
    :func:`sample_features`) and ``images``."""
    feats, pixels = [], []
    for tiles in samples:
        feats.append(sample_features(tiles))
        pixels.append(tiles[:, :, ::step, ::step].transpose(0, 2, 3, 1).reshape(-1, 3))
    if not feats:
        raise ValueError("no images to summarise")
    px = np.concatenate(pixels).astype(np.float64)
    table = np.stack(feats)
    return {
        "band_mean": _round(px.mean(axis=0)),
        "band_std": _round(px.std(axis=0)),
        "band_quantiles": [_round(np.percentile(px[:, k], QUANTILES)) for k in range(3)],
        "features": {
            "names": list(FEATURES),
            "mean": _round(table.mean(axis=0)),
            "std": _round(table.std(axis=0)),
        },
        "images": len(feats),
    }


def _round(values: np.ndarray) -> list[float]:
    return [round(float(v), 3) for v in values]


def domain_distance(features: np.ndarray, record: dict[str, Any]) -> float:
    """Root mean square z-score of an input's features (:func:`sample_features`) against the
    record's spread over training images: about 1 for a typical training image, larger the
    less alike."""
    stats = record["features"]
    if list(stats["names"]) != list(FEATURES):
        raise ValueError("the imagery record holds other features than this version computes")
    mean, std = np.asarray(stats["mean"]), np.maximum(np.asarray(stats["std"]), 1e-6)
    return float(np.sqrt(np.mean(((np.asarray(features) - mean) / std) ** 2)))


def match_moments(image: np.ndarray, source: np.ndarray, record: dict[str, Any]) -> np.ndarray:
    """``image`` with each band moved by the affine map that takes ``source``'s band mean and
    standard deviation (``source``: pixels of the whole input, e.g. a sample of its tiles,
    (..., 3) uint8) to the record's."""
    px = source.reshape(-1, 3).astype(np.float64)
    gain = np.asarray(record["band_std"]) / np.maximum(px.std(axis=0), 1.0)
    out = (image - px.mean(axis=0)) * gain + np.asarray(record["band_mean"])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def match_histograms(image: np.ndarray, source: np.ndarray, record: dict[str, Any]) -> np.ndarray:
    """``image`` with each band mapped through ``source``'s percentiles onto the record's
    (histogram matching, piecewise linear between the 101 percentiles)."""
    px = source.reshape(-1, 3)
    out = np.empty(image.shape, np.float64)
    for k in range(3):
        ours = np.percentile(px[:, k], QUANTILES)
        ours = ours + np.arange(ours.size) * 1e-6  # strictly increasing for np.interp
        out[..., k] = np.interp(image[..., k], ours, record["band_quantiles"][k])
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
