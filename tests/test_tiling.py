"""Images larger than the device's single allocation are filtered in tiles, with the same result."""
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
            untiled = clconv.convolve(image, kernels, border, device=runtime, border_value=3.5 if image.dtype == np.float32 else 0,
                                      **options)
            plan_bytes = image.shape[1] * (image.shape[2] if image.ndim == 3 else 1) * 4
            tiny_limit(plan_bytes * 4 * 9)  # room for about 9 input rows per band
            tiled = clconv.convolve(image, kernels, border, device=runtime, border_value=3.5 if image.dtype == np.float32 else 0,
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
    untiled = clconv.convolve(image, weights, border, device=runtime, stride=stride, border_value=1.5)
    saved = runtime.max_alloc
    runtime.max_alloc = w * 4 * tiling.HEADROOM * rows
    try:
        tiled = clconv.convolve(image, weights, border, device=runtime, stride=stride, border_value=1.5)
    finally:
        runtime.max_alloc = saved
    np.testing.assert_allclose(tiled, untiled, atol=1e-5 * max(1, np.abs(weights).sum()))
