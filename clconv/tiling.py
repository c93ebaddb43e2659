"""Images larger than the device can hold, filtered in bands of output rows.

A run is tiled when one of its buffers exceeds the device's single allocation
(``max_alloc``) or its estimated peak exceeds a share of the device's global memory
(``global_mem``). Each kernel of a chain then runs over the whole image before the
next (intermediates stay float32 on the host). For a band of output rows, the host
gathers every input row the band's windows read, each mapped by the border rule as
the device would map it (wrap and far reflections included), so the band is
filtered with a window that never leaves its tile along y: results equal the
untiled ones exactly, whatever the border, stride, dilation or padding. The engine runs
each band (``run_window``: engine.execute_window); this module only cuts and gathers.
"""

from __future__ import annotations

import numpy as np

from clconv.algorithms import fft, im2col, separable
from clconv.constants import FLOAT_BYTES
from clconv.kernels import Magnitude
from clconv.params import Window, band_rows, chain_stages, map_index

HEADROOM = 4  # a band's input uses at most max_alloc / HEADROOM: alpha weighting holds several planes
# A run plans to hold at most this share of the device's global memory: the rest is for what the
# estimate does not see (the driver's and other processes' allocations, a display, buffers Python
# has released whose commands are still queued, fragmentation; on a CPU device global memory is
# host RAM, which also holds the caller's arrays and the host side of tiling).
GLOBAL_SHARE = 0.5
# Algorithm scratch, kept by the runtime between calls (Runtime.scratch): the FFT's work buffers,
# im2col's patch matrix and the separable row passes' band (at their tuned maximum) at once ...
SCRATCH_BYTES = fft.BATCH_BYTES + im2col.BAND_BYTES + max(separable.BAND_CHOICES)
# ... but no more than this many float32 planes of the image (the algorithms size it by the
# image: the FFT's two buffers of padded planes, up to four separable terms), so that small
# images still fit devices with little memory (Oclgrind: 128 MiB).
SCRATCH_PLANES = 4


def _shapes(shape: tuple[int, int], plan) -> list:
    """The input's shape, then each kernel's output shape."""
    shapes = [tuple(shape)]
    for kernel in plan.kernels:
        shapes.append(plan.geometry.window(shapes[-1], kernel.shape, plan.flip).out_shape)
    return shapes


def _extra_planes(plan, kernel, filtered: int, src: int, dst: int) -> int:
    """Bytes of the float32 planes a step holds besides its input and output planes (``src`` and
    ``dst``: bytes of one plane): alpha weighting's premultiplied colours, numerator, fallback and
    denominator (engine._filter_alpha_weighted, every kernel), a gradient magnitude's gx and gy."""
    if plan.keep_alpha:
        parts = 2 * filtered * dst if isinstance(kernel, Magnitude) else 0
        return filtered * src + (2 * filtered + 1) * dst + parts
    if isinstance(kernel, Magnitude):
        return 2 * filtered * dst
    return 0


def _out_bytes(plan, shapes: list, channels: int) -> int:
    return channels * shapes[-1][0] * shapes[-1][1] * np.dtype(plan.out_dtype).itemsize


def _peak(plan, shapes: list, channels: int, in_bytes: int, in_place: bool) -> int:
    """Estimated device bytes held at the peak of a run of ``plan`` over ``shapes`` (see _shapes):
    the input (uploaded or wrapped) and the output buffer for the whole run, plus the largest
    step's planes, plus algorithm scratch. From above: buffers count until the run ends.

    The general path holds float32 planes [C][H][W] of each step's input and output; the
    in-place path (engine._execute_in_place) reads the caller's input and writes the output
    buffer directly, so only a chain's intermediates (interleaved float32) are extra."""
    areas = [h * w * FLOAT_BYTES for h, w in shapes]
    out_bytes = _out_bytes(plan, shapes, channels)
    filtered = channels - 1 if plan.keep_alpha else channels
    last = len(plan.kernels) - 1
    steps = [0]
    for index, kernel in enumerate(plan.kernels):
        src, dst = channels * areas[index], channels * areas[index + 1]
        if in_place:
            src, dst = (0 if index == 0 else src), (0 if index == last else dst)
        steps.append(src + dst + _extra_planes(plan, kernel, filtered, areas[index], areas[index + 1]))
    scratch = min(SCRATCH_BYTES, SCRATCH_PLANES * channels * max(areas))
    return in_bytes + out_bytes + max(steps) + scratch


def peak_bytes(pixels: np.ndarray, plan, in_place: bool = False) -> int:
    """Estimated device bytes a run of ``plan`` over ``pixels`` holds at its peak (_peak)."""
    h, w, channels = pixels.shape
    return _peak(plan, _shapes((h, w), plan), channels, pixels.nbytes, in_place)


def _largest_buffer(pixels: np.ndarray, plan, shapes: list, in_place: bool = False) -> int:
    """The largest single buffer: the input, the output, and float32 planes (in place: only a
    chain's intermediates)."""
    channels = pixels.shape[2]
    floats = [channels * a * b * FLOAT_BYTES for a, b in (shapes[1:-1] if in_place else shapes)]
    return max([pixels.nbytes, _out_bytes(plan, shapes, channels), *floats])


def global_budget(rt) -> int:
    """The device bytes a run may plan to hold (GLOBAL_SHARE of global memory)."""
    return int(rt.global_mem * GLOBAL_SHARE)


def needs_tiles(rt, pixels: np.ndarray, plan, in_place: bool = False) -> bool:
    """Whether ``plan`` over ``pixels`` must go in bands: a buffer over the device's single
    allocation, or a peak over its share of global memory. ``in_place``: the engine's in-place
    path will run (it holds fewer buffers); False estimates the general path, which holds more."""
    h, w, channels = pixels.shape
    shapes = _shapes((h, w), plan)
    return _largest_buffer(pixels, plan, shapes, in_place) > rt.max_alloc or _peak(
        plan, shapes, channels, pixels.nbytes, in_place
    ) > global_budget(rt)


def execute_tiled(rt, pixels: np.ndarray, plan, out: np.ndarray, run_window) -> np.ndarray:
    """``plan`` over ``pixels`` in bands, one kernel at a time, into ``out``; ``run_window(rt,
    tile, stage, window)`` filters one band (engine.execute_window)."""
    image = pixels
    for last, stage in chain_stages(plan):
        image = _stage(rt, image, stage, out if last else None, run_window)
    return image


def rows_per_band(rt, stage, width: int, channels: int, window: Window) -> int:
    """Output rows per band of the one-kernel ``stage``: the band's input within
    max_alloc / HEADROOM, and the band's estimated peak (on the general path, which bands take)
    within the share of global memory. At least one row."""
    span = (stage.kernels[0].shape[0] - 1) * window.dilation + 1
    row_bytes = width * channels * FLOAT_BYTES  # a band's input row at most (float32 where the border converts)

    def rows_in(rows: int) -> int:
        return (rows - 1) * window.stride + span

    def fits_memory(rows: int) -> bool:
        shapes = [(rows_in(rows), width), (rows, width)]
        return _peak(stage, shapes, channels, rows_in(rows) * row_bytes, False) <= global_budget(rt)

    rows = band_rows(rt.max_alloc // HEADROOM, row_bytes, span=span, stride=window.stride)
    if fits_memory(rows):
        return rows
    fits, over = 0, rows  # the peak grows with the rows: the most that fit, by bisection
    while over - fits > 1:
        middle = (fits + over) // 2
        fits, over = (middle, over) if fits_memory(middle) else (fits, middle)
    return max(1, fits)


def _stage(rt, image: np.ndarray, stage, out: np.ndarray | None, run_window) -> np.ndarray:
    h, w, channels = image.shape
    kernel = stage.kernels[0]
    window = stage.geometry.window((h, w), kernel.shape, stage.flip)
    out_h, out_w = window.out_shape
    result = out if out is not None else np.empty((out_h, out_w, channels), stage.out_dtype)
    s, d, kh = window.stride, window.dilation, kernel.shape[0]
    off, sample_off = window.off[0], window.sample_off[0]
    rows = rows_per_band(rt, stage, max(w, out_w), channels, window)
    for r0 in range(0, out_h, rows):
        r1 = min(out_h, r0 + rows)
        lo = min(r0 * s - off, r0 * s - sample_off)  # first input row a tap or the anchor reads
        hi = max((r1 - 1) * s + (kh - 1) * d - off, (r1 - 1) * s - sample_off)
        mapped = map_index(np.arange(lo, hi + 1), h, stage.border)
        tile = image[np.clip(mapped, 0, h - 1)]
        if (mapped < 0).any():  # constant border: whole rows of the border value
            tile = tile.astype(np.float32)
            tile[mapped < 0] = stage.cval
        shift = lo - r0 * s  # tile row 0 is input row lo
        local = Window((r1 - r0, out_w), (off + shift, window.off[1]), (sample_off + shift, window.sample_off[1]), s, d)
        result[r0:r1] = run_window(rt, np.ascontiguousarray(tile), stage, local)
    return result
