"""The render pipeline and Python API: identity round trips, batch invariance, georeferencing,
no-data, AOI, atomic output."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
import torch
from conftest import ATLANTA, CHARLOTTE, WEBODM, tiny_unet, write_raster
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from geo_p2p import Translator
from geo_p2p.errors import RenderError
from geo_p2p.raster import inspect_source
from geo_p2p.render.tiling import seam_score

IDENTITY = torch.nn.Identity()


pytestmark = pytest.mark.usefixtures("one_thread")


def identity(**options: object) -> Translator:
    return Translator(IDENTITY, device="cpu", **{"tile": 32, **options})  # type: ignore[arg-type]


def read(path: Path) -> tuple[np.ndarray, np.ndarray, rasterio.profiles.Profile]:
    with rasterio.open(path) as ds:
        return ds.read(), ds.dataset_mask(), ds.profile


@pytest.mark.parametrize(
    ("tile", "overlap", "margin", "batch_size"),
    [(32, 8, 2, 1), (64, 24, 4, 7), (256, 64, 16, 3), (32, 0, 0, 5)],
)
def test_identity_round_trip_on_real_rasters(tmp_path, tile, overlap, margin, batch_size) -> None:
    t = identity(tile=tile, overlap=overlap, margin=margin, batch_size=batch_size)
    for src in (WEBODM, CHARLOTTE):
        dst = tmp_path / f"{src.stem}.tif"
        t.render(src, dst, progress=False)
        rgb, mask, profile = read(dst)
        with rasterio.open(src) as ds:
            expected, expected_mask = ds.read([1, 2, 3]), ds.dataset_mask()
        np.testing.assert_array_equal(mask, expected_mask)
        diff = np.abs(rgb.astype(int) - expected)[:, mask > 0]
        assert diff.max() <= 1
        assert (rgb[:, mask == 0] == 0).all()


@given(
    height=st.integers(1, 120),
    width=st.integers(1, 120),
    tile=st.sampled_from([32, 64]),
    overlap_frac=st.floats(0, 0.9),
    margin_frac=st.floats(0, 0.5),
    batch_size=st.integers(1, 9),
    strip_width=st.sampled_from([64, 96, 4096]),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_identity_translate_any_size(
    height, width, tile, overlap_frac, margin_frac, batch_size, strip_width, seed
) -> None:
    overlap = int(overlap_frac * (tile - 1))
    margin = int(margin_frac * overlap / 2)
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)
    t = identity(
        tile=tile, overlap=overlap, margin=margin, batch_size=batch_size, strip_width=strip_width
    )
    np.testing.assert_array_equal(t.translate(image), image)


def test_output_is_bit_identical_for_batch_sizes_1_and_7(tmp_path: Path) -> None:
    net = tiny_unet()
    outputs = []
    for batch_size in (1, 7):
        dst = tmp_path / f"b{batch_size}.tif"
        Translator(net, tile=32, batch_size=batch_size, device="cpu").render(
            CHARLOTTE, dst, progress=False
        )
        outputs.append(read(dst)[0])
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert outputs[0].std() > 5  # the model did something
    # Working in narrow strips (tiles on strip boundaries translated twice) changes nothing.
    strips = Translator(net, tile=32, batch_size=3, device="cpu", strip_width=64)
    strips.render(CHARLOTTE, tmp_path / "strips.tif", progress=False)
    np.testing.assert_array_equal(read(tmp_path / "strips.tif")[0], outputs[0])


class ThreadRecorder(torch.nn.Module):
    """Identity that records the thread each batch runs in and torch's thread count there."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: set[tuple[str, int]] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.add((threading.current_thread().name[:13], torch.get_num_threads()))
        return x


def test_with_two_threads_two_batches_run_at_once_on_one_thread_each(tmp_path: Path) -> None:
    torch.set_num_threads(2)  # the fixture restores one thread afterwards
    recorder = ThreadRecorder()
    image = np.random.default_rng(3).integers(0, 256, (100, 120, 3), np.uint8)
    translator = Translator(recorder, tile=32, device="cpu")
    np.testing.assert_array_equal(translator.translate(image), image)
    # Workers on one thread each; the batch check in the caller's thread, with the same count.
    assert recorder.calls == {("geo-p2p-model", 1), ("MainThread", 1)}
    assert torch.get_num_threads() == 2  # the caller's count, also torch's default again
    # The caller's thread keeps its count while the stream runs.
    x = torch.zeros(8, 3, 32, 32)
    for _ in translator.infer_stream(range(3), lambda _: x):
        assert torch.get_num_threads() == 2
    # The output is the one a single thread gives.
    net, outputs = tiny_unet(), []
    for threads in (2, 1):
        torch.set_num_threads(threads)
        dst = tmp_path / f"t{threads}.tif"
        Translator(net, tile=32, batch_size=3, device="cpu").render(CHARLOTTE, dst, progress=False)
        outputs.append(read(dst)[0])
    np.testing.assert_array_equal(outputs[0], outputs[1])


class FailsOnSecondBatch(torch.nn.Module):
    """Identity that raises on its second call once armed."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calls is not None:
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("broken batch")
        return x


def test_an_error_in_a_model_worker_reaches_the_caller_and_leaves_no_output(tmp_path) -> None:
    torch.set_num_threads(2)  # two workers; the fixture restores one thread afterwards
    module, dst = FailsOnSecondBatch(), tmp_path / "out.tif"
    translator = Translator(module, tile=32, batch_size=2, device="cpu")
    translator.prepare()  # the batch check calls the module too
    module.calls = 0
    with pytest.raises(RuntimeError, match="broken batch"):
        translator.render(CHARLOTTE, dst, progress=False)
    assert module.calls >= 2  # raised in a worker, not in the check
    assert not dst.exists() and list(tmp_path.iterdir()) == []
    assert torch.get_num_threads() == 2


class BatchMixing(torch.nn.Module):
    """Identity on one tile, but mixes tiles that share a batch (as a careless kernel might)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x + 0.5 * x.mean(dim=0, keepdim=True)


def test_batches_that_would_change_the_output_run_tile_by_tile() -> None:
    image = np.random.default_rng(2).integers(0, 256, (70, 90, 3), np.uint8)
    t = Translator(BatchMixing(), tile=32, batch_size=5, device="cpu")
    np.testing.assert_array_equal(t.translate(image), image)
    assert list(t.engine._exact.values()) == [False]
    u = identity(batch_size=5)
    u.translate(image)
    assert list(u.engine._exact.values()) == [True]


def padded_blur() -> torch.nn.Module:
    """A 5x5 box blur with zero padding: like the generator, it is wrong near tile borders."""
    blur = torch.nn.Conv2d(3, 3, 5, padding=2, groups=3, bias=False)
    torch.nn.init.constant_(blur.weight, 1 / 25)
    return blur


def test_blending_hides_the_grid_that_a_plain_grid_shows() -> None:
    """Seam score (DESIGN.md's measure) on a real image: about 2 for a plain grid, 1 blended."""
    with rasterio.open(CHARLOTTE) as ds:
        image = ds.read().transpose(1, 2, 0)[: 32 + 28 * 7, : 32 + 28 * 9]
    plain = Translator(padded_blur(), tile=32, overlap=0, device="cpu").translate(image)
    blended = Translator(padded_blur(), tile=32, device="cpu")  # defaults: overlap 4, margin 1
    assert seam_score(plain, 32) > 1.8
    assert seam_score(blended.translate(image), 32 - blended.overlap) < 1.2


def test_resampled_render_keeps_crs_and_footprint(tmp_path: Path) -> None:
    # Web Mercator input, 1.194 m units at 35.2 N (0.976 m on the ground), model at 2 m.
    dst = tmp_path / "out.tif"
    Translator(IDENTITY, tile=32, gsd=2.0, device="cpu").render(CHARLOTTE, dst, progress=False)
    with rasterio.open(CHARLOTTE) as src, rasterio.open(dst) as out:
        assert out.crs == src.crs
        ground = 1.194328566955879 * math.cos(math.radians(35.196))
        assert out.width == round(src.width * ground / 2.0)
        np.testing.assert_allclose(tuple(out.bounds), tuple(src.bounds), atol=1e-6)
        assert out.res[0] == pytest.approx(2.0 / math.cos(math.radians(35.196)), rel=0.01)


def test_native_render_copies_crs_and_transform(tmp_path: Path) -> None:
    for src_path in (WEBODM, CHARLOTTE):
        dst = tmp_path / f"{src_path.stem}.tif"
        identity().render(src_path, dst, resolution="native", progress=False)
        with rasterio.open(src_path) as src, rasterio.open(dst) as out:
            assert out.crs == src.crs and out.transform == src.transform
            assert (out.width, out.height) == (src.width, src.height)
            assert out.profile["tiled"] and out.profile["blockxsize"] == 512
            assert out.compression.name == "zstd"
            assert out.colorinterp[:3] == (
                rasterio.enums.ColorInterp.red,
                rasterio.enums.ColorInterp.green,
                rasterio.enums.ColorInterp.blue,
            )


def test_quicklook(tmp_path: Path) -> None:
    png = tmp_path / "look.png"
    identity().render(WEBODM, tmp_path / "out.tif", quicklook=png, progress=False)
    look = np.asarray(Image.open(png))
    assert look.shape == (212, 212 * 2 + 3, 4)
    with rasterio.open(WEBODM) as src:
        np.testing.assert_array_equal(look[:, :212, 3], src.read(4))
    np.testing.assert_array_equal(look[:, -212:, 3], look[:, :212, 3])
    with pytest.raises(RenderError, match="--overwrite"):
        identity().render(WEBODM, tmp_path / "new.tif", quicklook=png, progress=False)


def test_internal_mask_input_and_skipped_tiles(tmp_path: Path) -> None:
    with rasterio.open(CHARLOTTE) as ds:
        data, crs, transform = ds.read(), ds.crs, ds.transform
    mask = np.full(data.shape[1:], 255, np.uint8)
    mask[:, :100] = 0  # the left 100 columns are no-data
    src = write_raster(tmp_path / "masked.tif", data, crs, transform)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(src, "r+") as ds:
        ds.write_mask(mask)
    summary = identity().render(src, tmp_path / "out.tif", progress=False)
    rgb, out_mask, _ = read(tmp_path / "out.tif")
    np.testing.assert_array_equal(out_mask, mask)
    assert summary.skipped > 0  # tiles entirely in the no-data columns were not translated
    np.testing.assert_array_equal(rgb[:, :, 100:], data[:, :, 100:])


def test_alpha_band_output(tmp_path: Path) -> None:
    dst = tmp_path / "alpha.tif"
    identity().render(WEBODM, dst, alpha=True, progress=False)
    with rasterio.open(dst) as out, rasterio.open(WEBODM) as src:
        assert out.count == 4 and out.colorinterp[3] == rasterio.enums.ColorInterp.alpha
        np.testing.assert_array_equal(out.read(4), src.read(4))


def test_nodata_value_and_uint16_single_band(tmp_path: Path) -> None:
    with rasterio.open(ATLANTA) as ds:
        data, profile = ds.read(), ds.profile
    data[:, 100:140, 50:200] = 0  # nodata 0
    src = write_raster(tmp_path / "pan.tif", data, profile["crs"], profile["transform"], nodata=0)
    dst = tmp_path / "out.tif"
    identity().render(src, dst, progress=False)
    rgb, mask, _ = read(dst)
    assert (mask[100:140, 50:200] == 0).all() and mask[:100].all()
    lo, hi = inspect_source(src).scale
    expected = np.clip(np.rint((data[0].astype(np.float32) - lo) * 255 / (hi - lo)), 0, 255)
    assert np.abs(rgb[0].astype(int) - expected)[mask > 0].max() <= 1
    assert (rgb[0] == rgb[1]).all() and (rgb[0] == rgb[2]).all()


def test_aoi_limits_tiles_and_masks_outside(tmp_path: Path) -> None:
    with rasterio.open(CHARLOTTE) as ds:
        left, bottom, right, top = ds.bounds
        res = ds.res[0]
    mid_x = left + 100 * res  # the AOI is the left 100 columns
    wkt = shapely.box(left, bottom, mid_x, top).wkt
    full = identity().render(CHARLOTTE, tmp_path / "full.tif", progress=False)
    part = identity().render(CHARLOTTE, tmp_path / "aoi.tif", aoi=wkt, progress=False)
    assert part.tiles < full.tiles / 2
    rgb, mask, _ = read(tmp_path / "aoi.tif")
    assert mask[:, :100].all() and not mask[:, 100:].any()
    # The same AOI given in longitude/latitude.
    from rasterio.warp import transform_geom
    from shapely import from_wkt, geometry

    lonlat = geometry.shape(
        transform_geom("EPSG:3857", "EPSG:4326", geometry.mapping(from_wkt(wkt)))
    )
    identity().render(CHARLOTTE, tmp_path / "ll.tif", aoi=f"SRID=4326;{lonlat.wkt}", progress=False)
    _, mask_ll, _ = read(tmp_path / "ll.tif")
    assert (mask_ll != mask).mean() < 0.01
    with pytest.raises(RenderError, match="does not meet the raster"):
        identity().render(CHARLOTTE, tmp_path / "x.tif", aoi="POLYGON((0 0, 1 0, 1 1, 0 0))")


def test_aoi_geojson_file(tmp_path: Path) -> None:
    with rasterio.open(WEBODM) as ds:
        left, bottom, right, top = ds.bounds
    ring = [[left, bottom], [right, bottom], [left, top], [left, bottom]]  # lower-left triangle
    geojson = tmp_path / "aoi.geojson"
    geojson.write_text(
        '{"type": "FeatureCollection", '
        '"crs": {"type": "name", "properties": {"name": "EPSG:32615"}},'
        f' "features": [{{"type": "Feature", "properties": {{}}, "geometry": '
        f'{{"type": "Polygon", "coordinates": [{ring}]}}}}]}}'
    )
    identity().render(WEBODM, tmp_path / "out.tif", aoi=str(geojson), progress=False)
    _, mask, _ = read(tmp_path / "out.tif")
    assert mask[-5, 5] and not mask[5, -5]


def test_existing_output_is_refused(tmp_path: Path) -> None:
    dst = tmp_path / "out.tif"
    dst.write_bytes(b"keep me")
    with pytest.raises(RenderError, match="--overwrite"):
        identity().render(WEBODM, dst, progress=False)
    assert dst.read_bytes() == b"keep me"
    identity().render(WEBODM, dst, overwrite=True, progress=False)
    assert read(dst)[0].shape == (3, 212, 212)


class FailingModule(torch.nn.Module):
    def __init__(self, after: int, error: type[BaseException]) -> None:
        super().__init__()
        self.calls, self.after, self.error = 0, after, error

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > self.after:
            raise self.error("model failed")
        return x


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_failure_mid_render_leaves_no_file(tmp_path: Path, error: type[BaseException]) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    t = Translator(FailingModule(after=20, error=error), tile=32, batch_size=4, device="cpu")
    with pytest.raises(error):
        t.render(CHARLOTTE, out_dir / "map.tif", progress=False)
    assert list(out_dir.iterdir()) == []


def test_cog_and_creation_options(tmp_path: Path) -> None:
    with rasterio.open(CHARLOTTE) as ds:
        data = np.tile(ds.read(), (1, 5, 4))  # 1100 x 1200 from real imagery
        crs, transform = ds.crs, ds.transform
    src = write_raster(tmp_path / "big.tif", data, crs, transform)
    dst = tmp_path / "cog.tif"
    identity(tile=256).render(src, dst, cog=True, progress=False)
    with rasterio.open(dst) as out:
        assert out.overviews(1) == [2, 4] and out.crs == crs and out.transform == transform
        assert out.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        np.testing.assert_array_equal(out.read(), data)
    identity(tile=256).render(
        src, tmp_path / "lzw.tif", creation_options={"COMPRESS": "LZW"}, progress=False
    )
    with rasterio.open(tmp_path / "lzw.tif") as out:
        assert out.compression.name == "lzw"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.tif", "cog.tif", "lzw.tif"]


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_ungeoreferenced_render(tmp_path: Path) -> None:
    image = np.random.default_rng(1).integers(0, 256, (3, 50, 60), np.uint8)
    src = write_raster(tmp_path / "raw.tif", image, crs=None)
    with pytest.raises(RenderError, match="no coordinate reference system"):
        identity().render(src, tmp_path / "out.tif", progress=False)
    identity().render(src, tmp_path / "out.tif", allow_ungeoreferenced=True, progress=False)
    with rasterio.open(tmp_path / "out.tif") as out:
        assert out.crs is None and out.transform.is_identity
        np.testing.assert_array_equal(out.read(), image)


def test_load_model_directory(model_dir: Path, tmp_path: Path) -> None:
    t = Translator.load(model_dir, device="cpu")
    assert t.tile == 32 and t.gsd == 1.0 and (t.overlap, t.margin) == (4, 1)
    summary = t.render(WEBODM, tmp_path / "out.tif", progress=False)  # resampled 0.5 -> 1 m
    assert read(tmp_path / "out.tif")[0].shape == (3, 106, 106)
    assert summary.tiles > 0 and "tiles/s" in str(summary)


def test_missing_default_model_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("geo_p2p.card.DEFAULT_MODEL_DIR", tmp_path)  # an install without one
    with pytest.raises(RenderError, match="no bundled default model") as e:
        Translator.load(None)
    assert e.value.param == "--model"


def test_translate_rejects_bad_arrays() -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        identity().translate(np.zeros((10, 10), np.uint8))
    with pytest.raises(RenderError, match="overlap"):
        Translator(IDENTITY, tile=32, overlap=40)


def test_no_data_is_filled_with_the_mean_colour_of_the_tile() -> None:
    from geo_p2p.render.stream import model_input as _model_input

    data = np.zeros((3, 4, 6), np.uint8)
    data[:, :, :3] = np.array([10, 100, 200], np.uint8)[:, None, None]
    data[0, 0, 0] = 14  # mean of band 1: 10.4 over the 12 valid pixels -> 10
    valid = np.zeros((4, 6), bool)
    valid[:, :3] = True
    tile, keep = _model_input(data, valid, valid, 8)
    assert tile.shape == (3, 8, 8) and keep.shape == (8, 8) and keep.sum() == 12
    np.testing.assert_array_equal(tile[:, 1, 3:6], [[10] * 3, [100] * 3, [200] * 3])
    np.testing.assert_array_equal(tile[:, :4, :3], data[:, :, :3])
