"""The style-free class reading of maps (road, water, green, other) and its set scores."""

from __future__ import annotations

import doctest
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import geo_p2p.travel as travel
from geo_p2p import Translator
from geo_p2p.travel import (
    TRAVEL_CLASSES,
    TravelScore,
    read_classes,
    score_pairs,
    web_mercator_gsd,
)

DATA = Path(__file__).parent / "data"
OTHER, ROAD, WATER, GREEN = range(4)


def classes_of(*colours: tuple[int, int, int]) -> list[int]:
    return read_classes(np.array([colours], np.uint8))[0].tolist()


def test_docstring_examples() -> None:
    assert doctest.testmod(travel).failed == 0


def test_palettes_of_three_styles_read_alike() -> None:
    google_2013 = {  # the maps/ palette (data README)
        ROAD: [(253, 253, 253), (248, 158, 40), (248, 232, 104), (248, 200, 72)],
        WATER: [(180, 212, 252), (172, 204, 252)],
        GREEN: [(204, 220, 172), (204, 228, 172), (188, 212, 188)],
        OTHER: [(236, 228, 220), (244, 244, 236), (228, 228, 220), (220, 220, 212)],
    }
    carto = {  # OpenStreetMap's standard style
        ROAD: [(255, 255, 255), (249, 178, 156), (252, 214, 164), (247, 250, 191)],
        WATER: [(170, 211, 223)],
        GREEN: [(200, 250, 204), (173, 209, 158), (205, 235, 176)],
        OTHER: [
            (242, 239, 233),
            (217, 208, 201),
            (250, 128, 114),
            (255, 214, 209),
            (242, 218, 217),
        ],
    }
    for palette in (google_2013, carto):
        for cls, colours in palette.items():
            assert classes_of(*colours) == [cls] * len(colours), (cls, colours)
    assert classes_of((255, 255, 229)) == [OTHER]  # Carto's school grounds are not a road


@pytest.mark.parametrize(
    ("colour", "cls"),
    [
        ((251, 251, 251), ROAD),
        ((250, 251, 251), OTHER),  # one channel below 251
        ((235, 215, 195), ROAD),  # R - B = 40, G - B = 20, bright
        ((234, 215, 195), OTHER),  # not bright enough
        ((240, 215, 201), OTHER),  # R - B = 39
        ((240, 214, 200), OTHER),  # G - B = 14: pink, not orange
        ((240, 252, 180), ROAD),  # G - R = 12
        ((240, 253, 180), GREEN),  # G - R = 13: a green, not a road
        ((250, 129, 100), OTHER),  # G < 130: red footway dashes
        ((120, 140, 146), WATER),  # B - R = 26, B >= G, R = 120
        ((119, 140, 146), OTHER),  # R < 120: dark blue text
        ((120, 140, 145), OTHER),  # B - R = 25
        ((139, 150, 139), GREEN),  # G - R = 11, G - B = 11, G = 150
        ((140, 150, 139), OTHER),  # G - R = 10
        ((130, 149, 120), OTHER),  # G < 150
    ],
)
def test_rule_boundaries(colour: tuple[int, int, int], cls: int) -> None:
    assert classes_of(colour) == [cls]


def test_real_openstreetmap_carto_crop() -> None:
    """Moscow, OpenStreetMap Carto (JPEG): trunk and secondary roads, a park, a footway."""
    image = np.asarray(Image.open(DATA / "moscow_carto_map.png").convert("RGB"))
    reading = read_classes(image)
    assert reading[35, 15] == ROAD and image[35, 15].tolist() == [244, 216, 168]  # trunk
    assert reading[70, 30] == ROAD  # secondary, pale yellow
    assert reading[100, 200] == GREEN and reading[110, 150] == GREEN  # park
    assert reading[10, 190] == OTHER and reading[100, 60] == OTHER  # land, pavement
    shares = np.bincount(reading.ravel(), minlength=4) / reading.size
    assert 0.2 < shares[ROAD] < 0.3 and 0.38 < shares[GREEN] < 0.5 and shares[WATER] < 0.02


def test_real_maps_crop() -> None:
    """New York, the maps/ Google style (JPEG): a highway, a river and a park."""
    image = np.asarray(Image.open(DATA / "maps_val_215_map.png").convert("RGB"))
    shares = np.bincount(read_classes(image).ravel(), minlength=4) / image[..., 0].size
    assert shares[ROAD] > 0.15 and shares[WATER] > 0.35 and shares[GREEN] > 0.05


def test_set_score_pools_counts_and_leaves_out_absent_classes() -> None:
    road, land = (253, 253, 253), (236, 228, 220)
    target = np.full((4, 4, 3), land, np.uint8)
    target[:, :2] = road
    pred = np.full((4, 4, 3), land, np.uint8)
    pred[:, :1] = road
    score = TravelScore()
    score.add(pred, target)  # road: intersection 4, union 8
    score.add(target, target)  # intersection 8, union 8
    summary = score.summary()
    assert summary["iou_road"] == pytest.approx(12 / 16)
    assert math.isnan(summary["iou_water"]) and math.isnan(summary["iou_green"])
    assert summary["mean"] == pytest.approx(12 / 16)  # water and green in neither: left out
    assert summary["share_road"] == pytest.approx(0.5) and summary["n"] == 2
    score.add(np.full((4, 4, 3), (180, 212, 252), np.uint8), target)  # water drawn, absent
    assert score.summary()["iou_water"] == 0.0
    assert score.summary()["mean"] == pytest.approx((12 / 24 + 0.0) / 2)


def test_prediction_is_read_then_resampled_to_the_target_grid() -> None:
    rng = np.random.default_rng(0)
    palette = np.array([(236, 228, 220), (253, 253, 253), (180, 212, 252), (204, 220, 172)])
    coarse = palette[rng.integers(0, 4, (8, 8))].astype(np.uint8)
    target = coarse.repeat(2, axis=0).repeat(2, axis=1)
    score = TravelScore()
    score.add(coarse, target)  # half the size, the same map
    assert score.summary()["mean"] == 1.0
    assert score.confusion.sum() == 16 * 16


def test_score_pairs_resamples_the_aerial_to_the_model_resolution(tmp_path: Path) -> None:
    """With an identity 'model' and a pair whose halves are the same map, every class matches;
    the aerial half reaches the model at the model's resolution (here half the data's)."""
    rng = np.random.default_rng(1)
    palette = np.array([(236, 228, 220), (253, 253, 253), (180, 212, 252), (204, 220, 172)])
    half = palette[rng.integers(0, 4, (16, 16))].astype(np.uint8).repeat(4, 0).repeat(4, 1)
    path = tmp_path / "pair.png"
    Image.fromarray(np.concatenate([half, half], axis=1)).save(path)
    seen = []

    def identity(image: np.ndarray) -> np.ndarray:
        seen.append(image.shape)
        return Translator(torch.nn.Identity(), tile=32, device="cpu").translate(image)

    score = TravelScore()
    score_pairs(identity, [(path, 0.5)], model_gsd=1.0, scores=[score])
    assert seen == [(32, 32, 3)]
    assert score.summary()["mean"] > 0.7  # bicubic halving blurs the class borders only


def test_web_mercator_resolution() -> None:
    assert web_mercator_gsd(0.0, 17) == pytest.approx(1.1943, abs=1e-4)
    assert web_mercator_gsd(60.0, 17) == pytest.approx(1.1943 / 2, abs=1e-4)
    assert TRAVEL_CLASSES == ("other", "road", "water", "green")
