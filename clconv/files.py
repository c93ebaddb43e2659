"""One image file through the filter: overwrite rules, load, convolve, atomic save.

Used by ``clconv apply`` (and by ``batch``). Every problem is a ClconvError
naming the file at fault; the input is never written.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, replace

import numpy as np

from clconv import imageio
from clconv.api import PlanOptions
from clconv.errors import OptionError, OutputError, warn
from clconv.params import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class FilterOptions(PlanOptions):
    """Everything the filter options of ``apply``/``batch`` say: the plan's options (with alpha
    kept by default: the CLI's rule for images with alpha) and what only files need. Validated by
    :meth:`validate`."""

    kernels: tuple = ()
    alpha: str | None = "keep"
    gray: bool = False
    dtype: str | None = None
    device: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS

    def plan_for(self, in_dtype, channels: int, has_alpha: bool, out_dtype=None, device_kind="cpu"):
        """The validated Plan of these options for an input of ``in_dtype`` and ``channels``."""
        from clconv.api import build_plan

        return build_plan(
            list(self.kernels),
            self,
            in_dtype=in_dtype,
            out_dtype=out_dtype,
            channels=channels,
            device_kind=device_kind,
            alpha=self.alpha if has_alpha else None,
        )

    def describe(self) -> str:
        """The options that decide the pixels, as ``clconv apply`` takes them, in a fixed order and
        without defaults (``-k sharpen --border constant --border-value 5``): what outputs record
        of how they were made. The algorithm, device and --max-pixels are not in it: they do not
        change the result (beyond rounding ties)."""
        parts = [f"-k {shlex.quote(str(getattr(k, 'spec', k)))}" for k in self.kernels]
        default = FilterOptions()
        for name, flag in (
            ("border", "--border"),
            ("border_value", "--border-value"),
            ("alpha", "--alpha"),
            ("scale", "--scale"),
            ("bias", "--bias"),
            ("padding", "--padding"),
            ("stride", "--stride"),
            ("dilation", "--dilation"),
            ("dtype", "--dtype"),
        ):
            value = getattr(self, name)
            if value != getattr(default, name):
                parts.append(f"{flag} {shlex.quote(str(value))}")
        parts += [flag for name, flag in (("flip", "--flip"), ("gray", "--gray")) if getattr(self, name)]
        if self.abs is not None:
            parts.append("--abs" if self.abs else "--no-abs")
        return " ".join(parts)

    def validate(self) -> FilterOptions:
        """Check kernels and options before any file is touched (bad usage is exit 2 up front).
        Returns these options with the kernels parsed, so specs and kernel files are read once."""
        from clconv.api import parse_kernels

        if not self.kernels:
            raise OptionError("--kernel", "at least one -k/--kernel is needed (see clconv kernels)")
        if self.max_pixels < 0:
            raise OptionError("--max-pixels", f"must be >= 0, got {self.max_pixels}")
        parsed = replace(self, kernels=parse_kernels(list(self.kernels)))
        parsed.plan_for(np.uint8, 2, True)
        from clconv.params import normalize_border

        border = normalize_border(self.border)
        if self.border_value != 0 and border != "constant":  # it would be ignored: say so, as for zero
            raise OptionError("--border-value", f"applies to --border constant only (the border is {border})")
        return parsed


PROVENANCE_PREFIX = imageio.PROVENANCE_PREFIX


def provenance(options: FilterOptions) -> str:
    """The record an output carries of how it was made: ``clconv 0.1.0: -k sharpen ...``."""
    from clconv.imageio.meta import provenance_record

    return provenance_record(options.describe())


def settings_in(record: str | None) -> str | None:
    """The filter options of a :func:`provenance` record (None for another program's text)."""
    if not record or not record.startswith(PROVENANCE_PREFIX) or ": " not in record:
        return None
    return record.split(": ", 1)[1]


def with_provenance(save_options: imageio.SaveOptions | None, options: FilterOptions) -> imageio.SaveOptions:
    """``save_options`` with the record of ``options`` added (``--strip`` leaves it out when writing)."""
    return replace(save_options or imageio.SaveOptions(), provenance=provenance(options))


def output_dtype(options: FilterOptions, output: str, in_dtype) -> np.dtype:
    """The output's sample type: --dtype, float32 for .npy, else the input's."""
    if options.dtype:
        return np.dtype(options.dtype)
    if output.lower().endswith(".npy"):
        return np.dtype(np.float32)  # .npy holds the raw signed values
    return np.dtype(in_dtype)


def check_paths(input: str, output: str, force: bool, need_folder: bool = True) -> None:
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
    if need_folder and not os.path.isdir(folder):
        raise OutputError(output, f"folder {folder} does not exist")


def each_outputs(output: str, kernel_specs) -> list[str]:
    """OUTPUT with ``{kernel}`` replaced by each kernel's file-safe spec (for ``--each``)."""
    from clconv.kernels import file_safe

    if "{kernel}" not in output:
        raise OptionError("--each", f"OUTPUT {output!r} needs {{kernel}}, e.g. out-{{kernel}}.png")
    outputs = [output.replace("{kernel}", file_safe(spec)) for spec in kernel_specs]
    if len(set(outputs)) != len(outputs):
        raise OptionError("--each", "two kernels give the same output name; give each kernel once")
    return outputs


def check_outputs(input: str, outputs, options: FilterOptions, force: bool) -> None:
    """Refuse, before any decoding, an input that cannot be opened (first: it is the problem to
    fix before an existing output), then outputs that would overwrite the input or exist, and
    formats that cannot be written."""
    imageio.check_input(input)
    for target in outputs:
        check_paths(input, target, force)
        float_output = np.dtype(options.dtype) == np.float32 if options.dtype else target.lower().endswith(".npy")
        imageio.check_output(target, float_output=float_output)


def filter_image(
    rt, image, options: FilterOptions, output: str, plans: dict | None = None, reuse: bool = False
) -> np.ndarray:
    """``image`` filtered for ``output`` (whose extension decides the default dtype) on ``rt``.
    ``options`` must be validated; ``plans`` caches plans across images (batch); ``reuse``: the
    result will be saved with ``reuse`` (it is made by imageio.output_array)."""
    from clconv.engine import execute

    out_dtype = output_dtype(options, output, image.pixels.dtype)
    if out_dtype == np.float32:
        imageio.check_output(output, float_output=True)
    key = (image.pixels.dtype, image.pixels.shape[2], image.has_alpha, out_dtype)
    plan = plans.get(key) if plans is not None else None
    if plan is None:
        plan = options.plan_for(*key, rt.info.kind)
        if plans is not None:
            plans[key] = plan
    out_shape = plan.output_shape(image.pixels.shape[:2])
    check_output_size(options, output, out_shape)
    out = imageio.output_array(output, (*out_shape, image.pixels.shape[2]), plan.out_dtype) if reuse else None
    return execute(rt, image.pixels, plan, out)


def check_output_size(options: FilterOptions, output: str, shape) -> None:
    """OutputError when an output of ``shape`` (h, w) would exceed --max-pixels."""
    out_h, out_w = shape
    if options.max_pixels and out_h * out_w > options.max_pixels:
        raise OutputError(output, f"output would be {out_w}x{out_h} pixels, over --max-pixels {options.max_pixels}")


def apply_file(
    input: str,
    output: str,
    options: FilterOptions,
    force: bool = False,
    each: bool = False,
    explain=None,
    save_options: imageio.SaveOptions | None = None,
) -> dict:
    """Filter ``input`` into ``output`` (or, with ``each``, into one output per kernel from one
    pass); ``explain`` receives a line per filter saying which algorithm runs it and why;
    ``save_options`` say how outputs are written (metadata, quality, compression).
    Returns facts for reports (pixels, outputs)."""
    from clconv import zarrio  # imports neither dask nor zarr until used
    from clconv.runtime import get_runtime

    input, output = os.fspath(input), os.fspath(output)
    if zarrio.is_zarr(input) or zarrio.is_zarr(output):  # chunk by chunk, never loaded whole
        if each:
            raise OptionError("--each", "does not take .zarr arrays")
        return zarrio.apply_zarr(input, output, options, force, explain=explain, save_options=save_options)
    options = options.validate()
    outputs = each_outputs(output, options.kernels) if each else [output]
    check_outputs(input, outputs, options, force)
    for target in outputs:  # a silent no-op would surprise: say it once per output
        for name in imageio.ignored_options(target, save_options):
            warn(f"{target}: {name} does not apply to {imageio.output_format(target)} outputs (ignored)")
    save_options = with_provenance(save_options, options)
    image = imageio.load(input, gray=options.gray, max_pixels=options.max_pixels)
    rt = get_runtime(options.device)
    if explain:
        _explain(rt, image, options, output, each, explain)
    results = (
        _filter_bank(rt, image, options, output, outputs)
        if each
        else [filter_image(rt, image, options, output, reuse=True)]
    )
    # memory: the input's pixels go before any encoding, and each output once written
    has_alpha, color, meta = image.has_alpha, image.color, image.meta
    del image
    count = int(results[0].shape[0] * results[0].shape[1])
    for i, target in enumerate(outputs):
        pixels, results[i] = results[i], None
        imageio.save(target, pixels, has_alpha=has_alpha, color=color, meta=meta, options=save_options, reuse=True)
        del pixels
    return {"pixels": count, "outputs": outputs}


def _explain(rt, image, options: FilterOptions, output: str, each: bool, explain) -> None:
    """``--explain``: the schedule's note, then each kernel's algorithm and why."""
    from clconv.algorithms import params_text
    from clconv.engine import schedule_for

    pixels = image.pixels
    out_dtype = output_dtype(options, output, pixels.dtype)
    plan = options.plan_for(pixels.dtype, pixels.shape[2], image.has_alpha, out_dtype, rt.info.kind)
    shape = pixels.shape[:2]
    sched = schedule_for(rt, plan, shape, bank=each)
    explain(f"schedule for {shape[1]}x{shape[0]} on {rt.info.name} ({rt.memory}), from the {sched.note}")
    for step in sched:
        shown = f" [{params_text(step.params)}]" if step.params else ""
        explain(f"{step.kernel.spec}: {step.algorithm.name}{shown} ({step.reason})")


def _filter_bank(rt, image, options: FilterOptions, output: str, outputs: list) -> list:
    """``--each``: every kernel over one upload, each with its own default output mapping
    (``output``: OUTPUT as given, with {kernel}; ``outputs``: one per kernel)."""
    from clconv.api import resolve_mapping
    from clconv.engine import execute_bank

    pixels = image.pixels
    for target in outputs:
        if output_dtype(options, target, pixels.dtype) == np.float32:
            imageio.check_output(target, float_output=True)
    out_dtype = output_dtype(options, outputs[0], pixels.dtype)
    plan = options.plan_for(pixels.dtype, pixels.shape[2], image.has_alpha, out_dtype, rt.info.kind)
    window = plan.geometry.window(pixels.shape[:2], plan.kernels[0].shape, plan.flip)
    check_output_size(options, output, window.out_shape)
    mappings = [resolve_mapping(k, out_dtype, pixels.dtype, options.abs, options.scale, options.bias)
                for k in plan.kernels]  # fmt: skip
    return execute_bank(rt, pixels, plan, mappings)
