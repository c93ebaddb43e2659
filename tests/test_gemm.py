"""The tiled SGEMM (cl/gemm.cl, clconv/gemm.py) on the real device, against numpy in float64.

Tolerance rule: every element must satisfy
    |C - C64| <= RTOL * sqrt(K) * (|A| @ |B|)
where C64 is the float64 product of the float32-rounded inputs and |A| @ |B| is
the magnitude the sum would have without cancellation (so rows that cancel to
almost zero are not held to an impossible relative error). RTOL = 1e-6 is about
8 float32 epsilons: a float32 dot product of length K accumulates a rounding
error of about eps * sqrt(K) * |A| @ |B| on random data (eps * K at worst), while
a single missing or doubled term is about (|A| @ |B|) / K, far above the bound
for every K used here.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clconv.errors import OptionError
from clconv.gemm import PANEL, gemm_device, matmul, pack_b, panel_count

RTOL = 1e-6
TILE_EDGES = (7, 8, 9, 15, 16, 17, 63, 64, 65)


def random_matrix(rng, rows, cols, dtype=np.float32):
    return rng.standard_normal((rows, cols)).astype(dtype)


def assert_matmul_close(c, a, b):
    """``c`` is float32 (M, N) and equals a @ b within the tolerance rule above."""
    a64 = np.asarray(a).astype(np.float32).astype(np.float64)
    b64 = np.asarray(b).astype(np.float32).astype(np.float64)
    m, k = a64.shape
    n = b64.shape[1]
    assert c.dtype == np.float32
    assert c.shape == (m, n)
    ref = a64 @ b64
    bound = RTOL * np.sqrt(max(k, 1)) * (np.abs(a64) @ np.abs(b64))
    bad = ~(np.abs(c - ref) <= bound)  # also catches NaN
    if bad.any():
        i, j = np.argwhere(bad)[0]
        pytest.fail(f"{m}x{k}x{n}: {bad.sum()} elements off; first at ({i}, {j}): "
                    f"got {c[i, j]!r}, expected {ref[i, j]!r} +- {bound[i, j]:.3g}")


def check(runtime, m, k, n, seed=0):
    rng = np.random.default_rng(seed)
    a, b = random_matrix(rng, m, k), random_matrix(rng, k, n)
    assert_matmul_close(matmul(a, b, device=runtime), a, b)


@pytest.mark.parametrize("m, k, n", [
    (1, 1, 1),
    (1, 2, 1), (1, 1000, 1), (1, 100003, 1),  # 1 x K x 1
    (1, 1, 17), (37, 1, 1), (70, 1, 33),      # M x 1 x N
    (97, 131, 61),                             # primes
    (8, 16, 16), (64, 64, 1024),               # exact tiles
    (1, 300, 700), (700, 300, 1),              # single row, single column
    (1030, 5, 3),                              # more row blocks than one band (64), plus a remainder band
    (549, 7, 40), (8 * 128, 6, 35),            # remainder band of 5 row blocks x 3 panels; exactly two bands
])
def test_shapes(runtime, m, k, n):
    check(runtime, m, k, n)


@pytest.mark.parametrize("m, n", list(itertools.product(TILE_EDGES, TILE_EDGES)))
def test_shapes_straddling_tiles(runtime, m, n):
    """Every M x N around the 8-row block, the 16-column panel and the 64-item band, for every such K."""
    for k in TILE_EDGES:
        check(runtime, m, k, n, seed=m * 10000 + k * 100 + n)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(1, 300), k=st.integers(1, 300), n=st.integers(1, 300), seed=st.integers(0, 2**32 - 1))
def test_random_shapes(runtime, m, k, n, seed):
    check(runtime, m, k, n, seed)


def test_integer_valued_inputs_are_exact(runtime):
    """Small integers: every partial sum is exactly representable, so C equals numpy exactly."""
    rng = np.random.default_rng(1)
    a = rng.integers(-8, 9, (45, 77)).astype(np.float32)
    b = rng.integers(-8, 9, (77, 39)).astype(np.float32)
    np.testing.assert_array_equal(matmul(a, b, device=runtime), (a.astype(np.int64) @ b.astype(np.int64)).astype(np.float32))


def test_non_contiguous_inputs(runtime):
    rng = np.random.default_rng(2)
    big = random_matrix(rng, 90, 120)
    a = big[::2, 1::3]          # 45 x 40, strided both ways
    b = random_matrix(rng, 33, 40).T  # 40 x 33, Fortran order
    assert not a.flags.c_contiguous and not b.flags.c_contiguous
    assert_matmul_close(matmul(a, b, device=runtime), a, b)


def test_read_only_inputs_and_inputs_left_unchanged(runtime):
    rng = np.random.default_rng(6)
    a, b = random_matrix(rng, 20, 30), random_matrix(rng, 30, 50)
    a_before, b_before = a.copy(), b.copy()
    a.flags.writeable = False
    assert_matmul_close(matmul(a, b, device=runtime), a, b)
    np.testing.assert_array_equal(a, a_before)
    np.testing.assert_array_equal(b, b_before)
    broadcast = np.broadcast_to(np.float32(2.0), (30, 50))  # read-only, zero strides
    assert_matmul_close(matmul(a, broadcast, device=runtime), a, broadcast)


def test_results_are_fresh_arrays(runtime):
    """Each call returns its own array, not a view that a later call overwrites."""
    a = np.ones((9, 4), np.float32)
    first = matmul(a, np.ones((4, 17), np.float32), device=runtime)
    second = matmul(a, np.full((4, 17), 2.0, np.float32), device=runtime)
    assert (first == 4.0).all() and (second == 8.0).all()
    assert first.flags.owndata and first.flags.writeable and first.flags.c_contiguous


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.uint8, bool])
def test_other_dtypes_are_converted_to_float32(runtime, dtype):
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((19, 23)) * 4).astype(dtype)
    b = (rng.standard_normal((23, 29)) * 4).astype(dtype)
    c = matmul(a, b, device=runtime)
    assert c.dtype == np.float32
    assert_matmul_close(c, a, b)  # the reference rounds the inputs to float32 too


def test_list_inputs(runtime):
    c = matmul([[1.0, 2.0], [3.0, 4.0]], [[5.0], [6.0]], device=runtime)
    np.testing.assert_array_equal(c, np.array([[17.0], [39.0]], dtype=np.float32))


@pytest.mark.parametrize("m, k, n", [(0, 3, 4), (3, 0, 4), (3, 4, 0), (0, 0, 0)])
def test_empty_dimensions(runtime, m, k, n):
    c = matmul(np.ones((m, k)), np.ones((k, n)), device=runtime)
    assert c.dtype == np.float32 and c.shape == (m, n)
    assert not c.any()


@pytest.mark.parametrize("a, b, message", [
    (np.ones(3), np.ones((3, 2)), "2-D"),
    (np.ones((2, 3)), np.ones(3), "2-D"),
    (np.ones((2, 3, 4)), np.ones((4, 2)), "2-D"),
    (np.float32(2.0), np.ones((1, 1)), "2-D"),
    (np.ones((2, 3)), np.ones((4, 2)), "do not align"),
    (np.ones((2, 3)), np.ones((2, 3)), "do not align"),
    (np.ones((2, 3), dtype=complex), np.ones((3, 2)), "real numbers"),
])
def test_errors(a, b, message):
    with pytest.raises(OptionError, match=message):
        matmul(a, b)


def test_repeated_calls_do_not_rebuild(runtime):
    a = np.ones((3, 5), np.float32)
    matmul(a, a.T, device=runtime)
    builds = runtime.builds
    for _ in range(3):
        matmul(a, a.T, device=runtime)
    assert runtime.builds == builds


@pytest.mark.parametrize("k, n", [(1, 1), (3, 16), (3, 17), (5, 33), (4, 48), (2, 0)])
def test_pack_b_layout(k, n):
    b = np.arange(1, k * n + 1, dtype=np.float64).reshape(k, n)
    packed = pack_b(b)
    assert packed.dtype == np.float32
    assert packed.shape == (panel_count(n), k, PANEL)
    expected = np.zeros(packed.shape, dtype=np.float32)
    for p in range(panel_count(n)):
        for kk in range(k):
            for j in range(PANEL):
                if p * PANEL + j < n:
                    expected[p, kk, j] = b[kk, p * PANEL + j]
    np.testing.assert_array_equal(packed, expected)
    assert packed.flags.c_contiguous


def test_panel_count():
    assert [panel_count(n) for n in (0, 1, 15, 16, 17, 32, 33)] == [0, 1, 1, 1, 2, 2, 3]


@pytest.mark.parametrize("m, k, n", [(13, 11, 37), (8, 3, 16), (1, 1, 1), (70, 9, 5)])
def test_gemm_device_with_c_offset(runtime, m, k, n):
    """C written into the middle of a bigger buffer: the floats before and after stay untouched."""
    cl = runtime.cl
    rng = np.random.default_rng(4)
    a, b = random_matrix(rng, m, k), random_matrix(rng, k, n)
    before, after = 37, 100
    host = np.full(before + m * n + after, -12345.0, dtype=np.float32)
    c_buf = runtime.alloc(host.nbytes)
    cl.enqueue_copy(runtime.queue, c_buf, host)
    gemm_device(runtime, runtime.upload(a), runtime.upload(pack_b(b)), c_buf, m, n, k, c_offset=before)
    out = runtime.download(c_buf, np.empty_like(host))
    assert (out[:before] == -12345.0).all()
    assert (out[before + m * n:] == -12345.0).all()
    assert_matmul_close(out[before:before + m * n].reshape(m, n), a, b)


def test_gemm_device_sizes_zero_enqueue_nothing(runtime):
    host = np.full(8, 3.0, dtype=np.float32)
    c_buf = runtime.alloc(host.nbytes)
    runtime.cl.enqueue_copy(runtime.queue, c_buf, host)
    dummy = runtime.alloc(4)
    gemm_device(runtime, dummy, dummy, c_buf, 0, 4, 2)
    gemm_device(runtime, dummy, dummy, c_buf, 4, 0, 2)
    assert (runtime.download(c_buf, np.empty_like(host)) == 3.0).all()


def test_gemm_device_rejects_negative_sizes(runtime):
    with pytest.raises(OptionError):
        gemm_device(runtime, None, None, None, 2, 2, 2, c_offset=-1)


@pytest.mark.slow
def test_2048_cubed(runtime):
    """The benchmark size: a few seconds in all, including the float64 reference."""
    rng = np.random.default_rng(5)
    a, b = random_matrix(rng, 2048, 2048), random_matrix(rng, 2048, 2048)
    c = matmul(a, b, device=runtime)
    assert c.dtype == np.float32 and c.shape == (2048, 2048)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    # |A| @ |B| is about K * 2/pi for standard normal data; the float32 version is precise enough as a scale.
    bound = RTOL * np.sqrt(2048) * (np.abs(a) @ np.abs(b))
    bad = ~(np.abs(c - ref) <= bound)
    assert not bad.any(), f"{bad.sum()} elements off, max error {np.abs(c - ref).max():.3g}"
