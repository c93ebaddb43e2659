"""clconv.kernels: named kernels against SPEC's table, spec parsing, errors, helpers.

No OpenCL needed.  The expected matrices below are written out by hand from
SPEC.md "Kernels"; they are not computed with clconv.kernels.
"""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from clconv.errors import ClconvError, KernelSpecError
from clconv.kernels import (
    MAX_TAPS,
    NAMED,
    Linear,
    Magnitude,
    describe,
    file_safe,
    kernel_names,
    parse_spec,
    summary_lines,
)

# --------------------------------------------------------------------------- #
# SPEC's table, literally
# --------------------------------------------------------------------------- #

SOBEL_X = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
SOBEL_Y = [[-1, -2, -1], [0, 0, 0], [1, 2, 1]]

# name -> (weights as written, or None where an oracle test below covers it, abs, bias)
TABLE = {
    "identity": ([[0, 0, 0], [0, 1, 0], [0, 0, 0]], False, 0.0),
    "box": ([[1 / 9] * 3] * 3, False, 0.0),
    "gaussian": (None, False, 0.0),
    "blur": (None, False, 0.0),
    "sharpen": ([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], False, 0.0),
    "unsharp": (None, False, 0.0),
    "sobel-x": (SOBEL_X, True, 0.0),
    "sobel-y": (SOBEL_Y, True, 0.0),
    "sobel": ("magnitude", False, 0.0),
    "prewitt-x": ([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], True, 0.0),
    "prewitt-y": ([[-1, -1, -1], [0, 0, 0], [1, 1, 1]], True, 0.0),
    "scharr-x": ([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]], True, 0.0),
    "scharr-y": ([[-3, -10, -3], [0, 0, 0], [3, 10, 3]], True, 0.0),
    "laplacian": ([[0, 1, 0], [1, -4, 1], [0, 1, 0]], True, 0.0),
    "edge": ([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], True, 0.0),
    "emboss": ([[-2, -1, 0], [-1, 0, 1], [0, 1, 2]], False, 0.5),
}

# Kernels that are rank 1 and so must carry separable factors.
SEPARABLE = {"identity", "box", "gaussian", "blur", "sobel-x", "sobel-y",
             "prewitt-x", "prewitt-y", "scharr-x", "scharr-y"}


def scipy_gaussian(sigma, truncate=4.0, radius=None):
    """scipy.ndimage.gaussian_filter's 2D weights: the filter of a centred unit impulse."""
    r = int(truncate * sigma + 0.5) if radius is None else radius
    n = 2 * r + 1
    impulse = np.zeros((n, n))
    impulse[r, r] = 1.0
    return ndimage.gaussian_filter(impulse, sigma, truncate=truncate, radius=radius,
                                   mode="constant", cval=0.0)


def test_table_covers_every_name():
    assert set(TABLE) == set(kernel_names()) == set(NAMED)
    assert kernel_names() == sorted(kernel_names())


@pytest.mark.parametrize("name", kernel_names())
def test_named_kernel_matches_spec_table(name):
    assert name in TABLE, f"new kernel {name!r}: add it to TABLE with SPEC's weights"
    expected, abs_, bias = TABLE[name]
    k = parse_spec(name)
    assert k.spec == name
    assert k.abs is abs_
    assert k.bias == bias
    if expected == "magnitude":
        assert isinstance(k, Magnitude)
        np.testing.assert_array_equal(k.gx.weights, SOBEL_X)
        np.testing.assert_array_equal(k.gy.weights, SOBEL_Y)
        assert k.shape == (3, 3)
        assert not k.nonnegative
        return
    assert isinstance(k, Linear)
    w = k.weights
    assert w.dtype == np.float64 and w.ndim == 2
    assert w.flags.c_contiguous and not w.flags.writeable
    if name in ("gaussian", "blur"):
        np.testing.assert_allclose(w, scipy_gaussian(1.0), rtol=1e-12, atol=1e-17)
    elif name == "unsharp":
        g = scipy_gaussian(1.0)
        ident = np.zeros_like(g)
        ident[4, 4] = 1.0
        np.testing.assert_allclose(w, ident + (ident - g), rtol=1e-12, atol=1e-15)
    else:
        np.testing.assert_allclose(w, np.array(expected, dtype=float), rtol=1e-15, atol=0)
    assert k.shape == w.shape
    assert k.nonnegative == bool((w >= 0).all())


@pytest.mark.parametrize("name", kernel_names())
def test_factors_give_weights(name):
    k = parse_spec(name)
    parts = [k.gx, k.gy] if isinstance(k, Magnitude) else [k]
    for part in parts:
        if part.factors is None:
            assert name not in SEPARABLE
            continue
        col, row = part.factors
        assert col.ndim == row.ndim == 1
        np.testing.assert_array_equal(np.outer(col, row), part.weights)
    if name in SEPARABLE:
        assert k.factors is not None


def test_edge_factors_are_the_classic_ones():
    np.testing.assert_array_equal(parse_spec("sobel-x").factors[0], [1, 2, 1])
    np.testing.assert_array_equal(parse_spec("sobel-x").factors[1], [-1, 0, 1])
    np.testing.assert_array_equal(parse_spec("scharr-x").factors[0], [3, 10, 3])
    np.testing.assert_array_equal(parse_spec("scharr-y").factors[1], [3, 10, 3])
    np.testing.assert_array_equal(parse_spec("prewitt-y").factors[0], [-1, 0, 1])


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 3.3, 0.1])
@pytest.mark.parametrize("truncate", [4.0, 2.5])
def test_gaussian_equals_scipy(sigma, truncate):
    spec = f"gaussian:sigma={sigma},truncate={truncate}"
    k = parse_spec(spec)
    expected = scipy_gaussian(sigma, truncate)
    assert k.shape == expected.shape == (2 * int(truncate * sigma + 0.5) + 1,) * 2
    np.testing.assert_allclose(k.weights, expected, rtol=1e-12, atol=1e-17)
    assert k.weights.sum() == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(k.factors[0], k.factors[1])
    assert k.factors[0].sum() == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("sigma,size", [(1.5, 9), (2.0, 5), (0.7, 1), (3.0, 31)])
def test_gaussian_explicit_odd_size_is_scipy_radius(sigma, size):
    k = parse_spec(f"gaussian:sigma={sigma},size={size}")
    assert k.shape == (size, size)
    np.testing.assert_allclose(k.weights, scipy_gaussian(sigma, radius=size // 2), rtol=1e-12, atol=1e-17)


@pytest.mark.parametrize("size", [2, 4, 10])
def test_gaussian_even_size_is_symmetric_half_integer_sampling(size):
    sigma = 1.3
    k = parse_spec(f"gaussian:sigma={sigma},size={size}")
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-x ** 2 / (2 * sigma ** 2))
    g /= g.sum()
    np.testing.assert_allclose(k.weights, np.outer(g, g), rtol=1e-12)
    np.testing.assert_allclose(k.weights, k.weights[::-1, ::-1])


def test_gaussian_tiny_sigma_even_size_is_finite():
    k = parse_spec("gaussian:sigma=1e-200,size=2")
    np.testing.assert_allclose(k.weights, np.full((2, 2), 0.25))
    assert parse_spec("gaussian:sigma=1e-200").weights.tolist() == [[1.0]]


def test_blur_is_gaussian_alias():
    np.testing.assert_array_equal(parse_spec("blur:sigma=2").weights, parse_spec("gaussian:sigma=2").weights)


@pytest.mark.parametrize("sigma,amount", [(1.0, 1.0), (2.0, 0.5), (0.5, 3.0), (1.0, -0.5)])
def test_unsharp_is_identity_plus_amount_times_detail(sigma, amount):
    k = parse_spec(f"unsharp:sigma={sigma},amount={amount}")
    g = scipy_gaussian(sigma)
    ident = np.zeros_like(g)
    ident[g.shape[0] // 2, g.shape[1] // 2] = 1.0
    np.testing.assert_allclose(k.weights, ident + amount * (ident - g), rtol=1e-12, atol=1e-15)
    assert k.weights.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1025])
def test_box_sizes(size):
    k = parse_spec(f"box:size={size}")
    assert k.shape == (size, size)
    np.testing.assert_allclose(k.weights, 1.0 / size ** 2, rtol=1e-15)


def test_factories_take_keyword_numbers():
    np.testing.assert_array_equal(NAMED["gaussian"](sigma=2).weights, parse_spec("gaussian:sigma=2").weights)
    assert NAMED["box"](size=5).shape == (5, 5)
    assert NAMED["unsharp"](sigma=1.5, amount=2.0).shape == (13, 13)
    with pytest.raises(KernelSpecError):
        NAMED["box"](size=0)


def test_names_are_case_insensitive_and_keep_user_text():
    k = parse_spec("  Gaussian:Sigma=2  ")
    assert k.spec == "Gaussian:Sigma=2"
    np.testing.assert_array_equal(k.weights, parse_spec("gaussian:sigma=2").weights)
    assert parse_spec("SOBEL").spec == "SOBEL"
    assert parse_spec("gaussian: sigma = 2 , truncate = 3").shape == (13, 13)


# --------------------------------------------------------------------------- #
# Parsing: inline, ImageMagick, files, arrays
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("spec,expected", [
    ("1 0 -1; 2 0 -2; 1 0 -1", [[1, 0, -1], [2, 0, -2], [1, 0, -1]]),
    ("1,0,-1;2,0,-2", [[1, 0, -1], [2, 0, -2]]),
    ("1, 0, -1 ; 2 ,0,-2;", [[1, 0, -1], [2, 0, -2]]),
    ("1 2 1", [[1, 2, 1]]),
    ("1,2,1,", [[1, 2, 1]]),
    ("1", [[1]]),
    ("-1.5e1", [[-15]]),
    (".5 +2 3.", [[0.5, 2, 3]]),
    ("1;2;3", [[1], [2], [3]]),
    ("1 2\n3 4", [[1, 2], [3, 4]]),
    ("3x1: 1,0,-1", [[1, 0, -1]]),
    ("1x3: 1,0,-1", [[1], [0], [-1]]),
    ("2x2:1 2 3 4", [[1, 2], [3, 4]]),
    ("3X2: 1, 2, 3, 4, 5, 6", [[1, 2, 3], [4, 5, 6]]),
    ("2: 1,2,3,4", [[1, 2], [3, 4]]),
])
def test_inline_forms(spec, expected):
    k = parse_spec(spec)
    assert isinstance(k, Linear)
    assert k.factors is None
    assert k.abs is False and k.bias == 0.0
    assert k.spec == spec.strip()
    np.testing.assert_array_equal(k.weights, np.array(expected, dtype=float))


def test_text_files(tmp_path):
    txt = tmp_path / "k.txt"
    txt.write_text("# a kernel\n\n1 2 1\n  0 0 0   # comment\n-1 -2 -1\n")
    k = parse_spec(str(txt))
    assert k.spec == str(txt)
    np.testing.assert_array_equal(k.weights, [[1, 2, 1], [0, 0, 0], [-1, -2, -1]])

    csv = tmp_path / "K.CSV"
    csv.write_bytes(b"\xef\xbb\xbf1,2\r\n3, 4\r\n")  # Excel: BOM and CRLF
    np.testing.assert_array_equal(parse_spec(str(csv)).weights, [[1, 2], [3, 4]])

    np.testing.assert_array_equal(parse_spec(txt).weights, parse_spec(str(txt)).weights)  # PathLike


def test_npy_files(tmp_path):
    a = np.arange(6, dtype=np.int16).reshape(2, 3)
    np.save(tmp_path / "a.npy", a)
    k = parse_spec(str(tmp_path / "a.npy"))
    np.testing.assert_array_equal(k.weights, a)
    assert k.weights.dtype == np.float64

    np.save(tmp_path / "row.npy", np.array([1.0, 0.0, -1.0], dtype=np.float32))
    assert parse_spec(str(tmp_path / "row.npy")).weights.tolist() == [[1.0, 0.0, -1.0]]

    np.save(tmp_path / "f.npy", np.asfortranarray(np.arange(6.0).reshape(2, 3)))
    np.testing.assert_array_equal(parse_spec(str(tmp_path / "f.npy")).weights, np.arange(6.0).reshape(2, 3))


@pytest.mark.parametrize("array,expected", [
    (np.array([[1, 2], [3, 4]], dtype=np.uint8), [[1, 2], [3, 4]]),
    (np.array([1.0, -1.0], dtype=np.float32), [[1, -1]]),
    (np.arange(6.0).reshape(2, 3)[:, ::2], [[0, 2], [3, 5]]),
    ([[1, 0], [0, 1]], [[1, 0], [0, 1]]),
])
def test_arrays(array, expected):
    k = parse_spec(array)
    assert k.spec == "array"
    np.testing.assert_array_equal(k.weights, expected)
    assert k.weights.flags.c_contiguous and not k.weights.flags.writeable


def test_input_array_is_copied():
    a = np.ones((3, 3))
    k = parse_spec(a)
    a[1, 1] = 5.0
    assert k.weights[1, 1] == 1.0


def test_kernels_are_returned_as_is():
    k = parse_spec("sobel-x")
    assert parse_spec(k) is k
    m = parse_spec("sobel")
    assert parse_spec(m) is m


def test_max_taps_accepted():
    assert parse_spec(np.ones((1, MAX_TAPS))).shape == (1, MAX_TAPS)
    assert parse_spec(f"{MAX_TAPS}x1: " + ",".join(["1"] * MAX_TAPS)).shape == (1, MAX_TAPS)


# --------------------------------------------------------------------------- #
# Errors: always KernelSpecError, subject = what the user gave
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("spec,cause", [
    ("xyz", r"unknown kernel name 'xyz' \(see clconv kernels\)$"),
    ("sobelx", r"unknown kernel name 'sobelx'.*did you mean 'sobel-x'\?"),
    ("gausian:sigma=2", r"did you mean 'gaussian'\?"),
    ("1 0 -1; 2 0", r"ragged rows: row 2 has 2 values, row 1 has 3"),
    ("1 nan 1", r"weights must be finite numbers"),
    ("1 inf; 2 3", r"weights must be finite numbers"),
    ("3x1: 1,-inf,1", r"weights must be finite numbers"),
    ("nan", r"weights must be finite numbers"),
    ("   ", r"empty"),
    (";;", r"empty"),
    ("1,,2", r"empty value"),
    ("1 0 x", r"not a number: 'x'"),
    ("1 2; 3 4;sobel", r"not a number: 'sobel'"),
    ("3x1: 1,0", r"needs 3 values, got 2"),
    ("2x2: 1,2,3,4,5", r"needs 4 values, got 5"),
    ("0x3:", r"1 to 1025 taps"),
    ("1026x1: " + ",".join(["1"] * 1026), r"1 to 1025 taps"),
    ("3x3+1+1: 1,2,3,4,5,6,7,8,9", r"offsets"),
    ("box:size=1026", r"size must be 1 to 1025"),
    ("box:size=0", r"size must be 1 to 1025"),
    ("box:size=2.5", r"size must be an integer"),
    ("box:size=seven", r"size must be a number"),
    ("gaussian:sigma=0", r"sigma must be > 0"),
    ("gaussian:sigma=-1", r"sigma must be > 0"),
    ("gaussian:sigma=nan", r"sigma must be a finite number"),
    ("gaussian:sigma=1e400", r"sigma must be a finite number"),
    ("gaussian:truncate=0", r"truncate must be > 0"),
    ("gaussian:sigma=300", r"at most 1025"),
    ("gaussian:sigma=1e300", r"at most 1025"),
    ("gaussian:sigma=2,sigma=3", r"given twice"),
    ("gaussian:radius=3", r"unknown parameter 'radius'"),
    ("gaussian:sigma", r"not key=value"),
    ("gaussian:sigma=", r"no value"),
    ("unsharp:amount=inf", r"amount must be a finite number"),
    ("sobel:size=3", r"takes no parameters"),
    ("emboss:x=1", r"takes no parameters"),
    ("kernel.dat", r"kernel files end in .txt, .csv or .npy"),
])
def test_spec_errors(spec, cause):
    with pytest.raises(KernelSpecError) as info:
        parse_spec(spec)
    err = info.value
    assert isinstance(err, ClconvError) and err.exit_code == 2
    assert err.subject == (spec.strip() or spec)
    assert re.search(cause, err.cause), err.cause
    assert "\n" not in err.cause and len(err.cause) < 200


def test_too_many_taps_array():
    with pytest.raises(KernelSpecError, match="1 to 1025 taps") as info:
        parse_spec(np.ones((1026, 1)))
    assert info.value.subject == "array"
    with pytest.raises(KernelSpecError, match="1 to 1025 taps"):
        parse_spec("1 " * 1026)


@pytest.mark.parametrize("array,cause", [
    (np.array([[1.0, np.nan]]), "finite"),
    (np.array([np.inf]), "finite"),
    (np.zeros((0, 3)), "empty"),
    (np.zeros(0), "empty"),
    (np.ones((2, 2, 2)), "1D or 2D"),
    (np.array(3.0), "1D or 2D"),
    (np.ones((2, 2), dtype=complex), "real numbers"),
    (np.array([[1, None]], dtype=object), "real numbers"),
    (np.array(["1", "2"]), "real numbers"),
])
def test_array_errors(array, cause):
    with pytest.raises(KernelSpecError, match=cause) as info:
        parse_spec(array)
    assert info.value.subject == "array"


def test_ragged_list_is_an_error():
    with pytest.raises(KernelSpecError):
        parse_spec([[1, 2], [3]])


def test_not_a_spec_type():
    with pytest.raises(KernelSpecError):
        parse_spec(object())


def _write(path, data):
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return str(path)


@pytest.mark.parametrize("name,data,cause", [
    ("ragged.txt", "1 2 3\n4 5\n", "ragged rows: row 2 has 2 values, row 1 has 3"),
    ("word.txt", "1 2\n3 four\n", "not a number: 'four' in line 2"),
    ("semi.csv", "1;2;3\n", "not ';'"),
    ("empty.txt", "# nothing\n\n", "no numbers"),
    ("nan.csv", "1,nan\n2,3\n", "finite"),
    ("binary.txt", b"\xff\xfe\x00\x01garbage", "not utf-8"),
    ("wide.txt", " ".join(["1"] * 1026) + "\n", "1 to 1025 taps"),
])
def test_text_file_errors(tmp_path, name, data, cause):
    path = _write(tmp_path / name, data)
    with pytest.raises(KernelSpecError) as info:
        parse_spec(path)
    assert info.value.subject == path
    assert cause.lower() in info.value.cause.lower(), info.value.cause


def _npy_bytes(tmp_path, array, **kw):
    p = tmp_path / "tmp_array.npy"
    np.save(p, array, **kw)
    return p.read_bytes()


@pytest.mark.parametrize("make,cause", [
    (lambda t: _npy_bytes(t, np.array([1, None], dtype=object), allow_pickle=True), "object"),
    (lambda t: _npy_bytes(t, np.array([[1.0, np.nan]])), "finite"),
    (lambda t: _npy_bytes(t, np.array([[np.inf]])), "finite"),
    (lambda t: _npy_bytes(t, np.ones((2, 2, 2))), "1D or 2D"),
    (lambda t: _npy_bytes(t, np.ones((2, 2), dtype=np.complex64)), "real numbers"),
    (lambda t: _npy_bytes(t, np.zeros((0, 3))), "empty"),
    (lambda t: _npy_bytes(t, np.ones((1, 1026), dtype=np.uint8)), "1 to 1025 taps"),
    (lambda t: _npy_bytes(t, np.arange(9.0).reshape(3, 3))[:-7], "truncated"),
    (lambda t: b"\x80\x04\x95 pickle, not npy", "not a valid .npy"),
    (lambda t: b"", "not a valid .npy"),
])
def test_npy_errors(tmp_path, make, cause):
    path = _write(tmp_path / "bad.npy", make(tmp_path))
    with pytest.raises(KernelSpecError) as info:
        parse_spec(path)
    assert info.value.subject == path
    assert cause.lower() in info.value.cause.lower(), info.value.cause


def test_missing_and_unreadable_files(tmp_path):
    for name in ("missing.txt", "missing.npy", "missing.CSV"):
        path = str(tmp_path / name)
        with pytest.raises(KernelSpecError, match="no such file") as info:
            parse_spec(path)
        assert info.value.subject == path
    folder = tmp_path / "dir.txt"
    folder.mkdir()
    with pytest.raises(KernelSpecError) as info:
        parse_spec(str(folder))
    assert info.value.subject == str(folder)


# --------------------------------------------------------------------------- #
# Properties
# --------------------------------------------------------------------------- #

small_arrays = hnp.arrays(
    np.float64,
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=7),
    elements=st.floats(-1e6, 1e6, allow_nan=False),
)


@given(small_arrays)
def test_flipped_is_rot180(a):
    k = parse_spec(a)
    f = k.flipped()
    np.testing.assert_array_equal(f.weights, np.rot90(a, 2))
    np.testing.assert_array_equal(f.flipped().weights, a)
    assert f.spec == k.spec and f.abs == k.abs and f.bias == k.bias
    assert not f.weights.flags.writeable and f.weights.flags.c_contiguous


@pytest.mark.parametrize("name", kernel_names())
def test_flipped_named_keeps_defaults_and_factors(name):
    k = parse_spec(name)
    f = k.flipped()
    assert type(f) is type(k) and f.abs == k.abs and f.bias == k.bias
    for part, fpart in ([(k.gx, f.gx), (k.gy, f.gy)] if isinstance(k, Magnitude) else [(k, f)]):
        np.testing.assert_array_equal(fpart.weights, np.rot90(part.weights, 2))
        if part.factors is not None:
            np.testing.assert_array_equal(np.outer(*fpart.factors), fpart.weights)


def test_flipped_even_sized():
    k = parse_spec("1 2; 3 4; 5 6")
    np.testing.assert_array_equal(k.flipped().weights, [[6, 5], [4, 3], [2, 1]])


SAFE = re.compile(r"[A-Za-z0-9._-]{1,60}")


@settings(max_examples=300)
@given(st.text(max_size=200), st.text(max_size=200))
def test_file_safe_is_safe_deterministic_and_distinct(a, b):
    fa, fb = file_safe(a), file_safe(b)
    assert SAFE.fullmatch(fa), fa
    assert not fa.startswith(("-", "."))
    assert fa == file_safe(a)
    if a != b:
        assert fa != fb


@given(st.sampled_from(kernel_names()), st.lists(st.tuples(
    st.sampled_from(["sigma", "size", "amount", "truncate"]),
    st.sampled_from(["1", "2", "2.0", "-1", "0.5", "1e3", "x"])), max_size=3))
def test_file_safe_distinct_on_named_looking_specs(name, params):
    spec = name + (":" + ",".join(f"{k}={v}" for k, v in params) if params else "")
    other = name + "-" + "-".join(f"{k}{v}" for k, v in params) if params else name.upper()
    assert SAFE.fullmatch(file_safe(spec))
    assert file_safe(spec) != file_safe(other)


@pytest.mark.parametrize("spec,expected", [
    ("gaussian:sigma=2", "gaussian-sigma2"),
    ("box:size=7", "box-size7"),
    ("gaussian:sigma=1.5,size=9", "gaussian-sigma1.5-size9"),
    ("sobel-x", "sobel-x"),
    ("emboss", "emboss"),
])
def test_file_safe_named(spec, expected):
    assert file_safe(spec) == expected


def test_file_safe_others():
    s = file_safe("1 0 -1; 2 0 -2")
    assert SAFE.fullmatch(s) and s.startswith("1-0--1-2-0--2_")
    assert file_safe("1 0 -1; 2 0 -2") != file_safe("1,0,-1;2,0,-2")
    long = file_safe("x" * 500)
    assert SAFE.fullmatch(long) and len(long) <= 60
    assert SAFE.fullmatch(file_safe("")) and SAFE.fullmatch(file_safe("../../etc/passwd"))
    assert file_safe(parse_spec("box:size=5")) == "box-size5"
    assert SAFE.fullmatch(file_safe(np.eye(3)))


# --------------------------------------------------------------------------- #
# Human text
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", kernel_names())
def test_describe_every_name(name):
    text = describe(name)
    assert name in text.splitlines()[0]
    assert "parameters" in text and "default mapping" in text
    k = parse_spec(name)
    for part in ([k.gx, k.gy] if isinstance(k, Magnitude) else [k]):
        h, w = part.shape
        assert f"{h}x{w}" in text
        assert "sum:" in text
        # every row of the matrix is printed
        for row in part.weights:
            cells = [f"{v + 0.0:.6g}".replace("-0", "0") if v == 0 else f"{v:.6g}" for v in row]
            assert re.search(r"\s+".join(re.escape(c) for c in cells), text), (row, text)


def test_describe_details():
    assert "abs" in describe("sobel-x") and "column: 1 2 1" in describe("sobel-x")
    assert "128 for 8-bit" in describe("emboss")
    text = describe("gaussian:sigma=3")
    assert "25x25" in text and "sigma=1.0" in text and "spec: gaussian:sigma=3" in text
    lines = text.splitlines()
    start = lines.index("weights (correlation, as written):") + 1
    rows = lines[start:start + 25]
    assert all(len(r.split()) == 25 for r in rows)  # all 25 rows of 25, none elided
    assert lines[start + 25].startswith("separable")
    assert "1x3" in describe("1 0 -1")
    assert "sobel-x" in describe("sobel") and "sobel-y" in describe("sobel")
    with pytest.raises(KernelSpecError):
        describe("nope")


def test_summary_lines():
    lines = summary_lines()
    assert len(lines) == len(kernel_names())
    for name, line in zip(kernel_names(), lines):
        assert line.split()[0] == name
    gauss = next(ln for ln in lines if ln.startswith("gaussian "))
    assert "sigma=1.0" in gauss and "truncate=4.0" in gauss


def test_import_is_light():
    code = ("import sys, clconv.kernels; "
            "bad = [m for m in ('scipy', 'pyopencl', 'PIL', 'click') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
