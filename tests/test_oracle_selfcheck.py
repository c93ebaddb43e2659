"""The oracle (tests/oracle.py) against brute-force Python loops on tiny inputs.

Every rule of SPEC "Semantics" that test_convolve.py relies on is restated here as the most literal
loop possible (one output pixel, one tap, one border index at a time), written from the SPEC's
words and pictures rather than from scipy, so the oracle's use of scipy.ndimage / numpy.pad is
checked, not assumed. No clconv code is imported.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

import oracle
from oracle import MODES

# ----------------------------------------------------------------------------------------------
# Brute force, straight from the SPEC's words
# ----------------------------------------------------------------------------------------------


def bidx(i: int, n: int, mode: str):
    """Index of the source pixel for position i (possibly outside 0..n-1); None = the constant.

    reflect: d c b a | a b c d | d c b a   (period 2n, edge repeated)
    mirror:    d c b | a b c d | c b a     (period 2n-2, edge not repeated; n == 1: a a a)
    nearest: a a a a | a b c d | d d d d
    wrap:    a b c d | a b c d | a b c d
    """
    if 0 <= i < n:
        return i
    if mode == "constant":
        return None
    if mode == "nearest":
        return 0 if i < 0 else n - 1
    if mode == "wrap":
        return i % n
    if mode == "reflect":
        i %= 2 * n
        return i if i < n else 2 * n - 1 - i
    if mode == "mirror":
        if n == 1:
            return 0
        i %= 2 * n - 2
        return i if i < n else 2 * n - 2 - i
    raise ValueError(mode)


def ext(x, y, xx, mode, cval):
    """x extended: the value at (y, xx) anywhere on the plane."""
    iy, ix = bidx(y, x.shape[0], mode), bidx(xx, x.shape[1], mode)
    if iy is None or ix is None:
        return cval
    return float(x[iy, ix])


def brute_positions(shape, kshape, flip, padding, stride, dilation):
    """For every output pixel: (oy, ox, [(weight index (i, j), source y, source x)], anchor (y, x)).

    "same" (padding None), correlation: out[y, x] = sum k[i, j] * in[y + i*D - cy, x + j*D - cx],
    (cy, cx) the centre (size//2) of the dilated kernel; outputs at y, x multiples of S.
    "same" with flip, the mathematical convolution: out[y] = sum k[i] * in[y - i*D + c] with c the
    dilated kernel's size//2 (this is scipy.ndimage.convolve, even sizes included).
    padding N: out[oy, ox] = sum k'[i, j] * padded[oy*S + i*D, ox*S + j*D], padded[p] = in[p - N],
    k' = k rotated 180 degrees with flip; anchor tap (kh//2, kw//2), ((kh-1)//2, (kw-1)//2) with flip.
    """
    H, W = shape
    kh, kw = kshape
    D, S = dilation, stride
    res = []
    if padding is None:
        ch, cw = (D * (kh - 1) + 1) // 2, (D * (kw - 1) + 1) // 2
        for oy, y in enumerate(range(0, H, S)):
            for ox, x in enumerate(range(0, W, S)):
                taps = []
                for i in range(kh):
                    for j in range(kw):
                        if flip:
                            taps.append(((i, j), y - i * D + ch, x - j * D + cw))
                        else:
                            taps.append(((i, j), y + i * D - ch, x + j * D - cw))
                res.append((oy, ox, taps, (y, x)))
        return res, (len(range(0, H, S)), len(range(0, W, S)))
    N = padding
    oh = (H + 2 * N - D * (kh - 1) - 1) // S + 1
    ow = (W + 2 * N - D * (kw - 1) - 1) // S + 1
    ay, ax = ((kh - 1) // 2, (kw - 1) // 2) if flip else (kh // 2, kw // 2)
    for oy in range(oh):
        for ox in range(ow):
            taps = []
            for i in range(kh):
                for j in range(kw):
                    wi = (kh - 1 - i, kw - 1 - j) if flip else (i, j)
                    taps.append((wi, oy * S + i * D - N, ox * S + j * D - N))
            res.append((oy, ox, taps, (oy * S + ay * D - N, ox * S + ax * D - N)))
    return res, (oh, ow)


def brute_plain(x, w, mode="reflect", cval=0.0, flip=False, padding=None, stride=1, dilation=1):
    pos, oshape = brute_positions(x.shape, w.shape, flip, padding, stride, dilation)
    out = np.zeros(oshape)
    for oy, ox, taps, _ in pos:
        out[oy, ox] = sum(w[ij] * ext(x, y, xx, mode, cval) for ij, y, xx in taps)
    return out


def brute_alpha_keep(c, a, w, mode="reflect", cval=0.0, flip=False, padding=None, stride=1, dilation=1,
                     amax=1.0):
    """SPEC: colour m = sum(k*a*c)/sum(k*a) for k >= 0 (anchor colour where the sum is 0); for any
    other kernel every tap's colour counts as a*c + (1-a)*m with a in 0..1 and m the same mean
    with |k|; alpha kept (sampled under the anchor)."""
    pos, oshape = brute_positions(c.shape, w.shape, flip, padding, stride, dilation)
    oc, oa = np.zeros(oshape), np.zeros(oshape)
    signed = bool(np.any(w < 0))
    for oy, ox, taps, (ay, ax) in pos:
        num = sum(abs(w[ij]) * ext(a, y, xx, mode, cval) * ext(c, y, xx, mode, cval) for ij, y, xx in taps)
        den = sum(abs(w[ij]) * ext(a, y, xx, mode, cval) for ij, y, xx in taps)
        m = num / den if den != 0 else ext(c, ay, ax, mode, cval)
        if signed:
            m = sum(w[ij] * (ext(a, y, xx, mode, cval) / amax * ext(c, y, xx, mode, cval)
                             + (1 - ext(a, y, xx, mode, cval) / amax) * m) for ij, y, xx in taps)
        oc[oy, ox] = m
        oa[oy, ox] = ext(a, ay, ax, mode, cval)
    return oc, oa


def brute_map(v, dtype, do_abs, scale, bias):
    top = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}[np.dtype(dtype)]
    f = np.vectorize(lambda t: min(max(round(scale * (abs(t) if do_abs else t) + bias), 0), top))
    return f(v).astype(np.float64)


# ----------------------------------------------------------------------------------------------
# Border extension and aliases
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_pad_matches_border_pictures(mode, n):
    a = np.arange(1.0, n + 1).reshape(1, n)
    p = oracle.pad(a, 70, mode, cval=-7.0)
    expect = [ext(a, 0, i, mode, -7.0) for i in range(-70, n + 70)]
    assert list(p[70]) == expect


def test_pictures_of_the_spec():
    a = np.array([[1.0, 2, 3, 4]])  # a b c d
    row = lambda mode: list(oracle.pad(a, 4, mode)[4])  # noqa: E731
    assert row("reflect")[:8] == [4, 3, 2, 1, 1, 2, 3, 4]  # d c b a | a b c d
    assert row("mirror")[1:8] == [4, 3, 2, 1, 2, 3, 4]  # d c b | a b c d
    assert row("nearest")[:8] == [1, 1, 1, 1, 1, 2, 3, 4]
    assert row("wrap")[2:8] == [3, 4, 1, 2, 3, 4]  # c d | a b c d


def test_aliases():
    for alias, canon in {
        "symmetric": "reflect", "reflect101": "mirror", "reflect_101": "mirror", "edge": "nearest",
        "replicate": "nearest", "clamp": "nearest", "periodic": "wrap", "tile": "wrap",
        "circular": "wrap", "reflect": "reflect", "constant": "constant",
    }.items():
        assert oracle.canonical_border(alias, 5.0) == (canon, 5.0)
    assert oracle.canonical_border("zero", 5.0) == ("constant", 0.0)
    with pytest.raises(ValueError):
        oracle.canonical_border("bogus")


# ----------------------------------------------------------------------------------------------
# Plain correlation, every geometry
# ----------------------------------------------------------------------------------------------

SHAPES = [(1, 1), (1, 4), (4, 1), (3, 5), (6, 4)]
KSHAPES = [(1, 1), (2, 2), (3, 3), (1, 5), (5, 1), (3, 4), (4, 4), (7, 6), (1, 31), (17, 2)]
BORDERS = [(m, 0.0) for m in MODES] + [("constant", 37.5)]


@pytest.mark.parametrize("mode,cval", BORDERS)
@pytest.mark.parametrize("flip", [False, True])
def test_same_geometry_matches_brute(mode, cval, flip):
    rng = np.random.default_rng(1)
    g_sd = [(1, 1), (2, 1), (1, 2), (3, 2), (2, 3)]
    for shape, kshape, (s, d) in itertools.product(SHAPES, KSHAPES, g_sd):
        x = rng.random(shape) * 10
        w = rng.normal(size=kshape)
        got = oracle.reference(x, w, mode, border_value=cval, flip=flip, stride=s, dilation=d).raw
        want = brute_plain(x, w, mode, cval, flip, None, s, d)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"{shape} {kshape} S={s} D={d}")
        assert got.shape == oracle.output_shape(shape, [kshape], None, s, d)


@pytest.mark.parametrize("mode,cval", BORDERS)
@pytest.mark.parametrize("flip", [False, True])
def test_padding_geometry_matches_brute(mode, cval, flip):
    rng = np.random.default_rng(2)
    g_psd = [(0, 1, 1), (1, 1, 1), (2, 2, 1), (5, 1, 2), (1, 3, 2), (5, 2, 3), ("valid", 1, 1)]
    n = 0
    for shape, kshape, (p, s, d) in itertools.product(SHAPES, KSHAPES, g_psd):
        pn = 0 if p == "valid" else p
        oh, ow = oracle.output_shape(shape, [kshape], p, s, d)
        x = rng.random(shape) * 10
        w = rng.normal(size=kshape)
        if oh < 1 or ow < 1:
            with pytest.raises(ValueError):
                oracle.reference(x, w, mode, border_value=cval, flip=flip, padding=p, stride=s, dilation=d)
            continue
        n += 1
        got = oracle.reference(x, w, mode, border_value=cval, flip=flip, padding=p, stride=s, dilation=d).raw
        want = brute_plain(x, w, mode, cval, flip, pn, s, d)
        assert got.shape == want.shape == (oh, ow)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"{shape} {kshape} P={p} S={s} D={d}")
    assert n > 100


def test_output_size_formula():
    # PyTorch: floor((i + 2p - d(k-1) - 1)/s + 1); "same": ceil(i/s)
    assert oracle.output_size(10, 3, 0, 1, 1) == 8
    assert oracle.output_size(10, 3, "valid", 1, 1) == 8
    assert oracle.output_size(10, 3, 1, 2, 1) == 5
    assert oracle.output_size(10, 3, 2, 3, 2) == 4
    assert oracle.output_size(7, 4, 5, 1, 3) == 8
    assert oracle.output_size(10, 3, None, 3, 2) == 4
    assert oracle.output_size(1, 9, None, 1, 1) == 1
    assert oracle.output_size(3, 5, 0, 1, 1) == -1


def test_flip_is_scipy_convolve_and_rot180_for_odd():
    rng = np.random.default_rng(3)
    x = rng.random((9, 8))
    for kshape in [(3, 3), (2, 2), (3, 4), (5, 1)]:
        w = rng.normal(size=kshape)
        for mode in MODES:
            got = oracle.reference(x, w, mode, flip=True).raw
            np.testing.assert_allclose(got, ndi.convolve(x, w, mode=mode), atol=1e-12)
            if kshape[0] % 2 and kshape[1] % 2:
                np.testing.assert_allclose(got, oracle.reference(x, np.rot90(w, 2), mode).raw, atol=1e-12)
            # SPEC: for even sizes the anchor moves: convolve == correlate(rot180, origin=-1 on even axes)
            origin = [-1 if k % 2 == 0 else 0 for k in kshape]
            np.testing.assert_allclose(got, ndi.correlate(x, w[::-1, ::-1], mode=mode, origin=origin), atol=1e-12)


def test_skimage_kernel_detects_flip_shift_transpose():
    x = np.zeros((7, 7))
    x[3, 3] = 1.0
    w = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128], dtype=float).reshape(3, 3)
    plain = oracle.reference(x, w, "constant").raw
    # correlation of a delta shows the kernel rotated 180 degrees around the pixel
    assert np.array_equal(plain[2:5, 2:5], w[::-1, ::-1])
    for other in [w[::-1, ::-1], w.T, w[::-1], w[:, ::-1]]:
        assert not np.array_equal(oracle.reference(x, other, "constant").raw, plain)
    assert np.array_equal(oracle.reference(x, w, "constant", flip=True).raw[2:5, 2:5], w)


@settings(max_examples=150, deadline=None)
@given(
    h=st.integers(1, 6), w=st.integers(1, 6), kh=st.integers(1, 15), kw=st.integers(1, 9),
    mode=st.sampled_from(MODES), flip=st.booleans(), padding=st.sampled_from([None, 0, 1, 2, 4]),
    stride=st.integers(1, 3), dilation=st.integers(1, 3), seed=st.integers(0, 2**32 - 1),
)
def test_random_geometry_matches_brute(h, w, kh, kw, mode, flip, padding, stride, dilation, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((h, w))
    k = rng.normal(size=(kh, kw))
    oh, ow = oracle.output_shape((h, w), [(kh, kw)], padding, stride, dilation)
    if oh < 1 or ow < 1:
        return
    got = oracle.reference(x, k, mode, border_value=0.75, flip=flip, padding=padding, stride=stride,
                           dilation=dilation).raw
    want = brute_plain(x, k, mode, 0.75, flip, padding, stride, dilation)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# Channels, alpha, chains, mapping
# ----------------------------------------------------------------------------------------------


def test_channels_filtered_independently():
    rng = np.random.default_rng(4)
    img = rng.random((5, 6, 3))
    w = rng.normal(size=(3, 2))
    got = oracle.reference(img, w, "wrap").raw
    for c in range(3):
        np.testing.assert_allclose(got[..., c], brute_plain(img[..., c], w, "wrap"), atol=1e-12)
    # alpha None and "filter" treat the 4th channel like any other
    img4 = rng.random((5, 6, 4))
    for alpha in (None, "filter"):
        got = oracle.reference(img4, w, "mirror", alpha=alpha).raw
        np.testing.assert_allclose(got[..., 3], brute_plain(img4[..., 3], w, "mirror"), atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("geo", [(False, None, 1, 1), (True, None, 2, 2), (False, 2, 2, 1), (True, 1, 1, 2),
                                 (True, 3, 3, 3), (False, "valid", 1, 1)])
def test_alpha_keep_matches_brute(mode, geo):
    flip, padding, stride, dilation = geo
    rng = np.random.default_rng(5)
    for kshape in [(3, 3), (2, 3), (4, 1)]:
        rgba = rng.integers(0, 256, size=(6, 7, 4)).astype(np.uint8)
        rgba[:3, :3, 3] = 0  # a fully transparent corner: zero denominators
        rgba[:3, :3, :3] = 0
        w = rng.random(kshape)
        w[0, 0] = 0.0
        ref = oracle.reference(rgba, w, mode, alpha="keep", flip=flip, padding=padding, stride=stride,
                               dilation=dilation)
        pn = 0 if padding == "valid" else padding
        a = rgba[..., 3].astype(float)
        for c in range(3):
            oc, oa = brute_alpha_keep(rgba[..., c].astype(float), a, w, mode, 0.0, flip, pn, stride, dilation)
            np.testing.assert_allclose(ref.raw[..., c], oc, rtol=1e-12, atol=1e-9)
            np.testing.assert_allclose(ref.expected[..., c], np.clip(np.rint(oc), 0, 255), atol=0)
        assert np.array_equal(ref.raw[..., 3], oa)
        assert np.array_equal(ref.expected[..., 3], oa)
        assert np.all(ref.tol[..., 3] == 0)


@pytest.mark.parametrize("mode", ["nearest", "constant"])
@pytest.mark.parametrize("name", ["sobel-x", "sharpen", "emboss"])
def test_alpha_keep_signed_kernel_fills_hidden_colour(name, mode):
    rng = np.random.default_rng(6)
    img = rng.random((6, 5, 2)).astype(np.float32)
    img[1:3, 2:4, 1] = 0.0
    w = np.array(oracle._INT_TABLE[name], float)
    ref = oracle.reference(img, name, mode, alpha="keep", border_value=0.25)
    cval = 0.25 if mode == "constant" else 0.0
    got = brute_alpha_keep(img[..., 0].astype(float), img[..., 1].astype(float), w, mode, cval)[0]
    np.testing.assert_allclose(ref.raw[..., 0], got, atol=1e-9)
    assert np.array_equal(ref.raw[..., 1], img[..., 1])
    # with every alpha 1 it is the plain filter
    img[..., 1] = 1.0
    ref = oracle.reference(img, name, mode, alpha="keep", border_value=1.0 if mode == "constant" else 0.0)
    plain = brute_plain(img[..., 0].astype(float), w, mode, 1.0)
    np.testing.assert_allclose(ref.raw[..., 0], plain, atol=1e-9)


def test_alpha_keep_sobel_is_the_magnitude_of_its_parts():
    rng = np.random.default_rng(16)
    img = rng.random((6, 7, 2))
    img[2:4, 1:5, 1] = 0.0
    ref = oracle.reference(img, "sobel", "reflect", alpha="keep")
    gx, gy = (brute_alpha_keep(img[..., 0], img[..., 1], np.array(oracle._INT_TABLE[n], float))[0]
              for n in ("sobel-x", "sobel-y"))
    np.testing.assert_allclose(ref.raw[..., 0], np.hypot(gx, gy), atol=1e-12)


def test_alpha_keep_chain_follows_each_kernels_weights():
    rng = np.random.default_rng(7)
    img = rng.random((7, 6, 2))
    img[:2, :, 1] = 0.0
    box = np.full((3, 3), 1 / 9)
    ref = oracle.reference(img, [box, "sharpen", box], "reflect", alpha="keep")
    c1, a = brute_alpha_keep(img[..., 0], img[..., 1], box)
    c2, _ = brute_alpha_keep(c1, img[..., 1], np.array(oracle._INT_TABLE["sharpen"], float))
    c3, _ = brute_alpha_keep(c2, img[..., 1], box)
    np.testing.assert_allclose(ref.raw[..., 0], c3, atol=1e-12)
    assert np.array_equal(ref.raw[..., 1], img[..., 1])


def test_chain_is_sequential_and_unrounded():
    rng = np.random.default_rng(8)
    img = rng.integers(0, 256, size=(8, 9)).astype(np.uint8)
    g = oracle.gaussian_2d(1.0)
    sx = np.array(oracle._INT_TABLE["sobel-x"], float)
    ref = oracle.reference(img, ["gaussian", "sobel-x"], "reflect")
    want = brute_plain(brute_plain(img.astype(float), g), sx)
    np.testing.assert_allclose(ref.raw, want, atol=1e-9)
    # only the last kernel's default (abs for sobel-x) applies, once
    np.testing.assert_array_equal(ref.expected, brute_map(want, np.uint8, True, 1.0, 0.0))


@given(v=st.lists(st.floats(-1e5, 1e5, allow_nan=False), min_size=1, max_size=40),
       dtype=st.sampled_from([np.uint8, np.uint16]), do_abs=st.booleans(),
       scale=st.sampled_from([1.0, 0.25, 3.0, -1.0]), bias=st.sampled_from([0.0, 10.0, 128.0, 0.5]))
def test_mapping_matches_python(v, dtype, do_abs, scale, bias):
    v = np.array(v + [2.5, 3.5, -0.5, 0.5, 254.5, 255.5, 65534.5])
    got = oracle.apply_mapping(v, dtype, (do_abs, scale, bias, True))
    np.testing.assert_array_equal(got, brute_map(v, dtype, do_abs, scale, bias))


def test_mapping_defaults():
    m = oracle.mapping_for
    k = oracle.as_kernel
    assert m(np.uint8, k("sobel-x")) == (True, 1.0, 0.0, True)
    assert m(np.uint16, k("laplacian")) == (True, 1.0, 0.0, True)
    assert m(np.uint8, k("emboss")) == (False, 1.0, 128.0, True)
    assert m(np.uint16, k("emboss")) == (False, 1.0, 32768.0, True)
    assert m(np.uint8, k("sobel")) == (False, 1.0, 0.0, True)
    assert m(np.uint8, k("gaussian")) == (False, 1.0, 0.0, True)
    assert m(np.float32, k("sobel-x")) == (False, 1.0, 0.0, False)
    assert m(np.float32, k("emboss")) == (False, 1.0, 0.0, False)
    assert m(np.float32, k("emboss"), abs=True, scale=0.25, bias=10) == (True, 0.25, 10.0, False)
    assert m(np.uint8, k("sobel-x"), abs=False) == (False, 1.0, 0.0, True)
    assert m(np.uint8, k("emboss"), bias=0) == (False, 1.0, 0.0, True)
    for name in ["sobel-y", "prewitt-x", "prewitt-y", "scharr-x", "scharr-y", "edge"]:
        assert m(np.uint8, k(name))[0] is True
    for name in ["identity", "box", "blur", "unsharp", "sharpen"]:
        assert m(np.uint8, k(name)) == (False, 1.0, 0.0, True)


def test_float_output_is_raw():
    img = oracle.make_image((6, 6), np.float32, seed=9)
    ref = oracle.reference(img, "sobel-x", "reflect")
    sobel_x = np.array(oracle._INT_TABLE["sobel-x"], float)
    np.testing.assert_allclose(ref.expected, brute_plain(img.astype(float), sobel_x))
    assert (ref.expected < 0).any()


# ----------------------------------------------------------------------------------------------
# Named kernels against scipy's own filters
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma,truncate", [(1.0, 4.0), (2.0, 4.0), (0.5, 4.0), (1.5, 3.0), (0.8, 2.0)])
def test_gaussian_equals_scipy_gaussian_filter(sigma, truncate):
    w = oracle.gaussian_2d(sigma, truncate)
    r = int(truncate * sigma + 0.5)
    assert w.shape == (2 * r + 1, 2 * r + 1)
    delta = np.zeros((2 * r + 1, 2 * r + 1))
    delta[r, r] = 1.0
    np.testing.assert_allclose(w, ndi.gaussian_filter(delta, sigma, mode="constant", truncate=truncate), atol=1e-15)
    # the SPEC's 2D formula, normalised
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    e = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    np.testing.assert_allclose(w, e / e.sum(), atol=1e-15)
    spec = f"gaussian:sigma={sigma},truncate={truncate}"
    np.testing.assert_array_equal(oracle.as_kernel(spec).weights, w)
    np.testing.assert_array_equal(oracle.as_kernel(spec.replace("gaussian", "blur")).weights, w)


def test_gaussian_defaults_and_size():
    assert oracle.as_kernel("gaussian").weights.shape == (9, 9)
    assert oracle.as_kernel("gaussian:sigma=2").weights.shape == (17, 17)
    w = oracle.as_kernel("gaussian:sigma=1.5,size=9").weights
    assert w.shape == (9, 9) and abs(w.sum() - 1) < 1e-12


def test_named_kernels_against_scipy_filters():
    rng = np.random.default_rng(10)
    x = rng.random((9, 11)) * 255
    R = lambda spec, **kw: oracle.reference(x, spec, "reflect", **kw).raw  # noqa: E731
    np.testing.assert_allclose(R("sobel-x"), ndi.sobel(x, axis=1), atol=1e-9)
    np.testing.assert_allclose(R("sobel-y"), ndi.sobel(x, axis=0), atol=1e-9)
    np.testing.assert_allclose(R("sobel"), np.hypot(ndi.sobel(x, axis=1), ndi.sobel(x, axis=0)), atol=1e-9)
    np.testing.assert_allclose(R("prewitt-x"), ndi.prewitt(x, axis=1), atol=1e-9)
    np.testing.assert_allclose(R("prewitt-y"), ndi.prewitt(x, axis=0), atol=1e-9)
    np.testing.assert_allclose(R("laplacian"), ndi.laplace(x), atol=1e-9)
    np.testing.assert_allclose(R("box"), ndi.uniform_filter(x, 3), atol=1e-9)
    np.testing.assert_allclose(R("box:size=5"), ndi.uniform_filter(x, 5), atol=1e-9)
    np.testing.assert_allclose(R("gaussian"), ndi.gaussian_filter(x, 1.0), atol=1e-9)
    np.testing.assert_allclose(R("gaussian:sigma=2"), ndi.gaussian_filter(x, 2.0), atol=1e-9)
    np.testing.assert_allclose(R("unsharp"), 2 * x - ndi.gaussian_filter(x, 1.0), atol=1e-9)
    np.testing.assert_allclose(R("unsharp:amount=0.5,sigma=2"), 1.5 * x - 0.5 * ndi.gaussian_filter(x, 2.0), atol=1e-9)
    np.testing.assert_allclose(R("identity"), x, atol=0)
    # scharr: [-1 0 1] x [3 10 3]
    c1d = ndi.correlate1d
    np.testing.assert_allclose(R("scharr-x"), c1d(c1d(x, [-1, 0, 1], 1), [3, 10, 3], 0), atol=1e-9)
    np.testing.assert_allclose(R("scharr-y"), c1d(c1d(x, [-1, 0, 1], 0), [3, 10, 3], 1), atol=1e-9)
    np.testing.assert_allclose(R("sharpen"), 5 * x - ndi.correlate(x, [[0, 1, 0], [1, 0, 1], [0, 1, 0]]), atol=1e-9)
    np.testing.assert_allclose(R("edge"), 9 * x - ndi.uniform_filter(x, 3) * 9, atol=1e-9)
    # emboss sums to 0: a flat image becomes flat 0 (raw), mid-grey after the default bias
    flat = np.full((5, 5), 77, np.uint8)
    ref = oracle.reference(flat, "emboss", "reflect")
    assert np.all(ref.raw == 0) and np.all(ref.expected == 128)
    assert np.all(oracle.reference(flat.astype(np.uint16) * 300, "emboss").expected == 32768)


def test_kernel_spec_forms():
    k = oracle.as_kernel
    np.testing.assert_array_equal(k("-1 0 1; -2 0 2; -1 0 1").weights, oracle._INT_TABLE["sobel-x"])
    np.testing.assert_array_equal(k("1,0,-1;2,0,-2;1,0,-1").weights, -np.array(oracle._INT_TABLE["sobel-x"]))
    np.testing.assert_array_equal(k("3x1: 1,0,-1").weights, [[1, 0, -1]])
    np.testing.assert_array_equal(k("1x3: 1,0,-1").weights, [[1], [0], [-1]])
    np.testing.assert_array_equal(k("box:size=5").weights, np.full((5, 5), 1 / 25))
    assert k("sobel").is_magnitude and k("sobel").abs_sum == 16
    assert k("box").nonnegative and not k("sharpen").nonnegative
    assert [c.name for c in oracle.as_chain(["box", "box", "sharpen"])] == ["box", "box", "sharpen"]


# ----------------------------------------------------------------------------------------------
# The comparison helper must catch what it is meant to catch
# ----------------------------------------------------------------------------------------------


def test_assert_matches_catches_errors():
    img = oracle.make_image((10, 12), np.uint8, seed=11)
    ref = oracle.reference(img, "box", "reflect")
    good = ref.expected.astype(np.uint8)
    oracle.assert_matches(good, ref)
    off1 = good.astype(int)
    off1[off1 < 255] += 1
    oracle.assert_matches(off1.astype(np.uint8), ref)  # at most 1 is allowed
    off2 = good.astype(int)
    off2[3, 4] = (off2[3, 4] + 2) % 256
    with pytest.raises(AssertionError, match="differ"):
        oracle.assert_matches(off2.astype(np.uint8), ref)
    with pytest.raises(AssertionError, match="dtype"):
        oracle.assert_matches(good.astype(np.uint16), ref)
    with pytest.raises(AssertionError, match="shape"):
        oracle.assert_matches(good[:, :-1], ref)
    with pytest.raises(AssertionError, match="differ"):  # a wrong border mode is caught
        oracle.assert_matches(oracle.reference(img, "box", "wrap").expected.astype(np.uint8), ref)
    f = oracle.make_image((10, 12), np.float32, seed=12)
    fref = oracle.reference(f, "sobel-x", "nearest")
    oracle.assert_matches(fref.expected.astype(np.float32), fref)
    with pytest.raises(AssertionError):
        oracle.assert_matches(np.abs(fref.expected).astype(np.float32), fref)  # a wrong mapping is caught
    with pytest.raises(AssertionError):
        oracle.assert_matches(oracle.reference(f, "sobel-x", "nearest", flip=True).expected.astype(np.float32), fref)


def test_float_tolerance_scales_with_kernel_abs_sum():
    f = oracle.make_image((5, 5), np.float32, seed=13, lo=0.0, hi=2.0)
    vr = oracle.value_range(f)
    assert 1.9 < vr <= 2.0
    assert oracle.float_atol(f, oracle.as_chain("box")) == pytest.approx(1e-4 * vr)
    assert oracle.float_atol(f, oracle.as_chain("sobel-x")) == pytest.approx(8e-4 * vr)
    assert oracle.float_atol(f, oracle.as_chain(["box", "box", "sharpen"])) == pytest.approx(9e-4 * vr)
    u = oracle.make_image((5, 5), np.uint8)
    assert oracle.value_range(u) == 255 and oracle.value_range(u.astype(np.uint16)) == 65535
    assert oracle.value_range(np.zeros((3, 3), np.float32)) == 1.0


def test_tiny_denominator_bounds_follow_the_chain():
    """Where sum(k*a) is tiny, the ratio is only bounded; the bounds are those of the colour that
    entered the weighted kernel (after a sharpen, wider than the input's)."""
    rng = np.random.default_rng(14)
    img = rng.random((12, 12, 2))
    img[..., 1] = 0.0
    img[0, 0, 1] = 1e-9  # one barely-visible pixel: tiny denominators around it
    img[9:, :, 1] = 1.0  # an opaque band out of its reach, where the sharpen widens the range
    g = oracle.gaussian_2d(1.0)
    ref = oracle.reference(img, ["sharpen", g], "reflect", alpha="keep")
    c1, _ = brute_alpha_keep(img[..., 0], img[..., 1], np.array(oracle._INT_TABLE["sharpen"], float))
    c2, _ = brute_alpha_keep(c1, img[..., 1], g)
    tiny = ~np.isfinite(ref.tol[..., 0])
    assert tiny.any()
    assert np.all(ref.lower[..., 0][tiny] <= c2[tiny]) and np.all(c2[tiny] <= ref.upper[..., 0][tiny])
    assert ref.lower[..., 0][tiny].min() < img[..., 0].min() - 0.1  # sharpen widened the range
    np.testing.assert_allclose(ref.raw[..., 0], c2, rtol=1e-9, atol=1e-9)


def test_scipy_nd_reflect_discrepancy_is_avoided():
    """Why the oracle pads with numpy first: scipy.ndimage.correlate's own reflect extension is
    wrong for kernels many times longer than the image; correlate1d and the SPEC picture agree."""
    rng = np.random.default_rng(15)
    x = rng.random((1, 3))
    w = rng.standard_normal((1, 31))
    want = brute_plain(x, w, "reflect")
    np.testing.assert_allclose(ndi.correlate1d(x, w[0], axis=1, mode="reflect"), want, atol=1e-12)
    np.testing.assert_allclose(oracle.reference(x, w, "reflect").raw, want, atol=1e-12)
    for flip in (False, True):
        for mode in MODES:
            for shape, kshape in [((2, 1), (17, 2)), ((5, 4), (1, 101)), ((3, 2), (31, 31))]:
                xx = rng.random(shape)
                k = rng.standard_normal(kshape)
                np.testing.assert_allclose(oracle.reference(xx, k, mode, flip=flip).raw,
                                           brute_plain(xx, k, mode, 0.0, flip), atol=1e-9)
