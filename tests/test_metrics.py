"""Tests for geo_p2p.metrics against answers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geo_p2p import metrics as M

LAND = (236, 228, 220)
LAND2 = (244, 244, 236)
ROAD = (253, 253, 253)
WATER = (180, 212, 252)
WATER2 = (172, 204, 252)
PARK = (204, 220, 172)
HIGHWAY = (248, 158, 40)


def const(rgb: tuple[int, int, int], h: int = 256, w: int = 256) -> np.ndarray:
    return np.broadcast_to(np.array(rgb, dtype=np.uint8), (h, w, 3)).copy()


def rows(bands: list[tuple[tuple[int, int, int], int]], w: int = 256) -> np.ndarray:
    """Image made of horizontal bands: (colour, number of rows)."""
    return np.concatenate([const(c, n, w) for c, n in bands], axis=0)


def noise(seed: int, h: int = 64, w: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --- l1 / psnr -------------------------------------------------------------------------------


def test_l1_extremes_and_planted():
    assert M.l1(const((0, 0, 0), 8, 8), const((255, 255, 255), 8, 8)) == pytest.approx(2.0)
    a = np.zeros((10, 10, 3), np.uint8)
    b = a.copy()
    b[3, 4, 1] = 51
    assert M.l1(a, b) == pytest.approx(51 / 300 / 127.5)
    assert M.l1(b, a) == M.l1(a, b)


def test_psnr_known_mse():
    a = np.zeros((10, 10, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 255  # MSE = 255^2 / 300 -> PSNR = 10 log10(300)
    assert M.mse(a, b) == pytest.approx(255**2 / 300)
    assert M.psnr(a, b) == pytest.approx(10 * math.log10(300))
    # uniform error of 5: MSE 25
    assert M.psnr(const((10, 10, 10), 4, 4), const((15, 15, 15), 4, 4)) == pytest.approx(
        10 * math.log10(255**2 / 25)
    )
    assert M.psnr(a, a) == math.inf


# --- ssim ------------------------------------------------------------------------------------


def naive_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Window-by-window SSIM, written independently of the module's separable filter."""
    r = np.arange(11) - 5.0
    g = np.exp(-(r**2) / (2 * 1.5**2))
    w = np.outer(g, g)
    w /= w.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for c in range(3):
        for i in range(x.shape[0] - 10):
            for j in range(x.shape[1] - 10):
                a = x[i : i + 11, j : j + 11, c].astype(float)
                b = y[i : i + 11, j : j + 11, c].astype(float)
                ma, mb = (w * a).sum(), (w * b).sum()
                va, vb = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum()
                cov = (w * (a - ma) * (b - mb)).sum()
                vals.append(
                    ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
                )
    return float(np.mean(vals))


def test_ssim_identity():
    x = noise(0)
    assert M.ssim(x, x) == pytest.approx(1.0, abs=1e-12)


def test_ssim_constant_closed_form():
    # No variance anywhere: SSIM reduces to the luminance term.
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 150 + c1) / (100**2 + 150**2 + c1)
    got = M.ssim(const((100, 100, 100), 32, 32), const((150, 150, 150), 32, 32))
    assert got == pytest.approx(expected, rel=1e-9)
    # mean over channels: channels (100 vs 150), (0 vs 0) -> 1, (255 vs 255) -> 1
    got = M.ssim(const((100, 0, 255), 20, 20), const((150, 0, 255), 20, 20))
    assert got == pytest.approx((expected + 2) / 3, rel=1e-9)


def test_ssim_matches_windowwise_reference():
    x, y = noise(1, 14, 13), noise(2, 14, 13)
    assert M.ssim(x, y) == pytest.approx(naive_ssim(x, y), rel=1e-9)
    # a correlated pair, so the structure term matters
    z = np.clip(x.astype(int) + np.random.default_rng(3).integers(-20, 21, x.shape), 0, 255)
    z = z.astype(np.uint8)
    assert M.ssim(x, z) == pytest.approx(naive_ssim(x, z), rel=1e-9)
    assert 0.0 < M.ssim(x, z) < 1.0
    assert M.ssim(x, z) == pytest.approx(M.ssim(z, x))


def test_ssim_too_small():
    with pytest.raises(ValueError):
        M.ssim(noise(0, 10, 20), noise(1, 10, 20))


# --- rmse / accuracy -------------------------------------------------------------------------


def test_rmse_constant_and_planted():
    assert M.rmse(const((10, 20, 30)), const((13, 24, 30))) == pytest.approx(5.0)
    a = const((100, 100, 100))
    b = a.copy()
    b[7, 9] = (103, 96, 100)  # one pixel at distance 5 -> sqrt(25 / 256^2)
    assert M.rmse(a, b) == pytest.approx(5 / 256)


def test_pixel_accuracy_planted():
    a = const((100, 100, 100), 100, 100)
    b = a.copy()
    flat = b.reshape(-1, 3)
    flat[0:10] += np.array([4, 4, 4], np.uint8)  # < 5: still correct at 5 and 10
    flat[10:30, 1] += 5  # exactly 5: wrong at 5, right at 10
    flat[30:60, 2] -= 12  # wrong at both; only one channel differs
    assert M.pixel_accuracy(b, a, 5) == pytest.approx((10000 - 50) / 10000)
    assert M.pixel_accuracy(b, a, 10) == pytest.approx((10000 - 30) / 10000)
    assert M.pixel_accuracy(a, a, 5) == 1.0


# --- classes / IoU ---------------------------------------------------------------------------


def test_classify_palette():
    for cls, name in enumerate(M.CLASS_NAMES):
        for rgb in M.PALETTE[name]:
            assert (M.classify(const(rgb, 2, 2)) == cls).all(), (name, rgb)
    near = np.array([[[250, 250, 250], [20, 30, 200], [255, 150, 30], [190, 215, 180]]], np.uint8)
    assert M.classify(near).tolist() == [[1, 2, 4, 3]]


def test_iou_two_classes():
    target = np.concatenate([const(LAND, 256, 128), const(WATER, 256, 128)], axis=1)
    pred = np.concatenate([const(LAND2, 256, 192), const(WATER2, 256, 64)], axis=1)
    iou = M.class_iou(pred, target)
    assert iou["land"] == pytest.approx(128 / 192)
    assert iou["water"] == pytest.approx(64 / 128)
    assert all(math.isnan(iou[k]) for k in ("road", "park", "highway"))


def test_iou_five_classes_and_summary():
    target = rows([(LAND, 100), (ROAD, 20), (WATER, 60), (PARK, 50), (HIGHWAY, 26)])
    pred = rows([(LAND2, 90), (ROAD, 30), (WATER2, 70), (PARK, 40), (HIGHWAY, 26)])
    expected = {"land": 0.9, "road": 20 / 30, "water": 60 / 70, "park": 0.8, "highway": 1.0}
    iou = M.class_iou(pred, target)
    for k, v in expected.items():
        assert iou[k] == pytest.approx(v), k
    acc = M.MetricAccumulator()
    acc.add(pred, target)
    s = acc.summary()
    for k, v in expected.items():
        assert s[f"iou_{k}"] == pytest.approx(v), k
    assert s["miou"] == pytest.approx(sum(expected.values()) / 5)


def test_iou_pooled_over_images_not_averaged():
    half = np.concatenate([const(LAND, 256, 128), const(WATER, 256, 128)], axis=1)
    pairs = [(const(LAND), half), (const(WATER), const(WATER))]
    acc = M.MetricAccumulator()
    for p, t in pairs:
        acc.add(p, t)
    s = acc.summary()
    # pooled: land 0.5N / N; water N / 1.5N (a mean of per-image IoUs would give water 0.5)
    assert s["iou_land"] == pytest.approx(0.5)
    assert s["iou_water"] == pytest.approx(2 / 3)
    assert math.isnan(s["iou_road"])
    assert s["miou"] == pytest.approx((0.5 + 2 / 3) / 2)
    pooled = M.class_iou(
        np.concatenate([p for p, _ in pairs], axis=0), np.concatenate([t for _, t in pairs], axis=0)
    )
    for name in M.CLASS_NAMES:
        np.testing.assert_equal(s[f"iou_{name}"], pooled[name])


# --- accumulator / resizing ------------------------------------------------------------------


def test_accumulator_keys_and_means():
    acc = M.MetricAccumulator()
    a, b = noise(4, 256, 256), noise(5, 256, 256)
    r1 = acc.add(a, b)
    r2 = acc.add(const((10, 20, 30)), const((13, 24, 30)))
    s = acc.summary()
    assert set(s) == {
        "l1", "psnr", "ssim", "rmse", "acc5", "acc10", "miou", "n",
        *(f"iou_{c}" for c in M.CLASS_NAMES),
    }  # fmt: skip
    assert s["n"] == 2
    assert r1["ssim"] == pytest.approx(M.ssim(a, b))
    assert r1["l1"] == pytest.approx(M.l1(a, b))
    assert r1["psnr"] == pytest.approx(M.psnr(a, b))
    assert r2["rmse"] == pytest.approx(5.0)
    assert r2["acc5"] == 1.0 and r2["acc10"] == 1.0
    assert s["rmse"] == pytest.approx((M.rmse(a, b) + 5.0) / 2)
    assert s["ssim"] == pytest.approx((r1["ssim"] + r2["ssim"]) / 2)


def test_accumulator_resizes_to_256():
    acc = M.MetricAccumulator()
    # different native sizes; bilinear keeps constants constant
    r = acc.add(const((10, 20, 30), 512, 512), const((13, 24, 30), 300, 200))
    assert r["rmse"] == pytest.approx(5.0)
    x = noise(6, 512, 512)
    r = acc.add(x, x[::2, ::2].copy())
    small = M.resize_for_eval(x)
    assert small.shape == (256, 256, 3) and small.dtype == np.uint8
    assert r["l1"] == pytest.approx(M.l1(small, M.resize_for_eval(x[::2, ::2].copy())))
    assert M.resize_for_eval(x[:256, :256]) is not None
    y = noise(7, 256, 256)
    assert M.resize_for_eval(y) is y


def test_empty_and_bad_inputs():
    with pytest.raises(ValueError):
        M.MetricAccumulator().summary()
    with pytest.raises(TypeError):
        M.l1(np.zeros((4, 4, 3)), np.zeros((4, 4, 3)))
    with pytest.raises(ValueError):
        M.rmse(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError):
        M.classify(np.zeros((4, 4), np.uint8))


def test_format_table():
    acc = M.MetricAccumulator()
    acc.add(const(LAND), const(ROAD))
    text = M.format_table(acc.summary())
    lines = text.splitlines()
    assert len({len(line) for line in lines}) == 1  # aligned
    assert lines[0].startswith("metric")
    assert any(line.startswith("IoU highway") for line in lines)
    assert lines[-1].split() == ["pairs", "1"]
    assert "nan" in text  # absent classes shown, not hidden


def test_resize_is_bilinear():
    # 1-pixel vertical stripes 0/200 at 512 wide: PIL bilinear halving weights the four nearest
    # columns 1/8, 3/8, 3/8, 1/8 -> every interior column is exactly 100 (nearest would give 0/200).
    x = np.zeros((256, 512, 3), np.uint8)
    x[:, 1::2] = 200
    r = M.resize_for_eval(x)
    assert r.shape == (256, 256, 3)
    assert (r[:, 1:-1] == 100).all()


def test_accumulator_planted_accuracy():
    a = const((100, 100, 100))
    b = a.copy()
    b[0, :64, 0] = 105  # exactly 5 off: wrong at 5, right at 10
    b[1, :32, 2] = 90  # 10 off: wrong at both
    acc = M.MetricAccumulator()
    acc.add(b, a)
    acc.add(a, a)
    s = acc.summary()
    n = 256 * 256
    assert s["acc5"] == pytest.approx(((n - 96) / n + 1) / 2)
    assert s["acc10"] == pytest.approx(((n - 32) / n + 1) / 2)
    assert s["rmse"] == pytest.approx(math.sqrt((64 * 25 + 32 * 100) / n) / 2)
    assert s["psnr"] == math.inf  # one identical pair: documented
