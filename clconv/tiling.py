"""Images larger than the device's single allocation, filtered in bands of output rows.

Each kernel of a chain runs over the whole image before the next (intermediates
stay float32 on the host). For a band of output rows, the host gathers every
input row the band's windows read, each mapped by the border rule as the
device would map it (wrap and far reflections included), so the band is
filtered with a window that never leaves its tile along y: results equal the
untiled ones exactly, whatever the border, stride, dilation or padding.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from clconv.params import Window, map_index

FLOAT = 4
HEADROOM = 4  # a band's input uses at most max_alloc / HEADROOM: alpha weighting holds several planes


def _largest_buffer(pixels: np.ndarray, plan) -> int:
    h, w, channels = pixels.shape
    shape, largest = (h, w), pixels.nbytes
    for kernel in plan.kernels:
        largest = max(largest, channels * shape[0] * shape[1] * FLOAT)
        shape = plan.geometry.window(shape, kernel.shape, plan.flip).out_shape
    return max(largest, channels * shape[0] * shape[1] * FLOAT)


def needs_tiles(rt, pixels: np.ndarray, plan) -> bool:
    return _largest_buffer(pixels, plan) > rt.max_alloc


def execute_tiled(rt, pixels: np.ndarray, plan, out: np.ndarray) -> np.ndarray:
    from clconv.engine import Mapping

    image = pixels
    for index, kernel in enumerate(plan.kernels):
        last = index == len(plan.kernels) - 1
        stage = replace(plan, kernels=(kernel,), mapping=plan.mapping if last else Mapping(),
                        out_dtype=plan.out_dtype if last else np.dtype(np.float32))
        image = _stage(rt, image, stage, out if last else None)
    return image


def band_rows(rt, width: int, channels: int, kernel_rows: int, window: Window) -> int:
    """Output rows per band so that the band's input stays within max_alloc / HEADROOM."""
    span = (kernel_rows - 1) * window.dilation + 1
    rows_in = rt.max_alloc // (HEADROOM * width * channels * FLOAT)
    return max(1, (rows_in - span) // window.stride + 1)


def _stage(rt, image: np.ndarray, stage, out: np.ndarray | None) -> np.ndarray:
    from clconv.engine import execute_window

    h, w, channels = image.shape
    kernel = stage.kernels[0]
    window = stage.geometry.window((h, w), kernel.shape, stage.flip)
    out_h, out_w = window.out_shape
    result = out if out is not None else np.empty((out_h, out_w, channels), stage.out_dtype)
    s, d, kh = window.stride, window.dilation, kernel.shape[0]
    off, sample_off = window.off[0], window.sample_off[0]
    rows = band_rows(rt, max(w, out_w), channels, kh, window)
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
        local = Window((r1 - r0, out_w), (off + shift, window.off[1]), (sample_off + shift, window.sample_off[1]),
                       s, d)
        result[r0:r1] = execute_window(rt, np.ascontiguousarray(tile), stage, local)
    return result
