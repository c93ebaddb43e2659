"""clconv: filter images with convolution kernels on OpenCL devices.

Importing clconv is cheap: pyopencl is imported only when a device is needed.
"""

from clconv.errors import ClconvError

__version__ = "0.1.0"
__all__ = ["convolve", "convolve_bank", "matmul", "convolution_matrix", "ClconvError", "__version__"]

# Lazy: `clconv --help` and `clconv kernels` never pay for numpy/pyopencl start-up.
_LAZY = {
    "convolve": "clconv.api",
    "convolve_bank": "clconv.api",
    "matmul": "clconv.gemm",
    "convolution_matrix": "clconv.matrix",
}


def __getattr__(name):
    if name == "dask":  # clconv.dask (the extra clconv[dask]) only when asked for
        import importlib

        return importlib.import_module("clconv.dask")
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'clconv' has no attribute {name!r}")
