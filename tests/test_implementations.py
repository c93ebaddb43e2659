"""A small oracle subset sized for slow OpenCL implementations (Oclgrind's simulator with its memory
checker, Mesa rusticl on llvmpipe): `.ci/run` runs this file with CLCONV_DEVICE naming each one.
On PoCL it is part of the ordinary suite. Every algorithm with each of its tuned variants, every sample
type, border and the geometries, on images of a few thousand pixels."""
from __future__ import annotations

import numpy as np
import pytest
from oracle import assert_matches, make_image, reference
from test_low_rank import log_kernel

import clconv
from clconv.algorithms import REGISTRY, Schedule, Step
from clconv.api import build_plan
from clconv.engine import execute

ALGORITHMS = ("direct", "separable", "gemm", "fft")
KERNELS = {
    "rank-2 LoG 7x7": log_kernel(1.2, 7).astype(np.float32),
    "gaussian 5x5": "gaussian:sigma=1,size=5",
    "dense 4x5": np.random.default_rng(5).standard_normal((4, 5)),
    "sobel-x": "sobel-x",
}
IMAGES = {
    "u8 RGB": ((23, 41, 3), "uint8"),
    "f32": ((19, 37), "float32"),
    "u16 RGBA": ((17, 35, 4), "uint16"),
}


def _runs(name: str, weights) -> bool:
    return REGISTRY[name].refuses(clconv.kernels.parse_spec(weights)) is None


@pytest.mark.parametrize("image_key", IMAGES)
@pytest.mark.parametrize("kernel_key", KERNELS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("border", ["reflect", "constant", "wrap"])
def test_algorithms_on_this_device(algorithm, kernel_key, image_key, border):
    weights = KERNELS[kernel_key]
    if not _runs(algorithm, weights):
        pytest.skip(f"{algorithm} does not run {kernel_key}")
    shape, dtype = IMAGES[image_key]
    image = make_image(shape, dtype, seed=len(shape))
    out = clconv.convolve(image, weights, border=border, algorithm=algorithm, border_value=3.0)
    assert_matches(out, reference(image, weights, border, border_value=3.0), f"{algorithm} {kernel_key}")


@pytest.mark.parametrize("geometry", [{"stride": 2}, {"dilation": 2}, {"padding": 2}, {"flip": True}], ids=str)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_geometry_on_this_device(algorithm, geometry):
    image = make_image((21, 33, 3), "float32", seed=7)
    weights = KERNELS["rank-2 LoG 7x7"]
    out = clconv.convolve(image, weights, algorithm=algorithm, **geometry)
    assert_matches(out, reference(image, weights, **geometry), f"{algorithm} {geometry}")


@pytest.mark.parametrize("name, params", [(n, p) for n in ("direct", "separable") for p in REGISTRY[n].variants],
                         ids=str)
def test_tuned_variants_on_this_device(runtime, name, params):
    image = make_image((22, 70, 3), "uint8", seed=9)
    weights = KERNELS["rank-2 LoG 7x7"]
    plan = build_plan([weights], in_dtype=np.uint8)
    kernel = plan.kernels[0]
    sched = Schedule((Step(kernel, REGISTRY[name], "test", dict(params)),), ((id(kernel), image.shape[:2]),))
    out = execute(runtime, image, plan, sched=sched)
    assert_matches(out, reference(image, weights), f"{name} {params}")


def test_alpha_bank_and_chain_on_this_device():
    rgba = make_image((19, 29, 4), "uint8", seed=11)
    blurred = clconv.convolve(rgba, "gaussian:sigma=1", alpha="keep")
    assert_matches(blurred, reference(rgba, "gaussian:sigma=1", alpha="keep"), "alpha keep")
    chain = ["box:size=3", "sharpen"]
    assert_matches(clconv.convolve(rgba[:, :, :3], chain), reference(rgba[:, :, :3], chain), "chain")
    gray = make_image((18, 26), "float32", seed=12)
    for algorithm in ("direct", "gemm"):
        outs = clconv.convolve_bank(gray, ["sobel-x", "sobel-y", "laplacian"], algorithm=algorithm)
        for spec, out in zip(["sobel-x", "sobel-y", "laplacian"], outs):
            assert_matches(out, reference(gray, spec), f"bank {algorithm} {spec}")


@pytest.mark.slow
def test_an_8_bit_image_of_more_than_2_31_samples(runtime, monkeypatch):
    """26800 x 26800 x 3 = 2.15e9 samples (2.0 GiB in, 2.0 GiB out, zero-copy: below PoCL's real
    8 GiB allocation limit), made once and filtered by the direct and the separable programs. The
    in-place path holds no float32 planes (8.0 GiB), and clconv's tiling rule counts what that path
    holds: nothing is tiled, and offsets past 2^31 reach the kernels. Corners and a block past 2^31
    samples are checked against the oracle."""
    from clconv import tiling
    from clconv.api import build_plan

    n = 26800
    if runtime.max_alloc < n * n * 3:
        pytest.skip("the device cannot hold this image in one buffer")
    if tiling.global_budget(runtime) < 2 * n * n * 3 + tiling.SCRATCH_BYTES:
        pytest.skip("the device's global memory cannot hold this image twice")
    monkeypatch.setattr(tiling, "execute_tiled", lambda *a: pytest.fail("tiled"))
    shaped = np.broadcast_to(np.uint8(0), (n, n, 3))  # the shape, without the memory
    rng = np.random.default_rng(3)
    image = np.zeros((n, n, 3), np.uint8)
    blocks = [(0, 0), (n - 64, n - 64), (n - 64, 0), (24000, 1000)]  # rows from 26711 on: past 2^31 samples
    for y, x in blocks:
        image[y:y + 64, x:x + 64] = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = np.empty_like(image)  # one output for both: fresh memory costs seconds of page faults here
    for spec, algorithm in (("sharpen", "direct"), ("box:size=3", "separable")):
        plan = build_plan([spec], in_dtype=np.uint8, channels=3)
        assert not tiling.needs_tiles(runtime, shaped, plan, in_place=True)
        out[-1, -1] = out[0, 0] = 7  # not what either filter gives there: stale pixels would show
        assert clconv.convolve(image, spec, algorithm=algorithm, out=out) is out
        r = clconv.kernels.parse_spec(spec).weights.shape[0] // 2
        for y, x in blocks:
            y0, x0 = max(0, y - 2 * r), max(0, x - 2 * r)
            y1, x1 = min(n, y + 64 + 2 * r), min(n, x + 64 + 2 * r)
            ref = reference(image[y0:y1, x0:x1], spec)
            # rows/columns within r of a cut that is not the image's edge see the cut's border rule
            top, left = (r if y0 > 0 else 0), (r if x0 > 0 else 0)
            bottom, right = (y1 - y0 - r if y1 < n else y1 - y0), (x1 - x0 - r if x1 < n else x1 - x0)
            got = out[y0 + top:y0 + bottom, x0 + left:x0 + right].astype(np.int64)
            want = ref.expected[top:bottom, left:right]
            assert np.abs(got - want).max() <= 1, (spec, y, x)
