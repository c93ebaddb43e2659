"""The memory strategy per device: buffers over the caller's own arrays (zero-copy, where the
device works in host memory) or explicit copies to and from device memory (discrete GPUs).
Both strategies give the oracle's results and leave the caller's input as it was."""
from __future__ import annotations

import numpy as np
import pytest

import clconv
from clconv import engine
from clconv.gemm import matmul
from clconv.runtime import CODE_PATH_VARIABLE, DeviceInfo, _zero_copy
from oracle import assert_matches, make_image, reference


@pytest.fixture(params=[True, False], ids=["zero-copy", "copies"])
def zero_copy(runtime, request, monkeypatch):
    """The session runtime forced to one strategy (restored afterwards)."""
    monkeypatch.setattr(runtime, "zero_copy", request.param)
    return request.param


@pytest.fixture()
def paths(monkeypatch):
    """Which of the engine's in-place paths ran."""
    ran = []
    for name in ("_execute_in_place", "_execute_bank_fused"):
        original = getattr(engine, name)
        monkeypatch.setattr(engine, name, lambda *a, _name=name, _f=original: ran.append(_name) or _f(*a))
    return ran


@pytest.mark.parametrize("dtype, spec", [("uint8", "sharpen"), ("float32", "gaussian:sigma=1.5"),
                                         ("uint16", ["box", "sobel-x"]), ("float32", "1 2 0; -1 3 4")])
def test_the_in_place_path_matches_the_oracle(runtime, zero_copy, paths, dtype, spec):
    image = make_image((37, 45, 3), dtype, seed=3)
    before = image.copy()
    for border in ("reflect", "constant"):
        out = clconv.convolve(image, spec, border=border, device=runtime, border_value=2)
        assert_matches(out, reference(image, spec, border, border_value=2), f"{zero_copy} {border}")
    assert paths == ["_execute_in_place"] * 2
    np.testing.assert_array_equal(image, before)


def test_read_only_and_strided_inputs_and_a_given_output(runtime, zero_copy, paths):
    base = make_image((40, 60, 3), "float32", seed=4)
    strided = base[::2, ::3]  # not C-contiguous
    frozen = base.copy()
    frozen.flags.writeable = False
    for image in (strided, frozen):
        out = np.full(image.shape, np.nan, np.float32)  # every value must be written
        assert clconv.convolve(image, "emboss", device=runtime, out=out) is out
        assert_matches(out, reference(image, "emboss"), f"{zero_copy} {image.shape}")
    np.testing.assert_array_equal(frozen, base)
    assert paths == ["_execute_in_place"] * 2


def test_the_fused_bank_matches_the_oracle(runtime, zero_copy, paths):
    image = make_image((41, 39, 2), "float32", seed=5)
    before = image.copy()
    specs = ["sobel-x", "sobel-y", "laplacian"]
    outs = clconv.convolve_bank(image, specs, border="wrap", device=runtime, algorithm="direct")
    assert paths == ["_execute_bank_fused"]
    for spec, out in zip(specs, outs):
        assert_matches(out, reference(image, spec, "wrap"), f"{zero_copy} {spec}")
    np.testing.assert_array_equal(image, before)


def test_matmul_under_both_strategies(runtime, zero_copy):
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((37, 29)), rng.standard_normal((29, 53))
    np.testing.assert_allclose(matmul(a, b, device=runtime), a @ b, rtol=1e-4, atol=1e-4)


class _Device:
    def __init__(self, unified):
        self.unified = unified

    @property
    def host_unified_memory(self):
        if isinstance(self.unified, Exception):
            raise self.unified
        return self.unified


def test_the_strategy_follows_the_device_and_clconv_code_path(runtime, monkeypatch):
    cl = runtime.cl
    gpu = DeviceInfo(0, 0, "P", "G", "gpu", 8, 2**34, 2**32)
    cpu = DeviceInfo(0, 1, "P", "C", "cpu", 8, 2**34, 2**32)
    monkeypatch.delenv(CODE_PATH_VARIABLE, raising=False)
    assert _zero_copy(cl, gpu, _Device(0)) is False  # a discrete GPU
    assert _zero_copy(cl, gpu, _Device(1)) is True  # an integrated one
    refused = cl.LogicError("clGetDeviceInfo failed: INVALID_VALUE")
    assert _zero_copy(cl, gpu, _Device(refused)) is False
    assert _zero_copy(cl, cpu, _Device(refused)) is True
    assert _zero_copy(cl, cpu, object()) is True  # no such query in this pyopencl
    monkeypatch.setenv(CODE_PATH_VARIABLE, "gpu")  # the CI's GPU-path run: the copies
    assert _zero_copy(cl, cpu, _Device(1)) is False
    monkeypatch.setenv(CODE_PATH_VARIABLE, "cpu")
    assert _zero_copy(cl, gpu, _Device(0)) is True
    assert runtime.memory in ("zero-copy host memory", "copies to and from device memory")
