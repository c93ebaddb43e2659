"""``clconv apply IN.zarr OUT.zarr``: a zarr array filtered chunk by chunk, never loaded whole.

Needs the extra ``clconv[dask]`` (dask and zarr). The input is an HxW or HxWxC zarr array
(uint8, uint16 or float32; C = 2 or 4 has alpha, as for ``.npy``); it is filtered by
``clconv.dask.convolve`` (equal to filtering the whole array) and written block by block into a
new zarr array of the same format (v2 or v3) and chunk shape, with the input's attributes and a
``clconv`` attribute recording how it was made. The output is written atomically: into a
temporary folder beside it, renamed at the end; a failed or interrupted run leaves neither a
partial output nor the temporary folder (an existing output replaced with ``--force`` stays
until the new one is complete). Memory: a few blocks per dask thread, whatever the array's size.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from clconv.atomic import TEMP_PREFIX
from clconv.errors import ImageError, OptionError, OutputError, warn

EXTENSION = ".zarr"
FLOAT_BYTES = 4  # blocks are filtered in float32
BAND_BYTES = 16 << 20  # a band's chunk row, in float32 (_store_in_bands)
# dask threads: one block filters at a time (clconv.runtime.DEVICE_LOCK), the others read, decompress,
# compress and write; each holds blocks, so more would only add memory
WORKERS = 4


def is_zarr(path) -> bool:
    """Whether ``path`` names a zarr store (by its extension, as files are named by theirs)."""
    return os.fspath(path).rstrip("/\\").lower().endswith(EXTENSION)


def apply_zarr(input, output, options, force: bool = False, explain=None, save_options=None) -> dict:
    """Filter the zarr array ``input`` into the zarr array ``output`` with ``options``
    (clconv.files.FilterOptions); ``explain`` receives the schedule's lines; ``save_options``
    (imageio.SaveOptions): ``strip`` leaves out the input's attributes and the provenance record.
    Returns facts for reports (pixels, outputs), as clconv.files.apply_file."""
    input, output = os.fspath(input).rstrip("/\\"), os.fspath(output).rstrip("/\\")
    options = options.validate()
    if options.gray:
        raise OptionError("--gray", "is not supported for .zarr inputs (convert the array to gray first)")
    if not is_zarr(output):
        raise OutputError(output, f"a {EXTENSION} input needs a {EXTENSION} output")
    _require_extra(input)
    for name in ("quality", "compression"):
        if getattr(save_options, name, None) is not None:
            warn(f"{output}: --{name} does not apply to zarr outputs (ignored)")
    source = _open_input(input, options.max_pixels)
    _check_output(input, output, force)
    result = _filtered(source, input, options, explain)
    out_h, out_w = result.shape[:2]
    if options.max_pixels and out_h * out_w > options.max_pixels:
        raise OutputError(output, f"output would be {out_w}x{out_h} pixels, over --max-pixels {options.max_pixels}")
    strip = bool(getattr(save_options, "strip", False))
    _write_atomically(output, result, source, options, force, strip)
    return {"pixels": int(out_h * out_w), "outputs": [output]}


def _require_extra(path: str) -> None:
    try:
        import dask.array  # noqa: F401
        import zarr  # noqa: F401
    except ImportError as exc:
        raise ImageError(path, f"zarr arrays need the extra clconv[dask]: pip install 'clconv[dask]' ({exc})") from None


def _open_input(path: str, max_pixels: int):
    """The input zarr array, opened read-only and checked (shape, dtype, the pixel limit)."""
    import zarr

    if not os.path.exists(path):
        raise ImageError(path, "no such file or folder")
    try:
        source = zarr.open_array(path, mode="r")
    except Exception as exc:  # noqa: BLE001 - zarr raises many types for a store that is not an array
        raise ImageError(path, f"not a zarr array ({type(exc).__name__}: {exc})") from None
    shape, dtype = tuple(source.shape), np.dtype(source.dtype)
    if len(shape) not in (2, 3) or 0 in shape:
        raise ImageError(path, f"unsupported zarr shape {shape} (use HxW or HxWxC)")
    if dtype not in (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)):
        raise ImageError(path, f"unsupported zarr dtype {dtype} (use uint8, uint16 or float32)")
    if max_pixels and shape[0] * shape[1] > max_pixels:
        raise ImageError(
            path,
            f"{shape[1]}x{shape[0]} pixels is over --max-pixels {max_pixels} "
            "(--max-pixels 0 lifts the limit; a zarr array is filtered in blocks)",
        )
    return source


def _check_output(input: str, output: str, force: bool) -> None:
    """The input is never overwritten (nor anything inside it); an existing output needs --force
    and must itself be a zarr store (a folder holding .zarray or zarr.json), never another folder."""
    real_in, real_out = os.path.realpath(input), os.path.realpath(output)
    if real_out == real_in or real_out.startswith(real_in + os.sep) or real_in.startswith(real_out + os.sep):
        raise OutputError(output, "is (or holds, or lies inside) the input; refusing to overwrite it")
    if os.path.lexists(output):
        if not force:
            raise OutputError(output, "exists (use --force to overwrite)")
        marks = (".zarray", "zarr.json")
        if not (os.path.isdir(output) and any(os.path.exists(os.path.join(output, m)) for m in marks)):
            raise OutputError(output, "exists and is not a zarr array; refusing to replace it")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise OutputError(output, f"folder {folder} does not exist")


def _filtered(source, path: str, options, explain):
    """The lazy filtered array (clconv.dask.convolve) of the zarr array ``source``."""
    import secrets

    import dask.array as da

    import clconv.dask

    pixels = da.from_array(_Reader(source, path), chunks=source.chunks, name=f"zarr-{secrets.token_hex(8)}")
    channels = pixels.shape[2] if pixels.ndim == 3 else 1
    has_alpha = channels in (2, 4)  # as for .npy inputs: gray+alpha, RGBA
    kwargs = dict(
        border=options.border,
        border_value=options.border_value,
        flip=options.flip,
        padding=options.padding,
        stride=options.stride,
        dilation=options.dilation,
        alpha=options.alpha if has_alpha else None,
        abs=options.abs,
        scale=options.scale,
        bias=options.bias,
        dtype=options.dtype,
    )
    if explain:
        _explain(explain, pixels, options, kwargs)
    return clconv.dask.convolve(
        pixels, list(options.kernels), device=options.device, algorithm=options.algorithm, **kwargs
    )


class _Reader:
    """The input array as dask reads it: a chunk that cannot be read (damaged, missing data) is an
    ImageError naming the input, like any damaged image."""

    def __init__(self, source, path: str):
        self.source, self.path = source, path
        self.shape, self.dtype, self.ndim = tuple(source.shape), np.dtype(source.dtype), len(source.shape)

    def __getitem__(self, key):
        try:
            return np.asarray(self.source[key])
        except Exception as exc:  # noqa: BLE001 - codecs and stores raise many types
            raise ImageError(self.path, f"cannot read a chunk ({type(exc).__name__}: {exc})") from None


def _explain(explain, pixels, options, kwargs) -> None:
    """What --explain says for an image, for the whole array (every block runs that schedule)."""
    from clconv.api import PlanOptions, build_plan
    from clconv.engine import schedule_for
    from clconv.runtime import get_runtime

    rt = get_runtime(options.device)
    fields = {k: v for k, v in kwargs.items() if k != "dtype"}
    channels = pixels.shape[2] if pixels.ndim == 3 else 1
    plan = build_plan(
        list(options.kernels),
        PlanOptions(algorithm=options.algorithm, **fields),
        in_dtype=pixels.dtype,
        out_dtype=kwargs["dtype"],
        channels=channels,
        device_kind=rt.info.kind,
    )
    h, w = pixels.shape[:2]
    sched = schedule_for(rt, plan, (h, w))
    chunk_h, chunk_w = pixels.chunksize[:2]
    explain(
        f"schedule for {w}x{h} on {rt.info.name} ({rt.memory}), from the {sched.note}; "
        f"filtered in blocks of {chunk_w}x{chunk_h} (the zarr chunks) with their halos"
    )
    from clconv.algorithms import params_text

    for step in sched:
        shown = f" [{params_text(step.params)}]" if step.params else ""
        explain(f"{step.kernel.spec}: {step.algorithm.name}{shown} ({step.reason})")


def _write_atomically(output: str, result, source, options, force: bool, strip: bool) -> None:
    """``result`` into a new zarr array in a temporary folder beside ``output``, then renamed."""
    import secrets
    import shutil  # with bz2 and lzma: 2 ms that a plain apply does not pay

    folder = os.path.dirname(os.path.abspath(output))
    tmp = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(6)}{EXTENSION}")
    try:
        target = _create(tmp, result, source, options, strip)
        _store_in_bands(result.rechunk(target.chunks), target)
        _replace(tmp, output, force)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(output, f"cannot write: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _store_in_bands(result, target) -> None:
    """Compute ``result`` into ``target`` one band of chunk columns at a time. dask takes a
    block's halo as slices of its neighbours' chunks and goes through the blocks row by row,
    holding a few rows of chunks: memory grows with the array's width, not its height. Bands of
    BAND_BYTES per chunk row bound it whatever the size (20000x20000 float32, 1024x1024 chunks:
    1.1 GB peak in one go, 526 MiB in bands 4 chunks wide, as fast). Each band reads its
    neighbours' edge chunks again for their halo."""
    chunk_rows, chunk_cols = result.chunksize[:2]
    row_bytes = chunk_rows * chunk_cols * int(np.prod(result.shape[2:], dtype=np.int64)) * FLOAT_BYTES
    per_band = max(1, BAND_BYTES // row_bytes)  # chunk columns per band
    edges = np.cumsum((0, *result.chunks[1]))
    for first in range(0, len(edges) - 1, per_band):
        left, right = int(edges[first]), int(edges[min(first + per_band, len(edges) - 1)])
        region = (slice(None), slice(left, right)) + (slice(None),) * (result.ndim - 2)
        result[region].store(
            target, regions=region, lock=False, scheduler="threads", num_workers=min(WORKERS, os.cpu_count() or 1)
        )


def _create(path: str, result, source, options, strip: bool):
    """An empty zarr array for ``result`` at ``path``: the input's zarr format and chunk shape
    (at most the output's shape), the input's attributes and the provenance record (unless
    ``strip``)."""
    import zarr

    from clconv.imageio.meta import provenance_record  # (not clconv.files, which imports this module)

    chunks = tuple(min(c, n) for c, n in zip(source.chunks, result.shape))
    extra: dict[str, Any] = {}  # zarr_format, where zarr 3 takes it
    fmt = getattr(getattr(source, "metadata", None), "zarr_format", 2)
    if int(zarr.__version__.split(".")[0]) >= 3:
        extra["zarr_format"] = fmt
    target = zarr.open_array(path, mode="w-", shape=result.shape, chunks=chunks, dtype=result.dtype, **extra)
    if not strip:
        target.attrs.update({**dict(source.attrs), "clconv": provenance_record(options.describe())})
    return target


def _replace(tmp: str, output: str, force: bool) -> None:
    """Rename the finished ``tmp`` to ``output``; an existing output (``force``) is moved aside
    first and removed only once the new one is in place."""
    import secrets
    import shutil

    if not os.path.lexists(output):
        os.rename(tmp, output)
        return
    assert force
    aside = os.path.join(os.path.dirname(os.path.abspath(output)), f"{TEMP_PREFIX}{secrets.token_hex(6)}.old")
    os.rename(output, aside)
    try:
        os.rename(tmp, output)
    except BaseException:
        os.rename(aside, output)
        raise
    shutil.rmtree(aside, ignore_errors=True)
