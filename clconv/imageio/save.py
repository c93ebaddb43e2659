"""Writing images: :func:`writer` checks the pixels, converts what the output's format cannot
hold (a ``clconv: warning:`` line each), picks the encoder (clconv's own PNG writers, tifffile
for 16-bit and float32 TIFFs of several channels, Pillow for the rest) and what metadata goes
with the pixels; :func:`save` is that plus an atomic write."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage

from clconv.atomic import write_atomically
from clconv.errors import OutputError, warn
from clconv.imageio import png, tiff
from clconv.imageio.common import _BAND_BYTES, _exc_text, _Relay
from clconv.imageio.formats import _FORMATS, COMPRESSION_FORMATS, QUALITY_FORMATS, _Fmt, output_format
from clconv.imageio.image import _cmyk_to_rgb, _composite_white, _rgb_to_l, _to_8bit
from clconv.imageio.jpeg import _jpeg_kwargs
from clconv.imageio.meta import _EXIF_PREFIX, _exif_for_output
from clconv.imageio.tiff import TIFF_COMPRESSIONS


@dataclass(frozen=True)
class SaveOptions:
    """How outputs are written beyond their pixels (``--strip``, ``--quality``, ``--compression``).

    ``strip``: drop EXIF, XMP, comments, PNG text and ``provenance`` (the ICC profile and DPI are
    kept). ``provenance``: a record of how the output was made, written as PNG "Software" text,
    a JPEG comment (COM segment of its own) or TIFF Software tag (see :func:`read_provenance`).
    ``quality``: 1..100 for JPEG, WebP and AVIF (default: a JPEG input's estimated quality,
    else :data:`DEFAULT_QUALITY`). ``compression``: a key of :data:`TIFF_COMPRESSIONS` for TIFF
    outputs (default: a TIFF input's lossless compression, else none)."""

    strip: bool = False
    quality: int | None = None
    compression: str | None = None
    provenance: str | None = None  # how the output was made (PROVENANCE_PREFIX...), not with strip

    def __post_init__(self):
        if self.quality is not None and not 1 <= int(self.quality) <= 100:
            raise ValueError(f"quality must be 1..100, not {self.quality}")
        if self.compression is not None and self.compression not in TIFF_COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(TIFF_COMPRESSIONS)}, not {self.compression!r}")


# Lossy outputs without a JPEG input's quality to reuse: ImageMagick's JPEG default (92); WebP
# and AVIF as before (90).
DEFAULT_QUALITY = {"JPEG": 92, "WEBP": 90, "AVIF": 90}


def ignored_options(path, options: SaveOptions | None) -> list[str]:
    """The options given in ``options`` that the output format of ``path`` does not use."""
    if options is None:
        return []
    name = output_format(path)
    ignored = []
    if options.quality is not None and name not in QUALITY_FORMATS:
        ignored.append("--quality")
    if options.compression is not None and name not in COMPRESSION_FORMATS:
        ignored.append("--compression")
    return ignored


@dataclass(frozen=True)
class _Extras:
    """What an output carries beyond pixels, ICC and DPI, as its format holds it (None: nothing)."""

    exif: bytes | None  # bare TIFF structure, orientation reset, the output's size
    xmp: bytes | None
    comment: bytes | None
    text: dict | None  # PNG text chunks
    record: bytes | None  # the provenance (SaveOptions.provenance)


def save(
    path,
    pixels: np.ndarray,
    *,
    has_alpha: bool,
    color: str,
    meta: dict | None = None,
    options: SaveOptions | None = None,
    reuse: bool = False,
) -> None:
    """Write ``pixels`` (HxW or HxWxC; uint8, uint16 or float32) to ``path``, atomically.

    The format follows the extension; what it cannot hold is converted with a
    warning.  Raises :class:`OutputError` for an unknown or unsuitable format
    and for any failure to write (nothing is left behind). ``meta`` (an input's
    :attr:`Image.meta`) is carried where the format holds it; ``options``: see :class:`SaveOptions`.
    ``reuse``: the caller gives ``pixels`` up, and they may be overwritten while they are encoded
    (an :func:`output_array`'s room is then used instead of a copy: less memory).
    """
    spath = os.fsdecode(os.fspath(path))
    write_atomically(
        spath, writer(spath, pixels, has_alpha=has_alpha, color=color, meta=meta, options=options, reuse=reuse)
    )


def output_array(path, shape, dtype) -> np.ndarray:
    """An empty HxWxC array for pixels that will be saved to ``path`` with ``reuse``: for 8-bit
    RGB to JPEG, a view on a buffer with room for a fourth channel, so that the encoder reads
    them in place (as RGBX: Pillow's RGB images take 4 bytes a pixel) and no second image of
    them is made. The room beyond the view is never touched before then, so costs no memory."""
    h, w, c = shape
    dtype = np.dtype(dtype)
    try:
        jpeg = output_format(path) == "JPEG"
    except Exception:  # noqa: BLE001 - an unknown format is refused by save, not here
        jpeg = False
    if not (jpeg and dtype == np.uint8 and c == 3):
        return np.empty(shape, dtype)
    return np.empty(h * w * 4, np.uint8)[: h * w * 3].reshape(h, w, 3)


def _rgbx_in_place(a: np.ndarray) -> np.ndarray | None:
    """An :func:`output_array` (HxWx3 uint8) spread, in place, to HxWx4 (the fourth channel
    undefined); None for any other array."""
    base = a.base
    h, w, c = a.shape
    n = h * w
    if not (
        c == 3
        and a.dtype == np.uint8
        and a.flags.c_contiguous
        and isinstance(base, np.ndarray)
        and base.ndim == 1
        and base.dtype == np.uint8
        and base.flags.owndata
        and base.flags.writeable
        and base.size >= 4 * n
        and a.ctypes.data == base.ctypes.data
    ):
        return None
    flat = base[: 4 * n]
    src, dst = flat[: 3 * n].reshape(n, 3), flat.reshape(n, 4)
    step = max(1, _BAND_BYTES // 4)
    for p1 in range(n, 0, -step):  # from the end: a band's RGBX lands at or after its RGB, never
        p0 = max(0, p1 - step)  # on the RGB of the pixels before it
        dst[p0:p1, :3] = src[p0:p1].copy()
    return dst.reshape(h, w, 4)


def writer(
    path,
    pixels: np.ndarray,
    *,
    has_alpha: bool,
    color: str,
    meta: dict | None = None,
    options: SaveOptions | None = None,
    reuse: bool = False,
):
    """Check and convert ``pixels`` for ``path``'s format (warning as :func:`save` does); return
    ``write(fileobj)``, which encodes them. ``save`` is this plus an atomic write (``reuse``:
    see there)."""
    spath = os.fsdecode(os.fspath(path))
    meta = meta or {}
    options = options or SaveOptions()
    fmt_name = output_format(spath)
    a = _checked_pixels(pixels, has_alpha, color)
    if fmt_name == "NPY":
        out = np.ascontiguousarray(a[:, :, 0] if a.shape[2] == 1 else a)
        return lambda fo: np.save(fo, out, allow_pickle=False)
    fmt = _FORMATS[fmt_name]
    ext = os.path.splitext(spath)[1].lower()
    if a.dtype == np.float32 and ext not in (".tif", ".tiff"):
        raise OutputError(spath, "float output needs .tif/.tiff or .npy")

    def note(msg: str) -> None:
        warn(f"{spath}: {msg}")

    a, color, has_alpha = _fitted(a, color, has_alpha, fmt, ext, note)
    icc, dpi = _icc_and_dpi(meta, fmt, color, note)
    extras = _extras(meta, fmt, options, a.shape, note)
    chunks = png._png_meta_chunks(extras.exif, extras.xmp, extras.comment, extras.text) if fmt_name == "PNG" else []
    if fmt_name == "PNG":
        own = png._own_png_writer(a, icc, dpi, chunks)
        if own is not None:
            return own
    compression = tiff._output_compression(meta, options.compression) if fmt_name == "TIFF" else None
    if fmt_name == "TIFF" and a.shape[2] > 1 and a.dtype != np.uint8:  # Pillow writes neither
        encode = tiff._tifffile_writer(spath, a, color, has_alpha, icc, dpi, compression, note)
        return tiff._tagged(encode, extras.exif, extras.xmp, extras.comment, extras.record, note)

    rgbx = _rgbx_in_place(a) if reuse and fmt_name == "JPEG" and a is pixels else None
    if rgbx is not None:  # Pillow maps RGBX (zero-copy) and writes it as RGB: the same file
        im = PILImage.frombuffer("RGBX", (a.shape[1], a.shape[0]), rgbx, "raw", "RGBX", 0, 1)
    else:
        im = _to_pil(a, color, has_alpha)
    quality = (options.quality or meta.get("jpeg_quality") or DEFAULT_QUALITY[fmt_name]) if fmt.quality else None
    kwargs = _pillow_kwargs(fmt, ext, im, a.shape[2], icc, dpi, quality, meta, extras, chunks, compression)
    del a, rgbx
    encode = _pillow_writer(spath, im, fmt_name, kwargs)
    if fmt_name == "TIFF":
        return tiff._tagged(encode, extras.exif, extras.xmp, extras.comment, extras.record, note)
    return encode


def _checked_pixels(pixels, has_alpha: bool, color: str) -> np.ndarray:
    """``pixels`` as HxWxC in native byte order; ValueError where they do not fit the arguments."""
    a = np.asarray(pixels)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"pixels must be HxW or HxWxC, not shape {a.shape}")
    if a.dtype not in (np.uint8, np.uint16, np.float32):
        raise ValueError(f"pixels must be uint8, uint16 or float32, not {a.dtype}")
    if color not in ("L", "RGB", "CMYK"):
        raise ValueError(f"color must be L, RGB or CMYK, not {color!r}")
    if color == "CMYK" and has_alpha:
        raise ValueError("CMYK with alpha is not supported")
    need = {"L": 1, "RGB": 3, "CMYK": 4}[color] + (1 if has_alpha else 0)
    if a.shape[2] != need:
        raise ValueError(f"{color}{'+alpha' if has_alpha else ''} needs {need} channels, not {a.shape[2]}")
    return a.astype(a.dtype.newbyteorder("="), copy=False)


def _fitted(a: np.ndarray, color: str, has_alpha: bool, fmt: _Fmt, ext: str, note):
    """(pixels, colour, has alpha) converted to what ``fmt`` holds, each lossy step said by ``note``."""
    if ext == ".pgm" and color != "L":  # gray only (ImageMagick converts the same way)
        col = a[..., : (4 if color == "CMYK" else 3)]
        y = _rgb_to_l(_cmyk_to_rgb(col) if color == "CMYK" else col)[..., None]
        a = np.concatenate([y, a[..., -1:]], axis=2) if has_alpha else np.ascontiguousarray(y)
        note(f"PGM holds gray only; {color} converted to luminance (ITU-R 601-2)")
        color = "L"
    if a.dtype == np.uint16 and not (fmt.u16 == "all" or (fmt.u16 == "gray" and color == "L")):
        note(f"{fmt.name} holds 8 bits per channel; 16-bit values scaled to 8-bit")
        a = _to_8bit(a)
    if has_alpha and not fmt.alpha:
        note(f"{fmt.name} cannot hold alpha; composited over white")
        a = _composite_white(a)
        has_alpha = False
    if color == "CMYK" and not fmt.cmyk:
        note(f"{fmt.name} cannot hold CMYK; converted to RGB")
        a = _cmyk_to_rgb(a)
        color = "RGB"
    if color == "L" and not fmt.gray:  # written as RGB, losslessly: no warning
        col = np.repeat(a[..., :1], 3, axis=2)
        a = np.concatenate([col, a[..., 1:]], axis=2) if has_alpha else col
        color = "RGB"
    if fmt.name == "GIF" and color != "L":
        note("GIF holds at most 256 colours; colours quantized")
    return a, color, has_alpha


def _icc_and_dpi(meta: dict, fmt: _Fmt, color: str, note) -> tuple:
    """The input's ICC profile (where it fits the output's colours) and DPI, where ``fmt`` holds them."""
    icc = meta.get("icc_profile") if fmt.icc else None
    if icc:
        space = bytes(icc[16:20]) if len(icc) >= 20 else None
        if space != {"L": b"GRAY", "RGB": b"RGB ", "CMYK": b"CMYK"}[color]:
            name = (space or b"?").decode("latin-1").strip()
            note(f"{name} ICC profile dropped: it does not fit the {color} output")
            icc = None
    dpi = meta.get("dpi") if fmt.dpi else None
    if dpi is not None:
        try:
            dpi = (float(dpi[0]), float(dpi[1]))
            if not (dpi[0] > 0 and dpi[1] > 0):
                dpi = None
        except (TypeError, ValueError, IndexError):
            dpi = None
    return icc, dpi


def _extras(meta: dict, fmt: _Fmt, options: SaveOptions, shape, note) -> _Extras:
    """EXIF, XMP, comment, PNG text and the provenance for the output (none with --strip)."""
    keep = not options.strip
    exif = meta.get("exif") if keep and fmt.exif else None
    if exif:
        exif = _exif_for_output(exif, shape[1], shape[0])
        if exif is None:
            note("EXIF dropped: its orientation could not be reset (damaged EXIF)")
    xmp = meta.get("xmp") if keep and fmt.xmp else None
    comment = meta.get("comment") if keep and fmt.comment else None
    text = meta.get("text") if keep and fmt.name == "PNG" else None
    record = options.provenance.encode("utf-8")[:65533] if keep and options.provenance else None
    if record and fmt.name == "PNG":
        text = {**(text or {}), "Software": record.decode("utf-8", "replace")}
    if fmt.name == "JPEG":  # one APP1 / COM segment each: at most 64 KiB
        if exif and len(exif) + len(_EXIF_PREFIX) > 65533:
            note(f"EXIF dropped: {len(exif)} bytes do not fit a JPEG segment (64 KiB)")
            exif = None
        if xmp and len(xmp) + 29 > 65533:
            note(f"XMP dropped: {len(xmp)} bytes do not fit a JPEG segment (64 KiB; extended XMP is not written)")
            xmp = None
        if comment and len(comment) > 65533:
            comment = comment[:65533]
    return _Extras(exif, xmp, comment, text, record)


def _to_pil(a: np.ndarray, color: str, has_alpha: bool) -> PILImage.Image:
    h, w, _c = a.shape
    if a.dtype == np.float32:
        return PILImage.frombytes("F", (w, h), np.ascontiguousarray(a[:, :, 0]).tobytes())
    if a.dtype == np.uint16:
        return PILImage.frombytes("I;16", (w, h), np.ascontiguousarray(a[:, :, 0]).astype("<u2").tobytes())
    mode = {
        ("L", False): "L",
        ("L", True): "LA",
        ("RGB", False): "RGB",
        ("RGB", True): "RGBA",
        ("CMYK", False): "CMYK",
    }[(color, has_alpha)]
    # the array itself, never a bytes copy of it: L, RGBA and CMYK are mapped (zero-copy, a
    # read-only image keeping ``a`` alive), the others decoded from it into Pillow's layout
    return PILImage.frombuffer(mode, (w, h), np.ascontiguousarray(a), "raw", mode, 0, 1)


def _pillow_kwargs(
    fmt: _Fmt, ext: str, im, channels: int, icc, dpi, quality, meta: dict, extras: _Extras, chunks, compression
) -> dict:
    """Pillow's save options for ``im`` in ``fmt``: the format's own, ICC, DPI, quality, the
    carried metadata where Pillow writes it, the TIFF compression."""
    kwargs = dict(fmt.options)
    if icc:
        kwargs["icc_profile"] = icc
    if dpi:
        kwargs["dpi"] = dpi
    if fmt.name == "JPEG2000" and ext in (".j2k", ".j2c", ".jpc"):
        kwargs["no_jp2"] = True
    if quality is not None:
        kwargs["quality"] = int(quality)
    if fmt.name in ("JPEG", "WEBP", "AVIF"):
        if extras.exif:
            kwargs["exif"] = _EXIF_PREFIX + extras.exif
        if extras.xmp:
            kwargs["xmp"] = bytes(extras.xmp)
    if fmt.name == "JPEG":
        kwargs.update(_jpeg_kwargs(im, channels, quality, meta, extras.comment, extras.record))
    elif fmt.name == "PNG" and chunks:
        kwargs.update(png._pillow_png_kwargs(chunks))
    elif fmt.name == "GIF" and extras.comment:
        kwargs["comment"] = bytes(extras.comment)[:65535]
    elif fmt.name == "TIFF" and compression:
        kwargs["compression"] = compression
    return kwargs


def _pillow_writer(spath: str, im, fmt_name: str, kwargs: dict):
    """``write(fileobj)``: Pillow encodes ``im``, its warnings said as clconv's."""

    def write(fo) -> None:
        with _Relay(spath):
            try:
                im.save(fo, format=fmt_name, **kwargs)
            except (ValueError, KeyError, TypeError) as e:
                raise OutputError(spath, f"cannot write as {fmt_name}: {_exc_text(e)}") from e

    return write
