"""One image file through the filter: overwrite rules, load, convolve, atomic save.

Used by ``clconv apply`` (and by ``batch``). Every problem is a ClconvError
naming the file at fault; the input is never written.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from clconv.errors import OptionError, OutputError

from clconv.params import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class FilterOptions:
    """Everything the filter options of ``apply``/``batch`` say, validated by ``plan_for``."""

    kernels: tuple = ()
    border: str = "reflect"
    border_value: float = 0.0
    flip: bool = False
    gray: bool = False
    alpha: str = "keep"
    abs: bool | None = None
    scale: float | None = None
    bias: float | None = None
    padding: object = None
    stride: int = 1
    dilation: int = 1
    dtype: str | None = None
    algorithm: str = "auto"
    device: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS

    def plan_for(self, in_dtype, channels: int, has_alpha: bool, out_dtype=None, device_kind="cpu"):
        from clconv.api import build_plan

        return build_plan(
            list(self.kernels), in_dtype=in_dtype, out_dtype=out_dtype, channels=channels,
            border=self.border, border_value=self.border_value, flip=self.flip,
            padding=self.padding, stride=self.stride, dilation=self.dilation,
            alpha=self.alpha if has_alpha else None, abs=self.abs, scale=self.scale,
            bias=self.bias, algorithm=self.algorithm, device_kind=device_kind,
        )

    def validate(self) -> None:
        """Check kernels and options before any file is touched (bad usage is exit 2 up front)."""
        if not self.kernels:
            raise OptionError("--kernel", "at least one -k/--kernel is needed (see clconv kernels)")
        if self.max_pixels < 0:
            raise OptionError("--max-pixels", f"must be >= 0, got {self.max_pixels}")
        self.plan_for(np.uint8, 2, True)


def output_dtype(options: FilterOptions, output: str, in_dtype) -> np.dtype:
    if options.dtype:
        return np.dtype(options.dtype)
    if output.lower().endswith(".npy"):
        return np.dtype(np.float32)  # .npy holds the raw signed values
    return np.dtype(in_dtype)


def check_paths(input: str, output: str, force: bool) -> None:
    """The input is never overwritten, whatever path names it; an existing output needs --force."""
    if os.path.lexists(output):
        try:
            same = os.path.exists(input) and os.path.samefile(input, output)
        except OSError:
            same = False
        if same or os.path.realpath(input) == os.path.realpath(output):
            raise OutputError(output, "is the input file; refusing to overwrite it")
        if not force:
            raise OutputError(output, "exists (use --force to overwrite)")
        if os.path.isdir(output):
            raise OutputError(output, "is a directory")
    elif os.path.realpath(input) == os.path.realpath(output):
        raise OutputError(output, "is the input file; refusing to overwrite it")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise OutputError(output, f"folder {folder} does not exist")


def apply_file(input: str, output: str, options: FilterOptions, force: bool = False) -> dict:
    """Filter ``input`` into ``output``; returns facts for reports (pixels, shapes)."""
    from clconv import imageio
    from clconv.engine import execute
    from clconv.runtime import get_runtime

    input, output = os.fspath(input), os.fspath(output)
    options.validate()
    check_paths(input, output, force)
    if options.dtype:
        imageio.check_output(output, float_output=np.dtype(options.dtype) == np.float32)
    else:
        imageio.check_output(output, float_output=output.lower().endswith(".npy"))
    image = imageio.load(input, gray=options.gray, max_pixels=options.max_pixels)
    out_dtype = output_dtype(options, output, image.pixels.dtype)
    if out_dtype == np.float32:
        imageio.check_output(output, float_output=True)
    rt = get_runtime(options.device)
    plan = options.plan_for(image.pixels.dtype, image.pixels.shape[2], image.has_alpha, out_dtype, rt.info.kind)
    out_h, out_w = plan.output_shape(image.pixels.shape[:2])
    if options.max_pixels and out_h * out_w > options.max_pixels:
        raise OutputError(output, f"output would be {out_w}x{out_h} pixels, over --max-pixels {options.max_pixels}")
    pixels = execute(rt, image.pixels, plan)
    imageio.save(output, pixels, has_alpha=image.has_alpha, color=image.color, meta=image.meta)
    return {"pixels": int(out_h * out_w), "shape": pixels.shape, "dtype": str(pixels.dtype)}
