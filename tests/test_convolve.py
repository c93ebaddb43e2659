"""clconv.convolve against the independent float64 oracle (tests/oracle.py), on the real device.

Every test runs the actual OpenCL programs (the PoCL CPU device here); nothing is mocked. The
oracle is scipy.ndimage/numpy in float64 and is itself checked by tests/test_oracle_selfcheck.py.
Tolerances are SPEC "Precision": integer outputs within 1 of the rounded oracle; float outputs
within 1e-4 of the input's value range, scaled by sum|w| (see oracle.float_atol for why).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import clconv
from clconv.errors import KernelSpecError, OptionError

import oracle
from oracle import MODES, assert_matches, reference

# ----------------------------------------------------------------------------------------------
# Algorithms: every registered algorithm is held to the same oracle
# ----------------------------------------------------------------------------------------------


def _algorithms() -> list[str]:
    try:
        from clconv.algorithms import REGISTRY
    except Exception:  # no registry yet: the default path only
        return ["auto"]
    return ["auto", *sorted(REGISTRY)]


ALGORITHMS = _algorithms()


class Refused(Exception):
    """An explicit algorithm that does not take a case (an --algorithm OptionError)."""


def run(image, kernel, border="reflect", algorithm="auto", **kw):
    """clconv.convolve; raises Refused where an explicit algorithm refuses the case."""
    try:
        return clconv.convolve(image, kernel, border=border, algorithm=algorithm, **kw)
    except OptionError as exc:
        if algorithm != "auto" and "algorithm" in str(exc.subject or ""):
            raise Refused(f"algorithm {algorithm} does not take this case: {exc}") from exc
        raise


def compare(image, kernel, border="reflect", algorithm="auto", context="", **kw):
    """Run clconv and the oracle with the same arguments and compare; returns (out, ref)."""
    ref = reference(image, kernel, border, **kw)
    out = run(image, kernel, border, algorithm, **kw)
    desc = kernel if isinstance(kernel, (str, list)) else f"array{np.shape(kernel)}"
    assert_matches(out, ref, f"{context} {desc} border={border} alg={algorithm} {kw} img={image.dtype}{image.shape}")
    return out, ref


def check(image, kernel, border="reflect", algorithm="auto", context="", **kw):
    """compare(); a case the explicit algorithm refuses skips the test."""
    try:
        return compare(image, kernel, border, algorithm, context, **kw)
    except Refused as exc:
        pytest.skip(str(exc))


def check_every(algorithm, cases) -> list:
    """compare() on each (image, kernel, border, options) of ``cases``, in one test: the cases are
    cheap, and a test of its own each cost pytest more than the device. The failing case names
    itself (border, options, image). A case the explicit algorithm refuses is passed over; the
    test is skipped when it refuses them all. Returns the outputs (None where refused)."""
    outs, refusals = [], []
    for image, kernel, border, kw in cases:
        try:
            outs.append(compare(image, kernel, border, algorithm, **kw)[0])
        except Refused as exc:
            outs.append(None)
            refusals.append(str(exc))
    if refusals and len(refusals) == len(cases):
        pytest.skip(refusals[0])
    return outs


# ----------------------------------------------------------------------------------------------
# Test images: smooth structure plus noise, so edge kernels give both signs and moderate values
# ----------------------------------------------------------------------------------------------


def natural(shape, dtype, seed=0, lo=-1.5, hi=3.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    h, w = shape[:2]
    c = shape[2] if len(shape) == 3 else 1
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for k in range(c):
        base = 0.5 + 0.3 * np.sin(xx / 2.7 + 1.3 * k + seed) * np.cos(yy / 3.9 - k) + 0.12 * (xx > w / 2)
        planes.append(np.clip(base + 0.08 * rng.standard_normal((h, w)), 0, 1))
    img = np.stack(planes, -1) if len(shape) == 3 else planes[0]
    dtype = np.dtype(dtype)
    if dtype in oracle.INT_MAX:
        return np.rint(img * oracle.INT_MAX[dtype]).astype(dtype)
    return (lo + (hi - lo) * img).astype(np.float32)


IMAGES = {
    "u8-gray": natural((23, 29), np.uint8, 1),
    "u8-rgb": natural((19, 24, 3), np.uint8, 2),
    "u16-gray": natural((21, 26), np.uint16, 3),
    "f32-gray": natural((22, 27), np.float32, 4),
}

NAMED = [
    "sobel-x", "sobel-y", "sobel", "prewitt-x", "prewitt-y", "scharr-x", "scharr-y", "laplacian", "edge",
    "emboss", "identity", "box", "box:size=5", "gaussian", "gaussian:sigma=2", "blur", "unsharp", "sharpen",
]
BORDERS = [(m, 0.0) for m in MODES] + [("constant", 37.5)]


def int_valued_f32(shape, seed, top=9) -> np.ndarray:
    """float32 holding small integers: products and sums with small integer weights are exact."""
    return np.random.default_rng(seed).integers(0, top + 1, size=shape).astype(np.float32)


def distinct_kernel(shape, seed) -> np.ndarray:
    """Distinct weights +-1..+-n: any flip, shift or transpose of the taps changes the result."""
    rng = np.random.default_rng(seed)
    n = shape[0] * shape[1]
    return (rng.permutation(np.arange(1, n + 1)) * rng.choice([-1, 1], n)).reshape(shape).astype(np.float64)


SKIMAGE = np.array([0, 1, 2, 4, 8, 16, 32, 64, 128], dtype=np.float64).reshape(3, 3)
ODD_SHAPES = [(1, 5), (5, 1), (2, 2), (4, 4), (3, 4), (7, 2), (2, 7)]
SHAPED_KERNELS = {"skimage3x3": SKIMAGE, **{f"{h}x{w}": distinct_kernel((h, w), h * 10 + w) for h, w in ODD_SHAPES}}


# ----------------------------------------------------------------------------------------------
# 1. every named kernel x every border x gray/RGB/16-bit/float, default mappings included
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("name", NAMED)
def test_named_kernels(name, algorithm):
    """Each image, each border."""
    check_every(algorithm, [(image, name, border, dict(border_value=cval))
                            for image in IMAGES.values() for border, cval in BORDERS])


def test_named_default_mappings_are_visible():
    """The defaults must be there (not only tolerated): abs for edges, +128 for emboss, raw floats."""
    img = IMAGES["u8-gray"]
    sx = clconv.convolve(img, "sobel-x")
    raw = reference(img, "sobel-x").raw
    assert (raw < -2).any() and sx[raw < -2].min() > 0  # abs: negative gradients appear bright
    flat = np.full((9, 9), 200, np.uint8)
    assert np.all(clconv.convolve(flat, "emboss") == 128)
    assert np.all(clconv.convolve(flat.astype(np.uint16) * 300, "emboss") == 32768)
    f = IMAGES["f32-gray"]
    assert (clconv.convolve(f, "sobel-x") < 0).any()  # float: raw signed values
    assert np.abs(clconv.convolve(np.full((9, 9), 2.0, np.float32), "emboss")).max() < 1e-5  # no bias
    # sobel magnitude is unscaled: saturates 8-bit on a strong edge
    step = np.zeros((9, 9), np.uint8)
    step[:, 5:] = 255
    assert clconv.convolve(step, "sobel").max() == 255
    assert clconv.convolve(step, "sobel", scale=0.25).max() == 255  # 4*255*0.25 = 255
    assert clconv.convolve(step.astype(np.float32), "sobel").max() == pytest.approx(1020.0)


# ----------------------------------------------------------------------------------------------
# 2. the skimage trick and non-square/even kernels, flip, every border and constant value
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dtype", ["float32", "uint8"])
@pytest.mark.parametrize("kname", list(SHAPED_KERNELS))
def test_shaped_kernels(kname, dtype, algorithm):
    """Each border, flipped and not."""
    w = SHAPED_KERNELS[kname]
    if dtype == "float32":
        img = int_valued_f32((13, 17), seed=len(kname))
    else:
        img = natural((13, 17), np.uint8, seed=5)
        w = w / np.abs(w).sum()  # keeps 8-bit results in range, so the comparison is not all 0/255
    check_every(algorithm, [(img, w, border, dict(border_value=cval, flip=flip))
                            for border, cval in BORDERS for flip in (False, True)])


def test_skimage_kernel_exact_on_small_integers():
    """With small integers and power-of-two weights float32 is exact: anchor errors cannot hide."""
    img = int_valued_f32((11, 12), seed=3)
    for flip in (False, True):
        for border in MODES:
            out = clconv.convolve(img, SKIMAGE, border=border, flip=flip)
            assert np.array_equal(out, reference(img, SKIMAGE, border, flip=flip).expected), (border, flip)


def test_inline_spec_strings():
    img = IMAGES["f32-gray"]
    check(img, "1 0 -1; 2 0 -2; 1 0 -1", "reflect")
    check(img, "3x1: 1,0,-1", "nearest")
    check(img, "1x3: 1,2,3", "wrap")
    check(img, "1 2; 3 4", "mirror")
    check(img, "gaussian:sigma=1.5,size=9", "reflect")
    check(img, "unsharp:sigma=2,amount=0.5", "reflect")
    check(img, "box:size=7", "constant", border_value=1.0)


def test_kernel_arrays_of_any_numeric_dtype_and_layout():
    """A 2D array is taken as float64 weights as written, whatever its dtype or memory layout."""
    img = IMAGES["f32-gray"]
    w = distinct_kernel((3, 5), 99)
    check(img, w.astype(np.int64), "reflect")
    check(img, w.astype(np.float32), "wrap")
    check(img, np.asfortranarray(w), "nearest")
    check(img, w.T, "mirror")  # a non-contiguous view
    check(img, w[::-1, ::2], "reflect")


def test_non_contiguous_images_and_input_untouched():
    base = natural((31, 40, 4), np.uint8, seed=21)
    keep = base.copy()
    views = {"flipped": base[::-1, ::-1, :3], "strided": base[::2, 1::3, 1:], "transposed": base.transpose(1, 0, 2),
             "channel": base[..., 2], "fortran": np.asfortranarray(base[..., 0])}
    for name, view in views.items():
        check(view, "gaussian", "reflect", context=name)
        check(view, "sobel-x", "wrap", context=name, padding=2, stride=2)
        check(view.astype(np.float32), GEO_KERNEL, "mirror", context=name, flip=True)
    assert np.array_equal(base, keep), "clconv modified its input"


def test_kernels_much_larger_than_the_image():
    rng = np.random.default_rng(17)
    for shape in [(1, 3), (5, 4), (2, 1)]:
        img = int_valued_f32(shape, seed=shape[1])
        for kshape in [(1, 101), (31, 31), (17, 2)]:
            w = rng.standard_normal(kshape)
            for border, cval in BORDERS:
                for flip in (False, True):
                    check(img, w, border, border_value=cval, flip=flip)


# ----------------------------------------------------------------------------------------------
# 3. geometry: padding, stride, dilation, flip, every border; shapes from the formula
# ----------------------------------------------------------------------------------------------


def formula_shape(h, w, kh, kw, padding, stride, dilation):
    """SPEC: "same" -> ceil(n/S); padding N -> (n + 2N - D*(k-1) - 1) // S + 1."""
    if padding is None:
        return (-(-h // stride), -(-w // stride))
    n = 0 if padding == "valid" else padding
    return ((h + 2 * n - dilation * (kh - 1) - 1) // stride + 1, (w + 2 * n - dilation * (kw - 1) - 1) // stride + 1)


GEO_KERNEL = distinct_kernel((3, 4), 34)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", [None, 0, 1, 2, 5, "valid"])
def test_geometry(padding, stride, dilation, algorithm):
    """Each border, flipped and not."""
    img = int_valued_f32((16, 19), seed=7)
    kw = dict(padding=padding, stride=stride, dilation=dilation, border_value=2.0)
    outs = check_every(algorithm, [(img, GEO_KERNEL, border, dict(kw, flip=flip))
                                   for border in MODES for flip in (False, True)])
    for out in outs:
        assert out is None or out.shape == formula_shape(16, 19, 3, 4, padding, stride, dilation)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("kernel", ["skimage3x3", "2x2", "1x5"])
@pytest.mark.parametrize("geo", [(1, 2, 2), (2, 1, 3), (5, 3, 1), (None, 2, 2), (None, 3, 3), ("valid", 2, 1)])
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("image", ["u8-rgb", "u16-gray"])
def test_geometry_integer_images(image, flip, geo, kernel, algorithm):
    padding, stride, dilation = geo
    w = SHAPED_KERNELS[kernel]
    w = w / np.abs(w).sum()
    img = IMAGES[image]
    for border in MODES:
        out, _ = check(img, w, border, algorithm, padding=padding, stride=stride, dilation=dilation, flip=flip)
        assert out.shape == formula_shape(*img.shape[:2], *w.shape, padding, stride, dilation) + img.shape[2:]


def test_geometry_named_kernels_and_sobel_magnitude():
    img = IMAGES["u8-gray"]
    for spec in ["sobel", "sobel-x", "emboss", "gaussian", "unsharp"]:
        for geo in [(1, 2, 1), (None, 2, 2), (0, 1, 2), ("valid", 3, 1)]:
            p, s, d = geo
            check(img, spec, "reflect", padding=p, stride=s, dilation=d)
            check(img, spec, "mirror", padding=p, stride=s, dilation=d, flip=True)


# ----------------------------------------------------------------------------------------------
# 4. 1-pixel images and kernels larger than the image, every border
# ----------------------------------------------------------------------------------------------

TINY_KERNELS = {
    "3x3": distinct_kernel((3, 3), 1), "5x5": distinct_kernel((5, 5), 2), "2x2": distinct_kernel((2, 2), 3),
    "4x7": distinct_kernel((4, 7), 4), "9x9": np.random.default_rng(5).normal(size=(9, 9)),
    "1x12": distinct_kernel((1, 12), 6),
}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("dtype", ["float32", "uint8"])
@pytest.mark.parametrize("kname", list(TINY_KERNELS))
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (2, 2), (3, 5)])
def test_tiny_images_and_large_kernels(shape, kname, dtype, algorithm):
    """Each border, flipped and not."""
    w = TINY_KERNELS[kname]
    if dtype == "float32":
        img = int_valued_f32(shape, seed=shape[0] * 7 + shape[1])
    else:
        img = natural(shape, np.uint8, seed=1)
        w = w / np.abs(w).sum()
    check_every(algorithm, [(img, w, border, dict(border_value=cval, flip=flip))
                            for border, cval in BORDERS for flip in (False, True)])


@pytest.mark.parametrize("border", MODES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1)])
def test_tiny_images_with_padding_beyond_the_image(shape, border):
    img = int_valued_f32(shape, seed=11)
    for kname in ["3x3", "2x2", "4x7"]:
        for padding, stride, dilation in [(3, 1, 1), (5, 2, 1), (4, 1, 2), (7, 3, 3)]:
            w = TINY_KERNELS[kname]
            if min(formula_shape(*shape, *w.shape, padding, stride, dilation)) < 1:
                continue
            for flip in (False, True):
                out, _ = check(img, w, border, padding=padding, stride=stride, dilation=dilation, flip=flip,
                               border_value=-3.0)
                assert out.shape == formula_shape(*shape, *w.shape, padding, stride, dilation)


def test_one_pixel_named_kernels():
    for dtype in (np.uint8, np.uint16, np.float32):
        one = np.full((1, 1), 100, dtype)
        for name in NAMED:
            for border in MODES:
                check(one, name, border, border_value=7.0)


# ----------------------------------------------------------------------------------------------
# 5. border aliases
# ----------------------------------------------------------------------------------------------

ALIASES = ["symmetric", "reflect101", "reflect_101", "edge", "replicate", "clamp", "periodic", "tile",
           "circular", "zero", "REFLECT", "Wrap"]


@pytest.mark.parametrize("alias", ALIASES)
def test_border_aliases(alias):
    img = int_valued_f32((9, 11), seed=2)
    out, _ = check(img, GEO_KERNEL, alias)
    canon, _ = oracle.canonical_border(alias)
    assert np.array_equal(out, clconv.convolve(img, GEO_KERNEL, border=canon))
    check(IMAGES["u8-rgb"], "gaussian", alias)


def test_zero_alias_is_constant_zero():
    """SPEC: `zero` = constant 0; a contradicting --border-value is refused, not ignored."""
    img = int_valued_f32((7, 8), seed=3) + 1
    check(img, "box", "zero", border_value=0.0)
    check(img, "box", "zero")
    with pytest.raises(OptionError, match="zero"):
        clconv.convolve(img, "box", border="zero", border_value=37.5)


# ----------------------------------------------------------------------------------------------
# 6. chains: float32 intermediates, one mapping at the end
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("image", list(IMAGES))
@pytest.mark.parametrize("chain", [["gaussian", "sobel-x"], ["box", "box", "sharpen"], ["sobel-y", "box"],
                                   ["emboss", "gaussian:sigma=2"], ["box", "emboss"]])
def test_chains(chain, image, algorithm):
    """Each border."""
    check_every(algorithm, [(IMAGES[image], chain, border, {}) for border in MODES])


def test_chain_intermediates_are_neither_rounded_nor_clipped():
    img = natural((12, 13), np.uint8, seed=9)
    # rounding after 0.1 would lose the last digit; clipping after -1 would give 0
    assert np.array_equal(clconv.convolve(img, [np.array([[0.1]]), np.array([[10.0]])]), img)
    assert np.array_equal(clconv.convolve(img, [np.array([[-1.0]]), np.array([[-1.0]])]), img)
    assert np.array_equal(clconv.convolve(img, [np.array([[4.0]]), np.array([[0.25]])]), img)  # no clip at 255
    # only the last kernel's default mapping: sobel-x's abs must not apply to the intermediate
    check(img, ["sobel-x", "identity"], "reflect")
    check(img, ["sobel-x", np.array([[-1.0]])], "reflect")
    assert clconv.convolve(img, ["sobel-x", "identity"]).min() == 0  # negatives clipped, not abs'd
    # a chain equals the float64 chain mapped once
    u16 = IMAGES["u16-gray"]
    check(u16, ["box", "box", "sharpen"], "wrap")
    check(u16, [np.array([[0.001]]), "sobel-x", np.array([[1000.0]])], "nearest")


def test_chain_with_geometry_every_kernel():
    """Geometry options apply to each kernel of a chain in turn (as stacked conv layers)."""
    img = int_valued_f32((20, 23), seed=13)
    out, _ = check(img, ["box", GEO_KERNEL], "reflect", padding=1, stride=2)
    assert out.shape == oracle.output_shape(img.shape, [(3, 3), (3, 4)], 1, 2, 1)


# ----------------------------------------------------------------------------------------------
# 7. alpha
# ----------------------------------------------------------------------------------------------


def rgba_with_holes(shape=(24, 27), seed=3, dtype=np.uint8):
    rng = np.random.default_rng(seed)
    img = natural(shape + (4,), dtype, seed)
    top = oracle.INT_MAX.get(np.dtype(dtype), 1.0)
    a = np.clip(rng.random(shape) * 1.6 - 0.3, 0, 1)
    a[:8, :9] = 0.0  # a transparent block: zero denominators inside it
    a[-5:, -6:] = 1.0
    img[..., 3] = np.rint(a * top).astype(dtype) if np.dtype(dtype).kind == "u" else a.astype(dtype)
    return img


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("spec", ["gaussian", "box", "box:size=5", "gaussian:sigma=2", "identity",
                                  "sobel-x", "sharpen", "emboss", "sobel"])
def test_alpha_keep_rgba(spec, algorithm):
    """Each border."""
    img = rgba_with_holes()
    for out in check_every(algorithm, [(img, spec, border, dict(alpha="keep")) for border in MODES]):
        assert out is None or np.array_equal(out[..., 3], img[..., 3])


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_alpha_keep_other_dtypes_and_gray_alpha(dtype):
    img = rgba_with_holes(seed=4, dtype=dtype)
    for spec in ["gaussian", "sharpen", ["box", "sharpen", "gaussian"]]:
        for border in MODES:
            out, _ = check(img, spec, border, alpha="keep")
            assert np.array_equal(out[..., 3], img[..., 3])
            ga = img[..., 2:]  # gray + alpha
            out, _ = check(ga, spec, border, alpha="keep")
            assert np.array_equal(out[..., 1], ga[..., 1])


@pytest.mark.parametrize("geo", [(None, 2, 1), (None, 1, 2), (None, 3, 2), (1, 1, 1), (2, 2, 1), (0, 1, 2), (3, 3, 2)])
@pytest.mark.parametrize("flip", [False, True])
def test_alpha_keep_geometry(geo, flip):
    """Kept alpha under a geometry change is the alpha under the anchor tap."""
    padding, stride, dilation = geo
    img = rgba_with_holes(seed=5)
    for spec in ["gaussian", np.ones((2, 3)) / 6, "sobel-y"]:
        for border in MODES:
            check(img, spec, border, alpha="keep", padding=padding, stride=stride, dilation=dilation, flip=flip)


def _shape_on_transparent(background):
    h, w = 40, 44
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(yy - 20, xx - 22)
    img = np.zeros((h, w, 4), np.uint8)
    img[..., :3] = background
    inside = r < 12  # every pixel with alpha > 0 has the shape's colour
    rng = np.random.default_rng(0)
    img[inside, 0] = 200 + rng.integers(0, 20, inside.sum())
    img[inside, 1] = 120 + rng.integers(0, 20, inside.sum())
    img[inside, 2] = 40 + rng.integers(0, 20, inside.sum())
    # anti-aliased rim: partial alpha on a ring around the shape
    img[..., 3] = np.clip((12 - r) * 255, 0, 255).astype(np.uint8)
    return img, img[..., 3] > 0


@pytest.mark.parametrize("background", [(0, 0, 0), (0, 255, 0)])
@pytest.mark.parametrize("spec", ["gaussian", "gaussian:sigma=2", "box:size=5"])
@pytest.mark.parametrize("border", ["reflect", "constant", "wrap"])
def test_alpha_keep_no_fringe(background, spec, border):
    """Transparent pixels lend no colour: after a blur, visible pixels keep the shape's colours."""
    img, visible = _shape_on_transparent(background)
    out = clconv.convolve(img, spec, border=border, alpha="keep")
    assert np.array_equal(out[..., 3], img[..., 3])
    shown = out[visible].astype(int)
    for c, (lo, hi) in enumerate([(200, 219), (120, 139), (40, 59)]):
        assert shown[:, c].min() >= lo - 1 and shown[:, c].max() <= hi + 1, (
            f"channel {c}: visible colour range {shown[:, c].min()}..{shown[:, c].max()} leaves the "
            f"shape's {lo}..{hi}: the {background} background bleeds in"
        )
    # where no visible pixel is under the kernel, the source colour is kept exactly
    ref = reference(img, spec, border, alpha="keep")
    mode = oracle.canonical_border(border)[0]
    den = oracle.correlate_plain(img[..., 3].astype(float), oracle.as_kernel(spec).weights, oracle.Geometry(mode))
    zero = den == 0
    assert zero.any()
    assert np.array_equal(out[zero][:, :3], img[zero][:, :3])
    assert_matches(out, ref, f"fringe {spec} {border}")
    # without keep the background does bleed, so the check above is meaningful
    plain = clconv.convolve(img, spec, border=border)[visible].astype(int)
    assert any(((plain[:, c] < lo - 1) | (plain[:, c] > hi + 1)).any()
               for c, (lo, hi) in enumerate([(200, 219), (120, 139), (40, 59)]))


def test_alpha_keep_signed_kernels_fill_hidden_colour():
    """Signed kernels under a kept alpha: plain filtering where the kernel sees only opaque
    pixels, hidden colours replaced by the visible mean elsewhere (tests/test_alpha_hidden.py)."""
    img = rgba_with_holes(seed=6)
    opaque = img.copy()
    opaque[..., 3] = 255
    for spec in ["sobel-x", "laplacian", "sharpen", "unsharp"]:
        out = clconv.convolve(img, spec, alpha="keep")
        assert np.array_equal(out[..., 3], img[..., 3]), spec
        check(img, spec, "reflect", alpha="keep")
        plain_rgb = clconv.convolve(np.ascontiguousarray(img[..., :3]), spec)
        got = clconv.convolve(opaque, spec, alpha="keep")[..., :3].astype(int)
        assert np.abs(got - plain_rgb).max() <= 1, spec


@pytest.mark.parametrize("alpha", ["filter", None])
def test_alpha_filter_is_plain(alpha):
    img = rgba_with_holes(seed=7)
    for spec in ["gaussian", "sobel-x", "emboss", ["box", "sharpen"]]:
        out, _ = check(img, spec, "reflect", alpha=alpha)
        per_channel = np.stack([clconv.convolve(np.ascontiguousarray(img[..., c]), spec) for c in range(4)], -1)
        assert np.array_equal(out, per_channel), spec
    out = clconv.convolve(img, "gaussian:sigma=2", alpha=alpha)
    assert not np.array_equal(out[..., 3], img[..., 3])  # alpha is filtered too


def test_alpha_keep_chain_rules_per_kernel():
    img = rgba_with_holes(seed=8)
    for chain in [["gaussian", "sobel-x"], ["box", "sharpen", "box"], ["sharpen", "gaussian"]]:
        out, _ = check(img, chain, "reflect", alpha="keep")
        assert np.array_equal(out[..., 3], img[..., 3])


# ----------------------------------------------------------------------------------------------
# 8. explicit mapping overrides
# ----------------------------------------------------------------------------------------------

MAPPINGS = [dict(abs=True), dict(abs=False), dict(scale=0.25), dict(bias=10), dict(abs=True, scale=0.25, bias=10),
            dict(abs=False, scale=0.25, bias=10), dict(scale=-1.0), dict(scale=2.5, bias=-3)]


@pytest.mark.parametrize("mapping", MAPPINGS, ids=lambda m: ",".join(f"{k}={v}" for k, v in m.items()))
@pytest.mark.parametrize("image", list(IMAGES))
@pytest.mark.parametrize("spec", ["sobel-x", "emboss", "gaussian", "sobel", "laplacian"])
def test_explicit_mapping(spec, image, mapping):
    check(IMAGES[image], spec, "reflect", **mapping)


def test_explicit_mapping_effects():
    img = IMAGES["u8-gray"]
    raw = reference(img, "sobel-x").raw
    noabs = clconv.convolve(img, "sobel-x", abs=False)
    assert np.all(noabs[raw < -1] == 0)
    q = clconv.convolve(img, "sobel", scale=0.25)
    assert q.max() < 255 or reference(img, "sobel").raw.max() * 0.25 >= 254.5
    assert np.all(clconv.convolve(np.full((5, 5), 9, np.uint8), "emboss", bias=0) == 0)
    b = clconv.convolve(np.full((5, 5), 9, np.uint8), "box", bias=10)
    assert np.all(b == 19)
    f = np.full((5, 5), 2.0, np.float32)
    np.testing.assert_allclose(clconv.convolve(f, "box", scale=0.25, bias=10), 10.5, rtol=1e-6)
    np.testing.assert_allclose(clconv.convolve(-f, "box", abs=True), 2.0, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# 9. properties (hypothesis)
# ----------------------------------------------------------------------------------------------

DTYPES = [np.uint8, np.uint16, np.float32]
HYP = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)


def _random_image(rng, h, w, channels, dtype):
    shape = (h, w) if channels == 0 else (h, w, channels)
    dtype = np.dtype(dtype)
    if dtype in oracle.INT_MAX:
        return rng.integers(0, oracle.INT_MAX[dtype] + 1, size=shape).astype(dtype)
    return (rng.standard_normal(shape) * rng.uniform(0.1, 100)).astype(np.float32)


def _random_weights(rng, kh, kw, dtype, kind):
    if kind == "blur":
        w = rng.random((kh, kw))
        return w / w.sum() if w.sum() > 0 else np.ones((kh, kw)) / (kh * kw)
    if kind == "rank1":  # separable: every algorithm, the separable one included, takes these
        w = np.outer(rng.standard_normal(kh), rng.standard_normal(kw))
    else:
        w = rng.standard_normal((kh, kw))
    if np.dtype(dtype) in oracle.INT_MAX:
        # sum|w| <= 2 keeps float32's accumulation error well under the integer tolerance of 1
        w *= rng.uniform(0.25, 2.0) / max(np.abs(w).sum(), 1e-12)
    return w


@settings(max_examples=60, **HYP)
@given(h=st.integers(1, 300), w=st.integers(1, 300), kh=st.integers(1, 15), kw=st.integers(1, 15),
       dtype=st.sampled_from(DTYPES), channels=st.sampled_from([0, 1, 3, 4]), border=st.sampled_from(MODES),
       cval=st.sampled_from([0.0, 37.5, -2.0]), flip=st.booleans(), kind=st.sampled_from(["blur", "signed", "rank1"]),
       algorithm=st.sampled_from(ALGORITHMS), seed=st.integers(0, 2**32 - 1))
def test_property_random_filters(h, w, kh, kw, dtype, channels, border, cval, flip, kind, algorithm, seed):
    rng = np.random.default_rng(seed)
    img = _random_image(rng, h, w, channels, dtype)
    weights = _random_weights(rng, kh, kw, dtype, kind)
    _check_or_refused(img, weights, border, algorithm, border_value=cval, flip=flip)


def _check_or_refused(img, weights, border, algorithm, **kw):
    ref = reference(img, weights, border, **kw)
    try:
        out = clconv.convolve(img, weights, border=border, algorithm=algorithm, **kw)
    except OptionError as exc:
        if algorithm != "auto" and "algorithm" in str(exc.subject or ""):
            event(f"{algorithm} refused")
            return
        raise
    assert_matches(out, ref, f"{img.dtype}{img.shape} k{weights.shape} {border} {algorithm} {kw}")


@settings(max_examples=60, **HYP)
@given(h=st.integers(1, 70), w=st.integers(1, 70), kh=st.integers(1, 7), kw=st.integers(1, 7),
       padding=st.sampled_from([None, 0, 1, 2, 3, 6, "valid"]), stride=st.integers(1, 4),
       dilation=st.integers(1, 4), dtype=st.sampled_from(DTYPES), channels=st.sampled_from([0, 3]),
       border=st.sampled_from(MODES), flip=st.booleans(), algorithm=st.sampled_from(ALGORITHMS),
       kind=st.sampled_from(["signed", "rank1"]), seed=st.integers(0, 2**32 - 1))
def test_property_random_geometry(h, w, kh, kw, padding, stride, dilation, dtype, channels, border, flip,
                                  algorithm, kind, seed):
    rng = np.random.default_rng(seed)
    img = _random_image(rng, h, w, channels, dtype)
    weights = _random_weights(rng, kh, kw, dtype, kind)
    kw_ = dict(padding=padding, stride=stride, dilation=dilation, flip=flip, border_value=1.0)
    oh, ow = formula_shape(h, w, kh, kw, padding, stride, dilation)
    if oh < 1 or ow < 1:
        with pytest.raises(OptionError):
            clconv.convolve(img, weights, border=border, algorithm=algorithm, **kw_)
        return
    _check_or_refused(img, weights, border, algorithm, **kw_)


@settings(max_examples=40, **HYP)
@given(h=st.integers(1, 200), w=st.integers(1, 200), dtype=st.sampled_from(DTYPES),
       channels=st.sampled_from([0, 1, 3, 4]), border=st.sampled_from(MODES),
       delta=st.sampled_from(["identity", (1, 1), (4, 4), (5, 3), (2, 6)]), flip=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_property_identity(h, w, dtype, channels, border, delta, flip, seed):
    rng = np.random.default_rng(seed)
    img = _random_image(rng, h, w, channels, dtype)
    if delta == "identity":
        kernel = "identity"
    else:
        kernel = np.zeros(delta)
        # a delta at the anchor (k//2) is the identity, flipped or not: flipping rotates it to
        # k-1-k//2 == (k-1)//2, exactly where the flipped kernel's anchor moves
        kernel[tuple(k // 2 for k in delta)] = 1.0
    out = clconv.convolve(img, kernel, border=border, flip=flip)
    if np.dtype(dtype).kind == "u":
        assert np.array_equal(out, img)
    else:
        assert out.dtype == np.float32 and out.shape == img.shape
        np.testing.assert_allclose(out, img, rtol=0, atol=1e-4 * oracle.value_range(img))


@settings(max_examples=30, **HYP)
@given(h=st.integers(1, 150), w=st.integers(1, 150), kh=st.integers(1, 11), kw=st.integers(1, 11),
       a=st.floats(-3, 3), b=st.floats(-3, 3), border=st.sampled_from(MODES),
       algorithm=st.sampled_from(ALGORITHMS), seed=st.integers(0, 2**32 - 1))
def test_property_linearity_float(h, w, kh, kw, a, b, border, algorithm, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((h, w)).astype(np.float32)
    y = rng.standard_normal((h, w)).astype(np.float32)
    # rank 1 for the separable algorithm, which refuses other kernels
    weights = _random_weights(rng, kh, kw, np.float32, "rank1" if algorithm == "separable" else "signed")
    a32, b32 = np.float32(a), np.float32(b)
    mix = (a32 * x + b32 * y).astype(np.float32)
    f = lambda img: clconv.convolve(img, weights, border=border, algorithm=algorithm)  # noqa: E731
    lhs = f(mix).astype(np.float64)
    rhs = float(a32) * f(x).astype(np.float64) + float(b32) * f(y).astype(np.float64)
    rng_scale = max(oracle.value_range(x), oracle.value_range(y)) * (1 + abs(a) + abs(b))
    atol = 1e-4 * rng_scale * max(1.0, np.abs(weights).sum())
    np.testing.assert_allclose(lhs, rhs, rtol=0, atol=atol)


@settings(max_examples=30, **HYP)
@given(h=st.integers(1, 120), w=st.integers(1, 120), r=st.integers(0, 6), q=st.integers(0, 6),
       dtype=st.sampled_from(DTYPES), border=st.sampled_from(MODES), seed=st.integers(0, 2**32 - 1))
def test_property_flip_is_rot180_for_odd(h, w, r, q, dtype, border, seed):
    rng = np.random.default_rng(seed)
    img = _random_image(rng, h, w, 0, dtype)
    weights = _random_weights(rng, 2 * r + 1, 2 * q + 1, dtype, "signed")
    a = clconv.convolve(img, weights, border=border, flip=True).astype(np.float64)
    b = clconv.convolve(img, np.rot90(weights, 2), border=border).astype(np.float64)
    if np.dtype(dtype).kind == "u":
        assert np.abs(a - b).max(initial=0) <= 1
    else:
        atol = 2e-4 * oracle.value_range(img) * max(1.0, np.abs(weights).sum())
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)


@settings(max_examples=30, **HYP)
@given(h=st.integers(1, 90), w=st.integers(1, 90), kh=st.integers(1, 9), kw=st.integers(1, 9),
       dtype=st.sampled_from(DTYPES), channels=st.sampled_from([2, 4]), border=st.sampled_from(MODES),
       kind=st.sampled_from(["blur", "signed"]), seed=st.integers(0, 2**32 - 1))
def test_property_alpha_keep(h, w, kh, kw, dtype, channels, border, kind, seed):
    rng = np.random.default_rng(seed)
    img = _random_image(rng, h, w, channels, dtype)
    if np.dtype(dtype) == np.float32:
        img[..., -1] = np.abs(img[..., -1]) / max(np.abs(img[..., -1]).max(), 1e-6)  # alpha in 0..1
    img[: h // 2, : w // 3, -1] = 0  # some transparency
    weights = _random_weights(rng, kh, kw, dtype, kind)
    out, _ = check(img, weights, border, alpha="keep")
    assert np.array_equal(out[..., -1], img[..., -1])


# ----------------------------------------------------------------------------------------------
# 10. errors
# ----------------------------------------------------------------------------------------------


def test_option_errors():
    img = IMAGES["u8-gray"]
    with pytest.raises(OptionError):
        clconv.convolve(img, "box", border="bogus")
    with pytest.raises(OptionError):
        clconv.convolve(img, "box", stride=0)
    with pytest.raises(OptionError):
        clconv.convolve(img, "box", stride=-2)
    with pytest.raises(OptionError):
        clconv.convolve(img, "box", dilation=0)
    with pytest.raises(OptionError):
        clconv.convolve(img, "box", padding=-1)
    small = np.zeros((3, 3), np.float32)
    with pytest.raises(OptionError):
        clconv.convolve(small, "box:size=5", padding=0)
    with pytest.raises(OptionError):
        clconv.convolve(small, "box:size=5", padding="valid")
    with pytest.raises(OptionError):
        clconv.convolve(small, "box", padding=0, dilation=2)  # 3 + 0 - 2*2 - 1 < 0
    with pytest.raises(OptionError):
        clconv.convolve(img, "box", algorithm="no-such-algorithm")
    assert clconv.convolve(small, "box:size=5", padding=1).shape == (1, 1)  # the boundary case is fine


def test_kernel_spec_errors():
    img = IMAGES["f32-gray"]
    for bad in [np.array([[1.0, np.nan]]), np.array([[np.inf]]), "1 nan 1", "no-such-kernel", "1 2; 3",
                np.zeros((0, 3)), ""]:
        with pytest.raises(KernelSpecError):
            clconv.convolve(img, bad)


# ----------------------------------------------------------------------------------------------
# 11. repeated calls reuse the context and the programs
# ----------------------------------------------------------------------------------------------


def test_repeated_calls_reuse_programs():
    try:
        from clconv.runtime import get_runtime
    except ImportError:
        pytest.skip("clconv.runtime.get_runtime is not exposed")
    rt = get_runtime()
    if not hasattr(rt, "builds"):
        pytest.skip("the runtime exposes no build counter (get_runtime().builds)")
    img = IMAGES["u8-rgb"]
    calls = [dict(kernel="gaussian"), dict(kernel="sobel"), dict(kernel="box", alpha="filter"),
             dict(kernel=["box", "sharpen"], padding=1, stride=2)]
    for c in calls:  # warm: builds whatever these need once
        clconv.convolve(img, **c)
    before = rt.builds
    for _ in range(2):
        for c in calls:
            clconv.convolve(img, **c)
        clconv.convolve(IMAGES["f32-gray"], "gaussian:sigma=2")
        clconv.convolve(IMAGES["u16-gray"], "gaussian")
    clconv.convolve(img, "gaussian")
    assert get_runtime() is rt
    # new dtypes may build their own program once; repeats of everything above build nothing
    after_first = rt.builds
    for c in calls:
        clconv.convolve(img, **c)
    clconv.convolve(IMAGES["f32-gray"], "gaussian:sigma=2")
    clconv.convolve(IMAGES["u16-gray"], "gaussian")
    assert rt.builds == after_first, f"programs were rebuilt: {after_first} -> {rt.builds}"
    assert after_first - before <= 2
