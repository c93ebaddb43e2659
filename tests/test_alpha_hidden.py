"""Issue 12 item 1: under a kept alpha no visible output pixel depends on the colour stored under
a fully transparent input pixel, for every kernel and every algorithm.

The rule (clconv/engine.py, _filter_alpha_weighted), with a the alpha in 0..1 and sums over the
kernel's taps:

* weights all >= 0: colour = m = sum(k*a*c) / sum(k*a);
* any other kernel: every tap's colour counts as a*c + (1-a)*m, m = sum(|k|*a*c) / sum(|k|*a),
  so colour = sum(k*a*c) + m * (sum(k) - sum(k*a));
* where the mean's denominator is 0, m is the colour under the anchor; sobel: each part, then
  the magnitude.

The oracle below is written again from that rule in float64 (numpy.pad and sums of shifted planes), apart
from tests/oracle.py and from clconv.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import clconv
from clconv.algorithms import REGISTRY
from clconv.kernels import Linear, kernel_names, parse_spec

HYP = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
BORDERS = ("reflect", "mirror", "nearest", "wrap", "constant")
NP_PAD = {"reflect": "symmetric", "mirror": "reflect", "nearest": "edge", "wrap": "wrap", "constant": "constant"}
TOP = {np.dtype(np.uint8): 255.0, np.dtype(np.float32): 1.0}
SOBEL_X = np.outer([1.0, 2.0, 1.0], [-1.0, 0.0, 1.0])
WRITTEN = {  # the named signed kernels, written out again
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], float),
    "sobel-x": SOBEL_X,
    "laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], float),
    "emboss": np.array([[-2, -1, 0], [-1, 0, 1], [0, 1, 2]], float),
    "edge": np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], float),
}
MAPPING = {"sobel-x": (True, 0.0), "laplacian": (True, 0.0), "edge": (True, 0.0), "emboss": (False, 0.5),
           "sobel": (False, 0.0)}  # (abs, bias as a fraction of max + 1) of integer outputs


# ------------------------------------------------------------------------------------ the oracle


def _correlate(x, w, border, cval):
    """Correlation of x (float64) with w as written, anchor (kh//2, kw//2), "same" geometry, the
    border by numpy.pad: out[y, x] = sum w[i, j] * padded[y + i, x + j]."""
    kh, kw = w.shape
    pads = ((kh // 2, kh - 1 - kh // 2), (kw // 2, kw - 1 - kw // 2))
    extra = {"constant_values": cval} if border == "constant" else {}
    p = np.pad(x, pads, mode=NP_PAD[border], **extra)
    out = np.zeros_like(x)
    for i in range(kh):
        for j in range(kw):
            out += w[i, j] * p[i: i + x.shape[0], j: j + x.shape[1]]
    return out


def _colour(c, a, w, border, cval, top):
    """One colour channel (float64) under kept alpha a (input units) by the rule."""
    outside = cval * cval  # with the constant border every channel outside is cval
    if np.all(w >= 0):
        num, den = _correlate(a * c, w, border, outside), _correlate(a, w, border, cval)
        return np.where(den != 0, num / np.where(den != 0, den, 1.0), c)
    num, den = _correlate(a * c, np.abs(w), border, outside), _correlate(a, np.abs(w), border, cval)
    m = np.where(den != 0, num / np.where(den != 0, den, 1.0), c)
    weighted = _correlate(a * c, w, border, outside) / top
    return weighted + m * (w.sum() - _correlate(a, w, border, cval) / top)


def oracle(img, name_or_w, border="reflect", cval=0.0):
    """float64 colour channels (before any output mapping) of convolve(img, k, alpha="keep")."""
    x = img.astype(np.float64)
    top = TOP[img.dtype]
    a = x[..., -1]
    out = []
    for ch in range(x.shape[2] - 1):
        c = x[..., ch]
        if isinstance(name_or_w, str) and name_or_w == "sobel":
            gx, gy = (_colour(c, a, w, border, cval, top) for w in (SOBEL_X, SOBEL_X.T))
            out.append(np.hypot(gx, gy))
        else:
            w = WRITTEN[name_or_w] if isinstance(name_or_w, str) else np.asarray(name_or_w, float)
            out.append(_colour(c, a, w, border, cval, top))
    return np.stack(out, -1)


def _mapped(v, dtype, name):
    if np.dtype(dtype) == np.float32:
        return v
    use_abs, bias = MAPPING.get(name, (False, 0.0)) if isinstance(name, str) else (False, 0.0)
    v = np.abs(v) if use_abs else v
    return np.clip(np.rint(v + bias * 256), 0, 255)


# ------------------------------------------------------------------------------------ images


def cutout(rng, h, w, dtype, transparent=0.3, partial=True):
    """Random colours; about ``transparent`` of the pixels at alpha 0, the rest visible (partial
    alphas too, or, without ``partial``, at least a quarter of full: no tiny denominators)."""
    top = TOP[np.dtype(dtype)]
    img = rng.random((h, w, 4)) * top
    a = rng.random((h, w))
    a = a if partial else 0.25 + 0.75 * a
    a[rng.random((h, w)) < transparent] = 0.0
    img[..., 3] = a * top
    if np.dtype(dtype) == np.uint8:
        img = np.rint(img)
        img[..., 3] = np.where(a > 0, np.maximum(img[..., 3], 1), 0)
    return img.astype(dtype)


def rehide(img, rng):
    """The same image with new colours under its fully transparent pixels."""
    out = img.copy()
    hidden = img[..., 3] == 0
    new = rng.random((int(hidden.sum()), img.shape[2] - 1)) * TOP[img.dtype]
    out[hidden, :-1] = new.astype(img.dtype) if img.dtype == np.float32 else np.rint(new).astype(img.dtype)
    return out


def _refused(algorithm, spec) -> bool:
    kernel = parse_spec(spec) if isinstance(spec, str) else Linear("random", spec)
    return any(REGISTRY[algorithm].refuses(part) for part in kernel.parts)


# ------------------------------------------------------------------------------------ (1) property


SHAPES = st.tuples(st.integers(1, 5), st.integers(1, 5))


@st.composite
def kernels(draw):
    """A named kernel (every one), or random signed weights."""
    name = draw(st.sampled_from([*kernel_names(), "random"]))
    if name != "random":
        return name
    kh, kw = draw(SHAPES)
    seed = draw(st.integers(0, 2**32 - 1))
    w = np.random.default_rng(seed).integers(-4, 5, (kh, kw)).astype(float)
    if draw(st.booleans()):
        w = w + np.random.default_rng(seed + 1).random((kh, kw)) - 0.5
    w.flat[0] = -abs(w.flat[0]) - 1.0  # signed
    return w


@settings(max_examples=40, **HYP)
@given(kernel=kernels(), dtype=st.sampled_from([np.uint8, np.float32]), border=st.sampled_from(BORDERS),
       cval=st.sampled_from([0.0, 0.5]), h=st.integers(5, 11), w=st.integers(5, 11), seed=st.integers(0, 2**32 - 1))
def test_hidden_colour_never_reaches_a_visible_pixel(kernel, dtype, border, cval, h, w, seed):
    rng = np.random.default_rng(seed)
    img = cutout(rng, h, w, dtype)
    cval *= TOP[np.dtype(dtype)]
    other = rehide(img, rng)
    visible = img[..., 3] > 0
    for algorithm in sorted(REGISTRY):
        if _refused(algorithm, kernel):
            continue
        first, second = (clconv.convolve(x, kernel, border=border, algorithm=algorithm, border_value=cval, alpha="keep")
                         for x in (img, other))
        np.testing.assert_array_equal(first[..., 3], img[..., 3])
        assert np.array_equal(first[visible], second[visible]), (algorithm, kernel)


def test_every_algorithm_runs_a_signed_kernel_in_the_property():
    """The property test above is not vacuous: each algorithm runs some signed named kernel."""
    for algorithm in REGISTRY:
        assert not _refused(algorithm, "sobel-x"), algorithm


# ------------------------------------------------------------------------------------ (2) oracle


@pytest.mark.parametrize("border,cval", [("reflect", 0.0), ("constant", 0.0), ("constant", 0.6), ("wrap", 0.0)])
@pytest.mark.parametrize("name", ["sharpen", "sobel-x", "emboss", "laplacian", "sobel", "random"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_matches_the_oracle(name, border, cval, dtype):
    rng = np.random.default_rng(12)
    img = cutout(rng, 9, 10, dtype, partial=False)
    top = TOP[np.dtype(dtype)]
    cval *= top
    spec = rng.integers(-3, 4, (3, 4)).astype(float) if name == "random" else name
    if name == "random":
        spec[0, 0] = -2.0
    got = clconv.convolve(img, spec, border=border, border_value=cval, alpha="keep")
    want = _mapped(oracle(img, spec, border, cval), dtype, name)
    np.testing.assert_array_equal(got[..., 3], img[..., 3])
    abs_sum = 8.0 if name == "sobel" else float(np.abs(spec if name == "random" else WRITTEN[name]).sum())
    tol = 1.0 if dtype == np.uint8 else 1e-4 * max(1.0, abs_sum) * max(top, cval)
    np.testing.assert_allclose(got[..., :3].astype(np.float64), want, rtol=0, atol=tol)


def test_flat_cutout_stays_flat_and_has_no_edges():
    """A disc of one colour on a transparent background: sharpen and emboss keep its colour up to
    the rim (emboss: plus its bias), edge detectors find no edge at its silhouette."""
    yy, xx = np.mgrid[:16, :16]
    img = np.zeros((16, 16, 4), np.uint8)
    disc = (yy - 7.5) ** 2 + (xx - 7.5) ** 2 < 36
    img[disc] = (200, 120, 40, 255)
    img[~disc, :3] = (10, 250, 250)  # hidden
    visible = img[..., 3] > 0
    for spec, want in [("sharpen", (200, 120, 40)), ("emboss", (128, 128, 128)), ("sobel-x", (0, 0, 0)),
                       ("laplacian", (0, 0, 0)), ("sobel", (0, 0, 0)), ("gaussian", (200, 120, 40))]:
        out = clconv.convolve(img, spec, alpha="keep")
        assert np.abs(out[visible][:, :3].astype(int) - want).max() <= 1, spec


def test_opaque_image_is_filtered_plainly():
    """Where the kernel sees only opaque pixels the signed rule is the plain filter."""
    rng = np.random.default_rng(5)
    img = cutout(rng, 8, 9, np.float32, transparent=0.0)
    img[..., 3] = 1.0
    for name in ("sharpen", "emboss", "sobel-x"):
        plain = clconv.convolve(np.ascontiguousarray(img[..., :3]), name)
        got = clconv.convolve(img, name, alpha="keep")[..., :3]
        np.testing.assert_allclose(got, plain, rtol=0, atol=1e-5 * np.abs(WRITTEN[name]).sum())


# ------------------------------------------------------------------------------------ (3) command line


def test_command_line_sharpen_ignores_hidden_colour(run_cli, tmp_path):
    yy, xx = np.mgrid[:20, :24]
    img = np.zeros((20, 24, 4), np.uint8)
    disc = (yy - 9.5) ** 2 + (xx - 11.5) ** 2 < 49
    rng = np.random.default_rng(3)
    img[disc, :3] = rng.integers(0, 256, (int(disc.sum()), 3))
    img[disc, 3] = 255
    img[disc & ((yy - 9.5) ** 2 + (xx - 11.5) ** 2 > 30), 3] = 128  # a soft rim
    outs = []
    for hidden in ((0, 0, 0), (255, 255, 255)):
        src, out = tmp_path / f"in{hidden[0]}.png", tmp_path / f"out{hidden[0]}.png"
        img[~disc, :3] = hidden
        Image.fromarray(img, "RGBA").save(src)
        result = run_cli("apply", "-k", "sharpen", src, out)
        assert result.returncode == 0, result.stderr
        with Image.open(out) as image:
            outs.append(np.asarray(image))
    assert outs[0].shape == (20, 24, 4)
    np.testing.assert_array_equal(outs[0][..., 3], img[..., 3])
    np.testing.assert_array_equal(outs[0][disc], outs[1][disc])


def test_low_rank_kernel_whose_absolute_weights_are_not():
    """A rank-2 signed kernel runs by separable; its |k| (for the mean) is full rank, which
    separable refuses: the mean then runs by another algorithm, with the same rule."""
    rng = np.random.default_rng(9)
    u, v = rng.standard_normal((2, 7)), rng.standard_normal((2, 7))
    w = np.outer(u[0], v[0]) + np.outer(u[1], v[1])
    assert not _refused("separable", w) and _refused("separable", np.abs(w))
    img = cutout(rng, 9, 8, np.float32, partial=False)
    got = clconv.convolve(img, w, border="nearest", algorithm="separable", alpha="keep")
    other = clconv.convolve(rehide(img, rng), w, border="nearest", algorithm="separable", alpha="keep")
    visible = img[..., 3] > 0
    assert np.array_equal(got[visible], other[visible])
    np.testing.assert_allclose(got[..., :3], oracle(img, w, "nearest"), rtol=0, atol=1e-4 * np.abs(w).sum())
