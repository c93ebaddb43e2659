"""The Python API: ``clconv.convolve``, numpy in and numpy out."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from clconv.constants import SAMPLE_TYPES, max_value
from clconv.errors import OptionError

SUPPORTED_DTYPES = tuple(np.dtype(name) for name in SAMPLE_TYPES)
ALPHA_MODES = (None, "keep", "filter")


@dataclass(frozen=True)
class PlanOptions:
    """The filter options ``build_plan`` validates (as given: names, aliases and numbers).
    ``convolve`` and ``convolve_bank`` take them as keyword arguments."""

    border: str = "reflect"
    border_value: float = 0.0
    flip: bool = False
    padding: int | str | None = None  # None ("same"), an int, or "valid"
    stride: int = 1
    dilation: int = 1
    alpha: str | None = None  # None, "keep" or "filter"
    abs: bool | None = None
    scale: float | None = None
    bias: float | None = None
    algorithm: str = "auto"


def parse_kernels(kernel) -> tuple:
    """One spec, array or parsed kernel, or a sequence of them (a chain)."""
    from clconv.kernels import parse_spec

    if isinstance(kernel, (list, tuple)):
        if not kernel:
            raise OptionError("--kernel", "at least one kernel is needed")
        return tuple(parse_spec(k) for k in kernel)
    return (parse_spec(kernel),)


def resolve_mapping(last_kernel, out_dtype, in_dtype=None, abs=None, scale=None, bias=None):
    """The output mapping: explicit values win; integer outputs take the last kernel's defaults.

    An integer output of another type than the input is converted between ranges
    (16-bit 65535 -> 8-bit 255, float 1.0 -> 8-bit 255) before ``scale`` applies.
    """
    from clconv.params import Mapping

    out_dtype = np.dtype(out_dtype)
    in_dtype = out_dtype if in_dtype is None else np.dtype(in_dtype)
    integer = out_dtype.kind == "u"
    if abs is None:
        abs = bool(last_kernel.abs) if integer else False
    if bias is None:
        bias = last_kernel.bias * (max_value(out_dtype) + 1) if integer else 0.0
    scale = 1.0 if scale is None else scale
    for name, value in (("--scale", scale), ("--bias", bias)):
        if not np.isfinite(value):
            raise OptionError(name, f"must be a finite number, got {value}")
    if integer and in_dtype != out_dtype:
        scale = scale * max_value(out_dtype) / max_value(in_dtype)
    return Mapping(bool(abs), float(scale), float(bias))


def build_plan(
    kernels: Sequence,
    options: PlanOptions = PlanOptions(),
    *,
    in_dtype,
    out_dtype=None,
    channels: int = 1,
    device_kind="cpu",
    **overrides,
):
    """Validate every option and return the Plan (what to compute); nothing is allocated.
    ``overrides``: PlanOptions fields by name, replacing those of ``options``."""
    from clconv import algorithms
    from clconv.engine import Plan
    from clconv.params import Geometry, checked_border_value, normalize_border

    chosen = replace(options, **overrides)
    parsed = parse_kernels(list(kernels))
    if chosen.flip:
        parsed = tuple(k.flipped() for k in parsed)
    if chosen.alpha not in ALPHA_MODES:
        raise OptionError("--alpha", f"unknown alpha mode {chosen.alpha!r} (choose keep or filter)")
    keep_alpha = chosen.alpha == "keep"
    if keep_alpha and channels < 2:
        raise OptionError("--alpha", "keeping alpha needs at least two channels (colour and alpha)")
    cval = checked_border_value(chosen.border_value, chosen.border)
    out_dtype = np.dtype(in_dtype if out_dtype is None else out_dtype)
    if out_dtype not in SUPPORTED_DTYPES:
        raise OptionError("--dtype", f"unsupported output dtype {out_dtype} (use uint8, uint16 or float32)")
    name = algorithms.check_name(chosen.algorithm)
    if name != "auto":  # an explicit algorithm must be able to run every kernel: say so before any work
        for kernel in parsed:
            for part in kernel.parts:
                algorithms.resolve(name, part, image_pixels=0, device_kind=device_kind)
    return Plan(
        kernels=parsed,
        algorithm=name,
        border=normalize_border(chosen.border),
        cval=cval,
        flip=bool(chosen.flip),
        geometry=Geometry.parse(chosen.padding, chosen.stride, chosen.dilation),
        keep_alpha=keep_alpha,
        mapping=resolve_mapping(parsed[-1], out_dtype, in_dtype, chosen.abs, chosen.scale, chosen.bias),
        out_dtype=out_dtype,
        alpha_max=max_value(in_dtype),
    )


def as_pixels(image) -> tuple[np.ndarray, bool]:
    """An HxWxC array of a supported dtype, and whether the input was 2D."""
    pixels = np.asarray(image)
    if pixels.dtype.kind == "f" and pixels.dtype != np.float32:
        pixels = pixels.astype(np.float32)  # the device computes in float32 anyway
    if pixels.dtype not in SUPPORTED_DTYPES:
        raise OptionError("image", f"unsupported dtype {pixels.dtype} (use uint8, uint16 or float32)")
    if pixels.ndim not in (2, 3) or 0 in pixels.shape:
        raise OptionError("image", f"expected a non-empty HxW or HxWxC array, got shape {pixels.shape}")
    flat = pixels.ndim == 2
    return (pixels[:, :, None] if flat else pixels), flat


def positional_options_deprecated(fn):
    """Options after the image and kernel are keyword-only; 0.1.0 took ``border``, ``device`` and
    ``algorithm`` by position too: still accepted, with a DeprecationWarning (removed in 0.3)."""
    names = ("border", "device", "algorithm")

    @functools.wraps(fn)
    def wrapper(image, kernel, *args, **kwargs):
        if args:
            if len(args) > len(names):
                raise TypeError(f"{fn.__name__}() takes 2 positional arguments and at most 3 deprecated ones")
            warnings.warn(f"{fn.__name__}(): pass {', '.join(names[: len(args)])} by keyword "
                          f"({names[0]}=...); by position is deprecated", DeprecationWarning, stacklevel=2)  # fmt: skip
            for name, value in zip(names, args):
                if name in kwargs:
                    raise TypeError(f"{fn.__name__}() got multiple values for argument {name!r}")
                kwargs[name] = value
        return fn(image, kernel, **kwargs)

    return wrapper


@positional_options_deprecated
def convolve(
    image, kernel, *, border="reflect", device=None, algorithm="auto", dtype=None, out=None, **options
) -> np.ndarray:
    """Filter ``image`` with ``kernel`` on an OpenCL device.

    Parameters
    ----------
    image : numpy array, HxW or HxWxC, uint8, uint16 or float32 (other floats are computed as float32).
    kernel : a kernel spec ("sobel-x", "gaussian:sigma=2", "1 0 -1; 2 0 -2; 1 0 -1"), a 2D array of
        correlation weights, or a list of those, run in sequence (intermediates stay float32).
    border : {'reflect', 'mirror', 'nearest', 'wrap', 'constant'} or an alias; ``border_value`` is the
        constant, in pixel units.
    device : 'cpu', 'gpu', 'P:D', a device-name substring, or None (CLCONV_DEVICE, PYOPENCL_CTX, else a
        GPU if present, else the PoCL CPU device).
    algorithm : 'auto' or a name of ``clconv.algorithms.REGISTRY``.
    dtype : output dtype (default: the input's). An integer dtype other than the input's converts
        between ranges (uint16 65535 -> uint8 255; float 1.0 -> uint8 255); float32 output keeps
        the input's units.
    out : optional preallocated output array of the right shape and dtype, reused.

    Keyword options (the fields of ``PlanOptions``, also ``border_value``):

    flip : apply the mathematical convolution (scipy.ndimage.convolve) instead of correlation.
    padding, stride, dilation : geometry; padding None keeps the input size, an int (or 'valid' = 0)
        gives PyTorch's conv2d geometry.
    alpha : None or 'filter' (every channel filtered alike), or 'keep' (the last channel is alpha:
        kept unchanged, and the colour weighted by it for every kernel: README "Transparency").
    abs, scale, bias : output mapping ``scale * (|v| if abs else v) + bias``. Integer outputs are then
        rounded half to even and clipped, and take the last kernel's defaults (abs for edge detectors,
        bias for emboss) where these are None; float outputs are raw unless these are given.

    Returns
    -------
    numpy array of the output shape, 2D if the input was 2D.
    """
    from clconv.engine import execute
    from clconv.runtime import get_runtime

    pixels, flat = as_pixels(image)
    kernels = kernel if isinstance(kernel, (list, tuple)) else [kernel]
    settings = PlanOptions(border=border, algorithm=algorithm, **options)
    rt = get_runtime(device)
    plan = build_plan(
        kernels, settings, in_dtype=pixels.dtype, out_dtype=dtype, channels=pixels.shape[2], device_kind=rt.info.kind
    )
    target = None
    if out is not None:
        out_h, out_w = plan.output_shape(pixels.shape[:2])
        expected = (out_h, out_w) if flat else (out_h, out_w, pixels.shape[2])
        if out.shape != expected or out.dtype != plan.out_dtype or not out.flags.c_contiguous:
            raise OptionError("out", f"expected a C-contiguous {plan.out_dtype} array of shape {expected}")
        target = out.reshape(out_h, out_w, pixels.shape[2])
    result = execute(rt, pixels, plan, target)
    if out is not None:
        return out
    return result[:, :, 0] if flat else result


@positional_options_deprecated
def convolve_bank(image, kernels, *, border="reflect", device=None, algorithm="auto", dtype=None, **options) -> list:
    """Filter ``image`` with each kernel of ``kernels`` separately (a filter bank, not a chain).

    Returns one array per kernel, in order, each as ``convolve(image, kernel, ...)`` would return
    it, with that kernel's own default output mapping. The image is uploaded once; with
    ``algorithm="gemm"`` same-shaped kernels come from a single unfold and a single GEMM.
    Options as for :func:`convolve`.
    """
    from clconv.engine import execute_bank
    from clconv.runtime import get_runtime

    pixels, flat = as_pixels(image)
    if isinstance(kernels, (str, np.ndarray)) or not kernels:
        raise OptionError("kernels", "expected a non-empty list of kernels")
    settings = PlanOptions(border=border, algorithm=algorithm, **options)
    rt = get_runtime(device)
    plan = build_plan(
        list(kernels),
        settings,
        in_dtype=pixels.dtype,
        out_dtype=dtype,
        channels=pixels.shape[2],
        device_kind=rt.info.kind,
    )
    mappings = [
        resolve_mapping(k, plan.out_dtype, pixels.dtype, settings.abs, settings.scale, settings.bias)
        for k in plan.kernels
    ]
    results = execute_bank(rt, pixels, plan, mappings)
    return [r[:, :, 0] if flat else r for r in results]
