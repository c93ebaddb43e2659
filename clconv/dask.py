"""``clconv.dask.convolve``: ``clconv.convolve`` for a dask array, lazily, block by block.

Needs the extra ``clconv[dask]``; ``import clconv`` never imports this module (or dask).

The result equals ``clconv.convolve`` on the whole array, for every border mode, geometry,
chain, dtype and chunking:

* A chain runs as clconv runs it: one lazy stage per kernel, float32 between stages, the
  output mapping and dtype at the last (clconv.tiling's stages).
* A stage's output is cut into blocks along the input's chunks. Each block is filtered from
  exactly the samples its windows read: the block's own input plus a halo, taken from the input
  extended by the border rule as far as any window reaches (``clconv.params.map_index``, the
  device's own rule: wrap and reflections beyond the array's size included; the constant as
  samples of its value). So no block meets a border of its own, and every output pixel, alpha
  sample and NaN/Inf rule included, sees what it sees in the whole image.
* Each block runs the algorithm (and parameters) that ``auto`` chooses for the whole image, not
  for the block. Direct and gemm compute every pixel alike whatever the image's size: results
  are bit-equal. Separable is not position-free (images narrower than its tiles go direct; whole
  rows of the constant border enter as one product, cval * sum(row)) and the FFT's round-off
  depends on the size it transforms: where they run, results equal the whole image's within
  float32 round-off, the oracle's tolerance (SPEC "Precision"), as the algorithms equal each
  other. So do NaN/Inf images with an output mapping: a block holding them maps on the host
  (clconv.nonfinite), one without on the device, the whole image all on the host (1 ulp).

One device per process (clconv.runtime.get_runtime). The Runtime is not thread-safe (kernel
arguments are set on shared kernel objects, scratch buffers are reused), so blocks filter one at
a time per process under ``DEVICE_LOCK``; dask's threads still read, write and compress in
parallel, and the device uses every core for each block anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import dask.array as da
import numpy as np

from clconv.api import SUPPORTED_DTYPES, PlanOptions, build_plan
from clconv.errors import OptionError
from clconv.params import Geometry, chain_stages, map_index
from clconv.runtime import DEVICE_LOCK  # one block on the device at a time in a process (see above)


def convolve(array, kernel, *, border="reflect", device=None, algorithm="auto", dtype=None, **options):
    """``clconv.convolve`` on a dask array (HxW or HxWxC), lazily: returns a dask array of the
    output, equal to ``clconv.convolve(array.compute(), kernel, ...)`` (bit-equal where direct
    or gemm runs, to float32 round-off where separable or the FFT does). Same arguments and
    options (``border_value``, ``flip``, ``padding``, ``stride``, ``dilation``, ``alpha``, ``abs``,
    ``scale``, ``bias``); ``out`` is not taken. Options are checked now, pixels filtered when the
    result is computed. ``device``: a spec (not a Runtime) where the graph runs in other processes."""
    from clconv.runtime import get_runtime

    pixels, flat = _as_pixels(array)
    kernels = list(kernel) if isinstance(kernel, (list, tuple)) else [kernel]
    settings = PlanOptions(border=border, algorithm=algorithm, **options)
    rt = get_runtime(device)
    plan = build_plan(
        kernels, settings, in_dtype=pixels.dtype, out_dtype=dtype, channels=pixels.shape[2], device_kind=rt.info.kind
    )
    plan.output_shape(pixels.shape[:2])  # an empty output is an OptionError now, not at compute time
    image = pixels
    for _, stage in chain_stages(plan):
        image = _stage(rt, image, stage, device)
    return image[:, :, 0] if flat else image


def _as_pixels(array):
    """A dask array HxWxC of a supported dtype (as clconv.api.as_pixels), and whether it was 2D."""
    pixels = array if isinstance(array, da.Array) else da.asarray(array)
    if pixels.dtype.kind == "f" and pixels.dtype != np.float32:
        pixels = pixels.astype(np.float32)  # the device computes in float32 anyway
    if pixels.dtype not in SUPPORTED_DTYPES:
        raise OptionError("image", f"unsupported dtype {pixels.dtype} (use uint8, uint16 or float32)")
    if pixels.ndim not in (2, 3) or 0 in pixels.shape or any(np.isnan(pixels.shape)):
        raise OptionError("image", f"expected a non-empty HxW or HxWxC array of known shape, got {pixels.shape}")
    flat = pixels.ndim == 2
    if flat:
        pixels = pixels[:, :, None]
    return pixels.rechunk({2: -1}), flat  # a block holds every channel (alpha weights the colours)


@dataclass(frozen=True)
class _Axis:
    """One axis of a stage, cut into blocks. Output block b holds outputs ``out_chunks[b]``; it is
    filtered from the extended input's chunk b (its "core": ``stride`` input samples per output)
    with ``before`` samples of the previous chunk and ``after`` of the next as its halo. The
    extended input starts at input position ``origin`` (<= 0: the border's samples), and its
    first and last chunks carry the halo the array's ends would lack."""

    origin: int
    chunks: tuple
    before: int
    after: int
    skip: int  # outputs a block's filtering gives before its own (the halo before, "same" geometry)
    stride: int
    out_chunks: tuple

    @property
    def end(self) -> int:
        return self.origin + sum(self.chunks)


def _axis(in_chunks: tuple, out_size: int, off: int, taps: int, geometry: Geometry) -> _Axis:
    """The blocks of one axis. Output o's window starts at input ``o*stride - off`` and spans
    ``dilation*(taps-1)+1`` samples. A block is filtered with the whole image's geometry family:
    "same" for "same" (so a kept alpha is sampled at the same tap: the anchor, which for even
    dilated kernels is not the valid geometry's centre tap), valid (padding 0) for any padding."""
    s, d = geometry.stride, geometry.dilation
    span = d * (taps - 1) + 1
    shift = 0 if geometry.padding is None else geometry.padding  # core of output o starts at o*s - shift
    lead = off - shift  # where the block's own geometry starts a window: the anchor ("same") or 0
    before = -(-lead // s) * s  # a whole number of strides, so block outputs fall on the output grid
    after = max(0, span - s - lead)
    edges = np.cumsum(in_chunks)[:-1]  # the input's chunk boundaries, moved onto the output grid
    bounds = sorted({int(min(out_size, max(0, -(-(int(x) + shift) // s)))) for x in edges} - {0, out_size})
    sizes = np.diff([0, *bounds, out_size]).tolist()
    out_chunks = _merged(sizes, -(-max(before, after, 1) // s))  # dask takes a halo from one neighbour
    cores = [count * s for count in out_chunks]
    cores[0] += before
    cores[-1] += after
    return _Axis(-shift - before, tuple(cores), before, after, before // s, s, tuple(out_chunks))


def _merged(sizes: list, least: int) -> tuple:
    """``sizes`` with neighbours merged until each is at least ``least`` (the total kept)."""
    merged: list = []
    held = 0
    for size in sizes:
        held += size
        if held >= least:
            merged.append(held)
            held = 0
    if held:
        if merged:
            merged[-1] += held
        else:
            merged.append(held)
    return tuple(merged)


def _stage(rt, image, stage, device):
    """One kernel over the dask array ``image`` (HxWxC): the lazy output of ``stage``."""
    from clconv.engine import schedule_for

    h, w, channels = image.shape
    kernel = stage.kernels[0]
    window = stage.geometry.window((h, w), kernel.shape, stage.flip)
    axes = [_axis(image.chunks[i], window.out_shape[i], window.off[i], kernel.shape[i], stage.geometry) for i in (0, 1)]
    # auto's choice for the whole image, for every block (README: how auto decides)
    choices = tuple((step.algorithm.name, dict(step.params)) for step in schedule_for(rt, stage, (h, w)))
    names = {name for name, _ in choices}
    if len(names) == 1:  # so that the NaN/Inf path (which schedules anew) runs the same algorithm
        stage = replace(stage, algorithm=names.pop())
    padding = None if stage.geometry.padding is None else 0
    block_stage = replace(stage, geometry=Geometry(padding, stage.geometry.stride, stage.geometry.dilation))
    extended = _extended(image, axes, stage)
    depth = {0: (axes[0].before, axes[0].after), 1: (axes[1].before, axes[1].after), 2: (0, 0)}
    return da.map_overlap(
        _filter_block,
        extended,
        depth=depth,
        boundary="none",
        trim=False,
        allow_rechunk=False,
        chunks=(axes[0].out_chunks, axes[1].out_chunks, (channels,)),
        dtype=stage.out_dtype,
        meta=np.empty((0, 0, 0), stage.out_dtype),
        token="clconv-convolve",
        stage=block_stage,
        choices=choices,
        device=device,
        axes=tuple(axes),
    )


def _extended(image, axes: list, stage):
    """``image`` extended along both axes to the positions the blocks read, by the border rule
    (constant: samples of the border value, as float32), cut into the axes' chunks."""
    for index, axis in enumerate(axes):
        n = image.shape[index]
        parts = []
        if axis.origin < 0:
            parts.append(_outside(image, np.arange(axis.origin, min(0, axis.end)), index, stage))
        if max(axis.origin, 0) < min(axis.end, n):
            inside = [slice(None)] * 3
            inside[index] = slice(max(axis.origin, 0), min(axis.end, n))
            parts.append(image[tuple(inside)])
        if axis.end > n:
            parts.append(_outside(image, np.arange(max(n, axis.origin), axis.end), index, stage))
        image = (parts[0] if len(parts) == 1 else da.concatenate(parts, axis=index)).rechunk({index: axis.chunks})
    return image


def _outside(image, positions: np.ndarray, axis: int, stage):
    """The samples at ``positions`` (outside the image along ``axis``) by the border rule."""
    if stage.border == "constant":
        shape = list(image.shape)
        shape[axis] = len(positions)
        chunks = list(image.chunks)
        chunks[axis] = (len(positions),)
        return da.full(tuple(shape), stage.cval, dtype=np.float32, chunks=tuple(chunks))
    return da.take(image, map_index(positions, image.shape[axis], stage.border), axis=axis)


def _filter_block(block: np.ndarray, *, stage, choices: tuple, device, axes: tuple) -> np.ndarray:
    """One output block: ``block`` is its extended input (core and halo), filtered with
    ``stage``'s block geometry by the whole image's algorithms, its own outputs cut out."""
    from clconv.engine import execute
    from clconv.runtime import get_runtime

    counts = [(block.shape[i] - axis.before - axis.after) // axis.stride for i, axis in enumerate(axes)]
    pixels = np.ascontiguousarray(block)
    with DEVICE_LOCK:
        rt = get_runtime(device)
        result = execute(rt, pixels, stage, sched=_block_schedule(stage, choices, pixels.shape[:2]))
    (y, x), (count_y, count_x) = (axis.skip for axis in axes), counts
    return result[y : y + count_y, x : x + count_x]


def _block_schedule(stage, choices: tuple, shape: tuple):
    """The whole image's schedule (algorithm and parameters per linear filter) for a block's shape."""
    from clconv.algorithms import REGISTRY, Schedule, Step

    parts = stage.kernels[0].parts
    steps = tuple(
        Step(part, REGISTRY[name], "auto's choice for the whole image", dict(params))
        for part, (name, params) in zip(parts, choices)
    )
    return Schedule(steps, tuple((id(part), tuple(shape)) for part in parts))
