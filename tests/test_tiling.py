"""Images larger than the device's single allocation, or than its share of the device's global memory,
are filtered in tiles, with the same result."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clconv
from clconv import tiling

BORDERS = ("reflect", "mirror", "nearest", "wrap", "constant")


@pytest.fixture()
def tiny_limit(runtime, monkeypatch):
    """A single-allocation limit of a few rows, so every image below goes in many bands."""
    def limit(nbytes):
        monkeypatch.setattr(runtime, "max_alloc", nbytes)
    return limit


def test_tiled_equals_untiled_for_every_border_and_kind(runtime, tiny_limit):
    rng = np.random.default_rng(5)
    rgba = (rng.random((57, 23, 4)) * 255).astype(np.uint8)
    gray = rng.random((61, 19), dtype=np.float32) * 10
    cases = [
        (gray, ["gaussian:sigma=2"], {}),
        (gray, ["sobel"], {"stride": 2}),
        (gray, ["box", "1 2; 3 4"], {"dilation": 2}),
        (gray, ["3x1: 1,0,-1"], {"padding": 3, "stride": 3}),
        (rgba, ["gaussian:sigma=1.5"], {"alpha": "keep"}),
        (rgba, ["sharpen", "emboss"], {}),
        (gray, [np.ones((31, 3))], {}),  # kernel taller than a band
    ]
    for border in BORDERS:
        for image, kernels, options in cases:
            untiled = clconv.convolve(image, kernels, border=border, device=runtime, border_value=3.5 if image.dtype == np.float32 else 0,
                                      **options)
            plan_bytes = image.shape[1] * (image.shape[2] if image.ndim == 3 else 1) * 4
            tiny_limit(plan_bytes * 4 * 9)  # room for about 9 input rows per band
            tiled = clconv.convolve(image, kernels, border=border, device=runtime, border_value=3.5 if image.dtype == np.float32 else 0,
                                    **options)
            tiny_limit(runtime.info.max_alloc)
            assert tiled.dtype == untiled.dtype and tiled.shape == untiled.shape
            np.testing.assert_allclose(tiled.astype(np.float64), untiled.astype(np.float64), atol=1e-4,
                                       err_msg=f"{border} {kernels} {options}")


def test_tiles_are_used_when_the_image_exceeds_the_limit(runtime, tiny_limit, monkeypatch):
    image = np.random.default_rng(1).random((40, 30), dtype=np.float32)
    calls = []
    original = tiling._stage
    monkeypatch.setattr(tiling, "_stage", lambda *a: calls.append(1) or original(*a))
    clconv.convolve(image, "box", device=runtime)
    assert calls == []
    tiny_limit(30 * 4 * 4 * 6)
    clconv.convolve(image, "box", device=runtime)
    assert calls == [1]


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 60), w=st.integers(1, 20), kh=st.integers(1, 9), kw=st.integers(1, 5),
       border=st.sampled_from(BORDERS), stride=st.integers(1, 3), rows=st.integers(1, 12),
       seed=st.integers(0, 2**31))
def test_property_tiled_equals_untiled(runtime, h, w, kh, kw, border, stride, rows, seed):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((h, w)).astype(np.float32)
    weights = rng.standard_normal((kh, kw))
    untiled = clconv.convolve(image, weights, border=border, device=runtime, stride=stride, border_value=1.5)
    saved = runtime.max_alloc
    runtime.max_alloc = w * 4 * tiling.HEADROOM * rows
    try:
        tiled = clconv.convolve(image, weights, border=border, device=runtime, stride=stride, border_value=1.5)
    finally:
        runtime.max_alloc = saved
    np.testing.assert_allclose(tiled, untiled, atol=1e-5 * max(1, np.abs(weights).sum()))


@pytest.fixture()
def stages(monkeypatch):
    """The tiled stages that ran: (band rows, stage) of each."""
    ran = []
    original = tiling.rows_per_band
    monkeypatch.setattr(tiling, "rows_per_band", lambda rt, stage, *a: ran.append((original(rt, stage, *a), stage))
                        or ran[-1][0])
    return ran


def _plan(image, kernels, **options):
    from clconv.api import build_plan

    pixels = image if image.ndim == 3 else image[:, :, None]
    return pixels, build_plan(kernels, in_dtype=pixels.dtype, channels=pixels.shape[2], **options)


@pytest.mark.parametrize("border", ["reflect", "wrap", "constant"])
def test_a_run_over_its_share_of_global_memory_is_tiled_with_the_same_result(runtime, monkeypatch, stages, border):
    """max_alloc left as it is: the device's total memory alone makes the bands."""
    from oracle import assert_matches, reference

    rng = np.random.default_rng(8)
    rgba = (rng.random((53, 31, 4)) * 255).astype(np.uint8)
    gray = rng.random((47, 29), dtype=np.float32) * 4
    cases = [
        (rgba, ["gaussian:sigma=1.5"], {"alpha": "keep"}),  # general path, alpha weighting
        (rgba[:, :, :3].copy(), ["sharpen", "box"], {}),  # in place, a chain
        (gray, ["sobel"], {"stride": 2}),  # gx and gy
    ]
    for image, kernels, options in cases:
        untiled = clconv.convolve(image, kernels, border=border, device=runtime, border_value=2, **options)
        assert stages == []
        pixels, plan = _plan(image, kernels, border=border, alpha=options.get("alpha"),
                             stride=options.get("stride", 1))
        # a third of the general path's peak: a handful of bands whatever path runs
        monkeypatch.setattr(runtime, "global_mem", int(tiling.peak_bytes(pixels, plan) / 3 / tiling.GLOBAL_SHARE))
        tiled = clconv.convolve(image, kernels, border=border, device=runtime, border_value=2, **options)
        monkeypatch.setattr(runtime, "global_mem", runtime.info.global_mem)
        assert len(stages) == len(kernels) and all(rows < image.shape[0] for rows, _ in stages), stages
        assert tiled.dtype == untiled.dtype and tiled.shape == untiled.shape
        np.testing.assert_allclose(tiled.astype(np.float64), untiled.astype(np.float64), atol=1e-4,
                                   err_msg=f"{border} {kernels} {options}")
        assert_matches(tiled, reference(image, kernels, border, border_value=2, **options), f"{border} {kernels}")
        stages.clear()


def test_an_image_that_fits_is_not_tiled(runtime, monkeypatch, stages):
    rgb = (np.random.default_rng(9).random((40, 36, 3)) * 255).astype(np.uint8)
    rgba = np.dstack([rgb, rgb[:, :, :1]])
    clconv.convolve(rgb, "sharpen", device=runtime)
    clconv.convolve(rgba, "gaussian", device=runtime, alpha="keep")
    assert stages == []
    # room for what the in-place path holds (the caller's input and output), not for the general
    # path's float32 planes: the in-place run is not tiled, the alpha-weighted one is
    pixels, plan = _plan(rgb, ["sharpen"])
    in_place, general = tiling.peak_bytes(pixels, plan, in_place=True), tiling.peak_bytes(pixels, plan)
    assert in_place < general
    monkeypatch.setattr(runtime, "global_mem", int((in_place + general) / 2 / tiling.GLOBAL_SHARE))
    assert not tiling.needs_tiles(runtime, pixels, plan, in_place=True)
    assert tiling.needs_tiles(runtime, pixels, plan)
    clconv.convolve(rgb, "sharpen", device=runtime)
    assert stages == []
    clconv.convolve(rgba, "gaussian", device=runtime, alpha="keep")
    assert len(stages) == 1


def test_bands_stay_within_both_limits(runtime, monkeypatch):
    image = np.zeros((4000, 300, 4), np.uint8)
    for kernels, options in ((["gaussian:sigma=2"], {"alpha": "keep"}), (["sobel"], {"dilation": 2})):
        pixels, plan = _plan(image, kernels, **options)
        window = plan.geometry.window(pixels.shape[:2], plan.kernels[0].shape, plan.flip)
        span = (plan.kernels[0].shape[0] - 1) * window.dilation + 1
        for max_alloc, global_mem in ((2**40, 2**23), (2**20, 2**40), (2**21, 2**24)):
            monkeypatch.setattr(runtime, "max_alloc", max_alloc)
            monkeypatch.setattr(runtime, "global_mem", global_mem)
            rows = tiling.rows_per_band(runtime, plan, 300, 4, window)
            row_bytes = 300 * 4 * 4  # float32

            def peak(r):
                return tiling._peak(plan, [((r - 1) * window.stride + span, 300), (r, 300)], 4,
                                    ((r - 1) * window.stride + span) * row_bytes, False)

            assert rows >= 1
            assert peak(rows) <= tiling.global_budget(runtime)
            assert ((rows - 1) * window.stride + span) * row_bytes <= max_alloc // tiling.HEADROOM
            # the most that fit: one more row breaks a limit
            assert (peak(rows + 1) > tiling.global_budget(runtime)
                    or (rows * window.stride + span) * row_bytes > max_alloc // tiling.HEADROOM)


@settings(max_examples=200, deadline=None)
@given(budget=st.integers(0, 20000), row_bytes=st.integers(1, 3000), span=st.integers(1, 40),
       stride=st.integers(1, 4), unit=st.integers(1, 8), most=st.one_of(st.none(), st.integers(1, 300)))
def test_band_rows_is_the_most_rows_that_fit(budget, row_bytes, span, stride, unit, most):
    """params.band_rows, the rows of every banded pass (tiling, separable's row passes, im2col),
    against a count by hand: the most rows (a multiple of unit) whose input fits, within
    [unit, most]."""
    from clconv.params import band_rows

    def fits(rows):
        return ((rows - 1) * stride + span) * row_bytes <= budget

    fitting = [rows for rows in range(unit, budget // row_bytes + 2, unit) if fits(rows)]
    expected = max(fitting, default=unit)
    if most is not None:
        expected = max(unit, min(most, expected))
    assert band_rows(budget, row_bytes, span=span, stride=stride, unit=unit, most=most) == expected
