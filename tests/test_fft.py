"""The FFT algorithm (clconv/algorithms/fft.py, cl/fft.cl) on the real device: exact semantics against
the float64 oracle (tests/oracle.py) for every border, kernel shape, geometry and plane count, the
same results as ``direct``, and its planning helpers. Registered as "fft" for the tests if the
registry does not have it yet."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clconv
import oracle
from clconv import algorithms
from clconv.algorithms import Algorithm, fft
from clconv.errors import OptionError
from clconv.kernels import Linear
from oracle import MODES, assert_matches, reference


@pytest.fixture(scope="module", autouse=True)
def fft_registered():
    with pytest.MonkeyPatch.context() as mp:
        if "fft" not in algorithms.REGISTRY:
            mp.setitem(algorithms.REGISTRY, "fft", Algorithm("fft", fft.SUMMARY, fft.correlate, fft.refuses))
            mp.setattr(algorithms, "CHOICES", (*algorithms.CHOICES, "fft"))
        yield


def check(image, weights, border="reflect", **options):
    """clconv's fft result equals the oracle (and has its shape and dtype)."""
    out = clconv.convolve(image, weights, border=border, algorithm="fft", **options)
    assert_matches(out, reference(image, weights, border, **options), f"fft {border} {options}")
    return out


def dense(kh, kw, seed=0):
    return np.random.default_rng(seed).standard_normal((kh, kw))


# ---------------------------------------------------------------- semantics against the oracle
@pytest.mark.parametrize("border", MODES)
@pytest.mark.parametrize("shape", [(31, 31), (4, 6), (1, 7), (8, 1), (2, 2), (1, 1)])
def test_every_border_and_kernel_shape(border, shape):
    image = oracle.make_image((45, 67), np.float32, seed=shape[0] * 7 + shape[1])
    check(image, dense(*shape, seed=3), border, border_value=0.75)


@pytest.mark.parametrize("border", MODES)
@pytest.mark.parametrize("image_shape, kernel_shape", [
    ((5, 7), (23, 19)),    # kernel several times the image, even and odd
    ((1, 1), (3, 3)),      # one pixel
    ((1, 1), (4, 2)),
    ((1, 9), (5, 5)),      # one row, one column
    ((9, 1), (6, 3)),
    ((3, 2), (64, 40)),    # many periods of the border beyond the image
])
def test_kernels_larger_than_the_image_and_tiny_images(border, image_shape, kernel_shape):
    image = oracle.make_image(image_shape, np.float32, seed=1)
    check(image, dense(*kernel_shape, seed=2), border, border_value=-1.25)


@pytest.mark.parametrize("options", [
    dict(stride=2), dict(stride=3, border="wrap"), dict(dilation=2), dict(dilation=3, border="mirror"),
    dict(stride=2, dilation=2, border="nearest"), dict(padding=0), dict(padding="valid", stride=2),
    dict(padding=3, border="constant", border_value=2.0), dict(padding=2, dilation=2, stride=3),
    dict(flip=True), dict(flip=True, padding=1, stride=2),
])
@pytest.mark.parametrize("kernel_shape", [(7, 5), (4, 4)])
def test_stride_dilation_padding_and_flip(options, kernel_shape):
    image = oracle.make_image((38, 53), np.float32, seed=5)
    check(image, dense(*kernel_shape, seed=6), **options)


@pytest.mark.parametrize("channels", [2, 3, 5])
def test_several_planes(channels):
    image = oracle.make_image((33, 41, channels), np.float32, seed=channels)
    check(image, dense(9, 8, seed=channels), "mirror", alpha="filter")


def test_integer_images_and_alpha_through_the_engine():
    rgba = oracle.make_image((40, 36, 4), np.uint8, seed=9)
    blur = np.abs(dense(11, 11, seed=4))
    check(rgba, blur, "reflect", alpha="keep")
    check(rgba[:, :, :3], dense(6, 5, seed=8), "nearest")  # negative weights: the mapping's abs/clip


def test_a_31x31_dense_kernel_is_accurate_on_a_large_image():
    image = oracle.make_image((300, 517), np.float32, seed=11, lo=0.0, hi=255.0)
    out = check(image, dense(31, 31, seed=12), "reflect")
    blur = np.full((31, 31), 1 / 961)  # a large DC: errors are relative to the image, not to the result
    check(image + 1000.0, blur, "reflect")
    assert out.shape == image.shape


# ---------------------------------------------------------------- against direct, on random shapes
@settings(max_examples=30, deadline=None)
@given(h=st.integers(1, 70), w=st.integers(1, 70), kh=st.integers(1, 12), kw=st.integers(1, 12),
       border=st.sampled_from(MODES), stride=st.integers(1, 3), dilation=st.integers(1, 3),
       padding=st.sampled_from([None, None, 0, 1, 4]), channels=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_equals_direct_on_random_shapes(h, w, kh, kw, border, stride, dilation, padding, channels, seed):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((h, w, channels)).astype(np.float32)
    weights = rng.standard_normal((kh, kw))
    options = dict(border=border, border_value=0.5, stride=stride, dilation=dilation, padding=padding,
                   alpha="filter")
    try:
        direct = clconv.convolve(image, weights, algorithm="direct", **options)
    except OptionError:  # the geometry leaves no output
        with pytest.raises(OptionError):
            clconv.convolve(image, weights, algorithm="fft", **options)
        return
    out = clconv.convolve(image, weights, algorithm="fft", **options)
    assert out.shape == direct.shape and out.dtype == direct.dtype
    scale = np.abs(weights).sum() * max(1.0, float(np.abs(image).max()))
    np.testing.assert_allclose(out, direct, atol=2e-5 * scale)
    assert_matches(out, reference(image, weights, border=border, border_value=0.5, stride=stride,
                                  dilation=dilation, padding=padding, alpha="filter"))


# ---------------------------------------------------------------- the other schedules give the same pixels
def test_tiles_batches_and_the_transposing_path_agree(monkeypatch, request):
    request.addfinalizer(fft.layout.cache_clear)  # layouts planned under the patches below
    image = oracle.make_image((61, 150, 3), np.float32, seed=21)
    weights = dense(13, 10, seed=22)
    options = dict(border="wrap", alpha="filter")
    whole = check(image, weights, **options)
    monkeypatch.setattr(fft.Layout, "_choose", lambda self: (3, 4))  # overlap-save tiles
    fft.layout.cache_clear()
    assert fft.layout(3, (61, 150), (13, 10), 1, 1, 2304).tiles == 36
    tiled = check(image, weights, **options)
    monkeypatch.setattr(fft, "BATCH_BYTES", 1)  # one complex plane per batch
    batched = check(image, weights, **options)
    monkeypatch.setitem(fft.MAX_RADIX, "columns", 16)  # rows too long for fft_rows; several passes per axis
    transposed = check(image, weights, **options)
    for other in (tiled, batched, transposed):
        np.testing.assert_allclose(other, whole, atol=1e-4)


@pytest.mark.parametrize("form", ["columns", "passes"])
@pytest.mark.parametrize("image_shape, kernel_shape, options", [
    ((61, 150, 3), (13, 10), dict(border="wrap")),
    ((40, 33), (31, 31), dict(border="constant", border_value=0.5, stride=2)),
    ((17, 300), (5, 3), dict(border="reflect", dilation=3)),
])
def test_both_shapes_of_the_program(runtime, monkeypatch, request, form, image_shape, kernel_shape, options):
    """The columns shape (PoCL's CPU device) and the passes shape (every other device; run here on
    PoCL too, as the CI's CLCONV_CODE_PATH=gpu run does for the whole suite) against the oracle."""
    if form == "columns" and not runtime.info.pocl_version:
        pytest.skip("the columns shape is built for PoCL's CPU device only")
    request.addfinalizer(fft.layout.cache_clear)
    monkeypatch.setattr(fft, "shape", lambda rt: form)
    image = oracle.make_image(image_shape, np.float32, seed=sum(image_shape))
    check(image, dense(*kernel_shape, seed=5), alpha="filter", **options)


def test_the_spectrum_is_cached_per_weights_and_layout():
    lay = fft.Layout(1, (40, 50), (5, 5), 1, 1, 2304)
    weights = dense(5, 5, seed=30)
    caches = fft.Caches()
    first = caches.spectrum(weights, 1, lay)
    assert caches.spectrum(weights.copy(), 1, lay) is first
    assert caches.spectrum(weights * 2, 1, lay) is not first
    for seed in range(fft.SPECTRUM_CACHE + 1):
        caches.spectrum(dense(5, 5, seed=100 + seed), 1, lay)
    assert len(caches.host_spectra) == fft.SPECTRUM_CACHE
    # the stored spectrum is conj(FFT2(kernel)) / N, in fft_rows' [ky/16][kx][16] order
    g = np.zeros((lay.mh, lay.mw))
    g[:5, :5] = weights
    expected = np.conj(np.fft.fft2(g)) / g.size
    got = caches.spectrum(weights, 1, lay)
    re = got[0].transpose(0, 2, 1).reshape(lay.ph, lay.mw)[: lay.mh]
    np.testing.assert_allclose(re, expected.real, atol=1e-7)


# ---------------------------------------------------------------- planning helpers
def test_sizes_and_plans():
    assert [fft.smooth_size(n) for n in (1, 2, 7, 11, 13, 17, 1054, 2078, 4097)] == \
        [1, 2, 8, 12, 15, 18, 1080, 2160, 4320]
    for n in (2, 3, 5, 16, 30, 1080, 2160, 4320, 6561, 15625):
        for limit in (64, 2304):
            plan = fft.pass_plan(n, limit)
            assert np.prod(plan) == n and max(plan) <= limit
            assert all(np.prod(fft.sub_plan(r)) == r for r in plan)
            assert all(s in fft.SUB_RADICES for r in plan for s in fft.sub_plan(r))
    assert fft.pass_plan(2160, 2304) == (2160,)  # one pass per axis on a CPU
    table, passes = fft.twiddles(40, 64)
    assert table.dtype == np.float32 and len(passes) == 1
    lay = fft.Layout(1, (2048, 2048), (31, 31), 1, 1, 2304)
    assert lay.rows_fused and lay.mh <= 2304 and lay.mw <= 2304
    tiles_h, tiles_w = lay.tiles_y * lay.q, lay.tiles_x * lay.qw
    assert tiles_h >= 2048 > tiles_h - lay.q and tiles_w >= 2048 > tiles_w - lay.qw
    assert lay.mh >= (lay.q - 1) + 31 and lay.mw >= (lay.qw - 1) + 31  # the tile and its halo fit
    assert lay.batch(2 << 30) * 2 * lay.plane * 4 * 2 <= fft.BATCH_BYTES  # both work buffers
    wide = fft.Layout(3, (50, 40), (3, 1025), 1, 4, 2304)  # a dilated span beyond fft_rows' reach
    assert not wide.rows_fused and wide.span_w == 4097
    passes = fft.Layout(1, (2048, 2048), (31, 31), 1, 1, fft.MAX_RADIX["passes"], fuse_rows=False)
    assert not passes.rows_fused and max(fft.pass_plan(passes.mh, 9)) <= 9
    assert all(fft.sub_plan(r) == (r,) for r in fft.pass_plan(passes.mh, 9))  # one DFT per pass


@pytest.mark.parametrize("border", ["reflect", "wrap", "constant"])
def test_dilated_spans_beyond_a_pass_take_the_transposing_path(border):
    image = oracle.make_image((7, 23, 2), np.float32, seed=40)
    weights = dense(3, 5, seed=41)
    options = dict(border=border, border_value=0.5, dilation=600, alpha="filter")  # span 2401 along x
    out = clconv.convolve(image, weights, algorithm="fft", **options)
    direct = clconv.convolve(image, weights, algorithm="direct", **options)
    np.testing.assert_allclose(out, direct, atol=1e-4 * np.abs(weights).sum() * 1.5)


def test_fft_runs_every_kernel():
    assert fft.refuses(Linear("k", np.ones((1025, 3)))) is None
    assert fft.SUMMARY


def test_the_caches_live_on_the_runtime(runtime):
    """Twiddles and spectra are kept per device, by the Runtime (one object per runtime)."""
    image = oracle.make_image((40, 50), np.float32, seed=50)
    clconv.convolve(image, dense(9, 9, seed=51), device=runtime, algorithm="fft")
    caches = runtime.cache("fft", fft.Caches)
    assert caches is fft._caches(runtime)
    assert caches.twiddles and 1 <= len(caches.device_spectra) <= fft.DEVICE_SPECTRA
    assert 1 <= len(caches.host_spectra) <= fft.SPECTRUM_CACHE
