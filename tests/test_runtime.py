"""Device choice (a pure function over device lists) and program caching on the real device."""
from __future__ import annotations

import numpy as np
import pytest

import clconv
from clconv.errors import DeviceError
from clconv.runtime import DeviceInfo, candidates, requested_spec, select_device


def dev(p, d, name, kind, platform="Portable Computing Language OpenCL 3.0 PoCL 3.1"):
    return DeviceInfo(p, d, platform, name, kind, 2, 2**32, 2**30)


CPU_OLD = dev(0, 0, "pthread-AMD EPYC", "cpu", "Portable Computing Language OpenCL 3.0 PoCL 3.0-rc2 LLVM 14")
CPU_NEW = dev(1, 0, "pthread-skylake-avx512-AMD EPYC", "cpu", "Portable Computing Language OpenCL 3.0 PoCL 3.1+debian")
GPU = dev(2, 0, "NVIDIA H100 80GB HBM3", "gpu", "NVIDIA CUDA OpenCL 3.0 CUDA 13.0")
GPU2 = dev(2, 1, "NVIDIA A100", "gpu", "NVIDIA CUDA OpenCL 3.0 CUDA 13.0")


@pytest.mark.parametrize(
    "spec, devices, expected",
    [
        (None, [CPU_OLD, GPU], GPU),  # default: a GPU when there is one
        (None, [CPU_OLD, CPU_NEW], CPU_NEW),  # newer PoCL first
        ("cpu", [GPU, CPU_NEW], CPU_NEW),
        ("gpu", [CPU_NEW, GPU, GPU2], GPU),
        ("2:1", [CPU_NEW, GPU, GPU2], GPU2),
        ("1", [CPU_OLD, CPU_NEW], CPU_NEW),  # PYOPENCL_CTX-style platform index
        ("a100", [CPU_NEW, GPU, GPU2], GPU2),  # name substring, any case
        ("nvidia", [CPU_NEW, GPU2, GPU], GPU2),
        ("debian", [CPU_OLD, CPU_NEW], CPU_NEW),  # platform substring
    ],
)
def test_select_device(spec, devices, expected):
    assert select_device(spec, devices) == expected


@pytest.mark.parametrize("spec", ["gpu", "3:0", "0:7", "quantum"])
def test_unknown_device_names_the_spec_and_lists_devices(spec):
    with pytest.raises(DeviceError) as err:
        select_device(spec, [CPU_OLD, CPU_NEW])
    assert err.value.subject == f"--device {spec}"
    assert "pthread-AMD EPYC" in err.value.cause


def test_candidates_prefer_gpu_then_newer_pocl():
    assert candidates(None, [CPU_OLD, CPU_NEW, GPU]) == [GPU, CPU_NEW, CPU_OLD]
    assert candidates("cpu", [CPU_OLD, GPU, CPU_NEW]) == [CPU_NEW, CPU_OLD]
    assert candidates("0:0", [CPU_OLD, CPU_NEW]) == [CPU_OLD]


OCLGRIND = dev(3, 0, "Oclgrind Simulator", "gpu", "Oclgrind")
LLVMPIPE = dev(4, 0, "llvmpipe (LLVM 15.0.6, 256 bits)", "cpu", "rusticl")
IGPU = DeviceInfo(5, 0, "Intel(R) OpenCL Graphics", "Intel(R) UHD Graphics 770", "gpu", 32, 2**33, 2**32)
DGPU = DeviceInfo(6, 0, "NVIDIA CUDA", "NVIDIA H100 80GB HBM3", "gpu", 132, 80 * 2**30, 20 * 2**30)


def test_default_rules_simulators_never_gpus_by_memory_pocl_before_other_cpus():
    assert candidates(None, [OCLGRIND, LLVMPIPE, CPU_NEW]) == [CPU_NEW, LLVMPIPE]
    assert select_device(None, [OCLGRIND, LLVMPIPE, CPU_NEW]) == CPU_NEW
    assert candidates("gpu", [OCLGRIND, IGPU, DGPU]) == [DGPU, IGPU]
    assert candidates(None, [CPU_NEW, IGPU, OCLGRIND, DGPU]) == [DGPU, IGPU, CPU_NEW]
    assert candidates("oclgrind", [CPU_NEW, OCLGRIND]) == [OCLGRIND]  # named: used
    assert select_device("3:0", [CPU_NEW, OCLGRIND]) == OCLGRIND
    with pytest.raises(DeviceError, match="only simulators"):
        select_device(None, [OCLGRIND])
    with pytest.raises(DeviceError, match="no GPU device"):
        select_device("gpu", [OCLGRIND, CPU_NEW])


def test_requested_spec_order(monkeypatch):
    monkeypatch.setenv("PYOPENCL_CTX", "0:1")
    assert requested_spec(None) == "0:1"
    monkeypatch.setenv("CLCONV_DEVICE", "cpu")
    assert requested_spec(None) == "cpu"
    assert requested_spec("gpu") == "gpu"
    monkeypatch.delenv("CLCONV_DEVICE")
    monkeypatch.delenv("PYOPENCL_CTX")
    assert requested_spec(None) is None


def test_unknown_device_through_the_api():
    with pytest.raises(DeviceError):
        clconv.convolve(np.zeros((4, 4), np.float32), "box", device="no-such-device-xyz")


def test_repeated_calls_reuse_context_and_programs(runtime):
    image = np.random.default_rng(1).random((33, 47), dtype=np.float32)
    specs = ("sobel-x", "gaussian:sigma=3", "1 2; 3 4", "box:size=9")
    for spec in specs:  # each program this needs, built once (whatever ran before this test)
        clconv.convolve(image, spec, device=runtime)
    builds, kernels = runtime.builds, len(runtime._kernels)
    for spec in (*specs, "gaussian:sigma=2", "7x1: 1,2,3,4,3,2,1"):
        clconv.convolve(image, spec, device=runtime, border="wrap")
    assert runtime.builds == builds  # kernel sizes and borders are arguments: no rebuild
    assert len(runtime._kernels) == kernels
    from clconv.runtime import get_runtime

    assert get_runtime(runtime.info.index) is runtime


def test_only_the_runtime_touches_opencl():
    """Contexts, queues, programs and buffers are made in the clconv/runtime/ package only: no
    module outside it imports pyopencl or reaches for a Runtime's pyopencl module (``rt.cl``)."""
    import ast
    from pathlib import Path

    package = Path(clconv.__file__).parent
    the_runtime = package / "runtime"
    assert (the_runtime / "__init__.py").is_file()  # the exemption below names a real package
    for path in sorted(package.rglob("*.py")):
        if the_runtime in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            imported = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(name.split(".")[0] == "pyopencl" for name in imported), f"{path} imports pyopencl"
            assert not (isinstance(node, ast.Attribute) and node.attr == "cl"), f"{path}:{node.lineno} uses rt.cl"


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, clconv; print(sorted(m for m in ('pyopencl', 'numpy', 'PIL', 'click', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_unnamed_device_that_fails_is_skipped_with_one_warning(monkeypatch, capsys):
    """A listed GPU that cannot be opened (here: one the OpenCL platforms do not have) is passed
    over with one warning line for the default choice; named, it is the error."""
    from clconv import runtime as rt_module

    real = [d for d in rt_module.list_devices() if not rt_module.is_simulator(d)]
    ghost = DeviceInfo(99, 0, "Ghost OpenCL", "Ghost GPU", "gpu", 8, 2**34, 2**32)
    monkeypatch.setattr(rt_module, "list_devices", lambda: [ghost, *real])
    rt_module._usable_runtime.cache_clear()
    try:
        chosen = rt_module._usable_runtime(None)
        assert chosen.info.kind in ("cpu", "gpu") and chosen.info.name != "Ghost GPU"
        err = capsys.readouterr().err.splitlines()
        assert err == ["clconv: warning: 99:0 Ghost GPU (gpu, Ghost OpenCL): skipped: device disappeared"]
        with pytest.raises(DeviceError, match="disappeared"):
            rt_module._usable_runtime("Ghost")
    finally:
        rt_module._usable_runtime.cache_clear()


@pytest.mark.parametrize("fault, cause", [
    ("refused", "first launch failed: clEnqueueNDRangeKernel failed: OUT_OF_RESOURCES"),
    ("ignored", "first launch gave wrong results (a 3x3 correlation, checked against numpy)"),
])
def test_a_device_whose_first_launch_fails_is_skipped_with_one_warning(runtime, monkeypatch, capsys, fault, cause):
    """A device that opens and builds but whose first kernel launch raises an OpenCL error, or
    computes nothing, is passed over for the default choice with one warning line; named, it is
    the error. The flaky device is a second context on the real one, listed as a GPU (first)."""
    from dataclasses import replace

    from clconv import runtime as rt_module

    real = next(d for d in rt_module.list_devices() if d.index == runtime.info.index)
    flaky = replace(real, platform_index=98, name="Flaky GPU", kind="gpu")
    flaky_rt = rt_module.Runtime(flaky, runtime.device)
    cl = flaky_rt.cl

    def launch(*args, **options):
        if fault == "refused":
            raise cl.RuntimeError("clEnqueueNDRangeKernel failed: OUT_OF_RESOURCES")

    monkeypatch.setattr(flaky_rt, "launch", launch)  # "ignored": the kernels never run
    runtime_for = rt_module._runtime_for
    monkeypatch.setattr(rt_module, "_runtime_for", lambda p, d: flaky_rt if p == 98 else runtime_for(p, d))
    monkeypatch.setattr(rt_module, "list_devices", lambda: [flaky, real])
    rt_module._usable_runtime.cache_clear()
    try:
        assert rt_module._usable_runtime(None) is runtime
        err = capsys.readouterr().err.splitlines()
        assert err == [f"clconv: warning: 98:0 Flaky GPU (gpu, {real.platform}): skipped: {cause}"]
        with pytest.raises(DeviceError) as named:
            rt_module._usable_runtime("Flaky")
        assert named.value.cause == cause and named.value.subject == flaky_rt.info.describe()
    finally:
        rt_module._usable_runtime.cache_clear()


def test_the_first_launch_passes_on_this_device(runtime):
    from clconv.runtime import _first_launch

    _first_launch(runtime)  # raises a DeviceError if not


def test_an_opencl_error_is_one_line_naming_the_device(runtime):
    """A launch the device refuses (here: four dimensions, where OpenCL allows three) is a
    DeviceError with a one-line cause, not a raw pyopencl error."""
    buf = runtime.alloc(16)
    with pytest.raises(DeviceError) as err:
        runtime.launch("pixels.cl", "magnitude", (4, 1, 1, 1), buf, buf, buf, np.int32(0), np.int32(4),
                       local=(1, 1, 1, 1))
    assert err.value.subject == runtime.info.describe()
    assert "launching magnitude (pixels.cl)" in err.value.cause and "\n" not in err.value.cause


def test_work_groups_shrink_to_the_kernel_limit(runtime):
    kern = runtime.kernel("direct.cl", "correlate")
    limit = kern.get_work_group_info(runtime.cl.kernel_work_group_info.WORK_GROUP_SIZE, runtime.device)
    assert runtime._fitting(kern, (1, 1, 1)) == (1, 1, 1)
    fitted = runtime._fitting(kern, (4 * limit, 1, 1))  # halved until it fits
    assert fitted == (limit, 1, 1)
    assert runtime._fitting(kern, (limit, 2, 1)) == (limit // 2, 2, 1)


def test_devices_check_self_tests_every_algorithm_on_the_default_device(run_clconv):
    result = run_clconv("devices", "--check", "--timeout", "240")
    assert result.returncode == 0, result.stdout + result.stderr
    marked = [line for line in result.stdout.splitlines() if line.startswith("* ") and ": pass" in line]
    assert len(marked) == 1, result.stdout
    from clconv.algorithms import REGISTRY

    for name in REGISTRY:
        assert f" {name} ok" in marked[0]
    assert "3x3 float32 2048²:" in marked[0] and "Mpix/s" in marked[0]


def test_devices_check_describes_failures_on_one_line():
    from clconv.devcheck import describe

    assert describe({"index": "3:0", "ok": False, "error": "no answer within 9 s"}) == "3:0: FAIL: no answer within 9 s"
    line = describe({"index": "0:0", "device": "0:0 Sim (gpu, Sim)", "ok": False, "build_s": 1.5,
                     "tests": {"direct": "ok", "fft": "float32 differs from the oracle by nan"}})
    assert line == ("0:0 Sim (gpu, Sim): FAIL  build 1.50 s  direct ok  fft FAILED (float32 differs from the "
                    "oracle by nan)")


def test_the_pocl_version_comes_from_the_platform_version():
    info = DeviceInfo(0, 0, "Portable Computing Language", "cpu0", "cpu", 2, 2**32, 2**30,
                      "OpenCL 3.0 PoCL 3.1+debian  Linux, None+Asserts")
    assert info.pocl_version == (3, 1)
    assert dev(0, 0, "x", "cpu", "rusticl").pocl_version == ()


def test_extra_build_options_reach_every_build(runtime, monkeypatch):
    """CLCONV_BUILD_OPTIONS (e.g. -cl-opt-disable around a driver's optimiser bug) is added to
    every program build; the programs still build and filter correctly with it."""
    from clconv.runtime import BUILD_OPTIONS_VARIABLE, Runtime

    monkeypatch.setenv(BUILD_OPTIONS_VARIABLE, "-cl-opt-disable -DCLCONV_UNUSED=1")
    rt = Runtime(runtime.info, runtime.device)
    assert rt.build_options[-2:] == ["-cl-opt-disable", "-DCLCONV_UNUSED=1"]
    image = np.arange(90, dtype=np.float32).reshape(9, 10)
    out = clconv.convolve(image, "box:size=3", device=rt, algorithm="direct", border="nearest")
    from scipy.ndimage import correlate

    np.testing.assert_allclose(out, correlate(image.astype(np.float64), np.full((3, 3), 1 / 9), mode="nearest"),
                               rtol=1e-6)


class _Device:
    def __init__(self, unified):
        self.host_unified_memory = unified


@pytest.mark.parametrize("info, unified, forced, expected", [
    (GPU, False, "", False),        # a discrete GPU: copies, once each way
    (IGPU, True, "", True),         # an integrated GPU shares host memory: zero-copy
    (CPU_NEW, True, "", True),
    (CPU_NEW, True, "gpu", False),  # the CI's GPU-path run takes the copies on PoCL
    (GPU, False, "cpu", True),
    (dev(3, 0, "Oclgrind Simulator", "gpu", "Oclgrind"), True, "", False),  # a simulator: copies
])
def test_memory_strategy_per_device(monkeypatch, info, unified, forced, expected):
    from clconv.runtime import CODE_PATH_VARIABLE, _cl, _zero_copy

    monkeypatch.setenv(CODE_PATH_VARIABLE, forced)
    assert _zero_copy(_cl(), info, _Device(unified)) is expected
