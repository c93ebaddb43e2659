"""TIFF where Pillow falls short: a small strip reader for what Pillow cannot open (float RGB,
16-bit gray+alpha: what the own writer produces, and the like), the own writer for 16-bit and
float32 images of several channels (Pillow writes neither), and, for every TIFF output, the
tags added after the encoder (:func:`_tiff_add_tags`): the EXIF and GPS sub-IFDs, with the XMP
packet, the comment and the provenance."""
from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
from PIL import Image as PILImage

from clconv.errors import ImageError, OutputError, warn
from clconv.imageio.common import _exc_text, _too_large
from clconv.imageio.image import Image, _max_value, _orient
from clconv.imageio.meta import _EXIF_PREFIX, _TIFF_LAYOUT_TAGS

# --compression NAME -> Pillow's name (None: uncompressed)
TIFF_COMPRESSIONS = {"none": None, "lzw": "tiff_lzw", "deflate": "tiff_adobe_deflate", "packbits": "packbits"}
# what a TIFF input's compression becomes in a TIFF output: the lossless codecs are kept;
# others (JPEG, fax, WebP in TIFF) are written uncompressed, as before
_TIFF_KEPT_COMPRESSION = {"tiff_lzw": "tiff_lzw", "tiff_adobe_deflate": "tiff_adobe_deflate",
                          "tiff_deflate": "tiff_adobe_deflate", "packbits": "packbits"}


def _output_compression(meta: dict, choice: str | None) -> str | None:
    """Pillow's name of a TIFF output's compression: ``choice`` (a key of TIFF_COMPRESSIONS),
    else the input's lossless compression, else None (uncompressed)."""
    if choice is not None:
        return TIFF_COMPRESSIONS[choice]
    return _TIFF_KEPT_COMPRESSION.get(meta.get("tiff_compression") or "")


# --------------------------------------------------------------------------
# read: a small TIFF strip reader, for what Pillow cannot open

_TIFF_TYPES = {1: "B", 2: "c", 3: "H", 4: "I", 5: "II", 6: "b", 7: "B", 8: "h", 9: "i", 10: "ii", 11: "f", 12: "d", 13: "I", 16: "Q"}
_TIFF_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


class _Unsupported(Exception):
    pass


def _tiff_ifd(f, bo: str, offset: int, size: int) -> tuple[dict, int]:
    f.seek(offset)
    raw = f.read(2)
    if len(raw) < 2:
        raise EOFError("IFD beyond the end of the file")
    (n,) = struct.unpack(bo + "H", raw)
    entries = f.read(12 * n + 4)
    if len(entries) < 12 * n + 4:
        raise EOFError("truncated IFD")
    tags = {}
    for i in range(n):
        tag, typ, count, value = struct.unpack(bo + "HHI4s", entries[12 * i: 12 * i + 12])
        if typ not in _TIFF_SIZES:
            continue
        nbytes = _TIFF_SIZES[typ] * count
        if nbytes > size:
            raise ValueError(f"tag {tag} larger than the file")
        if nbytes <= 4:
            data = value[:nbytes]
        else:
            (off,) = struct.unpack(bo + "I", value)
            here = f.tell()
            f.seek(off)
            data = f.read(nbytes)
            f.seek(here)
            if len(data) < nbytes:
                raise EOFError(f"tag {tag} beyond the end of the file")
        if typ in (2, 7):
            tags[tag] = data
        else:
            tags[tag] = struct.unpack(bo + _TIFF_TYPES[typ][-1] * (count * len(_TIFF_TYPES[typ])), data)
    (next_ifd,) = struct.unpack(bo + "I", entries[12 * n:])
    return tags, next_ifd


def _load_tiff_fallback(path: str, f, max_pixels: int) -> Image:
    try:
        return _read_tiff(path, f, max_pixels)
    except ImageError:
        raise
    except _Unsupported as e:
        raise ImageError(path, f"unsupported TIFF layout ({e})") from e
    except MemoryError as e:
        raise ImageError(path, "not enough memory to decode the image") from e
    except Exception as e:  # noqa: BLE001
        raise ImageError(path, f"truncated or damaged image data ({_exc_text(e)})") from e


def _read_tiff(path: str, f, max_pixels: int) -> Image:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(0)
    head = f.read(8)
    bo = "<" if head[:2] == b"II" else ">"
    magic, first = struct.unpack(bo + "HI", head[2:8])
    if magic != 42:
        raise _Unsupported("BigTIFF")
    tags, nxt = _tiff_ifd(f, bo, first, size)
    frames, seen = 1, {first}
    while nxt and nxt not in seen and frames < 100_000:
        seen.add(nxt)
        frames += 1
        try:
            _, nxt = _tiff_ifd(f, bo, nxt, size)
        except (EOFError, ValueError, struct.error):
            break

    def one(tag, default=None):
        v = tags.get(tag)
        return v[0] if v else default

    w, h = one(256), one(257)
    if not w or not h:
        raise ValueError("no image size")
    reason = _too_large(w, h, max_pixels)
    if reason:
        raise ImageError(path, reason)
    spp = one(277, 1)
    bps = set(tags.get(258, (1,)))
    fmts = set(tags.get(339, (1,)))
    if len(bps) != 1 or len(fmts) != 1:
        raise _Unsupported("mixed sample sizes")
    bits, sfmt = bps.pop(), fmts.pop()
    if (sfmt, bits) == (1, 8):
        dtype = np.dtype(np.uint8)
    elif (sfmt, bits) == (1, 16):
        dtype = np.dtype(bo + "u2")
    elif (sfmt, bits) == (3, 32):
        dtype = np.dtype(bo + "f4")
    elif (sfmt, bits) == (3, 64):
        dtype = np.dtype(bo + "f8")
    else:
        raise _Unsupported(f"{bits}-bit samples of format {sfmt}")
    compression = one(259, 1)
    if compression not in (1, 8, 32946):
        raise _Unsupported(f"compression {compression}")
    predictor = one(317, 1)
    if predictor not in (1, 2) or (predictor == 2 and sfmt == 3):
        raise _Unsupported(f"predictor {predictor}")
    if one(284, 1) != 1:
        raise _Unsupported("planar configuration 2")
    if 322 in tags:
        raise _Unsupported("tiles")
    photometric = one(262, 1)
    base = {1: 1, 2: 3, 5: 4}.get(photometric)
    if base is None or spp < base:
        raise _Unsupported(f"photometric {photometric} with {spp} samples")
    color = {1: "L", 2: "RGB", 5: "CMYK"}[photometric]
    extras = tags.get(338, ())
    has_alpha = spp > base and bool(extras) and extras[0] in (1, 2) and color != "CMYK"

    offsets, counts = tags.get(273), tags.get(279)
    if not offsets or not counts or len(offsets) != len(counts):
        raise ValueError("no strips")
    chunks = []
    for off, n in zip(offsets, counts):
        f.seek(off)
        data = f.read(n)
        if len(data) < n:
            raise EOFError("image file is truncated")
        if compression != 1:
            data = zlib.decompress(data)
        chunks.append(data)
    data = b"".join(chunks)
    need = w * h * spp * dtype.itemsize
    if len(data) < need:
        raise EOFError("image file is truncated")
    a = np.frombuffer(data, dtype=dtype, count=w * h * spp).reshape(h, w, spp)
    if predictor == 2:
        a = np.cumsum(a.astype(dtype.newbyteorder("=")), axis=1, dtype=dtype.newbyteorder("="))
    a = a.astype(np.float32 if sfmt == 3 else dtype.newbyteorder("="))
    if extras and extras[0] == 1 and has_alpha:  # associated alpha: unpremultiply
        top = _max_value(a.dtype)
        alpha = a[..., base:base + 1].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            col = np.where(alpha > 0, a[..., :base] * top / np.where(alpha > 0, alpha, 1), 0)
        if a.dtype != np.float32:
            col = np.clip(np.rint(col), 0, top)
        a = np.concatenate([col.astype(a.dtype), a[..., base:base + 1]], axis=2)
    a = np.ascontiguousarray(a[..., : base + (1 if has_alpha else 0)])

    if frames > 1:
        warn(f"{path}: {frames} frames; only the first is filtered")
    orientation = one(274, 1)
    if orientation in range(2, 9):
        a = _orient(a, orientation)
    meta: dict = {"format": "TIFF"}
    if compression != 1:
        meta["tiff_compression"] = "tiff_adobe_deflate"
    if 34675 in tags:
        meta["icc_profile"] = bytes(tags[34675])
    xr, yr, unit = tags.get(282), tags.get(283), one(296, 2)
    if xr and yr and xr[1] and yr[1] and unit in (2, 3):
        k = 2.54 if unit == 3 else 1.0
        dx, dy = xr[0] / xr[1] * k, yr[0] / yr[1] * k
        if dx > 0 and dy > 0:
            meta["dpi"] = (dy, dx) if orientation in (5, 6, 7, 8) else (dx, dy)
    return Image(pixels=a, has_alpha=has_alpha, color=color, meta=meta, path=path)


# --------------------------------------------------------------------------
# write


def _own_tiff_writer(spath: str, a: np.ndarray, color: str, has_alpha: bool, icc, dpi, compression, note):
    """``write(fileobj)`` for a 16-bit or float32 TIFF of several channels, by the own writer:
    with deflate where ``compression`` (Pillow's name) asks for any, with a warning where it asks
    for another codec."""
    if a.nbytes + (len(icc) if icc else 0) + 65536 >= 2**32:
        raise OutputError(spath, "image too large for TIFF (over 4 GiB; use .npy)")
    if compression not in (None, "tiff_adobe_deflate"):
        name = {v: k for k, v in TIFF_COMPRESSIONS.items()}.get(compression, compression)
        note(f"{a.dtype.itemsize * 8}-bit {color} TIFF written with deflate compression, not {name} "
             "(clconv's own TIFF writer)")
    deflate = compression is not None
    return lambda fo: _write_tiff(fo, a, color, has_alpha, icc, dpi, deflate)


def _write_tiff(fo, a: np.ndarray, color: str, has_alpha: bool, icc, dpi, deflate: bool = False) -> None:
    """Little-endian TIFF for 16-bit and float32 multi-channel images: uncompressed, or each
    strip deflated (compression 8, no predictor) with ``deflate``."""
    h, w, c = a.shape
    dtype = np.dtype("<f4") if a.dtype == np.float32 else np.dtype("<u2")
    bits = 8 * dtype.itemsize
    sfmt = 3 if a.dtype == np.float32 else 1
    photometric = {"L": 1, "RGB": 2, "CMYK": 5}[color]
    row_bytes = w * c * dtype.itemsize
    rps = max(1, min(h, (1 << 20) // row_bytes))
    nstrips = (h + rps - 1) // rps
    counts = [min(rps, h - i * rps) * row_bytes for i in range(nstrips)]
    strips = None
    if deflate:
        strips = [zlib.compress(np.ascontiguousarray(a[y0: y0 + rps].astype(dtype)).tobytes(), 6)
                  for y0 in range(0, h, rps)]
        counts = [len(s) for s in strips]

    entries = []  # (tag, type, values as tuple or bytes)
    entries.append((256, 4, (w,)))
    entries.append((257, 4, (h,)))
    entries.append((258, 3, (bits,) * c))
    entries.append((259, 3, (8 if deflate else 1,)))
    entries.append((262, 3, (photometric,)))
    entries.append((273, 4, None))  # strip offsets, filled below
    entries.append((277, 3, (c,)))
    entries.append((278, 4, (rps,)))
    entries.append((279, 4, tuple(counts)))
    if dpi:
        entries.append((282, 5, (int(round(dpi[0] * 1000)), 1000)))
        entries.append((283, 5, (int(round(dpi[1] * 1000)), 1000)))
    entries.append((284, 3, (1,)))
    if dpi:
        entries.append((296, 3, (2,)))
    if has_alpha:
        entries.append((338, 3, (2,)))  # unassociated alpha
    entries.append((339, 3, (sfmt,) * c))
    if icc:
        entries.append((34675, 7, bytes(icc)))
    entries.sort(key=lambda e: e[0])

    fmt_of = {3: "H", 4: "I", 5: "I", 7: "B"}
    ifd_off = 8
    ifd_len = 2 + 12 * len(entries) + 4
    extra_off = ifd_off + ifd_len

    def payload(typ, vals):
        if typ == 7:
            return vals
        return struct.pack("<" + fmt_of[typ] * len(vals), *vals)

    # lay out the out-of-line values; strip offsets depend on where data starts
    sizes = {}
    for tag, typ, vals in entries:
        n = nstrips if tag == 273 else len(vals)
        sizes[tag] = n * {3: 2, 4: 4, 5: 4, 7: 1}[typ]
    extra_len = sum(s + (s & 1) for s in sizes.values() if s > 4)
    data_off = extra_off + extra_len
    data_off += (-data_off) % 16
    offsets = tuple(data_off + sum(counts[:i]) for i in range(nstrips))

    ifd = [struct.pack("<H", len(entries))]
    extra = []
    pos = extra_off
    for tag, typ, vals in entries:
        if tag == 273:
            vals = offsets
        body = payload(typ, vals)
        count = len(vals) // (2 if typ == 5 else 1) if typ != 7 else len(vals)
        if len(body) <= 4:
            ifd.append(struct.pack("<HHI", tag, typ, count) + body.ljust(4, b"\x00"))
        else:
            ifd.append(struct.pack("<HHII", tag, typ, count, pos))
            extra.append(body + (b"\x00" if len(body) & 1 else b""))
            pos += len(body) + (len(body) & 1)
    ifd.append(struct.pack("<I", 0))
    fo.write(b"II*\x00" + struct.pack("<I", ifd_off))
    fo.write(b"".join(ifd))
    fo.write(b"".join(extra))
    fo.write(b"\x00" * (data_off - pos))
    if strips is not None:
        for strip in strips:
            fo.write(strip)
        return
    for y0 in range(0, h, rps):
        fo.write(np.ascontiguousarray(a[y0: y0 + rps].astype(dtype)).tobytes())


def _tagged(encode, exif, xmp, comment, record, note):
    """``encode(fileobj)`` for a TIFF, then EXIF, XMP, the comment and ``record`` (the provenance)
    added by :func:`_tiff_add_tags`; ``encode`` itself where there is none of them."""
    if not (exif or xmp or comment or record):
        return encode

    def write_tagged(fo) -> None:
        buf = io.BytesIO()
        encode(buf)
        try:
            data = _tiff_add_tags(buf.getvalue(), exif, xmp, comment, record)
        except Exception as e:  # noqa: BLE001 - metadata never costs the image
            note(f"EXIF/XMP not written ({_exc_text(e)})")
            data = buf.getvalue()
        fo.write(data)

    return write_tagged


def _tiff_add_tags(data: bytes, exif: bytes | None, xmp: bytes | None, comment: bytes | None,
                   software: bytes | None = None) -> bytes:
    """A TIFF file (classic, as Pillow and _write_tiff write it) with EXIF's first-IFD tags, its
    EXIF and GPS sub-IFDs, the XMP packet (tag 700), the comment (ImageDescription) and
    ``software`` (the Software tag: clconv's provenance) added to the first IFD: Pillow
    serialises them at the end of the file, and a new first IFD, the old entries with the new
    ones, follows them (libtiff cannot write the sub-IFDs when it compresses). Tags the file
    already has win."""
    bo = "<" if data[:2] == b"II" else ">"
    magic, ifd0 = struct.unpack_from(bo + "HI", data, 2)
    if magic != 42:
        return data  # BigTIFF: not extended
    ex = _exif_with(exif, xmp, comment, software)
    if not len(ex):
        return data
    ex.endian = bo
    place = len(data) + (len(data) & 1)
    blob = ex.tobytes(place)[len(_EXIF_PREFIX) + 8:]
    (n_new,) = struct.unpack_from(bo + "H", blob, 0)
    (n_old,) = struct.unpack_from(bo + "H", data, ifd0)
    entries = {}
    for i in range(n_new):
        e = blob[2 + 12 * i: 14 + 12 * i]
        entries[struct.unpack_from(bo + "H", e)[0]] = e
    for i in range(n_old):
        e = data[ifd0 + 2 + 12 * i: ifd0 + 14 + 12 * i]
        entries[struct.unpack_from(bo + "H", e)[0]] = e
    (following,) = struct.unpack_from(bo + "I", data, ifd0 + 2 + 12 * n_old)
    end = place + len(blob)
    new_ifd0 = end + (end & 1)
    if new_ifd0 + 2 + 12 * len(entries) + 4 >= 2**32:
        return data
    out = bytearray(data)
    out[4:8] = struct.pack(bo + "I", new_ifd0)
    out += b"\x00" * (place - len(data)) + blob + b"\x00" * (new_ifd0 - end)
    out += struct.pack(bo + "H", len(entries)) + b"".join(entries[t] for t in sorted(entries))
    out += struct.pack(bo + "I", following)
    return bytes(out)


def _exif_with(exif, xmp, comment, software) -> PILImage.Exif:
    """The tags :func:`_tiff_add_tags` adds, as Pillow's Exif: EXIF's first-IFD tags (not the
    layout ones) and its EXIF (without the interoperability pointer) and GPS sub-IFDs."""
    ex = PILImage.Exif()
    if exif:
        ex.load(_EXIF_PREFIX + exif)
        ifds = {tag: ex.get_ifd(tag) for tag in (0x8769, 0x8825) if tag in ex}
        if 0x8769 in ifds and 0xA005 in ifds[0x8769]:
            ifds[0x8769] = {k: v for k, v in ifds[0x8769].items() if k != 0xA005}  # interop: dropped
        for tag in list(ex):
            if tag in _TIFF_LAYOUT_TAGS:
                del ex[tag]
        for tag, ifd in ifds.items():
            if ifd:
                ex[tag] = ifd
    if xmp:
        ex[700] = bytes(xmp)
    if comment:
        ex[270] = bytes(comment).rstrip(b"\x00").decode("utf-8", "replace")
    if software:
        ex[305] = bytes(software).decode("utf-8", "replace")
    return ex
