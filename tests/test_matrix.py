"""clconv.matrix: the convolution as a sparse (CSR) doubly-blocked Toeplitz matrix.

``M @ x.ravel()`` is held to the real device (``clconv.convolve`` on the session's OpenCL
device, nothing mocked) within float32 tolerance, and to independent float64 references
(scipy.ndimage.correlate/convolve, the numpy.pad-based tests/oracle.py, and
scipy.linalg.convolution_matrix in 1D) to float64 round-off.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.linalg
import scipy.ndimage as ndi
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clconv
from clconv.errors import KernelSpecError, OptionError, OutputError
from clconv.kernels import parse_spec
from clconv.matrix import convolution_matrix, format_matrix, parse_shape, save_matrix

import oracle

MODES = ("reflect", "mirror", "nearest", "wrap", "constant")
ALIASES = ("symmetric", "reflect101", "edge", "periodic", "zero")
BORDERS = MODES + ALIASES

RNG = np.random.default_rng(20240607)
KERNELS = {
    "odd3x3": RNG.standard_normal((3, 3)),
    "even4x4": RNG.standard_normal((4, 4)),
    "wide2x5": RNG.standard_normal((2, 5)),
    "tall5x2": RNG.standard_normal((5, 2)),
    "one1x1": np.array([[1.7]]),
    "sobel-x": "sobel-x",
    "gaussian": "gaussian:sigma=0.8",
}
GEOMETRIES = [
    {},
    {"stride": 2},
    {"stride": 3},
    {"dilation": 2},
    {"padding": 0},
    {"padding": "valid"},
    {"padding": 1},
    {"padding": 2, "stride": 2},
    {"padding": 3, "dilation": 2},
    {"padding": 1, "stride": 2, "dilation": 2},
]


def image(shape, seed=0) -> np.ndarray:
    """float32 test image with both signs, values in [-1.5, 3.5]."""
    return np.random.default_rng(seed).uniform(-1.5, 3.5, shape).astype(np.float32)


def weights(kernel) -> np.ndarray:
    return parse_spec(kernel).weights


def device_atol(x, kernel, cval=0.0) -> float:
    """SPEC "Precision": 1e-4 of the value range (border constant included), scaled by sum|w|."""
    values = np.append(np.asarray(x, np.float64).ravel(), cval)
    span = max(float(np.ptp(values)), float(np.max(np.abs(values))), 1e-3)
    return 1e-4 * span * max(1.0, float(np.abs(weights(kernel)).sum()))


def matrix_apply(x, kernel, border="reflect", **kw):
    """(M @ x.ravel()) reshaped to the output shape, and M."""
    m = convolution_matrix(kernel, x.shape, border, **kw)
    out = m @ np.asarray(x, np.float64).ravel()
    return out, m


def check_device(runtime, x, kernel, border="reflect", **kw):
    """M @ x == clconv.convolve(x) on the device, within float32 tolerance."""
    x = np.asarray(x, np.float32)
    try:
        got = clconv.convolve(x, kernel, border=border, device=runtime, **kw)
    except OptionError as e:  # an empty output: the matrix refuses exactly the same cases
        assert "empty" in str(e)
        with pytest.raises(OptionError, match="empty"):
            convolution_matrix(kernel, x.shape, border, **kw)
        return
    out, m = matrix_apply(x, kernel, border, **kw)
    assert m.shape == (got.size, x.size)
    np.testing.assert_allclose(out, got.astype(np.float64).ravel(), rtol=0,
                               atol=device_atol(x, kernel, kw.get("border_value", 0.0)),
                               err_msg=f"border={border} {kw} image{x.shape} kernel={kernel if isinstance(kernel, str) else np.shape(kernel)}")


# ----------------------------------------------------------------------------------------------
# The matrix itself
# ----------------------------------------------------------------------------------------------


def test_matrix_type_shape_and_canonical_form():
    m = convolution_matrix("sobel-x", (4, 5))
    assert isinstance(m, sp.csr_array)
    assert m.dtype == np.float64
    assert m.shape == (20, 20)
    assert m.has_canonical_format  # sorted, no duplicates
    assert np.all(m.data != 0)  # no explicit zeros: sobel-x's middle column stores nothing
    # each interior row holds the 6 non-zero taps of sobel-x
    assert m[[1 * 5 + 2]].nnz == 6
    geo = convolution_matrix(np.ones((3, 3)), (7, 9), padding=1, stride=2)
    assert geo.shape == (4 * 5, 63)


def test_kernel_as_string_array_and_linear_agree():
    w = weights("emboss")
    a = convolution_matrix("emboss", (5, 6), "wrap").toarray()
    b = convolution_matrix(w, (5, 6), "wrap").toarray()
    c = convolution_matrix(parse_spec("emboss"), (5, 6), "wrap").toarray()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("border", ["reflect", "mirror", "nearest", "wrap"])
def test_rows_sum_to_kernel_sum_when_border_is_folded(border):
    """Folding keeps every tap's weight: each row sums to sum(w) (constant drops the outside ones)."""
    w = RNG.standard_normal((5, 4))
    m = convolution_matrix(w, (6, 7), border, padding=2, stride=2, dilation=2)
    np.testing.assert_allclose(m.sum(axis=1), w.sum(), rtol=0, atol=1e-12)


def test_reflect_folds_border_taps_onto_the_reflected_pixel():
    # 1x3 box weights 1, 2, 4 on a 1x3 image, reflect: out[0] = 1*x[0] (x[-1] -> x[0]) + 2*x[0] + 4*x[1]
    m = convolution_matrix("1 2 4", (1, 3), "reflect").toarray()
    np.testing.assert_array_equal(m, [[3, 4, 0], [1, 2, 4], [0, 1, 6]])
    m = convolution_matrix("1 2 4", (1, 3), "mirror").toarray()
    np.testing.assert_array_equal(m, [[2, 5, 0], [1, 2, 4], [0, 5, 2]])
    m = convolution_matrix("1 2 4", (1, 3), "nearest").toarray()
    np.testing.assert_array_equal(m, [[3, 4, 0], [1, 2, 4], [0, 1, 6]])
    m = convolution_matrix("1 2 4", (1, 3), "wrap").toarray()
    np.testing.assert_array_equal(m, [[2, 4, 1], [1, 2, 4], [4, 1, 2]])
    m = convolution_matrix("1 2 4", (1, 3), "constant").toarray()
    np.testing.assert_array_equal(m, [[2, 4, 0], [1, 2, 4], [0, 1, 2]])


# ----------------------------------------------------------------------------------------------
# Against the device: clconv.convolve
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("flip", [False, True], ids=["corr", "flip"])
@pytest.mark.parametrize("kname", sorted(KERNELS))
def test_matches_device_every_border_flip_kernel_geometry(runtime, border, flip, kname):
    kernel = KERNELS[kname]
    x = image((9, 11), seed=len(kname))
    for geo in GEOMETRIES:
        check_device(runtime, x, kernel, border, flip=flip, **geo)


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1), (2, 3), (3, 2)])
def test_matches_device_tiny_images_and_kernels_larger_than_the_image(runtime, border, shape):
    x = image(shape, seed=sum(shape))
    for kernel in (RNG.standard_normal((5, 7)), RNG.standard_normal((8, 3)), RNG.standard_normal((1, 13))):
        for flip in (False, True):
            check_device(runtime, x, kernel, border, flip=flip)
            check_device(runtime, x, kernel, border, flip=flip, stride=2, dilation=2)
            kh, kw = kernel.shape
            check_device(runtime, x, kernel, border, flip=flip, padding=max(kh, kw))


@given(
    h=st.integers(1, 12), w=st.integers(1, 12), kh=st.integers(1, 7), kw=st.integers(1, 7),
    border=st.sampled_from(BORDERS), flip=st.booleans(),
    padding=st.one_of(st.none(), st.integers(0, 4)), stride=st.integers(1, 3), dilation=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_matches_device_property(runtime, h, w, kh, kw, border, flip, padding, stride, dilation, seed):
    rng = np.random.default_rng(seed)
    kernel = rng.uniform(-2, 2, (kh, kw))
    x = rng.uniform(-1.5, 3.5, (h, w)).astype(np.float32)
    kw_ = dict(flip=flip, padding=padding, stride=stride, dilation=dilation)
    try:
        got = clconv.convolve(x, kernel, border=border, device=runtime, **kw_)
    except OptionError:
        # an empty output: the matrix refuses exactly the same cases
        with pytest.raises(OptionError):
            convolution_matrix(kernel, (h, w), border, **kw_)
        return
    m = convolution_matrix(kernel, (h, w), border, **kw_)
    assert m.shape == (got.size, h * w)
    np.testing.assert_allclose(m @ x.astype(np.float64).ravel(), got.ravel(), rtol=0, atol=device_atol(x, kernel))


# ----------------------------------------------------------------------------------------------
# Against independent float64 references
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("flip", [False, True], ids=["correlate", "convolve"])
def test_same_geometry_equals_scipy_ndimage(mode, flip):
    """scipy.ndimage.correlate/convolve exactly (float64), kernels no larger than the image.

    (scipy 1.17's n-D correlate mis-extends 'reflect' once the kernel is several times longer
    than the image; larger kernels are checked against the numpy.pad oracle below.)
    """
    f = ndi.convolve if flip else ndi.correlate
    for shape, kshape in [((6, 8), (3, 3)), ((7, 5), (4, 2)), ((5, 5), (5, 5)), ((9, 4), (2, 4)),
                          ((1, 7), (1, 4)), ((8, 1), (3, 1)), ((3, 3), (1, 1))]:
        x = RNG.standard_normal(shape)
        w = RNG.standard_normal(kshape)
        out, _ = matrix_apply(x, w, mode, flip=flip)
        np.testing.assert_allclose(out, f(x, w, mode=mode, cval=0.0).ravel(), rtol=0, atol=1e-12,
                                   err_msg=f"{mode} {shape} {kshape}")


@given(
    h=st.integers(1, 12), w=st.integers(1, 12), kh=st.integers(1, 7), kw=st.integers(1, 7),
    mode=st.sampled_from(MODES), flip=st.booleans(), seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=150, deadline=None)
def test_same_geometry_equals_scipy_ndimage_property(h, w, kh, kw, mode, flip, seed):
    rng = np.random.default_rng(seed)
    kh, kw = min(kh, h), min(kw, w)  # see test_same_geometry_equals_scipy_ndimage
    x = rng.standard_normal((h, w))
    k = rng.standard_normal((kh, kw))
    f = ndi.convolve if flip else ndi.correlate
    out, _ = matrix_apply(x, k, mode, flip=flip)
    np.testing.assert_allclose(out, f(x, k, mode=mode).ravel(), rtol=0, atol=1e-12)


@given(
    h=st.integers(1, 12), w=st.integers(1, 12), kh=st.integers(1, 7), kw=st.integers(1, 7),
    border=st.sampled_from(BORDERS), flip=st.booleans(),
    padding=st.one_of(st.none(), st.integers(0, 4)), stride=st.integers(1, 3), dilation=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=150, deadline=None)
def test_equals_float64_oracle_any_geometry(h, w, kh, kw, border, flip, padding, stride, dilation, seed):
    """tests/oracle.py (numpy.pad extension, self-checked) in float64: kernels larger than the image too."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((h, w))
    k = rng.standard_normal((kh, kw))
    kw_ = dict(flip=flip, padding=padding, stride=stride, dilation=dilation)
    try:
        ref = oracle.reference(x.astype(np.float32), k, border, **kw_).raw
    except ValueError:  # empty output
        with pytest.raises(OptionError):
            convolution_matrix(k, (h, w), border, **kw_)
        return
    m = convolution_matrix(k, (h, w), border, **kw_)
    got = m @ x.astype(np.float32).astype(np.float64).ravel()
    np.testing.assert_allclose(got, np.asarray(ref, np.float64).ravel(), rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------------------------
# 1D: scipy.linalg.convolution_matrix
# ----------------------------------------------------------------------------------------------
#
# scipy.linalg.convolution_matrix(a, n, mode) @ v == numpy.convolve(a, v, mode): the mathematical
# convolution (clconv flip=True) with zeros outside (border constant). 'full' is padding k-1,
# 'valid' is padding 0; clconv pads both axes (PyTorch's int padding), so a (1, n) image with
# padding P has 2P+1 output rows, and the 1D matrix is the block of the middle one (the others
# read only padding). numpy's 'same' keeps full[t + (k-1)//2]; clconv's default "same" geometry
# with flip=True follows scipy.ndimage.convolve (anchor (k-1)//2 of the flipped kernel), which keeps
# full[t + k//2]: equal for odd k only. For even k numpy's 'same' is the reversed kernel applied
# as written (flip=False, anchor k//2). 'same' and 'valid' only correspond for k <= n (numpy's
# output then has n and n-k+1 samples).


def middle_row(m, padding, n_out):
    """The rows of output row ``padding`` of a (1+2*padding)-row output: the 1D matrix."""
    dense = m.toarray()
    assert dense.shape[0] == (2 * padding + 1) * n_out
    others = np.delete(dense.reshape(2 * padding + 1, n_out, -1), padding, axis=0)
    assert not others.any()  # rows made of padding only read nothing
    return dense[padding * n_out:(padding + 1) * n_out]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_1d_full_and_valid(k, n):
    a = RNG.standard_normal(k)
    m = convolution_matrix(a[None, :], (1, n), "constant", flip=True, padding=k - 1)
    np.testing.assert_allclose(middle_row(m, k - 1, n + k - 1), scipy.linalg.convolution_matrix(a, n, "full"),
                               rtol=0, atol=1e-15)
    if k <= n:
        valid = convolution_matrix(a[None, :], (1, n), "constant", flip=True, padding=0).toarray()
        np.testing.assert_allclose(valid, scipy.linalg.convolution_matrix(a, n, "valid"), rtol=0, atol=1e-15)
    else:
        with pytest.raises(OptionError):
            convolution_matrix(a[None, :], (1, n), "constant", flip=True, padding="valid")


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6, 7])
@pytest.mark.parametrize("n", [7, 8, 12])
def test_1d_same(k, n):
    a = RNG.standard_normal(k)
    expected = scipy.linalg.convolution_matrix(a, n, "same")
    flipped = convolution_matrix(a[None, :], (1, n), "zero", flip=True).toarray()
    as_written = convolution_matrix(a[::-1][None, :], (1, n), "zero").toarray()
    if k % 2:
        np.testing.assert_allclose(flipped, expected, rtol=0, atol=1e-15)
    else:
        # scipy.ndimage's anchor for a flipped even kernel sits one tap further: full[t + k//2]
        full = scipy.linalg.convolution_matrix(a, n, "full")
        np.testing.assert_allclose(flipped, full[k // 2: k // 2 + n], rtol=0, atol=1e-15)
        assert not np.allclose(flipped, expected)
    np.testing.assert_allclose(as_written, expected, rtol=0, atol=1e-15)


def test_1d_column_kernel_is_the_transposed_layout():
    a = RNG.standard_normal(3)
    m = convolution_matrix(a[:, None], (6, 1), "constant", flip=True, padding=2)
    # output (8, 5): the 1D result is column 2 of every output row
    dense = m.toarray().reshape(8, 5, 6)
    np.testing.assert_allclose(dense[:, 2], scipy.linalg.convolution_matrix(a, 6, "full"), rtol=0, atol=1e-15)
    assert not np.delete(dense, 2, axis=1).any()


# ----------------------------------------------------------------------------------------------
# Structure: doubly-blocked Toeplitz
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kshape", [(3, 3), (2, 4), (4, 1)])
def test_valid_matrix_is_doubly_blocked_toeplitz(kshape):
    h, w = 6, 7
    k = RNG.standard_normal(kshape)
    kh, kw = kshape
    m = convolution_matrix(k, (h, w), "reflect", padding="valid").toarray()
    ho, wo = h - kh + 1, w - kw + 1
    assert m.shape == (ho * wo, h * w)
    blocks = m.reshape(ho, wo, h, w).transpose(0, 2, 1, 3)  # blocks[I, J]: output row I <- input row J
    for i in range(ho):
        for j in range(h):
            block = blocks[i, j]
            if 0 <= j - i < kh:
                # block (I, J) depends only on J - I, and is the Toeplitz band of kernel row J - I
                np.testing.assert_array_equal(block, blocks[0, j - i])
                band = scipy.linalg.toeplitz(np.r_[k[j - i, 0], np.zeros(wo - 1)], np.r_[k[j - i], np.zeros(w - kw)])
                np.testing.assert_array_equal(block, band)
            else:
                assert not block.any()
    # the folded border breaks the pattern for "same" with reflect, as it should
    same = convolution_matrix(k, (h, w), "reflect").toarray().reshape(h, w, h, w).transpose(0, 2, 1, 3)
    assert not np.array_equal(same[0, 0], same[2, 2])


# ----------------------------------------------------------------------------------------------
# border_value: affine, not linear
# ----------------------------------------------------------------------------------------------


def test_nonzero_border_value_is_refused_without_offset():
    with pytest.raises(OptionError) as e:
        convolution_matrix("box", (4, 4), "constant", border_value=3.0)
    assert e.value.subject == "--border-value"
    assert "affine" in e.value.cause and "return_offset" in e.value.cause
    with pytest.raises(OptionError):
        convolution_matrix("box", (4, 4), "zero", border_value=1.0)  # as clconv.convolve
    for bad in (float("nan"), float("inf"), "x"):
        with pytest.raises(OptionError):
            convolution_matrix("box", (4, 4), "constant", border_value=bad)


@pytest.mark.parametrize("geo", [{}, {"padding": 2, "stride": 2}, {"dilation": 2}])
def test_border_value_offset_matches_device_and_oracle(runtime, geo):
    x = image((6, 7), seed=5)
    k = RNG.standard_normal((3, 4))
    m, c = convolution_matrix(k, x.shape, "constant", border_value=2.5, return_offset=True, **geo)
    got = m @ x.astype(np.float64).ravel() + c
    dev = clconv.convolve(x, k, border="constant", device=runtime, border_value=2.5, **geo)
    np.testing.assert_allclose(got, dev.ravel(), rtol=0, atol=device_atol(x, k, 2.5))
    ref = oracle.reference(x, k, "constant", border_value=2.5, **geo).raw
    np.testing.assert_allclose(got, np.asarray(ref).ravel(), rtol=0, atol=1e-10)
    # the same M as for border value 0
    m0 = convolution_matrix(k, x.shape, "constant", **geo)
    assert (m != m0).nnz == 0
    assert c.any()
    if not geo:  # an interior pixel reads no constant
        assert c.reshape(dev.shape)[3, 3] == 0


def test_border_value_is_ignored_by_other_modes():
    m, c = convolution_matrix("box", (4, 4), "reflect", border_value=9.0, return_offset=True)
    assert not c.any() and c.shape == (16,)
    m2 = convolution_matrix("box", (4, 4), "reflect", border_value=9.0)
    assert (m != m2).nnz == 0


# ----------------------------------------------------------------------------------------------
# Refusals
# ----------------------------------------------------------------------------------------------


def test_magnitude_kernel_is_refused():
    with pytest.raises(KernelSpecError) as e:
        convolution_matrix("sobel", (4, 4))
    assert "not linear" in str(e.value)
    convolution_matrix("sobel-x", (4, 4))  # its linear parts are fine


@pytest.mark.parametrize("kwargs, exc", [
    ({"kernel": "no-such-kernel"}, KernelSpecError),
    ({"kernel": "1 2; 3"}, KernelSpecError),
    ({"border": "bogus"}, OptionError),
    ({"shape": (0, 3)}, OptionError),
    ({"shape": (3,)}, OptionError),
    ({"shape": (2.5, 3)}, OptionError),
    ({"shape": "3x3"}, OptionError),
    ({"stride": 0}, OptionError),
    ({"dilation": -1}, OptionError),
    ({"padding": -1}, OptionError),
    ({"padding": "valid", "kernel": np.ones((5, 5))}, OptionError),  # empty output
    ({"max_nnz": 10}, OptionError),
])
def test_bad_arguments(kwargs, exc):
    args = {"kernel": "box", "shape": (4, 4), **kwargs}
    with pytest.raises(exc):
        convolution_matrix(args.pop("kernel"), args.pop("shape"), **args)


# ----------------------------------------------------------------------------------------------
# Printing, saving, --shape
# ----------------------------------------------------------------------------------------------


def test_format_matrix_sobel_x_3x3():
    m = convolution_matrix("sobel-x", (3, 3))
    text = format_matrix(m, (3, 3))
    lines = text.splitlines()
    assert lines[0].startswith("#") and "9x9" in lines[0] and "3x3" in lines[0]
    rows = [line.split() for line in lines[1:]]
    assert len(rows) == 9 and all(len(r) == 9 for r in rows)
    # centre pixel: the kernel itself, laid over the 9 input pixels
    assert rows[4] == ["-1", "0", "1", "-2", "0", "2", "-1", "0", "1"]
    # top-left pixel, reflect: the column x=-1 folds onto x=0, the row y=-1 onto y=0
    assert rows[0] == ["-3", "3", "0", "-1", "1", "0", "0", "0", "0"]
    assert len({len(line) for line in lines[1:]}) == 1  # aligned columns
    np.testing.assert_array_equal(np.loadtxt(text.splitlines(), comments="#"), m.toarray())


def test_format_matrix_compact_numbers():
    text = format_matrix(convolution_matrix("box", (2, 2), "constant"), (2, 2))
    assert "0.111111" in text and "-0" not in text
    values = np.loadtxt(text.splitlines(), comments="#")
    np.testing.assert_allclose(values, convolution_matrix("box", (2, 2), "constant").toarray(), rtol=1e-5)


def test_format_matrix_refuses_large_shapes():
    format_matrix(convolution_matrix("box", (8, 8)), (8, 8))  # 64 columns: fine
    with pytest.raises(OptionError) as e:
        format_matrix(convolution_matrix("box", (9, 9)), (9, 9))
    assert "too large to print" in str(e.value) and "--output" in str(e.value)
    with pytest.raises(OptionError):
        format_matrix(convolution_matrix("box", (3, 3)), (3, 3), max_size=4)
    # many rows (large padding) are refused too
    with pytest.raises(OptionError):
        format_matrix(convolution_matrix("box", (1, 8), padding=200), (1, 8))


def test_save_matrix_round_trip(tmp_path):
    m = convolution_matrix("gaussian:sigma=1", (6, 5), "mirror", stride=2)
    path = tmp_path / "m.npz"
    save_matrix(path, m)
    back = sp.load_npz(path)
    assert back.shape == m.shape and back.format == "csr"
    np.testing.assert_array_equal(back.toarray(), m.toarray())
    assert os.listdir(tmp_path) == ["m.npz"]
    # exactly the given path, whatever its suffix; an existing file is replaced
    other = tmp_path / "matrix.bin"
    save_matrix(str(other), m)
    save_matrix(str(other), m * 2)
    np.testing.assert_array_equal(sp.load_npz(other).toarray(), 2 * m.toarray())
    assert sorted(os.listdir(tmp_path)) == ["m.npz", "matrix.bin"]


def test_save_matrix_is_atomic(tmp_path):
    missing = tmp_path / "no" / "such" / "m.npz"
    with pytest.raises(OutputError) as e:
        save_matrix(missing, convolution_matrix("box", (3, 3)))
    assert e.value.subject == str(missing)
    assert not (tmp_path / "no").exists()
    assert os.listdir(tmp_path) == []
    # a failure while writing leaves the old file untouched and no temporary file behind
    target = tmp_path / "keep.npz"
    target.write_bytes(b"old")
    with pytest.raises(Exception):
        save_matrix(target, "not a matrix")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["keep.npz"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions")
def test_save_matrix_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError):
            save_matrix(folder / "m.npz", convolution_matrix("box", (3, 3)))
        assert os.listdir(folder) == []
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("text, shape", [("3x4", (3, 4)), (" 3 X 4 ", (3, 4)), ("1x1", (1, 1)),
                                         ("5", (1, 5)), ("512x512", (512, 512)), ("2×3", (2, 3))])
def test_parse_shape(text, shape):
    assert parse_shape(text) == shape


@pytest.mark.parametrize("text", ["", "x", "0x3", "3x0", "0", "3x", "x3", "3x4x5", "-1x2", "3.5x2",
                                  "abc", "3,4", "3 4", "99999999999x1", "٣x3"])
def test_parse_shape_errors(text):
    with pytest.raises(OptionError) as e:
        parse_shape(text)
    assert e.value.subject == "--shape"


# ----------------------------------------------------------------------------------------------
# Speed: vectorised, no Python loop over pixels
# ----------------------------------------------------------------------------------------------


def test_a_large_matrix_is_right():
    """512x512 with a 15x15 kernel (59 M entries). How fast it builds is for a benchmark (about
    0.5 s here), not a unit test."""
    k = weights("gaussian:sigma=2.5,size=15")
    m = convolution_matrix(k, (512, 512))
    assert m.shape == (512 * 512, 512 * 512)
    assert 0.9 * 512 * 512 * 225 < m.nnz <= 512 * 512 * 225
    np.testing.assert_allclose(m.sum(axis=1), k.sum(), rtol=1e-12)
    # spot-check a few rows against the device-free definition
    x = np.random.default_rng(1).standard_normal((512, 512))
    rows = [0, 7, 512 * 300 + 41, 512 * 512 - 1]
    ref = ndi.correlate(x, k, mode="reflect").ravel()[rows]
    np.testing.assert_allclose(m[rows] @ x.ravel(), ref, rtol=0, atol=1e-12)
