"""Kernels as they really come: float32 arrays, text files with rounded weights, rank 2-3 kernels.

The rank bound (clconv.kernels.low_rank_eps): a kernel runs as r separable terms only when its
rank-r approximation K_r has sum|K - K_r| <= min(taps, 64) * 2**-24 * sum|K|. These tests hold
the detection to that bound exactly, and every path (auto, separable, direct, fft) to the float64
oracle computed with the kernel's own weights (scipy.ndimage.correlate), not with K_r.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import clconv
from clconv.algorithms import REGISTRY, choose_model
from clconv.kernels import MAX_TERMS, low_rank_eps, parse_spec

import oracle
from oracle import assert_matches, make_image, reference

BORDERS = ("reflect", "mirror", "nearest", "wrap", "constant")


def gaussian_1d(sigma, size):
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-x * x / (2 * sigma * sigma))
    return g / g.sum()


def log_kernel(sigma, size):
    x = np.arange(size) - (size - 1) / 2
    xx, yy = np.meshgrid(x, x)
    r2 = xx * xx + yy * yy
    return (r2 - 2 * sigma**2) / sigma**4 * np.exp(-r2 / (2 * sigma**2))


def dog_kernel(s1, s2, size):
    return np.outer(gaussian_1d(s1, size), gaussian_1d(s1, size)) - np.outer(gaussian_1d(s2, size),
                                                                              gaussian_1d(s2, size))


def low_rank(rank, kh, kw, seed):
    rng = np.random.default_rng(seed)
    return sum(np.outer(rng.standard_normal(kh), rng.standard_normal(kw)) for _ in range(rank))


def residual(weights, terms) -> float:
    approx = sum(np.outer(c, r) for c, r in terms)
    return float(np.abs(np.asarray(weights, np.float64) - approx).sum())


# ---------------------------------------------------------------- the bound, exactly
@settings(max_examples=60, deadline=None)
@given(kh=st.integers(2, 17), kw=st.integers(2, 17), rank=st.integers(1, 6), seed=st.integers(0, 2**31),
       noise=st.sampled_from([0.0, 1e-9, 1e-7, 1e-5]), float32=st.booleans())
def test_rank_is_the_fewest_terms_within_the_bound(kh, kw, rank, seed, noise, float32):
    weights = low_rank(rank, kh, kw, seed)
    weights = weights + noise * np.random.default_rng(seed + 1).standard_normal(weights.shape)
    if float32:
        weights = weights.astype(np.float32)
    kernel = parse_spec(weights)
    budget = low_rank_eps(kh * kw) * float(np.abs(np.asarray(weights, np.float64)).sum())
    u, s, vt = np.linalg.svd(np.asarray(weights, np.float64))
    # the independent answer: the fewest SVD terms within the budget
    expected = None
    for r in range(1, min(MAX_TERMS, len(s)) + 1):
        terms = [(u[:, t] * np.sqrt(s[t]), vt[t] * np.sqrt(s[t])) for t in range(r)]
        if residual(weights, terms) <= budget:
            expected = r
            break
    assert kernel.rank == expected
    if expected is not None:
        assert residual(weights, kernel.separable_terms()) <= budget
    if expected is not None and rank <= MAX_TERMS and noise == 0.0 and not float32:
        assert kernel.rank <= rank


@pytest.mark.parametrize("size, sigma", [(5, 1.0), (15, 2.5), (31, 5.0)])
def test_gaussians_given_as_float32_arrays_are_rank_1(size, sigma):
    g = gaussian_1d(sigma, size)
    for weights in (np.outer(g, g).astype(np.float32),                        # built in float64, stored float32
                    np.outer(g.astype(np.float32), g.astype(np.float32)),     # built in float32
                    (lambda k: k / k.sum())(np.outer(g, g).astype(np.float32))):  # normalised in float32
        assert parse_spec(weights).rank == 1


def test_rounded_text_weights_keep_their_rank_honest(tmp_path):
    """Weights rounded to d decimals carry rounding noise of about 10**-d: far above float32's,
    so such a kernel is rank 1 only when the noise is below the bound (8 decimals, here)."""
    g = gaussian_1d(2.5, 15)
    ranks = {}
    for decimals in (4, 5, 6, 8):
        path = tmp_path / f"g{decimals}.txt"
        path.write_text("\n".join(" ".join(f"{v:.{decimals}f}" for v in row) for row in np.outer(g, g)))
        kernel = parse_spec(str(path))
        ranks[decimals] = kernel.rank
        terms = kernel.separable_terms()
        if terms is not None:
            assert residual(kernel.weights, terms) <= low_rank_eps(225) * np.abs(kernel.weights).sum()
    assert ranks[4] is None and ranks[8] == 1


@pytest.mark.parametrize("weights, rank", [
    (log_kernel(2.0, 15), 2),
    (log_kernel(1.4, 9).astype(np.float32), 2),
    (dog_kernel(1.5, 3.0, 15).astype(np.float32), 2),
    (log_kernel(2.0, 15) - log_kernel(2.0, 15).mean(), 3),  # zero-mean LoG: a constant term more
    ("unsharp:sigma=2", 2),
])
def test_common_low_rank_kernels(weights, rank):
    kernel = parse_spec(weights)
    assert kernel.rank == rank
    name, reason = choose_model(kernel, device_kind="cpu")
    assert name == "separable", reason


# ---------------------------------------------------------------- against the oracle
def _check(image, weights, border, algorithm, **kw):
    ref = reference(image, weights, border, border_value=0.5 if border == "constant" else 0.0, **kw)
    out = clconv.convolve(image, weights, border=border, algorithm=algorithm,
                          border_value=0.5 if border == "constant" else 0.0, **kw)
    assert_matches(out, ref, f"{np.shape(weights)} {border} {algorithm} {kw} {image.dtype}{image.shape}")
    return out


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 70), w=st.integers(1, 70), channels=st.sampled_from([1, 3]),
       kh=st.integers(2, 13), kw=st.integers(2, 13), rank=st.integers(1, 3),
       dtype=st.sampled_from(["float32", "uint8", "uint16"]), border=st.sampled_from(BORDERS),
       geometry=st.sampled_from([{}, {"dilation": 2}, {"stride": 2}, {"padding": 3}, {"flip": True}]),
       algorithm=st.sampled_from(["auto", "separable"]), seed=st.integers(0, 2**31))
def test_low_rank_kernels_match_the_oracle(h, w, channels, kh, kw, rank, dtype, border, geometry, algorithm,
                                           seed):
    """Rank 1-3 kernels, stored as float32 (as users pass them), through every geometry."""
    weights = low_rank(rank, kh, kw, seed).astype(np.float32)
    if "padding" in geometry and (h + 6 < kh or w + 6 < kw):
        return  # no output pixel: refused, as for any algorithm
    if dtype != "float32" and geometry.get("stride", 1) != 1:
        geometry = {}
    image = make_image((h, w, channels) if channels > 1 else (h, w), dtype, seed)
    _check(image, weights, border, algorithm, **geometry)


@pytest.mark.parametrize("border", BORDERS)
@pytest.mark.parametrize("name, weights", [
    ("gauss15 float32", np.outer(gaussian_1d(2.5, 15), gaussian_1d(2.5, 15)).astype(np.float32)),
    ("gauss31 float32", np.outer(gaussian_1d(5.0, 31), gaussian_1d(5.0, 31)).astype(np.float32)),
    ("LoG 15", log_kernel(2.0, 15).astype(np.float32)),
    ("DoG 15", dog_kernel(1.5, 3.0, 15).astype(np.float32)),
    ("zero-mean LoG 15 (rank 3)", (log_kernel(2.0, 15) - log_kernel(2.0, 15).mean()).astype(np.float32)),
])
def test_real_kernels_every_algorithm_against_the_oracle(border, name, weights):
    image = make_image((97, 130, 3), "uint8", seed=3)
    floats = make_image((83, 121), "float32", seed=4)
    cval = 0.5 if border == "constant" else 0.0
    refs = {id(x): reference(x, weights, border, border_value=cval) for x in (image, floats)}  # once, not per algorithm
    outs = {}
    for algorithm in ("auto", "separable", "direct", "fft"):
        for x in (image, floats):
            out = clconv.convolve(x, weights, border=border, algorithm=algorithm, border_value=cval)
            assert_matches(out, refs[id(x)], f"{name} {border} {algorithm} {x.dtype}{x.shape}")
            outs.setdefault(algorithm, out)
    # rounding to integers may differ by one between algorithms, never more
    assert max(int(np.abs(outs[a].astype(int) - outs["direct"]).max()) for a in outs) <= 1


@pytest.mark.parametrize("decimals", [4, 5, 6])
def test_text_files_with_rounded_weights_match_the_oracle(tmp_path, decimals):
    g = gaussian_1d(2.0, 13)
    path = tmp_path / f"k{decimals}.csv"
    path.write_text("\n".join(",".join(f"{v:.{decimals}f}" for v in row) for row in np.outer(g, g)))
    weights = np.loadtxt(path, delimiter=",")
    for dtype in ("uint8", "float32"):
        image = make_image((75, 66, 3), dtype, seed=decimals)
        ref = reference(image, weights, "reflect")
        assert_matches(clconv.convolve(image, str(path)), ref, f"{decimals} decimals, {dtype}")


def test_the_approximation_stays_within_its_stated_bound():
    """A rank-2 kernel plus noise just under the bound runs as 2 terms; its output differs from
    the oracle of the full kernel by at most the bound (times max|x|) plus float32 rounding."""
    rng = np.random.default_rng(11)
    base = low_rank(2, 15, 15, seed=5)
    noise = rng.standard_normal(base.shape)
    eps = low_rank_eps(base.size)
    weights = base + noise * (0.5 * eps * np.abs(base).sum() / np.abs(noise).sum())
    kernel = parse_spec(weights)
    assert kernel.rank == 2
    image = make_image((120, 140), "float32", seed=6)
    exact = oracle.reference(image, weights, "reflect").expected
    out = clconv.convolve(image, weights, algorithm="separable").astype(np.float64)
    bound = eps * np.abs(weights).sum() * np.abs(image).max()
    rounding = 64 * 2.0**-24 * np.abs(weights).sum() * np.abs(image).max()
    assert np.abs(out - exact).max() <= bound + rounding


@pytest.mark.parametrize("name, params", [(name, params) for name in ("separable", "direct")
                                          for params in REGISTRY[name].variants], ids=str)
@pytest.mark.parametrize("shape, dtype", [((3, 70), "float32"), ((5, 40, 3), "uint8"), ((37, 45), "float32"),
                                          ((66, 129, 3), "uint16")])
def test_every_variant_matches_the_oracle(runtime, name, params, shape, dtype):
    """The variants `clconv tune` measures (band sizes, rows per work-item), forced through the
    engine on shapes whose last band or tile is shorter than a tile."""
    from clconv.algorithms import Schedule, Step
    from clconv.api import build_plan
    from clconv.engine import execute

    image = make_image(shape, dtype, seed=len(shape))
    for weights in (log_kernel(1.2, 7).astype(np.float32), low_rank(1, 5, 9, seed=2)):
        for border in ("reflect", "constant"):
            plan = build_plan([weights], in_dtype=np.dtype(dtype), border=border, border_value=0.5)
            kernel = plan.kernels[0]
            sched = Schedule((Step(kernel, REGISTRY[name], "test", dict(params)),),
                             ((id(kernel), shape[:2]),))
            pixels = image if image.ndim == 3 else image[:, :, None]
            out = execute(runtime, pixels, plan, sched=sched)
            out = out if image.ndim == 3 else out[:, :, 0]
            assert_matches(out, reference(image, weights, border, border_value=0.5), f"{params} {border}")
