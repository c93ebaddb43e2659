"""A small oracle subset sized for slow OpenCL implementations (Oclgrind's simulator with its memory
checker, Mesa rusticl on llvmpipe): `.ci/run` runs this file with CLCONV_DEVICE naming each one.
On PoCL it is part of the ordinary suite. Every algorithm that builds quickly everywhere (the FFT is
left out: see README "Devices") with each of its tuned variants, every sample type, border and the
geometries, on images of a few thousand pixels."""
from __future__ import annotations

import numpy as np
import pytest

import clconv
from clconv.algorithms import REGISTRY, Schedule, Step
from clconv.api import build_plan
from clconv.engine import execute

from oracle import assert_matches, make_image, reference
from test_low_rank import log_kernel

ALGORITHMS = ("direct", "separable", "gemm")
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
    out = clconv.convolve(image, weights, border, algorithm=algorithm, border_value=3.0)
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
