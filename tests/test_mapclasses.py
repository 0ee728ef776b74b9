"""Map classes: the palette in the model card, learning one, the crisp style block by block."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geo_p2p.card import DEFAULT_MODEL_DIR, load_card
from geo_p2p.mapclasses import CrispStream, Palette, learn_palette, majority_filter, maps_palette
from geo_p2p.mapclasses.crisp import ClassBlock, crisp_image, window_radius
from geo_p2p.mapclasses.palette import best_colour, pair_targets
from geo_p2p.metrics import classify
from geo_p2p.render.mosaic import Block

EXAMPLE_PAIRS = Path(__file__).parents[1] / "examples" / "pairs" / "train"


def _reference_mode(values: np.ndarray, radius: int, classes: int) -> np.ndarray:
    """The majority filter written out pixel by pixel (the definition)."""
    out = values.copy()
    h, w = values.shape
    for y in range(h):
        for x in range(w):
            if values[y, x] == 0:
                continue
            win = values[max(y - radius, 0) : y + radius + 1, max(x - radius, 0) : x + radius + 1]
            counts = np.bincount(win.ravel(), minlength=classes + 1)[1:]
            own = counts[values[y, x] - 1]
            if counts.max() > own:
                out[y, x] = counts.argmax() + 1
    return out


def test_maps_palette_classifies_as_the_metric_does():
    """Without margins, the maps palette is the metric's classification; the road margin
    moves pixels between road and the others only."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    palette = maps_palette()
    plain = Palette(tuple(replace(c, margin=0.0) for c in palette.classes))
    assert np.array_equal(plain.classify(image), classify(image))
    moved = palette.classify(image) != classify(image)
    road = palette.index("road")
    assert ((palette.classify(image) == road) | (classify(image) == road))[moved].all()


def test_a_margin_widens_a_class():
    grey = np.array([[246, 246, 242]], np.uint8)  # nearer land (244,244,236) than road
    palette = maps_palette()
    plain = Palette(tuple(replace(c, margin=0.0) for c in palette.classes))
    assert plain.names[plain.classify(grey)[0]] == "land"
    assert palette.names[palette.classify(grey)[0]] == "road"


def test_bundled_card_carries_the_maps_palette():
    card = load_card(DEFAULT_MODEL_DIR)
    assert card.classes is not None
    palette = Palette.from_card(card.classes)
    assert palette == maps_palette()
    assert palette.names == ("land", "road", "water", "park", "highway")
    assert json.loads(json.dumps(palette.as_card())) == card.classes


@pytest.mark.parametrize(
    "entries, message",
    [
        ([{"name": "a", "colour": [1, 2, 3]}], "must have name, colour and prototypes"),
        ([{"name": "a", "colour": [1, 2, 3], "prototypes": [[1, 2, 3]], "margin": -1}], "margin"),
        ([{"name": "a", "colour": [1, 2, 300], "prototypes": [[1, 2, 3]]}], "0..255"),
        ([{"name": "a", "colour": [1, 2, 3], "prototypes": []}], "at least one prototype"),
        (
            [{"name": "a", "colour": [1, 2, 3], "prototypes": [[1, 2, 3]]}] * 2,
            "distinct",
        ),
    ],
)
def test_bad_card_classes_are_refused(entries, message):
    with pytest.raises(ValueError, match=message):
        Palette.from_card(entries)


def _targets() -> list[np.ndarray]:
    """The map halves of the example pairs (real maps-style targets)."""
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(EXAMPLE_PAIRS.iterdir())]
    return [im[:, im.shape[1] // 2 :] for im in images]


def test_learned_palette_finds_the_maps_colours():
    targets = _targets()
    palette = learn_palette(targets, k=4, seed=0)
    assert palette.names == ("class_1", "class_2", "class_3", "class_4")
    assert palette == learn_palette(targets, k=4, seed=0)  # deterministic
    # Each learned paint colour is a maps-style colour: within a few digital numbers of the
    # paint colour of the maps class it falls in.
    maps = maps_palette()
    for c in palette.classes:
        known = maps.colours[maps.classify(np.array(c.colour, np.uint8))]
        assert np.abs(known.astype(int) - c.colour).max() <= 12, (c, known)
    # The largest class is the land colour, and classifying with the learned palette agrees
    # with the maps palette on most target pixels.
    assert maps.classify(np.array(palette.classes[0].colour, np.uint8)) == maps.index("land")


def test_learned_palette_of_training_pairs():
    """What geo-p2p train records: the classes of the training targets."""
    files = sorted(EXAMPLE_PAIRS.iterdir())
    targets = list(pair_targets(files, limit=3))
    assert len(targets) == 3 and targets[0].shape == (600, 600, 3)
    assert np.array_equal(targets[1], _targets()[2])  # every second file, the map half
    palette = learn_palette(pair_targets(files), k=5, seed=0)
    assert Palette.from_card(palette.as_card()) == palette


def test_learned_palette_names_and_merged_clusters():
    targets = _targets()
    palette = learn_palette(targets, names=["ground", "ground", "roads", "blue"], seed=1)
    assert palette.names == ("ground", "roads", "blue")
    assert len(palette.classes[0].prototypes) == 2
    with pytest.raises(ValueError, match="3 class names given for 4 classes"):
        learn_palette(targets, k=4, names=["a", "b", "c"])


def test_learned_palette_chooses_k_on_flat_colours():
    # Three flat colours with a little noise: k is found to be 3.
    rng = np.random.default_rng(0)
    colours = np.array([[230, 228, 222], [255, 255, 255], [170, 205, 250]])
    image = colours[rng.integers(0, 3, (60, 60))] + rng.integers(-2, 3, (60, 60, 3))
    palette = learn_palette([np.clip(image, 0, 255).astype(np.uint8)], seed=0)
    assert len(palette.classes) == 3
    found = sorted(c.colour for c in palette.classes)
    assert np.abs(np.array(found) - sorted(colours.tolist())).max() <= 2


def test_best_colour_sees_through_noise():
    rng = np.random.default_rng(0)
    pixels = np.clip(np.array([200, 100, 50]) + rng.integers(-3, 4, (500, 3)), 0, 255)
    odd = np.array([[10, 10, 10]] * 100)  # one exact colour, more frequent than any other
    assert best_colour(np.concatenate([pixels, odd]).astype(np.uint8)) != (10, 10, 10)


def test_majority_filter_matches_its_definition():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 4, (23, 31)).astype(np.uint8)
    for radius in (1, 2, 3):
        assert np.array_equal(
            majority_filter(values, radius, 3), _reference_mode(values, radius, 3)
        )


def test_majority_filter_removes_speckle_and_keeps_no_data():
    values = np.full((9, 9), 1, np.uint8)
    values[4, 4] = 2  # a lone pixel of another class
    values[0, :] = 0  # no data
    out = majority_filter(values, 1, 2)
    assert out[4, 4] == 1 and (out[0] == 0).all()
    assert window_radius(4.5, 0.9) == 2 and window_radius(0, 0.9) == 0


def _blocks(rgb: np.ndarray, mask: np.ndarray, block: tuple[int, int]) -> list[Block]:
    bh, bw = block
    h, w = mask.shape
    return [
        Block(r, c, rgb[:, r : r + bh, c : c + bw].copy(), mask[r : r + bh, c : c + bw].copy())
        for r in range(0, h, bh)
        for c in range(0, w, bw)
    ]


def _assemble(blocks: list[ClassBlock], shape: tuple[int, int]) -> np.ndarray:
    out = np.full(shape, 99, np.uint8)
    for b in blocks:
        out[b.row : b.row + b.values.shape[0], b.col : b.col + b.values.shape[1]] = b.values
    return out


@pytest.mark.parametrize("order", ["rows", "strips", "random"])
def test_crisp_stream_equals_the_whole_raster_filter(order):
    """Blocks in any order (row by row, in strips of columns as render does, shuffled) give
    exactly the filter of the whole raster, no-data included."""
    palette = maps_palette()
    rng = np.random.default_rng(1)
    h, w, block = 70, 90, (16, 32)
    rgb = palette.colours[rng.integers(0, 5, (h, w))].transpose(2, 0, 1).copy()
    mask = np.full((h, w), 255, np.uint8)
    mask[30:45, 10:50] = 0
    blocks = _blocks(rgb, mask, block)
    if order == "strips":
        blocks.sort(key=lambda b: (b.col // 64, b.row, b.col))
    elif order == "random":
        rng.shuffle(blocks)
    out: list[ClassBlock] = []
    stream = CrispStream(h, w, block, palette, 3, out.append)
    for b in blocks:
        stream.add(b)
    assert stream.held == 0 and len(out) == len(blocks)  # nothing waits for finish()
    stream.finish()
    values = palette.classify(rgb.transpose(1, 2, 0)) + 1
    values[mask == 0] = 0
    assert np.array_equal(_assemble(out, (h, w)), majority_filter(values, 3, 5))
    crisp = crisp_image(palette, rgb.transpose(1, 2, 0), 3, mask > 0)
    block = next(b for b in out if (b.row, b.col) == (0, 0)).crisp(palette)
    assert np.array_equal(block.rgb.transpose(1, 2, 0), crisp[:16, :32])


def test_crisp_stream_emits_early_and_holds_little():
    """Row by row, a block goes out once the row below it is in; blocks never expected count as
    no data instead of holding their neighbours back."""
    palette = maps_palette()
    h, w, block = 64, 64, (16, 16)
    rgb = np.zeros((3, h, w), np.uint8)
    mask = np.full((h, w), 255, np.uint8)
    expected = np.ones((4, 4), bool)
    expected[3, 3] = False  # an area of interest that leaves out the last block
    out: list[ClassBlock] = []
    stream = CrispStream(h, w, block, palette, 2, out.append, expected)
    peak = 0
    for b in _blocks(rgb, mask, block)[:-1]:
        stream.add(b)
        peak = max(peak, stream.held)
        if (b.row, b.col) == (16, 48):  # the second row is in: the first row is out
            assert {(c.row, c.col) for c in out} == {(0, 0), (0, 16), (0, 32), (0, 48)}
    assert len(out) == 15 and stream.held == 0 and peak <= 2 * 4 + 2  # two rows and a bit
    with pytest.raises(ValueError, match="added twice"):
        stream.add(_blocks(rgb, mask, block)[0])
