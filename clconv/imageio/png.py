"""PNG outputs written by clconv itself, where Pillow cannot or is slow: 16-bit gray+alpha, RGB
and RGBA (Pillow writes no 16-bit colour), and 8-bit images of 64 KiB and more (Average filter,
zlib's RLE strategy, bands deflated in parallel and written as they are done); the EXIF, XMP
and text chunks of every PNG output."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

# zlib level 4: on photographs within about 4% of level 6's size, and up to 2.7x faster to write
# on smooth (filtered) images, where level 6 slows down most. OpenCV writes level 1, libvips 6.
PNG_COMPRESS_LEVEL = 4
# 8-bit PNGs: every row with PNG's "average" filter, then zlib's RLE strategy (OpenCV's choice for
# imwrite) at that level: on photographs and filtered images about the size of Pillow's adaptive
# filters at level 4 (98-106% measured) and 4-6x faster to write. Where a band of rows in the
# middle of the image compresses more than PNG_RLE_TOLERANCE better with the default strategy
# (flat graphics, text: longer matches pay), Pillow writes it as before. Same pixels either way.
PNG_RLE_TOLERANCE = 1.05
PNG_OWN_MIN_BYTES = 1 << 16  # smaller images take milliseconds either way: Pillow's filters


def _png_text_chunk(key: str, value: bytes | str) -> tuple[bytes, bytes]:
    """tEXt when the text is Latin-1 (bytes that are not UTF-8 are taken as Latin-1), else iTXt."""
    keyword = key.encode("latin-1", "replace")[:79]
    if isinstance(value, bytes):
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            text = value.decode("latin-1")
    else:
        text = value
    text = text.replace("\x00", "")
    try:
        return b"tEXt", keyword + b"\x00" + text.encode("latin-1")
    except UnicodeEncodeError:
        return b"iTXt", keyword + b"\x00\x00\x00\x00\x00" + text.encode("utf-8")


def _png_meta_chunks(exif, xmp, comment, text) -> list[tuple[bytes, bytes]]:
    chunks = []
    if exif:
        chunks.append((b"eXIf", exif))
    if xmp:
        chunks.append((b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + bytes(xmp)))
    if comment:
        chunks.append(_png_text_chunk("Comment", comment))
    for key, value in (text or {}).items():
        chunks.append(_png_text_chunk(key, value))
    return chunks


def _pillow_png_kwargs(chunks) -> dict:
    """Pillow's PNG save options that write ``chunks`` (:func:`_png_meta_chunks`)."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    kwargs: dict = {"pnginfo": info}
    for kind, data in chunks:
        if kind == b"eXIf":
            kwargs["exif"] = data  # Pillow writes no public chunk of a PngInfo but text
        else:
            info.add(kind, data)
    return kwargs


def _png_chunk(fo, kind: bytes, data: bytes) -> None:
    fo.write(struct.pack(">I", len(data)))
    fo.write(kind)
    fo.write(data)
    fo.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)) & 0xFFFFFFFF))


def _write_png(fo, w: int, h: int, depth: int, channels: int, icc, dpi, blocks, comp, chunks=()) -> None:
    """A PNG from ``blocks``, filtered scanlines (filter byte first) in order, compressed by
    ``comp``: signature, IHDR, iCCP and pHYs as Pillow writes them, IDAT chunks of about 1 MiB."""
    fo.write(b"\x89PNG\r\n\x1a\n")
    _png_chunk(fo, b"IHDR", struct.pack(">IIBBBBB", w, h, depth, {1: 0, 2: 4, 3: 2, 4: 6}[channels], 0, 0, 0))
    if icc:
        _png_chunk(fo, b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))
    if dpi:
        ppm = [int(d / 0.0254 + 0.5) for d in dpi]
        _png_chunk(fo, b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1))
    for kind, data in chunks:  # eXIf, XMP and text chunks (_png_meta_chunks)
        _png_chunk(fo, kind, data)
    pending = []
    pending_len = 0
    for block in blocks:
        out = comp.compress(block)
        if out:
            pending.append(out)
            pending_len += len(out)
        if pending_len >= (1 << 20):
            _png_chunk(fo, b"IDAT", b"".join(pending))
            pending, pending_len = [], 0
    pending.append(comp.flush())
    _png_chunk(fo, b"IDAT", b"".join(pending))
    _png_chunk(fo, b"IEND", b"")


def _write_png16(fo, a: np.ndarray, icc, dpi, chunks=()) -> None:
    """16-bit gray+alpha / RGB / RGBA PNG (Pillow cannot write these)."""
    h, w, c = a.shape
    bpp = 2 * c

    def blocks():
        rows_per_block = max(1, (1 << 20) // (w * bpp + 1))
        for y0 in range(0, h, rows_per_block):
            raw = np.ascontiguousarray(a[y0 : y0 + rows_per_block].astype(">u2")).view(np.uint8).reshape(-1, w * bpp)
            filt = raw.copy()
            filt[:, bpp:] -= raw[:, :-bpp]  # PNG filter 1 (Sub), modulo 256
            block = np.empty((filt.shape[0], w * bpp + 1), np.uint8)
            block[:, 0] = 1
            block[:, 1:] = filt
            yield block

    _write_png(fo, w, h, 16, c, icc, dpi, blocks(), zlib.compressobj(PNG_COMPRESS_LEVEL), chunks)


def _png_average(rows: np.ndarray, bpp: int, above) -> np.ndarray:
    """PNG filter 3 (Average) of ``rows`` (n x stride uint8; ``above``: the row before them, or
    None for the first), each row led by its filter byte: x - floor((left + up) / 2), mod 256."""
    n, stride = rows.shape
    up = np.empty_like(rows)
    up[1:] = rows[:-1]
    up[0] = 0 if above is None else above
    left = np.zeros_like(rows)
    left[:, bpp:] = rows[:, :-bpp]
    half = np.bitwise_xor(left, up)
    half >>= 1
    np.bitwise_and(left, up, out=left)
    left += half  # floor((left + up) / 2) without leaving 8 bits
    out = np.empty((n, stride + 1), np.uint8)
    out[:, 0] = 3
    np.subtract(rows, left, out=out[:, 1:])
    return out


def _png_rle_pays(rows: np.ndarray, bpp: int) -> bool:
    """Whether zlib's RLE strategy compresses a middle band of ``rows`` (about 128 KiB) within
    PNG_RLE_TOLERANCE of the default strategy."""
    h, stride = rows.shape
    band = max(1, min(h, (1 << 17) // (stride + 1)))
    y0 = (h - band) // 2
    sample = _png_average(rows[y0 : y0 + band], bpp, rows[y0 - 1] if y0 else None)
    sizes = []
    for strategy in (zlib.Z_RLE, zlib.Z_DEFAULT_STRATEGY):
        comp = zlib.compressobj(PNG_COMPRESS_LEVEL, zlib.DEFLATED, 15, 9, strategy)
        sizes.append(len(comp.compress(sample.data)) + len(comp.flush()))  # .data: the array's buffer, typed for zlib
    return sizes[0] <= PNG_RLE_TOLERANCE * sizes[1]


def _adler32_combine(a1: int, a2: int, len2: int) -> int:
    """Adler-32 of A + B from those of A and B and B's length (zlib's adler32_combine)."""
    base = 65521
    rem = len2 % base
    s1 = ((a1 & 0xFFFF) + (a2 & 0xFFFF) + base - 1) % base
    s2 = (rem * (a1 & 0xFFFF) + (a1 >> 16) + (a2 >> 16) + base - rem) % base
    return s1 | (s2 << 16)


def _png8_segment(rows: np.ndarray, channels: int, y0: int, y1: int, last: bool) -> tuple[list, int, int]:
    """Rows y0..y1 filtered and deflated (raw deflate, ended by a sync flush unless last): the
    pieces, the Adler-32 and the length of the filtered data."""
    stride = rows.shape[1]
    comp = zlib.compressobj(PNG_COMPRESS_LEVEL, zlib.DEFLATED, -15, 9, zlib.Z_RLE)
    pieces, adler, length = [], 1, 0
    step = max(1, (1 << 20) // (stride + 1))
    for b0 in range(y0, y1, step):
        block = _png_average(rows[b0 : min(b0 + step, y1)], channels, rows[b0 - 1] if b0 else None)
        adler = zlib.adler32(block.data, adler)  # .data: the array's buffer, typed for zlib
        length += block.nbytes
        pieces.append(comp.compress(block.data))
    pieces.append(comp.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH))
    return pieces, adler, length


def _png_workers(nbytes: int) -> int:
    if nbytes < (1 << 21):
        return 1
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4, nbytes >> 20))


# Rows deflated per band (about 4 MiB of them): bands are deflated in parallel and written in
# order, at most one more than the workers in flight, so that the compressed image is never held
# whole (an incompressible 6000x4000 RGB PNG is 71 MB).
PNG_BAND_BYTES = 4 << 20


def _write_png8(fo, rows: np.ndarray, channels: int, icc, dpi, chunks=()) -> None:
    """8-bit gray / gray+alpha / RGB / RGBA PNG from ``rows`` (h x w*channels): Average filter,
    zlib RLE strategy (see PNG_RLE_TOLERANCE). Images of 2 MiB and more are deflated in bands
    (PNG_BAND_BYTES) by one thread per CPU (up to 4; zlib and numpy let go of the GIL), the
    bands' raw deflate streams joined by sync flushes into one zlib stream: same pixels, a few
    bytes larger."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    h, stride = rows.shape
    workers = min(_png_workers(rows.nbytes), h)
    bands = 1 if workers == 1 else min(h, max(workers, -(-rows.nbytes // PNG_BAND_BYTES)))
    bounds = [h * i // bands for i in range(bands + 1)]
    adler = 1

    def pieces():
        yield b"\x78\x5e"  # zlib header: 32K window, "fast" level
        if bands == 1:  # one band: deflated here, no thread
            yield from _joined(_png8_segment(rows, channels, 0, h, True))
            return
        with ThreadPoolExecutor(workers, thread_name_prefix="clconv-png") as pool:
            in_flight: deque = deque()
            for i in range(bands):
                in_flight.append(pool.submit(_png8_segment, rows, channels, bounds[i], bounds[i + 1], i == bands - 1))
                if len(in_flight) > workers:
                    yield from _joined(in_flight.popleft().result())
            while in_flight:
                yield from _joined(in_flight.popleft().result())

    def _joined(result):
        nonlocal adler
        band_pieces, band_adler, length = result
        adler = _adler32_combine(adler, band_adler, length)  # from 1 (nothing yet): the band's own
        return band_pieces

    class Joined:  # the zlib stream: header, the bands' deflate data, Adler-32 of all
        def compress(self, piece):
            return piece

        def flush(self):
            return struct.pack(">I", adler)

    _write_png(fo, stride // channels, h, 8, channels, icc, dpi, pieces(), Joined(), chunks)


def _own_png_writer(a: np.ndarray, icc, dpi, chunks):
    """``write(fileobj)`` by clconv's own PNG writers for ``a`` (HxWxC, gray or RGB, alpha last):
    16-bit with several channels, and 8-bit images of PNG_OWN_MIN_BYTES and more where zlib's
    RLE strategy pays (:func:`_png_rle_pays`); None where Pillow writes it."""
    h, _w, c = a.shape
    if a.dtype == np.uint16 and c > 1:
        return lambda fo: _write_png16(fo, a, icc, dpi, chunks)
    if a.dtype == np.uint8 and a.nbytes >= PNG_OWN_MIN_BYTES:
        rows = np.ascontiguousarray(a).reshape(h, -1)
        if _png_rle_pays(rows, c):
            return lambda fo: _write_png8(fo, rows, c, icc, dpi, chunks)
    return None
