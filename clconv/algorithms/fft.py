"""FFT correlation (cl/fft.cl): for large dense kernels, a cost independent of the kernel's size.

Exact semantics by construction: the device builds the border-extended input (every
pixel a window reads, each through ``map_index``), correlates it with the dilated
kernel through a zero-padded FFT of a 2^a 3^b 5^c size (a circular correlation at
least as large as the extended input equals the linear one on the samples kept)
and gathers ``out[oy][ox] = corr[oy*stride][ox*stride]``.

How: the output of every plane is cut into tiles (overlap-save); two tiles' extended
inputs are the real and imaginary parts of one complex plane (a real kernel keeps them
apart, so a real image costs half a complex FFT). The FFT along y reads the source
planes directly (Stockham passes, a whole column in private memory per pass on a CPU),
``fft_rows`` does the FFT along x, the product with the kernel's conjugate spectrum
(float64 on the host, cached) and the second FFT along x in one trip, and the FFT along
y again (the inverse, on the conjugate) writes the output pixels. Rows longer than the
private limit (huge dilated kernels) go through a transpose and passes along x instead.

Device memory, besides the source and output planes: a work buffer of ``2 * PH * PW`` floats
per complex plane of a batch (a second one where an axis takes several passes or the
transposing path), the spectrum (one complex plane) and the twiddles. For 2048x2048 and 31x31:
8 x 8 tiles of 256 x 256 pixels in 32 complex planes of 288 x 288, one batch: 21.2 MB of work
buffer and 0.7 MB of spectrum.
"""
from __future__ import annotations

import collections
import functools
import threading
from typing import TYPE_CHECKING

import numpy as np

from clconv.constants import FLOAT_BYTES, PROGRAM_DEFINES
from clconv.resources import variant

if TYPE_CHECKING:
    from clconv.runtime.device import Buffer

SUMMARY = "FFT of the border-extended input times the kernel's spectrum (overlap-save tiles); large dense kernels"
CL_FILE = "fft.cl"
SUB_RADICES = (9, 8, 6, 5, 4, 3, 2)  # the DFTs cl/fft.cl has for sub-passes in private memory
# The two shapes of cl/fft.cl (see there): "columns" (FFT_COLUMNS: 16 columns per work-item, a whole
# column per pass in private memory: PoCL's CPU device) and "passes" (one column per work-item in
# work-groups of adjacent columns, one radix <= 9 per pass: every other device).
VW = {"columns": 16, "passes": 1}  # columns per work-item (cl/fft.cl FFT_VW; fft_rows: rows per work-item)
# values per pass in private memory: the build define FFT_RMAX, or the largest DFT of the passes shape
MAX_RADIX = {"columns": PROGRAM_DEFINES[CL_FILE]["FFT_RMAX"], "passes": max(SUB_RADICES)}
PITCH = 16  # rows are padded to a multiple of the transposes' 16x16 blocks (cl/fft.cl FFT_TILE)
MAX_TILES = 16  # tiles per axis and plane the planner tries
BATCH_BYTES = 256 << 20  # the two work buffers of one batch of complex planes
SPECTRUM_CACHE = 4  # kernel spectra kept on the host, per device (float32, 8 bytes per frequency)
DEVICE_SPECTRA = 2  # of those, kept on the device
# Fixed local sizes (PoCL compiles one work-group function per kernel and local size): one
# work-item per group for the columns shape (each already holds 16 columns), groups of adjacent
# columns for the passes shape; its transpose takes one 16x16 tile per group.
LOCAL = {"columns": (1, 1, 1), "passes": (64, 1, 1)}
TRANSPOSE_LOCAL = (16, 16, 1)
PLAIN, EXTEND, MULTIPLY, GATHER = "fft_pass", "fft_pass_extend", "fft_pass_multiply", "fft_pass_gather"


def refuses(kernel) -> str | None:
    """The FFT path runs every kernel (it is only slower than direct for small ones)."""
    return None


# ---------------------------------------------------------------- sizes and plans


@functools.cache
def smooth_size(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n."""
    best = 1 << max(0, int(n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            v = p35
            while v < n:
                v *= 2
            best = min(best, v)
            p35 *= 3
        p5 *= 5
    return best


# Relative cost per value of one sub-pass in private memory (a load, twiddle, DFT share and
# store), from the DFTs' arithmetic per value; one pass through global memory costs 2.
SUB_COST = {2: 1.35, 3: 1.9, 4: 1.65, 5: 2.15, 6: 2.55, 8: 2.1, 9: 2.5}
TRIP_COST = 2.0


@functools.cache
def sub_plan(radix: int) -> tuple[int, ...]:
    """Sub-radices (from SUB_RADICES) of a DFT in private memory, the cheapest by SUB_COST (then
    the fewest), larger first; () for 1."""
    if radix == 1:
        return ()
    options: list[tuple[int, ...]] = [(s, *sub_plan(radix // s)) for s in SUB_RADICES if radix % s == 0]
    assert options, f"{radix} is not a 2^a 3^b 5^c size"
    cheapest = min(options, key=lambda f: (sum(SUB_COST[s] for s in f), len(f)))
    return tuple(sorted(cheapest, reverse=True))


@functools.cache
def pass_plan(n: int, max_radix: int) -> tuple[int, ...]:
    """Radices of the passes through global memory for a length-``n`` FFT (2^a 3^b 5^c), each at
    most ``max_radix``: the cheapest (a trip through memory costs TRIP_COST), larger first."""
    if n == 1:
        return ()
    options = [(d, *pass_plan(n // d, max_radix)) for d in range(2, min(n, max_radix) + 1)
               if n % d == 0 and smooth_size(d) == d]
    return tuple(sorted(min(options, key=lambda f: (plan_cost(f), max(f))), reverse=True))


def plan_cost(radices) -> float:
    """Relative cost per value of the passes ``radices``."""
    return sum(TRIP_COST + sum(SUB_COST[s] for s in sub_plan(r)) for r in radices)


def _round16(n: int) -> int:
    return -(-n // PITCH) * PITCH


class Layout:
    """How one correlation is cut: ``tiles_y`` x ``tiles_x`` tiles of ``q`` x ``qw`` output pixels
    per plane, FFT size (mh, mw), padded to (ph, pw); ``rows_fused``: fft_rows does the x axis
    (the columns shape only: ``fuse_rows``)."""

    def __init__(self, count, out_shape, kernel_shape, stride, dilation, max_radix, fuse_rows=True):
        self.count, (self.out_h, self.out_w), self.stride = count, out_shape, stride
        self.span_h, self.span_w = ((k - 1) * dilation + 1 for k in kernel_shape)
        self.max_radix, self.fuse_rows = max_radix, fuse_rows
        self.tiles_y, self.tiles_x = self._choose()
        self.q, self.mh, self.ph = self._axis(self.out_h, self.tiles_y, self.span_h)
        self.qw, self.mw, self.pw = self._axis(self.out_w, self.tiles_x, self.span_w)
        self.rows_fused = fuse_rows and self.mw <= max_radix
        self.tiles = count * self.tiles_y * self.tiles_x
        self.pairs = -(-self.tiles // 2)
        self.plane = self.ph * self.pw  # floats per part of one complex plane

    def _axis(self, out: int, tiles: int, span: int) -> tuple[int, int, int]:
        q = -(-out // tiles)
        m = smooth_size(max(2, (q - 1) * self.stride + span))  # at least one pass per axis
        return q, m, _round16(m)

    def _choose(self) -> tuple[int, int]:
        """Tiles per axis: the least FFT work, rows within fft_rows' reach where possible."""
        best: tuple[float, int, int] | None = None
        for ty in range(1, min(MAX_TILES, self.out_h) + 1):
            for tx in range(1, min(MAX_TILES, self.out_w) + 1):
                _, mh, ph = self._axis(self.out_h, ty, self.span_h)
                _, mw, pw = self._axis(self.out_w, tx, self.span_w)
                pairs = -(-self.count * ty * tx // 2)
                along_y = plan_cost(pass_plan(mh, self.max_radix))
                if self.fuse_rows and mw <= self.max_radix:  # fft_rows: one trip, two FFTs
                    along_x = TRIP_COST + 2 * (plan_cost((mw,)) - TRIP_COST)
                else:  # two transposes, two FFTs
                    along_x = 2 * TRIP_COST + 2 * plan_cost(pass_plan(mw, self.max_radix))
                cost = pairs * ph * pw * (2 * along_y + along_x)
                if best is None or cost < best[0]:
                    best = (cost, ty, tx)
        assert best is not None, "there is always at least one tile per axis"
        return best[1], best[2]

    def batch(self, max_alloc: int) -> int:
        """Complex planes per batch: all of them if the two work buffers fit BATCH_BYTES."""
        per_pair = 2 * self.plane * FLOAT_BYTES  # bytes of one complex plane in each work buffer
        return max(1, min(self.pairs, min(BATCH_BYTES // 2, max_alloc) // per_pair))


@functools.lru_cache(maxsize=64)
def layout(count, out_shape, kernel_shape, stride, dilation, max_radix, fuse_rows=True) -> Layout:
    """The (memoized: planning takes about a millisecond) Layout of one correlation."""
    return Layout(count, out_shape, kernel_shape, stride, dilation, max_radix, fuse_rows)


# ---------------------------------------------------------------- host-side tables


def _twiddle_chunk(radix: int, p: int) -> np.ndarray:
    r = np.arange(1, radix)[:, None]
    k = np.arange(p)[None, :]
    angle = -2.0 * np.pi * (r * k) / (p * radix)
    return np.stack([np.cos(angle), np.sin(angle)], axis=-1).reshape(-1, 2)


def twiddles(n: int, max_radix: int) -> tuple[np.ndarray, list[tuple[int, int, int, int, int]]]:
    """Twiddle table (float32 pairs, computed in float64) and the passes of a length-``n`` FFT:
    (radix, p, offset of the pass's twiddles, offset of its sub-passes' twiddles, packed
    sub-radices). Twiddle (r, k) of a pass is exp(-2 pi i r k / (p radix)) at offset + (r-1)*p + k."""
    passes, chunks, p, offset = [], [], 1, 0
    for radix in pass_plan(n, max_radix):
        chunks.append(_twiddle_chunk(radix, p))
        sub_off = offset + (radix - 1) * p
        packed, sp, at = 0, 1, sub_off
        for shift, s in enumerate(sub_plan(radix)):
            packed |= s << (4 * shift)
            chunks.append(_twiddle_chunk(s, sp))
            at += (s - 1) * sp
            sp *= s
        passes.append((radix, p, offset, sub_off, packed))
        offset = at
        p *= radix
    table = np.concatenate(chunks) if chunks else np.zeros((1, 2))
    return np.ascontiguousarray(table, dtype=np.float32), passes


def kernel_spectrum(weights: np.ndarray, dilation: int, lay: Layout) -> np.ndarray:
    """conj(FFT2(dilated kernel at the origin)) / (mh*mw) as float32, arranged for the device:
    for fft_rows [re|im][ky/16][kx][16 lanes] (ph rows), else layout B [re|im][kx][ky] (pitch ph,
    pw rows)."""
    w = np.asarray(weights, dtype=np.float64)
    g = np.zeros((lay.mh, lay.mw))
    g[: lay.span_h : dilation, : lay.span_w : dilation] = w
    spectrum = np.conj(np.fft.fft2(g)) / (lay.mh * lay.mw)
    if lay.rows_fused:
        lanes = VW["columns"]
        out = np.zeros((2, lay.ph, lay.mw), np.float32)
        out[:, : lay.mh] = spectrum.real, spectrum.imag
        out = out.reshape(2, lay.ph // lanes, lanes, lay.mw).transpose(0, 1, 3, 2)
    else:
        out = np.zeros((2, lay.pw, lay.ph), np.float32)
        out[:, : lay.mw, : lay.mh] = spectrum.real.T, spectrum.imag.T
    return np.ascontiguousarray(out)


class Caches:
    """What the FFT keeps per device (``Runtime.cache``): twiddle tables on the device, and kernel
    spectra on the host (SPECTRUM_CACHE, by weights and layout: filters are reused) and on the
    device (DEVICE_SPECTRA of them)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.twiddles: dict = {}  # (n, max radix) -> (device table, passes)
        self.host_spectra: collections.OrderedDict = collections.OrderedDict()
        self.device_spectra: collections.OrderedDict = collections.OrderedDict()  # id(host) -> (host, buffer)

    def spectrum(self, weights, dilation: int, lay: Layout) -> np.ndarray:
        """kernel_spectrum, remembered."""
        w = np.asarray(weights, dtype=np.float64)
        key = (w.tobytes(), w.shape, dilation, lay.mh, lay.mw, lay.ph, lay.pw, lay.rows_fused)
        with self.lock:
            found = self.host_spectra.get(key)
            if found is not None:
                self.host_spectra.move_to_end(key)
                return found
        out = kernel_spectrum(w, dilation, lay)
        with self.lock:
            self.host_spectra[key] = out
            while len(self.host_spectra) > SPECTRUM_CACHE:
                self.host_spectra.popitem(last=False)
        return out


def _caches(rt) -> Caches:
    return rt.cache("fft", Caches)


def _device_twiddles(rt, n: int, max_radix: int):
    caches = _caches(rt)
    with caches.lock:
        key = (n, max_radix)
        if key not in caches.twiddles:
            table, passes = twiddles(n, max_radix)
            caches.twiddles[key] = (rt.upload(table), passes)
        return caches.twiddles[key]


def _device_spectrum(rt, weights, dilation, lay: Layout):
    caches = _caches(rt)
    host = caches.spectrum(weights, dilation, lay)
    with caches.lock:
        held = caches.device_spectra.get(id(host))
        if held is None or held[0] is not host:  # (the entry holds ``host``, so its id stays unique)
            held = (host, rt.upload(host))
            caches.device_spectra[id(host)] = held
            while len(caches.device_spectra) > DEVICE_SPECTRA:
                caches.device_spectra.popitem(last=False)
        caches.device_spectra.move_to_end(id(host))
        return held[1]


class _WorkBuffers:
    """The two ping-pong work buffers (the runtime's reused scratch), each taken only once a pass
    touches it: with one pass per axis only one is ever needed."""

    def __init__(self, rt, nbytes: int):
        self.rt, self.nbytes = rt, nbytes
        self.held: dict[int, Buffer] = {}

    def __getitem__(self, index: int):
        if index not in self.held:
            self.held[index] = self.rt.scratch(f"fft.{'ab'[index]}", self.nbytes)
        return self.held[index]


# ---------------------------------------------------------------- the algorithm


def shape(rt) -> str:
    """Which shape of cl/fft.cl runs on ``rt``'s device: "columns" on PoCL's CPU device, whose
    compiler keeps large dynamically indexed private arrays in cache; "passes" everywhere else
    (GPUs spill such arrays, Mesa's compiler never finished building them, Oclgrind simulates
    them slowly). CLCONV_CODE_PATH=gpu makes PoCL take the passes shape too (the CI's GPU run)."""
    return "columns" if rt.info.kind == "cpu" and rt.info.pocl_version else "passes"


def program(rt) -> str:
    """The name of the fft.cl build ``rt`` runs (Runtime.program)."""
    return variant(CL_FILE, FFT_COLUMNS=1) if shape(rt) == "columns" else CL_FILE


def max_radix(rt) -> int:
    """The largest radix a pass of this device's FFT shape takes (MAX_RADIX of ``shape(rt)``)."""
    return MAX_RADIX[shape(rt)]


def _passes(rt, bufs, cur: int, n: int, pitch: int, plane: int, pairs: int,
            first=(PLAIN, ()), last=(PLAIN, ())) -> int:
    """The FFT of length ``n`` along the rows of the layout in ``bufs[cur]`` (out of place,
    ping-pong); returns the index of the buffer with the result. ``first``/``last``: (kernel,
    extra arguments) of the first/last pass, a variant that fuses a neighbouring step."""
    form = shape(rt)
    tw, passes = _device_twiddles(rt, n, MAX_RADIX[form])
    i32 = np.int32
    for index, (radix, p, offset, sub_off, subs) in enumerate(passes):
        name, extra = first if index == 0 else (PLAIN, ())
        if index == len(passes) - 1 and last[0] != PLAIN:
            assert name == PLAIN, "one pass cannot fuse two steps"
            name, extra = last
        # the extending pass reads no buffer, the gathering one writes none: pass the other one
        source = bufs[1 - cur] if name == EXTEND else bufs[cur]
        target = bufs[cur] if name == GATHER else bufs[1 - cur]
        rt.launch(program(rt), name, (pitch // VW[form], n // radix, pairs),
                  source, target, tw, i32(offset), i32(sub_off), i32(subs), i32(radix),
                  i32(n), i32(p), i32(pitch), i32(plane), *extra, local=LOCAL[form])
        cur = 1 - cur
    return cur


def _transpose(rt, src, dst, src_rows: int, src_pitch: int, dst_pitch: int, plane: int, pairs: int) -> None:
    """src [rows][src_pitch] -> dst [src_pitch][dst_pitch] for every complex plane of the batch."""
    form, name, i32 = shape(rt), "fft_transpose", np.int32
    args = (src, dst, i32(src_rows), i32(src_pitch), i32(dst_pitch), i32(plane))
    blocks_x, blocks_y = src_pitch // PITCH, dst_pitch // PITCH
    if form == "columns":  # a block per work-item
        rt.launch(program(rt), name, (blocks_x, blocks_y, pairs), *args, local=LOCAL[form])
        return
    local = rt.fitted_local(program(rt), name, TRANSPOSE_LOCAL)  # one block per group, whatever its size
    rt.launch(program(rt), name, (blocks_x * local[0], blocks_y * local[1], pairs), *args, local=local)


def correlate(rt, src, dst, kernel, window, border_code: int, cval: float) -> None:
    """Correlate the float32 planes of ``src`` into ``dst`` through FFTs of overlap-save tiles:
    the kernel's spectrum (cached per device) times each tile's, transformed back."""
    assert src.interleave == 1 and getattr(src, "dtype", "float32") == "float32", "fft reads float32 planes"
    (h, w), (out_h, out_w) = src.shape, dst.shape
    form = shape(rt)
    lay = layout(src.count, (out_h, out_w), kernel.shape, window.stride, window.dilation, MAX_RADIX[form],
                 form == "columns")
    i32 = np.int32
    spectrum = _device_spectrum(rt, kernel.weights, window.dilation, lay)
    batch = lay.batch(rt.max_alloc)
    nbytes = batch * 2 * lay.plane * FLOAT_BYTES
    bufs = _WorkBuffers(rt, nbytes)
    for first_pair in range(0, lay.pairs, batch):
        pairs = min(batch, lay.pairs - first_pair)
        tiles = (i32(2 * first_pair), i32(lay.tiles), i32(lay.tiles_y), i32(lay.tiles_x), i32(lay.q),
                 i32(lay.qw), i32(out_h), i32(out_w))
        extend = (EXTEND, (src.buffer, np.int64(src.offset), i32(h), i32(w), *tiles, i32(window.stride),
                           i32(lay.span_h), i32(lay.span_w), i32(window.off[0]), i32(window.off[1]),
                           i32(border_code), np.float32(cval)))
        gather = (GATHER, (dst.buffer, np.int64(dst.offset), *tiles, i32(window.stride)))
        cur = _passes(rt, bufs, 0, lay.mh, lay.pw, lay.plane, pairs, first=extend)  # along y (layout A)
        if lay.rows_fused:  # along x, times the spectrum, along x again: in place
            tw, ((_, _, _, sub_off, subs),) = _device_twiddles(rt, lay.mw, lay.mw)
            rt.launch(program(rt), "fft_rows", (lay.ph // VW[form], 1, pairs), bufs[cur], tw, i32(sub_off),
                      i32(subs), i32(lay.mw), i32(lay.mh), i32(lay.pw), i32(lay.plane), spectrum, i32(lay.ph * lay.mw),
                      local=LOCAL[form])
        else:  # transpose (layout B), along x with the product, along x again, transpose back
            _transpose(rt, bufs[cur], bufs[1 - cur], lay.mh, lay.pw, lay.ph, lay.plane, pairs)
            cur = _passes(rt, bufs, 1 - cur, lay.mw, lay.ph, lay.plane, pairs, last=(MULTIPLY, (spectrum,)))
            cur = _passes(rt, bufs, cur, lay.mw, lay.ph, lay.plane, pairs)
            _transpose(rt, bufs[cur], bufs[1 - cur], lay.mw, lay.ph, lay.pw, lay.plane, pairs)
            cur = 1 - cur
        _passes(rt, bufs, cur, lay.mh, lay.pw, lay.plane, pairs, last=gather)  # inverse along y: output pixels
