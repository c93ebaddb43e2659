"""Float images holding NaN and +-Inf (clconv/nonfinite.py): every algorithm gives scipy.ndimage's
answer. A non-finite sample reaches only the outputs whose window holds it at a non-zero weight;
+Inf and -Inf meeting in one window make NaN; the finite outputs are the finite sums. Checked
against the float64 oracle (tests/oracle.py, scipy.ndimage underneath) on random shapes, kernels
with zero taps, borders and geometries."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clconv
from clconv import nonfinite
from clconv.algorithms import REGISTRY
from clconv.errors import OptionError
from clconv.kernels import parse_spec
from oracle import MODES, reference

ALGORITHMS = ("direct", "separable", "gemm", "fft")
# the oracle's own range and tolerance arithmetic meets the NaNs: numpy says so, rightly
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


def assert_scipy_semantics(out, image, weights, context, **options):
    """Non-finite outputs exactly where (and of the sign) scipy has them; finite ones within the
    oracle's tolerance for the image with its non-finite samples set to 0."""
    ref = reference(image, weights, **options)
    expected = ref.expected
    assert out.shape == expected.shape, context
    o = out.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(o), np.isnan(expected), err_msg=f"{context}: NaN")
    np.testing.assert_array_equal(np.isposinf(o), np.isposinf(expected), err_msg=f"{context}: +Inf")
    np.testing.assert_array_equal(np.isneginf(o), np.isneginf(expected), err_msg=f"{context}: -Inf")
    finite = np.isfinite(expected)
    tol = reference(np.where(np.isfinite(image), image, 0).astype(image.dtype), weights, **options).tol
    with np.errstate(invalid="ignore"):
        err = np.abs(o - expected)
    assert (err[finite] <= tol[finite]).all(), f"{context}: finite values differ by {err[finite].max()}"


def _runs(algorithm, weights) -> bool:
    return REGISTRY[algorithm].refuses(parse_spec(weights)) is None


def with_holes(rng, shape, count) -> np.ndarray:
    image = rng.standard_normal(shape).astype(np.float32)
    flat = image.reshape(-1)
    at = rng.choice(flat.size, size=min(count, flat.size), replace=False)
    flat[at] = rng.choice(np.array([np.nan, np.inf, -np.inf], np.float32), size=at.size)
    return image


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 20), w=st.integers(1, 24), channels=st.integers(1, 2), kh=st.integers(1, 6),
       kw=st.integers(1, 6), algorithm=st.sampled_from(ALGORITHMS), border=st.sampled_from(MODES),
       geometry=st.sampled_from([{}, {"stride": 2}, {"dilation": 2}, {"padding": 1}, {"flip": True}]),
       holes=st.integers(1, 6), seed=st.integers(0, 2**31))
def test_every_algorithm_gives_scipys_answer(h, w, channels, kh, kw, algorithm, border, geometry, holes, seed):
    rng = np.random.default_rng(seed)
    image = with_holes(rng, (h, w, channels), holes)
    weights = rng.standard_normal((kh, kw)) * (rng.random((kh, kw)) < 0.6)  # zero taps too
    if not weights.any():
        weights[0, 0] = 1.0
    if not _runs(algorithm, weights):
        return
    options = dict(border=border, border_value=0.5, **geometry)
    try:
        out = clconv.convolve(image, weights, algorithm=algorithm, alpha="filter", **options)
    except OptionError:  # the geometry leaves no output
        return
    assert_scipy_semantics(out, image, weights, f"{algorithm} {options}", alpha="filter", **options)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_one_nan_reaches_only_the_windows_that_weigh_it(algorithm):
    """The issue's cases: identity 3x3 over one NaN is one NaN pixel (not 9), a 13x13 dense kernel
    makes 169 (the FFT made 5,408 on 512x512), and one Inf does not turn the output NaN."""
    image = np.random.default_rng(1).random((64, 64), dtype=np.float32)
    image[30, 30] = np.nan
    identity = np.zeros((3, 3))
    identity[1, 1] = 1.0
    if _runs(algorithm, identity):
        out = clconv.convolve(image, identity, algorithm=algorithm)
        assert np.isnan(out).sum() == 1 and np.isnan(out[30, 30])
    dense = np.random.default_rng(2).uniform(0.1, 1.0, (13, 13))
    if _runs(algorithm, dense):
        assert np.isnan(clconv.convolve(image, dense, algorithm=algorithm)).sum() == 169
    image[30, 30] = np.inf
    out = clconv.convolve(image, np.full((5, 5), 1 / 25), algorithm=algorithm)
    assert np.isposinf(out).sum() == 25 and np.isfinite(out).sum() == out.size - 25


def test_chains_banks_magnitude_and_integer_outputs():
    rng = np.random.default_rng(3)
    image = with_holes(rng, (21, 27, 3), 5)
    chain = ["box:size=3", "sharpen"]
    out = clconv.convolve(image, chain)
    assert_scipy_semantics(out, image, chain, "chain")
    specs = ["sobel-x", "laplacian", "gaussian:sigma=1"]
    for spec, out in zip(specs, clconv.convolve_bank(image, specs, algorithm="gemm")):
        assert_scipy_semantics(out, image, spec, f"bank {spec}")
    magnitude = clconv.convolve(image, "sobel")
    ref = reference(image, "sobel").expected
    np.testing.assert_array_equal(np.isfinite(magnitude), np.isfinite(ref))
    eight = clconv.convolve(image, "box:size=3", dtype=np.uint8)  # NaN becomes 0, Inf clips
    finite = reference(image, "box:size=3").expected
    expected = np.clip(np.rint(np.nan_to_num(finite * 255.0, nan=0.0)), 0, 255)
    assert np.abs(eight.astype(np.int64) - expected).max() <= 1


def test_finite_and_integer_images_take_the_ordinary_path(monkeypatch):
    def refuse(*args):
        raise AssertionError("a finite image went through the non-finite path")

    monkeypatch.setattr(nonfinite, "execute", refuse)
    finite = np.random.default_rng(4).random((16, 16), dtype=np.float32)
    finite[0, 0] = 3e38  # its float32 sum overflows: the exact test decides
    finite[0, 1] = 3e38
    clconv.convolve(finite, "box:size=3", algorithm="direct")
    clconv.convolve(np.zeros((8, 8, 3), np.uint8), "sharpen")
    assert not nonfinite.has_nonfinite(finite) and nonfinite.has_nonfinite(np.array([[np.inf, -np.inf]]))


def test_the_command_line_keeps_holes_in_a_float_tiff(tmp_path, run_cli):
    from PIL import Image

    image = np.random.default_rng(5).random((20, 30), dtype=np.float32)
    image[10, 10] = np.nan
    Image.fromarray(image, mode="F").save(tmp_path / "in.tif")
    result = run_cli("apply", "-k", "sharpen", tmp_path / "in.tif", tmp_path / "out.tif")
    assert result.returncode == 0, result.stderr
    out = np.asarray(Image.open(tmp_path / "out.tif"))
    cross = np.zeros(out.shape, bool)  # sharpen's non-zero taps: the pixel and its 4 neighbours
    cross[9:12, 10] = cross[10, 9:12] = True
    np.testing.assert_array_equal(np.isnan(out), cross)


@pytest.mark.parametrize("spec", ["sharpen", "gaussian:sigma=1", "sobel-x"])
def test_nan_and_inf_hidden_under_alpha_0_reach_no_visible_pixel(spec):
    rng = np.random.default_rng(6)
    rgba = rng.random((18, 22, 4), dtype=np.float32)
    rgba[..., 3] = np.where(rng.random((18, 22)) < 0.3, 0.0, 1.0)
    hidden = rgba[..., 3] == 0
    clean = clconv.convolve(rgba, spec, alpha="keep")
    holed = rgba.copy()
    holed[..., 0][hidden] = np.nan
    holed[..., 1][hidden] = np.inf
    holed[..., 2][hidden] = -np.inf
    out = clconv.convolve(holed, spec, alpha="keep")
    visible = clean[..., 3] > 0
    np.testing.assert_array_equal(out[visible], clean[visible])
