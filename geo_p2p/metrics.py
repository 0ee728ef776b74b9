"""Image-translation metrics for aerial -> map predictions.

All functions take ``numpy`` ``uint8`` arrays of shape ``(H, W, 3)`` (RGB, values 0..255); a
prediction and its target must have the same shape. The functions score the arrays exactly as
given; the literature's aerial -> map protocol (both images bilinearly resized to 256x256 first)
is applied by :class:`MetricAccumulator`, which scores *every* metric, L1, PSNR and SSIM included,
on the 256x256 pair so that models of different native tile sizes are comparable.

Resizing uses PIL's bilinear filter (``Image.Resampling.BILINEAR``, which antialiases when
shrinking) and yields ``uint8`` again; a 256x256 image is left untouched.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

EVAL_SIZE = 256
"""Side length both images are resized to before scoring (literature protocol)."""

CLASS_NAMES: tuple[str, ...] = ("land", "road", "water", "park", "highway")
"""Map classes, in class-index order."""

PALETTE: dict[str, tuple[tuple[int, int, int], ...]] = {
    "land": (
        (236, 228, 220),
        (244, 244, 236),
        (228, 228, 220),
        (236, 236, 228),
        (220, 220, 212),
        (244, 236, 236),
    ),
    "road": ((253, 253, 253),),
    "water": ((180, 212, 252), (172, 204, 252)),
    "park": ((204, 220, 172), (204, 228, 172), (188, 212, 188)),
    "highway": ((248, 158, 40), (248, 232, 104), (248, 200, 72)),
}
"""Prototype colours of the pix2pix maps palette, per class."""

_PROTOS = np.array([c for name in CLASS_NAMES for c in PALETTE[name]], dtype=np.float32)
_PROTO_CLASS = np.array(
    [i for i, name in enumerate(CLASS_NAMES) for _ in PALETTE[name]], dtype=np.int64
)
_PROTO_SQNORM = (_PROTOS**2).sum(axis=1)

SSIM_WIN = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_L = 255.0


def _check_image(img: np.ndarray, name: str = "image") -> None:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8:
        raise TypeError(f"{name} must be a numpy uint8 array")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{name} must have shape (H, W, 3), got {img.shape}")


def _check_pair(pred: np.ndarray, target: np.ndarray) -> None:
    _check_image(pred, "pred")
    _check_image(target, "target")
    if pred.shape != target.shape:
        raise ValueError(f"shape mismatch: pred {pred.shape} vs target {target.shape}")


def resize_for_eval(img: np.ndarray, size: int = EVAL_SIZE) -> np.ndarray:
    """Resize an RGB uint8 image to ``size`` x ``size`` with PIL bilinear (no-op if already so)."""
    _check_image(img)
    if img.shape[:2] == (size, size):
        return img
    out = Image.fromarray(img, mode="RGB").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(out, dtype=np.uint8)


def _diff(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    return pred.astype(np.int32) - target.astype(np.int32)


def l1(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute difference on the [-1, 1] scale: ``mean(|p - t|) / 127.5`` (range 0..2)."""
    _check_pair(pred, target)
    return float(np.abs(_diff(pred, target)).mean() / 127.5)


def mse(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean squared difference over all pixels and channels, on the 0..255 scale."""
    _check_pair(pred, target)
    d = _diff(pred, target)
    return float((d * d).mean())


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB with peak 255; ``inf`` for identical images."""
    m = mse(pred, target)
    if m == 0.0:
        return math.inf
    return 10.0 * math.log10(SSIM_L**2 / m)


def _gaussian_kernel(size: int = SSIM_WIN, sigma: float = SSIM_SIGMA) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of ``x`` (H, W, ...) with the 1-D kernel ``g`` on axes 0, 1."""
    k = g.size
    h, w = x.shape[0] - k + 1, x.shape[1] - k + 1
    rows = sum(g[i] * x[i : i + h] for i in range(k))
    return sum(g[j] * rows[:, j : j + w] for j in range(k))


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004), mean over RGB channels.

    11x11 Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03, L = 255, population (biased)
    local variances as in the authors' MATLAB ``ssim_index``. The SSIM map is computed over the
    'valid' region only (window fully inside the image, (H-10) x (W-10) positions, no padding),
    averaged per channel, then over channels. scikit-image with ``gaussian_weights=True`` also
    averages over this region but uses sample (ddof=1) covariances, so it differs slightly
    unless called with ``use_sample_covariance=False``. Images must be at least 11x11.
    """
    _check_pair(pred, target)
    if min(pred.shape[:2]) < SSIM_WIN:
        raise ValueError(f"SSIM needs images of at least {SSIM_WIN}x{SSIM_WIN}")
    x = pred.astype(np.float64)
    y = target.astype(np.float64)
    stacked = np.concatenate([x, y, x * x, y * y, x * y], axis=2)  # (H, W, 15)
    f = _filter_valid(stacked, _gaussian_kernel())
    mx, my, exx, eyy, exy = (f[..., 3 * i : 3 * i + 3] for i in range(5))
    vx = exx - mx * mx
    vy = eyy - my * my
    cxy = exy - mx * my
    c1 = (SSIM_K1 * SSIM_L) ** 2
    c2 = (SSIM_K2 * SSIM_L) ** 2
    smap = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(smap.mean(axis=(0, 1)).mean())


def rmse(pred: np.ndarray, target: np.ndarray) -> float:
    """Per-image RMSE of the maps literature: ``sqrt(sum_pixels ||p - t||^2 / (H * W))``.

    ``||.||`` is the Euclidean distance between RGB vectors (0..255 scale); at 256x256 the
    divisor is 256^2 as in the literature.
    """
    _check_pair(pred, target)
    d = _diff(pred, target)
    return math.sqrt(float((d * d).sum()) / (pred.shape[0] * pred.shape[1]))


def pixel_accuracy(pred: np.ndarray, target: np.ndarray, threshold: float) -> float:
    """Share of pixels whose largest per-channel absolute difference is below ``threshold``."""
    _check_pair(pred, target)
    return float((np.abs(_diff(pred, target)).max(axis=2) < threshold).mean())


def classify(img: np.ndarray) -> np.ndarray:
    """Map each pixel to the class index (see ``CLASS_NAMES``) of its nearest palette colour.

    Nearest is by Euclidean distance in RGB; an exact tie goes to the prototype listed first in
    ``PALETTE``. Returns an ``(H, W)`` int64 array.
    """
    _check_image(img)
    flat = img.reshape(-1, 3).astype(np.float32)
    # ||x - p||^2 = ||x||^2 - 2 x.p + ||p||^2; ||x||^2 is constant per pixel. All terms are
    # integers below 2^24, so float32 is exact and ties are resolved deterministically.
    d = _PROTO_SQNORM[None, :] - 2.0 * (flat @ _PROTOS.T)
    return _PROTO_CLASS[d.argmin(axis=1)].reshape(img.shape[:2])


def class_confusion(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """5x5 pixel-count confusion matrix, rows = predicted class, columns = target class."""
    _check_pair(pred, target)
    n = len(CLASS_NAMES)
    idx = classify(pred).ravel() * n + classify(target).ravel()
    return np.bincount(idx, minlength=n * n).reshape(n, n)


def iou_from_confusion(conf: np.ndarray) -> dict[str, float]:
    """Per-class IoU ``|P & T| / |P | T|`` from a confusion matrix; NaN where the union is empty."""
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(axis=0) + conf.sum(axis=1) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, np.nan)
    return {name: float(v) for name, v in zip(CLASS_NAMES, iou, strict=True)}


def class_iou(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Per-class IoU of one image pair (as given, no resizing); NaN for absent classes."""
    return iou_from_confusion(class_confusion(pred, target))


class MetricAccumulator:
    """Scores a set of (prediction, target) pairs with the aerial -> map protocol.

    Each image is first resized to 256x256 (PIL bilinear, see :func:`resize_for_eval`); pred and
    target may have different native sizes. ``l1``, ``psnr``, ``ssim``, ``rmse``, ``acc5`` and
    ``acc10`` are per-image values averaged over images (so one identical pair makes mean PSNR
    ``inf``). Class IoUs pool intersection and union counts over the whole set (not a mean of
    per-image IoUs); ``miou`` is the mean of the five, ignoring classes absent from every image
    (NaN IoU).
    """

    _PER_IMAGE = ("l1", "psnr", "ssim", "rmse", "acc5", "acc10")

    def __init__(self, size: int = EVAL_SIZE) -> None:
        self.size = size
        self._sums = dict.fromkeys(self._PER_IMAGE, 0.0)
        self._conf = np.zeros((len(CLASS_NAMES),) * 2, dtype=np.int64)
        self.n = 0

    def add(self, pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
        """Score one pair, add it to the totals, and return its per-image metrics."""
        p = resize_for_eval(pred, self.size)
        t = resize_for_eval(target, self.size)
        scores = {
            "l1": l1(p, t),
            "psnr": psnr(p, t),
            "ssim": ssim(p, t),
            "rmse": rmse(p, t),
            "acc5": pixel_accuracy(p, t, 5),
            "acc10": pixel_accuracy(p, t, 10),
        }
        for k, v in scores.items():
            self._sums[k] += v
        self._conf += class_confusion(p, t)
        self.n += 1
        return scores

    def summary(self) -> dict[str, float]:
        """Set-level metrics: l1, psnr, ssim, rmse, acc5, acc10, iou_<class>, miou, n."""
        if self.n == 0:
            raise ValueError("no pairs added")
        out = {k: v / self.n for k, v in self._sums.items()}
        ious = iou_from_confusion(self._conf)
        out.update({f"iou_{k}": v for k, v in ious.items()})
        vals = [v for v in ious.values() if not math.isnan(v)]
        out["miou"] = sum(vals) / len(vals) if vals else math.nan
        out["n"] = float(self.n)
        return out


_ORDER = (
    "l1",
    "psnr",
    "ssim",
    "rmse",
    "acc5",
    "acc10",
    *(f"iou_{c}" for c in CLASS_NAMES),
    "miou",
    "n",
)
_LABELS = {
    "l1": "L1 ([-1,1] scale)",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "rmse": "RMSE (0..255)",
    "acc5": "acc@5",
    "acc10": "acc@10",
    **{f"iou_{c}": f"IoU {c}" for c in CLASS_NAMES},
    "miou": "mIoU",
    "n": "pairs",
}


def _fmt(key: str, value: float) -> str:
    if key == "n":
        return str(int(value))
    return f"{value:.2f}" if key == "psnr" else f"{value:.4f}"


def format_table(summary: dict[str, float]) -> str:
    """Render a summary as a two-column aligned text table (known keys in order, then others)."""
    keys = [k for k in _ORDER if k in summary] + [k for k in summary if k not in _ORDER]
    labels = [_LABELS.get(k, k) for k in keys]
    values = [_fmt(k, summary[k]) for k in keys]
    lw = max([len("metric"), *map(len, labels)])
    vw = max([len("value"), *map(len, values)])
    lines = [f"{'metric':<{lw}}  {'value':>{vw}}", f"{'-' * lw}  {'-' * vw}"]
    lines += [f"{lab:<{lw}}  {val:>{vw}}" for lab, val in zip(labels, values, strict=True)]
    return "\n".join(lines)
