"""clconv: filter images with convolution kernels on OpenCL devices.

Importing clconv is cheap: pyopencl is imported only when a device is needed.
"""
from clconv.errors import ClconvError

__version__ = "0.1.0"
__all__ = ["convolve", "ClconvError", "__version__"]


def __getattr__(name):
    # Lazy: `clconv --help` and `clconv kernels` never pay for numpy/pyopencl start-up.
    if name == "convolve":
        from clconv.api import convolve

        return convolve
    raise AttributeError(f"module 'clconv' has no attribute {name!r}")
