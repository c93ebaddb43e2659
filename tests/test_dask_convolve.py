"""clconv.dask.convolve: a dask array filtered block by block equals clconv.convolve on the whole
array, and the float64 oracle (tests/oracle.py), for every border mode, geometry, chain, dtype and
chunking (chunks smaller than the kernel, ragged last chunks), on the real device.

Bit-equal where the whole image runs direct or gemm (each pixel computed alike whatever the image's
size); within the oracle's tolerance where it runs separable (narrow images fall back to direct,
and whole rows of the constant border are summed in one product) or the FFT (round-off depends on
the transformed size), and where NaN/Inf meet an output mapping (applied on the host, for the
blocks that hold them: 1 ulp). Tolerances are the oracle's (SPEC "Precision")."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

da = pytest.importorskip("dask.array")

from oracle import MODES, assert_matches, reference  # noqa: E402

import clconv  # noqa: E402
import clconv.dask  # noqa: E402
from clconv.errors import OptionError  # noqa: E402

EXACT = ("direct", "gemm")  # the algorithms whose pixels never depend on the image's size
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


def image_of(rng, shape, dtype, holes: int = 0) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        return rng.integers(0, np.iinfo(dtype).max + 1, size=shape).astype(dtype)
    image = (rng.random(shape) * 5 - 1.5).astype(np.float32)
    if holes:
        flat = image.reshape(-1)
        at = rng.choice(flat.size, size=min(holes, flat.size), replace=False)
        flat[at] = rng.choice(np.array([np.nan, np.inf, -np.inf], np.float32), size=at.size)
    return image


def chunked(image: np.ndarray, chunks: tuple):
    return da.from_array(image, chunks=chunks + ((-1,) if image.ndim == 3 else ()))


def check(image, chunks, kernel, algorithm="direct", exact=None, **options):
    """clconv.dask.convolve against clconv.convolve on the whole image (bit-equal where ``exact``)
    and against the oracle (finite images). Returns the computed result."""
    lazy = clconv.dask.convolve(chunked(image, chunks), kernel, algorithm=algorithm, **options)
    assert isinstance(lazy, da.Array)
    whole = clconv.convolve(image, kernel, algorithm=algorithm, **options)
    assert lazy.shape == whole.shape and lazy.dtype == whole.dtype
    out = lazy.compute(scheduler="sync")
    context = f"{kernel!r} chunks={chunks} alg={algorithm} {options} img={image.dtype}{image.shape}"
    assert out.shape == whole.shape and out.dtype == whole.dtype, context
    finite = bool(np.isfinite(image).all()) if image.dtype.kind == "f" else True
    mapped = any(options.get(name) is not None for name in ("abs", "scale", "bias"))
    if exact is None:
        exact = algorithm in EXACT and (finite or not mapped)
    if exact:
        np.testing.assert_array_equal(out, whole, err_msg=context)
    if finite and "dtype" not in options:  # the oracle's output dtype is the input's
        ref = reference(image, kernel, **options)
        assert_matches(out, ref, context)
        if not exact:  # both within the oracle's tolerance, so within twice that of each other
            near = np.isfinite(ref.tol)
            err = np.abs(out.astype(np.float64) - whole.astype(np.float64))
            assert (err[near] <= 2 * ref.tol[near]).all(), context
    elif not finite:  # NaN/Inf where the whole image has them; the finite sums as the oracle's tolerance allows
        for where in (np.isnan, np.isposinf, np.isneginf):
            np.testing.assert_array_equal(where(out), where(whole), err_msg=context)
        if not exact:
            holes_zeroed = np.where(np.isfinite(image), image, 0).astype(image.dtype)
            tol = reference(holes_zeroed, kernel, **options).tol
            near = np.isfinite(whole) & np.isfinite(tol)
            assert (np.abs(out[near].astype(np.float64) - whole[near]) <= 2 * tol[near]).all(), context
    return out


CHUNKINGS = [(3, 4), (5, 7), (23, 29)]  # smaller than the kernel (and ragged), ragged, one chunk


@pytest.mark.parametrize("border", [*MODES, "symmetric", "zero"])
@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_every_border_and_chunking_equals_the_whole_image(runtime, border, chunks):
    rng = np.random.default_rng(len(border) * 7 + chunks[0])
    image = image_of(rng, (23, 29, 3), np.uint8)
    value = {"border_value": 77.5} if border == "constant" else {}
    # an even kernel, dilated: its windows reach 5 and 6 pixels past the anchor, more than the chunks
    check(image, chunks, rng.integers(-3, 4, (4, 3)).astype(float), border=border, dilation=2, **value)


@pytest.mark.parametrize("geometry", [{"stride": 2}, {"stride": 3, "dilation": 2}, {"padding": 0},
                                      {"padding": 5, "stride": 2}, {"padding": 2, "dilation": 3, "flip": True},
                                      {"flip": True, "dilation": 2}])
@pytest.mark.parametrize("chunks", [(2, 3), (6, 9)])
def test_geometries_equal_the_whole_image(runtime, geometry, chunks):
    image = image_of(np.random.default_rng(3), (20, 31), np.float32)
    check(image, chunks, "4x2: 1,2,-3,4,5,-6,7,8", border="wrap", **geometry)


def test_far_borders_beyond_the_array(runtime):
    """Wrap and reflections several periods out (kernel and padding larger than the image)."""
    image = image_of(np.random.default_rng(4), (3, 5, 2), np.float32)
    for border in MODES:
        check(image, (2, 2), np.ones((9, 11)), border=border, padding=8)
        check(image, (1, 3), np.ones((9, 11)), border=border)


def test_chains_stage_by_stage_with_the_last_mapping(runtime):
    image = image_of(np.random.default_rng(5), (26, 33, 3), np.uint8)
    chain = ["sharpen", "4x1: 1,0,0,-1", "emboss"]  # an even kernel between: each stage's own anchor
    for options in ({}, {"stride": 2}, {"padding": 1, "dilation": 2}, {"dtype": np.uint16, "scale": 0.5}):
        check(image, (6, 5), chain, border="mirror", **options)


@pytest.mark.parametrize("border", MODES)
def test_kept_alpha_with_an_even_dilated_kernel(runtime, border):
    """The kept alpha is the anchor's sample ("same": for an even dilated kernel not the centre tap)."""
    rng = np.random.default_rng(6)
    image = image_of(rng, (19, 22, 4), np.uint8)
    image[..., 3] = np.where(rng.random((19, 22)) < 0.3, 0, image[..., 3])  # hidden colours
    cases = (("sharpen", {"dilation": 2}), (np.ones((4, 2)), {"dilation": 2, "flip": True}),
             (np.ones((4, 2)), {"dilation": 3}), (["box:size=2", "sobel"], {"padding": 1, "dilation": 3}))
    for kernel, geometry in cases:
        check(image, (5, 4), kernel, border=border, alpha="keep", **geometry)


@pytest.mark.parametrize("algorithm", ["direct", "separable", "gemm", "fft"])
def test_nan_and_inf_at_chunk_edges(runtime, algorithm):
    """NaN/Inf reach exactly the outputs whose windows hold them, across chunk edges."""
    image = image_of(np.random.default_rng(7), (17, 21, 2), np.float32)
    for y, x, value in ((5, 6, np.nan), (4, 7, np.inf), (10, 0, -np.inf), (16, 20, np.nan)):
        image[y, x, y % 2] = value  # at the corners of (5, 7) chunks and the image's
    kernel = np.array([[1.0, 0.0, 2.0], [0.0, -1.0, 0.5]])  # zero taps: a hole behind one reaches nothing
    for options in ({}, {"alpha": "keep"}, {"stride": 2, "border": "wrap"}):
        check(image, (5, 7), kernel, algorithm=algorithm, **options)
    check(image, (5, 7), kernel, algorithm=algorithm, scale=2.0, bias=1.0)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(1, 30), w=st.integers(1, 30), channels=st.sampled_from([0, 1, 3, 4]),
       dtype=st.sampled_from(["uint8", "uint16", "float32"]), chunk_h=st.integers(1, 12), chunk_w=st.integers(1, 12),
       kernel=st.sampled_from(["matrix", "gaussian:sigma=1.5", "sobel", "chain", "laplacian"]),
       kh=st.integers(1, 6), kw=st.integers(1, 6), border=st.sampled_from(MODES), flip=st.booleans(),
       padding=st.sampled_from([None, None, 0, 2]), stride=st.integers(1, 3), dilation=st.integers(1, 3),
       alpha=st.booleans(), mapping=st.booleans(),
       algorithm=st.sampled_from(["auto", "direct", "gemm", "separable", "fft"]), seed=st.integers(0, 2**31))
def test_random_cases_equal_the_whole_image_and_the_oracle(runtime, h, w, channels, dtype, chunk_h, chunk_w, kernel,
                                                            kh, kw, border, flip, padding, stride, dilation, alpha,
                                                            mapping, algorithm, seed):
    rng = np.random.default_rng(seed)
    image = image_of(rng, (h, w) if channels == 0 else (h, w, channels), dtype)
    matrix = rng.integers(-4, 5, (kh, kw)).astype(float)
    spec = {"matrix": matrix, "chain": [matrix, "box:size=2"]}.get(kernel, kernel)
    options = dict(border=border, flip=flip, padding=padding, stride=stride, dilation=dilation)
    if border == "constant":
        options["border_value"] = float(rng.integers(0, 200))
    if alpha and channels >= 2:
        options["alpha"] = "keep"
        if image.dtype == np.float32:  # alpha as a fraction (the oracle's bounds assume 0..1)
            image[..., -1] = rng.random((h, w))
    if mapping:
        options.update(scale=0.5, bias=3.0)
    try:
        check(image, (chunk_h, chunk_w), spec, algorithm=algorithm, **options)
        event("checked")
    except OptionError as exc:
        assert exc.subject in ("--algorithm", "--padding"), exc  # not separable, or an empty output
        event(f"refused: {exc.subject}")


def test_options_are_checked_at_once_and_pixels_filtered_only_when_computed(runtime):
    def fails(block):
        raise RuntimeError("computed")

    pixels = da.zeros((40, 40), dtype=np.float32, chunks=10).map_blocks(fails, dtype=np.float32)
    lazy = clconv.dask.convolve(pixels, "gaussian:sigma=2", border="wrap", stride=2)
    assert lazy.shape == (20, 20)
    with pytest.raises(RuntimeError, match="computed"):
        lazy.compute()
    with pytest.raises(OptionError, match="border"):
        clconv.dask.convolve(pixels, "box", border="sideways")
    with pytest.raises(OptionError, match="empty"):
        clconv.dask.convolve(pixels, np.ones((9, 9)), padding=0, dilation=6)
    with pytest.raises(OptionError, match="dtype"):
        clconv.dask.convolve(da.zeros((4, 4), dtype=np.int32), "box")


def test_threads_share_the_device_one_block_at_a_time(runtime):
    """Blocks filtered from 8 threads give what one thread gives. The Runtime is not thread-safe
    (kernel arguments on shared kernel objects, scratch buffers reused): without DEVICE_LOCK this
    separable run gave wrong blocks in 1 of 5 tries here, and PoCL aborted on another."""
    image = image_of(np.random.default_rng(8), (128, 192, 3), np.float32)
    lazy = clconv.dask.convolve(chunked(image, (16, 16)), "gaussian:sigma=2", algorithm="separable")
    alone = lazy.compute(scheduler="sync")
    for _ in range(3):
        np.testing.assert_array_equal(lazy.compute(scheduler="threads", num_workers=8), alone)


def test_the_plain_install_does_not_import_dask():
    code = ("import sys, numpy as np, clconv; clconv.convolve(np.ones((8, 8), np.float32), 'box'); "
            "print(sorted(m for m in ('dask', 'zarr', 'distributed') if m in sys.modules))")
    env = dict(os.environ, CLCONV_TUNING="0")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.xdist_group("dask")  # conftest's scheduler: one pytest-xdist worker starts it
def test_a_distributed_cluster_of_processes(runtime, scheduler):
    """Blocks filtered in other processes (`dask worker`s, each its own device): the graph
    pickles, every block equal."""
    distributed = pytest.importorskip("distributed")
    image = image_of(np.random.default_rng(9), (40, 50, 4), np.uint8)
    chain = ["sharpen", "sobel"]
    with distributed.Client(scheduler, timeout="30s", set_as_default=False) as client:
        lazy = clconv.dask.convolve(chunked(image, (16, 16)), chain, alpha="keep", stride=2, algorithm="direct")
        out = client.compute(lazy).result()
    np.testing.assert_array_equal(out, clconv.convolve(image, chain, alpha="keep", stride=2, algorithm="direct"))
