"""Reading and writing images: Pillow for the formats, numpy for the pixels.

``load`` returns an :class:`Image` whose ``pixels`` are always ``HxWxC``
(C-contiguous) in one of three dtypes: ``uint8``, ``uint16`` or ``float32``.
``save`` writes atomically (a temporary file in the output's folder, then a
rename) and converts, with a ``clconv: warning:`` line, whatever the chosen
format cannot hold.

Decisions (see the README):

* Formats are recognised by content, never by the input's extension.
* Modes: ``1`` -> 8-bit gray; ``L``/``LA``/``RGB``/``RGBA`` as they are;
  ``P``/``PA`` -> RGB, or RGBA when the palette has transparency; a colour-key
  transparency (PNG ``tRNS`` on gray or RGB) becomes an alpha channel;
  ``I;16*`` -> 16-bit gray; ``I`` -> 16-bit gray when its values fit 0..65535
  (else refused); ``F`` -> float32 gray; ``CMYK`` is kept as four colour
  channels; ``YCbCr``/``HSV``/``RGBX``/premultiplied modes -> RGB(A);
  ``LAB`` is refused (Pillow has no colorimetric LAB conversion).
* 16-bit RGB/RGBA/gray+alpha PNGs and TIFFs keep 16 bits: Pillow decodes them
  to 8 bits, so the low bytes are decoded a second time with the byte-swapped
  raw mode and merged.  TIFFs Pillow cannot open at all (float RGB, 16-bit
  gray+alpha, as this module writes them) are read by a small strip reader.
* ``.npy`` input (no pickle): 2D, or 3D with 1..4 channels, read like
  ``numpy.asarray(PIL image)``: 1 = L, 2 = L+alpha, 3 = RGB, 4 = RGBA.
  uint8/uint16/float32 kept, other float types -> float32, anything else
  refused.
* Output: 16-bit colour goes to PNG and TIFF with 16 bits (own writers, as
  Pillow cannot write them); float32 goes to ``.tif``/``.tiff`` (one channel
  through Pillow, several through the own writer) or ``.npy``.  Formats that
  cannot hold alpha (JPEG, BMP, GIF, PPM) get it composited over white;
  formats without 16 bits get ``rint(v/257)``; CMYK becomes RGB except for
  JPEG, TIFF and JPEG 2000.  Each of these conversions warns.
* Carried: the ICC profile (when its colour space matches the output) and
  the DPI (swapped with the axes by EXIF orientation); EXIF (JPEG, PNG eXIf,
  TIFF, WebP, AVIF outputs), with the Orientation reset to 1 (the orientation
  is applied to the pixels on load) and PixelX/YDimension set to the output's
  size; XMP (JPEG, PNG, TIFF, WebP, AVIF); the comment (JPEG COM, PNG
  "Comment", TIFF ImageDescription, GIF) and other PNG text chunks (PNG).
  ``SaveOptions(strip=True)`` drops EXIF, XMP and comments, never ICC or DPI.
* Quality: JPEG/WebP/AVIF outputs reuse a JPEG input's quality, estimated
  from its quantisation tables (and a JPEG its chroma subsampling), else 92
  (JPEG) / 90 (WebP, AVIF).  TIFF outputs keep a TIFF input's lossless
  compression (LZW, deflate, PackBits), else none.
* ``.pgm`` outputs are gray: colour is converted (ITU-R 601-2) with a warning.
"""
from __future__ import annotations

import mmap
import os
import struct
import sys
import threading
import warnings
import zlib
from dataclasses import dataclass, field

import numpy as np
from PIL import Image as PILImage
from PIL import ImageFile, UnidentifiedImageError, features

from clconv.atomic import write_atomically
from clconv.errors import WARNINGS_LOCK, ImageError, OutputError, warn
from clconv.params import DEFAULT_MAX_PIXELS

# clconv enforces its own --max-pixels before decoding; Pillow's bomb check
# would only add a Python warning (or a second, differently worded error).
PILImage.MAX_IMAGE_PIXELS = None
# A damaged image is refused, never half-loaded.
ImageFile.LOAD_TRUNCATED_IMAGES = False

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "Image",
    "load",
    "load_array",
    "save",
    "writer",
    "output_array",
    "check_output",
    "to_gray",
    "output_format",
    "SaveOptions",
    "estimate_jpeg_quality",
    "formats_table",
]

_NPY_MAGIC = b"\x93NUMPY"
_MAGICS = [
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
]

# Pillow's warnings are turned into clconv warnings; catch_warnings is
# process-global state, so it is entered by one thread at a time (the same lock
# as the device thread's program builds: see runtime.prefetch).
_WARN_LOCK = WARNINGS_LOCK


@dataclass(eq=False)
class Image:
    """A decoded image: ``pixels`` is HxWxC, alpha (if any) is the last channel."""

    pixels: np.ndarray
    has_alpha: bool
    color: str  # "L", "RGB" or "CMYK": the colour channels, without alpha
    meta: dict = field(default_factory=dict)
    path: str = ""

    @property
    def max_value(self) -> float:
        return _max_value(self.pixels.dtype)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])


def _max_value(dtype) -> float:
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    return 1.0


# --------------------------------------------------------------------------
# small helpers


def _os_cause(verb: str, e: OSError) -> str:
    return f"cannot {verb}: {e.strerror or e}"


def _exc_text(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


class _Relay:
    """Collect Python warnings raised inside the block and re-emit them as clconv warnings."""

    def __init__(self, path: str):
        self.path = path

    def __enter__(self):
        _WARN_LOCK.acquire()
        self._cm = warnings.catch_warnings(record=True)
        self._log = self._cm.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        try:
            self._cm.__exit__(*exc)
        finally:
            _WARN_LOCK.release()
        seen = set()
        for w in self._log:
            if w.category.__module__.startswith("pyopencl"):
                continue  # the device thread's (runtime.prefetch), never about this image
            msg = " ".join(str(w.message).split())
            if msg and msg not in seen:
                seen.add(msg)
                warn(f"{self.path}: {msg}")
        return False


def _too_large(w: int, h: int, max_pixels: int) -> str | None:
    if max_pixels and w * h > max_pixels:
        return f"image is {w}x{h} = {w * h} pixels, over --max-pixels {max_pixels}"
    return None


def _hwc(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        a = a[:, :, None]
    return np.ascontiguousarray(a)


_BAND_BYTES = 4 << 20


def _array(im) -> np.ndarray:
    """``np.asarray(im)`` as a writable HxWxC array, copied a band of rows at a time: asarray
    would first make a bytes copy of the whole image (Pillow's tobytes) and give a read-only
    array (which the device then copies again: runtime.wrap). Peak: Pillow's image and this."""
    w, h = im.size
    first = np.asarray(im.crop((0, 0, w, 1)))
    out = np.empty((h, *first.shape[1:]), first.dtype)
    rows = max(1, _BAND_BYTES // max(1, first.nbytes))
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        out[y0:y1] = np.asarray(im.crop((0, y0, w, y1)))
    return _hwc(out)


# --------------------------------------------------------------------------
# EXIF orientation, on numpy arrays (the same transforms as ImageOps.exif_transpose)


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1]
    elif orientation == 5:
        a = a.transpose(1, 0, 2)
    elif orientation == 6:
        a = np.rot90(a, k=-1)
    elif orientation == 7:
        a = a.transpose(1, 0, 2)[::-1, ::-1]
    elif orientation == 8:
        a = np.rot90(a, k=1)
    return np.ascontiguousarray(a)


def _orientation_of(im) -> int:
    try:
        value = im.getexif().get(0x0112)
        value = int(value) if value is not None else 1
    except Exception:  # corrupt EXIF: nothing to orient by
        return 1
    return value if 1 <= value <= 8 else 1


# --------------------------------------------------------------------------
# load


def load(path, *, gray: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image:
    """Decode ``path`` (any format Pillow reads, or ``.npy``) into an :class:`Image`.

    Raises :class:`ImageError` naming ``path`` for a missing, unreadable,
    damaged, unsupported or too large image.
    """
    spath, f = _open(path)
    with f:
        try:
            head = f.read(16)
            f.seek(0)
        except OSError as e:
            raise ImageError(spath, _os_cause("read", e)) from e
        if not head:
            raise ImageError(spath, "empty file (not an image)")
        if head.startswith(_NPY_MAGIC):
            pixels = _load_npy(spath, f, max_pixels)
            c = pixels.shape[2]
            img = Image(
                pixels=pixels,
                has_alpha=c in (2, 4),
                color="L" if c <= 2 else "RGB",
                meta={"format": "NPY"},
                path=spath,
            )
        else:
            with _Relay(spath):
                img = _load_pillow(spath, f, head, max_pixels)
    if gray:
        img = to_gray(img)
    return img


def load_array(path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The pixels of a ``.npy`` image as HxWxC (uint8, uint16 or float32); see :func:`load`."""
    spath, f = _open(path)
    with f:
        return _load_npy(spath, f, max_pixels)


def check_input(path) -> None:
    """ImageError naming ``path`` when it cannot be opened for reading (the cause as load says it)."""
    _open(path)[1].close()


def _open(path):
    """(the path as text, the file open for reading); ImageError naming it when it cannot be opened."""
    spath = os.fsdecode(os.fspath(path))
    try:
        return spath, open(spath, "rb")
    except OSError as e:
        raise ImageError(spath, _os_cause("read", e)) from e


def _load_npy(path: str, f, max_pixels: int) -> np.ndarray:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as e:
        raise ImageError(path, f"damaged .npy header ({_exc_text(e)})") from e
    if dtype.hasobject or dtype.kind not in "uif" or dtype.fields is not None:
        raise ImageError(path, f"unsupported .npy dtype {dtype} (use uint8, uint16 or a float type)")
    if dtype.kind in "ui" and dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise ImageError(path, f"unsupported .npy dtype {dtype} (use uint8, uint16 or a float type)")
    if len(shape) not in (2, 3) or (len(shape) == 3 and not 1 <= shape[2] <= 4):
        raise ImageError(path, f"unsupported .npy shape {shape} (use HxW or HxWxC with C = 1..4)")
    h, w = int(shape[0]), int(shape[1])
    if h == 0 or w == 0:
        raise ImageError(path, f"empty image (.npy shape {shape})")
    reason = _too_large(w, h, max_pixels)
    if reason:
        raise ImageError(path, reason)
    f.seek(0)
    try:
        a = np.load(f, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ImageError(path, f"truncated or damaged .npy data ({_exc_text(e)})") from e
    if a.dtype.kind == "f":
        a = a.astype(np.float32, copy=False)
    else:
        a = a.astype(a.dtype.newbyteorder("="), copy=False)
    return _hwc(a)


def _sniff(head: bytes) -> str | None:
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def _load_pillow(path: str, f, head: bytes, max_pixels: int) -> Image:
    try:
        im = PILImage.open(f)
    except UnidentifiedImageError as e:
        kind = _sniff(head)
        if kind == "TIFF":
            return _load_tiff_fallback(path, f, max_pixels)
        if kind:
            raise ImageError(path, f"damaged or unsupported {kind} file (cannot identify image file)") from e
        raise ImageError(path, "not an image (cannot identify image file)") from e
    except PILImage.DecompressionBombError as e:  # pragma: no cover - MAX_IMAGE_PIXELS is None
        raise ImageError(path, _exc_text(e)) from e
    except (OSError, SyntaxError, ValueError, struct.error, zlib.error, EOFError) as e:
        raise ImageError(path, f"damaged image header ({_exc_text(e)})") from e

    w, h = im.size
    reason = _too_large(w, h, max_pixels)
    if reason:
        raise ImageError(path, reason)
    if w == 0 or h == 0:
        raise ImageError(path, f"empty image ({w}x{h})")
    fmt = im.format

    try:
        if fmt == "PNG":
            # Pillow checks the CRCs of the chunks it parses at open, not those
            # of IDAT; verify() reads every chunk up to IEND.
            im.verify()
            f.seek(0)
            im = PILImage.open(f)
        frames = int(getattr(im, "n_frames", 1) or 1)
        if frames > 1:
            im.seek(0)
        tiles = list(im.tile or [])
        target = _decode_target(im, tiles) if frames == 1 else None
        im.load()
        decoded = _decoded_pixels(im, target)
    except MemoryError as e:
        raise ImageError(path, "not enough memory to decode the image") from e
    except Exception as e:  # noqa: BLE001 - any decoder failure means damaged data
        raise ImageError(path, f"truncated or damaged image data ({_exc_text(e)})") from e

    if frames > 1:
        warn(f"{path}: {frames} frames; only the first is filtered")

    pixels, has_alpha, color = _pixels_of(path, im, f, tiles, decoded)
    del decoded, target
    orientation = _orientation_of(im)

    meta: dict = {"format": fmt}
    icc = im.info.get("icc_profile")
    if icc:
        meta["icc_profile"] = bytes(icc)
    dpi = im.info.get("dpi")
    if dpi and len(dpi) == 2:
        try:
            dx, dy = float(dpi[0]), float(dpi[1])
        except (TypeError, ValueError):
            dx = dy = 0.0
        if dx > 0 and dy > 0:
            meta["dpi"] = (dy, dx) if orientation in (5, 6, 7, 8) else (dx, dy)
    meta.update(_carried_meta(im, fmt))
    im = None  # Pillow's decoded image (4 bytes a pixel for RGB) goes before the orientation's copy
    _release_freed_heap()  # the decoder's working rows (about 5 MB for a 6000x4000 JPEG)
    if orientation != 1:
        pixels = _orient(pixels, orientation)
    return Image(pixels=pixels, has_alpha=has_alpha, color=color, meta=meta, path=path)


def _release_freed_heap() -> None:
    """Hand the heap that decoders freed back to the system (glibc keeps it, counted in the
    process's memory, until malloc_trim); elsewhere nothing."""
    global _malloc_trim
    if _malloc_trim is None:
        _malloc_trim = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
            except (OSError, AttributeError):
                pass
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


# Pillow modes whose pixels :func:`_decode_target` maps: (the mode mapped, bytes a pixel). RGB
# takes 4 bytes a pixel in Pillow (RGBX), compacted to 3 after decoding.
_MAPPED = {"L": ("L", 1), "RGB": ("RGBX", 4), "RGBA": ("RGBA", 4), "CMYK": ("CMYK", 4)}
# decoders that write through Pillow's row pointers (JPEG, PNG, raw strips); JPEG 2000's, for
# one, does not decode into a mapped image
_MAPPED_CODECS = {"jpeg", "zip", "raw"}


def _decode_target(im, tiles) -> tuple | None:
    """Have Pillow decode ``im`` (opened, not loaded) into memory of ours, which then becomes the
    pixel array: Pillow's own image and a copy of it would hold an RGB image at 7 bytes a pixel
    (the peak of ``apply`` on a large photograph). (mmap, array, Pillow core) or None where
    Pillow keeps its own image (other modes, 16-bit samples, a Pillow without map_buffer)."""
    mapped = _MAPPED.get(im.mode)
    rawmodes = [_tile_rawmode(t) or "" for t in tiles]
    if (mapped is None or not tiles or any(t[0] not in _MAPPED_CODECS for t in tiles)
            or any(";16" in r or r.startswith("I") for r in rawmodes)):
        return None
    mode, size = mapped
    w, h = im.size
    try:
        # anonymous memory of its own, so that RGB's unused fourth bytes can be given back
        memory = mmap.mmap(-1, max(1, w * h * size))
        core = PILImage.core.map_buffer(memory, (w, h), "raw", 0, (mode, 0, 1))
    except Exception:  # noqa: BLE001 - private Pillow API: decode as usual without it
        return None
    im.im = core
    return memory, np.frombuffer(memory, np.uint8, count=w * h * size), core


def _decoded_pixels(im, target) -> np.ndarray | None:
    """The HxWxC pixels decoded into ``target``; None if Pillow decoded into an image of its own."""
    if target is None or getattr(im, "_im", None) is not target[2]:
        return None
    memory, flat, _ = target
    w, h = im.size
    if im.mode != "RGB":
        return flat.reshape(h, w, -1)
    n = w * h
    rgbx, rgb = flat.reshape(n, 4), flat[: 3 * n].reshape(n, 3)
    step = max(1, _BAND_BYTES // 4)
    for p0 in range(0, n, step):  # forwards: a band's RGB lands at or before its RGBX
        p1 = min(n, p0 + step)
        rgb[p0:p1] = rgbx[p0:p1, :3].copy()
    start = -(-3 * n // mmap.PAGESIZE) * mmap.PAGESIZE
    if start < len(memory):
        memory.madvise(mmap.MADV_DONTNEED, start, len(memory) - start)  # the fourth bytes' pages
    return rgb.reshape(h, w, 3)


# raw mode that gives the high bytes -> raw mode that gives the low bytes
_LOW_BYTES = {
    "RGB;16B": "RGB;16L",
    "RGB;16L": "RGB;16B",
    "RGBX;16B": "RGBX;16L",
    "RGBX;16L": "RGBX;16B",
    "RGBA;16B": "RGBA;16L",
    "RGBA;16L": "RGBA;16B",
    "CMYK;16B": "CMYK;16L",
    "CMYK;16L": "CMYK;16B",
}
# libtiff hands Pillow native-endian samples
_SWAPPED = "B" if sys.byteorder == "little" else "L"
for _base in ("RGB", "RGBX", "RGBA", "CMYK"):
    _LOW_BYTES[f"{_base};16N"] = f"{_base};16{_SWAPPED}"


def _tile_rawmode(tile) -> str | None:
    args = tile[3]
    if isinstance(args, str):
        return args
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return None


def _with_rawmode(tile, rawmode: str):
    args = tile[3]
    args = rawmode if isinstance(args, str) else (rawmode, *args[1:])
    if hasattr(tile, "_replace"):
        return tile._replace(args=args)
    return (*tile[:3], args)  # Pillow < 11: plain tuples


def _redecode(f, rawmode_for) -> PILImage.Image:
    """Open the file again and decode its first frame with other raw modes."""
    f.seek(0)
    im = PILImage.open(f)
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)
    im.tile = [_with_rawmode(t, rawmode_for(_tile_rawmode(t))) for t in im.tile]
    im.load()
    return im


def _sixteen_bit(path, im, f, tiles) -> tuple[np.ndarray, bool, str] | None:
    """16-bit colour that Pillow decoded to 8 bits: decode the low bytes too."""
    if im.mode not in ("RGB", "RGBA", "CMYK") or not tiles:
        return None
    rawmodes = {_tile_rawmode(t) for t in tiles}
    if len(rawmodes) != 1:
        return None
    rawmode = rawmodes.pop()
    color = "CMYK" if im.mode == "CMYK" else "RGB"
    if rawmode == "LA;16B":  # gray+alpha 16-bit PNG, opened as RGBA
        raw = np.asarray(_redecode(f, lambda r: "RGBA")).astype(np.uint16)
        a = (raw[..., 0::2] << 8) | raw[..., 1::2]
        return np.ascontiguousarray(a), True, "L"
    if rawmode not in _LOW_BYTES:
        if rawmode and ";16" in rawmode:
            warn(f"{path}: 16-bit samples ({rawmode}) read as 8-bit; Pillow cannot decode them deeper")
        return None
    hi = np.asarray(im).astype(np.uint16)
    lo = np.asarray(_redecode(f, lambda r: _LOW_BYTES[r])).astype(np.uint16)
    a = (hi << 8) | lo
    return np.ascontiguousarray(a), im.mode == "RGBA", color


def _key_alpha(a: np.ndarray, key, scale: int = 1) -> np.ndarray | None:
    """A colour-key transparency (PNG tRNS on gray/RGB) as an alpha channel."""
    try:
        key = np.array(key if isinstance(key, tuple) else (key,), dtype=np.int64) * scale
    except (TypeError, ValueError):
        return None
    if key.size != a.shape[2]:
        return None
    top = _max_value(a.dtype)
    mask = np.all(a == key.astype(a.dtype), axis=2)
    alpha = np.where(mask, 0, top).astype(a.dtype)
    return np.concatenate([a, alpha[:, :, None]], axis=2)


def _has_transparency(im) -> bool:
    flag = getattr(im, "has_transparency_data", None)  # Pillow >= 10.1
    if flag is not None:
        return bool(flag)
    return "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA")


def _pixels_of(path: str, im, f, tiles, decoded: np.ndarray | None = None) -> tuple[np.ndarray, bool, str]:
    """``decoded``: the pixels where :func:`_decode_target` had Pillow decode them (else None)."""
    mode = im.mode
    info = im.info
    rawmode = _tile_rawmode(tiles[0]) if tiles else None
    try:
        if mode in ("RGB", "RGBA", "CMYK"):
            deep = _sixteen_bit(path, im, f, tiles)
            if deep is not None:
                a, has_alpha, color = deep
                if not has_alpha and "transparency" in info:
                    keyed = _key_alpha(a, info["transparency"])
                    if keyed is not None:
                        return keyed, True, color
                return a, has_alpha, color
    except MemoryError as e:
        raise ImageError(path, "not enough memory to decode the image") from e
    except Exception as e:  # noqa: BLE001
        raise ImageError(path, f"truncated or damaged image data ({_exc_text(e)})") from e

    if mode == "1":
        a = _array(im.convert("L"))
        if "transparency" in info:
            keyed = _key_alpha(a, info["transparency"], 255)
            if keyed is not None:
                return keyed, True, "L"
        return a, False, "L"
    if mode == "L":
        a = _array(im) if decoded is None else decoded
        if "transparency" in info:
            scale = {"L;2": 85, "L;4": 17}.get(rawmode or "", 1)
            keyed = _key_alpha(a, info["transparency"], scale)
            if keyed is not None:
                return keyed, True, "L"
        return a, False, "L"
    if mode == "LA":
        return _array(im), True, "L"
    if mode == "La":
        return _array(im.convert("LA")), True, "L"
    if mode == "RGB":
        a = _array(im) if decoded is None else decoded
        if "transparency" in info:
            keyed = _key_alpha(a, info["transparency"])
            if keyed is not None:
                return keyed, True, "RGB"
        return a, False, "RGB"
    if mode == "RGBA":
        return _array(im) if decoded is None else decoded, True, "RGB"
    if mode in ("RGBa", "PA"):
        return _array(im.convert("RGBA")), True, "RGB"
    if mode == "P":
        if _has_transparency(im):
            return _array(im.convert("RGBA")), True, "RGB"
        return _array(im.convert("RGB")), False, "RGB"
    if mode in ("RGBX", "YCbCr", "HSV"):
        return _array(im.convert("RGB")), False, "RGB"
    if mode == "CMYK":
        return _array(im) if decoded is None else decoded, False, "CMYK"
    if mode.startswith("I;16"):
        a = _hwc(np.asarray(im).astype(np.uint16))
        if "transparency" in info:
            keyed = _key_alpha(a, info["transparency"])
            if keyed is not None:
                return keyed, True, "L"
        return a, False, "L"
    if mode == "I":
        a = np.asarray(im)
        if a.size and (int(a.min()) < 0 or int(a.max()) > 65535):
            raise ImageError(path, "unsupported 32-bit integer image (values outside 0..65535)")
        a = _hwc(a.astype(np.uint16))
        if "transparency" in info:
            keyed = _key_alpha(a, info["transparency"])
            if keyed is not None:
                return keyed, True, "L"
        return a, False, "L"
    if mode == "F":
        return _hwc(np.asarray(im).astype(np.float32)), False, "L"
    if mode == "LAB":
        raise ImageError(path, "unsupported colour mode LAB (convert it to RGB first)")
    raise ImageError(path, f"unsupported image mode {mode}")


# --------------------------------------------------------------------------
# a small TIFF strip reader, for what Pillow cannot open (float RGB, 16-bit
# gray+alpha: what this module's own TIFF writer produces, and the like)

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
# carried metadata: EXIF, XMP, comments, PNG text; the input's JPEG quality and TIFF compression

# TIFF tags that describe a file's layout, never carried as EXIF (a TIFF input's first IFD holds
# them beside Make, Model, ...); the sub-IFD pointers are rewritten by Pillow, the ICC profile
# and the resolution travel on their own.
_TIFF_LAYOUT_TAGS = frozenset({
    254, 255, 256, 257, 258, 259, 262, 263, 266, 269, 273, 277, 278, 279, 280, 281, 282, 283, 284,
    296, 297, 301, 317, 318, 319, 320, 321, 322, 323, 324, 325, 330, 332, 338, 339, 340, 341, 347,
    513, 514, 530, 531, 532, 700, 33723, 34377, 34665, 34853, 34675, 37724, 40965,
})
_EXIF_PREFIX = b"Exif\x00\x00"
# PNG text chunks that are not comments but another tool's way of storing a profile
_PNG_PROFILE_KEYS = ("XML:com.adobe.xmp", "Raw profile type exif", "Raw profile type APP1",
                     "Raw profile type xmp", "Raw profile type icc", "Raw profile type icm",
                     "Raw profile type iptc", "Raw profile type 8bim")
# what a TIFF input's compression becomes in a TIFF output: the lossless codecs are kept;
# others (JPEG, fax, WebP in TIFF) are written uncompressed, as before
_TIFF_KEPT_COMPRESSION = {"tiff_lzw": "tiff_lzw", "tiff_adobe_deflate": "tiff_adobe_deflate",
                          "tiff_deflate": "tiff_adobe_deflate", "packbits": "packbits"}
# --compression NAME -> Pillow's name (None: uncompressed)
TIFF_COMPRESSIONS = {"none": None, "lzw": "tiff_lzw", "deflate": "tiff_adobe_deflate", "packbits": "packbits"}

# The IJG (libjpeg) example tables (ITU T.81 Annex K), in natural (row-major) order, as
# Pillow's ``quantization`` gives them; libjpeg scales them by quality (jpeg_quality_scaling).
_IJG_LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)
_IJG_CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    *([99] * 32),
)


def _ijg_table(std, quality: int) -> np.ndarray:
    """libjpeg's jpeg_set_quality table for ``quality`` (baseline: values 1..255)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((np.asarray(std, np.int64) * scale + 50) // 100, 1, 255)


_IJG_TABLES = {q: (_ijg_table(_IJG_LUMA, q), _ijg_table(_IJG_CHROMA, q)) for q in range(1, 101)}


def estimate_jpeg_quality(quantization) -> int | None:
    """The IJG quality (1..100) whose scaled standard tables are closest (least absolute
    difference) to a JPEG's quantisation tables (Pillow's ``im.quantization``: table 0 luma,
    table 1 chroma when present), as ImageMagick estimates it; None without tables."""
    try:
        tables = {int(k): np.asarray(v, np.int64).ravel() for k, v in dict(quantization or {}).items()}
    except (TypeError, ValueError):
        return None
    luma, chroma = tables.get(0), tables.get(1)
    if luma is None or luma.size != 64:
        return None
    if chroma is not None and chroma.size != 64:
        chroma = None
    best, best_err = None, None
    for q, (lt, ct) in _IJG_TABLES.items():
        err = int(np.abs(luma - lt).sum())
        if chroma is not None:
            err += int(np.abs(chroma - ct).sum())
        if best_err is None or err <= best_err:  # ties: the higher quality
            best, best_err = q, err
    return best


def _exif_body(raw) -> bytes | None:
    """EXIF as the bare TIFF structure (Pillow's JPEG/PNG info carry an "Exif\\0\\0" prefix, WebP's not)."""
    if not raw:
        return None
    raw = bytes(raw)
    if raw.startswith(_EXIF_PREFIX):
        raw = raw[len(_EXIF_PREFIX):]
    return raw if raw[:4] in (b"II*\x00", b"MM\x00*") else None


def _exif_of_tiff(im) -> bytes | None:
    """A TIFF input's EXIF: its first IFD without the layout tags, with the EXIF and GPS sub-IFDs."""
    ex = im.getexif()
    ifds = {tag: ex.get_ifd(tag) for tag in (0x8769, 0x8825) if tag in ex}
    for tag in list(ex):
        if tag in _TIFF_LAYOUT_TAGS:
            del ex[tag]
    if not ex and not any(ifds.values()):
        return None
    for tag, ifd in ifds.items():
        if ifd:
            ex[tag] = ifd
    return _exif_body(ex.tobytes())


PROVENANCE_PREFIX = "clconv "


def _is_provenance(value) -> bool:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).startswith(PROVENANCE_PREFIX.encode())
    return isinstance(value, str) and value.startswith(PROVENANCE_PREFIX)


def read_provenance(path) -> str | None:
    """The record of how clconv made ``path`` (see :class:`SaveOptions`), or None: another
    program's file, an output written with ``--strip``, or a file that cannot be read."""
    spath = os.fsdecode(os.fspath(path))
    try:
        with PILImage.open(spath) as im:
            if im.format == "JPEG":
                found = [data for kind, data in im.applist if kind == "COM" and _is_provenance(data)]
            elif im.format == "PNG":
                found = [im.info.get("Software")]
            elif im.format == "TIFF":
                found = [im.tag_v2.get(305)]
            else:
                found = []
    except Exception:  # noqa: BLE001 - unreadable: no record
        return None
    for value in found:
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8", "replace")
        if _is_provenance(value):
            return value.rstrip("\x00")
    return None


def _carried_meta(im, fmt: str) -> dict:
    """What a Pillow image holds beyond pixels, ICC and DPI, for the output: ``exif`` (bare TIFF
    structure, as read: the orientation is reset when written), ``xmp`` (bytes), ``comment``
    (bytes: JPEG COM, GIF comment, PNG "Comment", TIFF ImageDescription), ``text`` (other PNG
    text chunks), ``jpeg_quality`` / ``jpeg_subsampling`` and ``tiff_compression``. Damaged
    metadata is left out, never fatal."""
    meta: dict = {}
    info = im.info
    try:
        if fmt == "TIFF":
            exif = _exif_of_tiff(im)
        else:
            exif = _exif_body(info.get("exif"))
            if exif is None and "Raw profile type exif" in info:  # ImageMagick's PNG text form
                exif = _exif_body(im.getexif().tobytes())
        if exif:
            meta["exif"] = exif
    except Exception:  # noqa: BLE001 - damaged EXIF: not carried (the orientation was read apart)
        pass
    xmp = info.get("xmp")
    if fmt == "TIFF" and not xmp:
        xmp = getattr(im, "tag_v2", {}).get(700)
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if isinstance(xmp, (bytes, bytearray)) and xmp:
        meta["xmp"] = bytes(xmp)
    comment = None
    if fmt == "JPEG":  # the first comment that is not a clconv record
        comments = [data for kind, data in getattr(im, "applist", []) if kind == "COM"]
        comment = next((c for c in comments if not _is_provenance(c)), None)
    elif fmt == "GIF":
        comment = info.get("comment")
    elif fmt == "TIFF":
        comment = getattr(im, "tag_v2", {}).get(270)
    elif fmt == "PNG":
        try:
            text = dict(getattr(im, "text", {}) or {})
        except Exception:  # noqa: BLE001 - damaged text chunks: not carried
            text = {}
        comment = text.pop("Comment", None)
        if _is_provenance(text.get("Software")):  # how that file was made, not this one
            del text["Software"]
        text = {str(k): str(v) for k, v in text.items() if k not in _PNG_PROFILE_KEYS}
        if text:
            meta["text"] = text
    if isinstance(comment, str):
        comment = comment.encode("utf-8")
    if isinstance(comment, (bytes, bytearray)) and comment.strip(b"\x00 \r\n\t"):
        meta["comment"] = bytes(comment)
    if fmt == "JPEG":
        quality = estimate_jpeg_quality(getattr(im, "quantization", None))
        if quality is not None:
            meta["jpeg_quality"] = quality
        try:
            from PIL import JpegImagePlugin

            sampling = JpegImagePlugin.get_sampling(im)
        except Exception:  # noqa: BLE001
            sampling = -1
        if sampling in (0, 1, 2):
            meta["jpeg_subsampling"] = sampling
    if fmt == "TIFF" and isinstance(info.get("compression"), str):
        meta["tiff_compression"] = info["compression"]
    return meta


def _exif_for_output(exif, width: int, height: int) -> bytes | None:
    """``exif`` (bare TIFF structure) with the Orientation reset to 1 in IFD0 and IFD1 (the
    pixels are already oriented) and PixelXDimension/PixelYDimension set to the output's size,
    patched in place so that everything else (maker notes, thumbnail) stays byte for byte.
    None when it cannot be walked: an EXIF whose orientation cannot be reset is not written."""
    if not exif or exif[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    b = bytearray(exif)
    bo = "<" if b[:2] == b"II" else ">"
    size = {3: ("H", 2), 4: ("I", 4)}

    def entries(offset):
        (n,) = struct.unpack_from(bo + "H", b, offset)
        if offset + 2 + 12 * n + 4 > len(b):
            raise ValueError("IFD beyond the end")
        for i in range(n):
            at = offset + 2 + 12 * i
            tag, typ, count = struct.unpack_from(bo + "HHI", b, at)
            yield at + 8, tag, typ, count
        return

    def next_ifd(offset):
        (n,) = struct.unpack_from(bo + "H", b, offset)
        return struct.unpack_from(bo + "I", b, offset + 2 + 12 * n)[0]

    try:
        (ifd0,) = struct.unpack_from(bo + "I", b, 4)
        sub = None
        for ifd in (ifd0, next_ifd(ifd0)):
            if not ifd or ifd >= len(b):
                continue
            for at, tag, typ, count in entries(ifd):
                if tag == 0x0112:
                    if typ != 3 or count != 1:
                        return None
                    struct.pack_into(bo + "H", b, at, 1)
                elif tag == 0x8769 and ifd == ifd0 and typ in (4, 13) and count == 1:
                    (sub,) = struct.unpack_from(bo + "I", b, at)
        if sub and sub < len(b):
            for at, tag, typ, count in entries(sub):
                if tag in (0xA002, 0xA003) and typ in size and count == 1:
                    value = width if tag == 0xA002 else height
                    if typ == 3 and value > 0xFFFF:
                        struct.pack_into(bo + "HI", b, at - 6, 4, 1)  # widen to LONG
                        struct.pack_into(bo + "I", b, at, value)
                    else:
                        struct.pack_into(bo + size[typ][0], b, at, value)
    except (struct.error, ValueError):
        return None
    return bytes(b)


def _tiff_add_tags(data: bytes, exif: bytes | None, xmp: bytes | None, comment: bytes | None,
                   software: bytes | None = None) -> bytes:
    """A TIFF file (classic, as Pillow and _write_tiff write it) with EXIF's first-IFD tags, its
    EXIF and GPS sub-IFDs, the XMP packet (tag 700), the comment (ImageDescription) and
    ``software`` (the Software tag: clconv's provenance) added to
    the first IFD: Pillow serialises them at the end of the file, and a new first IFD, the old
    entries with the new ones, follows them (libtiff cannot write the sub-IFDs when it
    compresses). Tags the file already has win."""
    bo = "<" if data[:2] == b"II" else ">"
    magic, ifd0 = struct.unpack_from(bo + "HI", data, 2)
    if magic != 42:
        return data  # BigTIFF: not extended
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


def _png_text_chunk(key: str, value: bytes | str) -> tuple[bytes, bytes]:
    """tEXt when the text is Latin-1 (bytes that are not UTF-8 are taken as Latin-1), else iTXt."""
    keyword = key.encode("latin-1", "replace")[:79]
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            value = value.decode("latin-1")
    value = value.replace("\x00", "")
    try:
        return b"tEXt", keyword + b"\x00" + value.encode("latin-1")
    except UnicodeEncodeError:
        return b"iTXt", keyword + b"\x00\x00\x00\x00\x00" + value.encode("utf-8")


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
# libjpeg holds every coefficient (2 bytes a sample) to optimise Huffman tables: up to 16 MiB of
# them (an 8-bit RGB image of 2.8 megapixels), which keeps a filtered image's peak memory within
# input + output + 16 MiB (tests/test_memory_peak.py); larger JPEGs are about 6% larger instead.
JPEG_OPTIMIZE_BYTES = 16 << 20


# --------------------------------------------------------------------------
# gray


def _rgb_to_l(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma with Pillow's fixed-point rounding (exact for 8-bit)."""
    if rgb.dtype == np.float32:
        r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
        return (0.299 * r + 0.587 * g + 0.114 * b).astype(np.float32)
    c = rgb.astype(np.uint64)
    y = (c[..., 0] * 19595 + c[..., 1] * 38470 + c[..., 2] * 7471 + 0x8000) >> 16
    return y.astype(rgb.dtype)


def _cmyk_to_rgb(cmyk: np.ndarray) -> np.ndarray:
    """Pillow's naive CMYK -> RGB (exact for 8-bit), at any depth."""
    if cmyk.dtype == np.float32:
        k = cmyk[..., 3:]
        return ((1 - cmyk[..., :3]) * (1 - k)).astype(np.float32)
    top = int(_max_value(cmyk.dtype))
    if cmyk.dtype == np.uint8:
        c = cmyk.astype(np.int64)
        nk = 255 - c[..., 3:]
        t = c[..., :3] * nk + 128
        return np.clip(nk - (((t >> 8) + t) >> 8), 0, 255).astype(np.uint8)
    c = cmyk.astype(np.float64)
    nk = top - c[..., 3:]
    return np.clip(np.rint(nk - c[..., :3] * nk / top), 0, top).astype(cmyk.dtype)


def to_gray(img: Image) -> Image:
    """Luminance (ITU-R 601-2, as Pillow's ``convert("L")``), keeping alpha."""
    if img.color == "L":
        return img
    a = img.pixels
    n = 4 if img.color == "CMYK" else 3
    col = a[..., :n]
    if img.color == "CMYK":
        col = _cmyk_to_rgb(col)
    y = _rgb_to_l(col)[..., None]
    if img.has_alpha:
        y = np.concatenate([y, a[..., -1:]], axis=2)
    meta = dict(img.meta)
    return Image(pixels=np.ascontiguousarray(y), has_alpha=img.has_alpha, color="L", meta=meta, path=img.path)


# --------------------------------------------------------------------------
# output formats


@dataclass(frozen=True)
class _Fmt:
    name: str
    alpha: bool  # can hold an alpha channel
    cmyk: bool  # can hold CMYK
    gray: bool  # can hold gray (else gray is written as RGB, losslessly)
    u16: str  # "none", "gray" (16-bit gray only) or "all"
    icc: bool = False
    dpi: bool = False
    options: tuple = ()
    exif: bool = False  # carries EXIF
    xmp: bool = False  # carries an XMP packet
    comment: bool = False  # carries a comment (PNG: and other text chunks)
    quality: bool = False  # lossy: --quality applies
    compression: bool = False  # --compression applies


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

_FORMATS = {
    "PNG": _Fmt("PNG", alpha=True, cmyk=False, gray=True, u16="all", icc=True, dpi=True,
                options=(("compress_level", PNG_COMPRESS_LEVEL),), exif=True, xmp=True, comment=True),
    "JPEG": _Fmt("JPEG", alpha=False, cmyk=True, gray=True, u16="none", icc=True, dpi=True, exif=True, xmp=True,
                 comment=True, quality=True),
    "TIFF": _Fmt("TIFF", alpha=True, cmyk=True, gray=True, u16="all", icc=True, dpi=True, exif=True, xmp=True,
                 comment=True, compression=True),
    "WEBP": _Fmt("WEBP", alpha=True, cmyk=False, gray=False, u16="none", icc=True, exif=True, xmp=True, quality=True),
    "BMP": _Fmt("BMP", alpha=False, cmyk=False, gray=True, u16="none", dpi=True),
    "GIF": _Fmt("GIF", alpha=False, cmyk=False, gray=True, u16="none", comment=True),
    "PPM": _Fmt("PPM", alpha=False, cmyk=False, gray=True, u16="gray"),
    "TGA": _Fmt("TGA", alpha=True, cmyk=False, gray=True, u16="none"),
    "QOI": _Fmt("QOI", alpha=True, cmyk=False, gray=False, u16="none"),
    "JPEG2000": _Fmt("JPEG2000", alpha=True, cmyk=True, gray=True, u16="gray"),
    "AVIF": _Fmt("AVIF", alpha=True, cmyk=False, gray=False, u16="none", icc=True, exif=True, xmp=True, quality=True),
}

_EXTENSIONS = {
    ".png": "PNG",
    ".apng": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".jfif": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".dib": "BMP",
    ".gif": "GIF",
    ".ppm": "PPM",
    ".pgm": "PPM",
    ".pnm": "PPM",
    ".tga": "TGA",
    ".qoi": "QOI",
    ".jp2": "JPEG2000",
    ".j2k": "JPEG2000",
    ".j2c": "JPEG2000",
    ".jpc": "JPEG2000",
    ".jpf": "JPEG2000",
    ".jpx": "JPEG2000",
    ".avif": "AVIF",
    ".npy": "NPY",
}
_FEATURES = {"WEBP": "webp", "JPEG2000": "jpg_2000", "AVIF": "avif"}
_FLOAT_EXTENSIONS = (".tif", ".tiff", ".npy")
_USE = "use .png, .jpg, .tif, ..."


def _available(feature: str) -> bool:
    with _WARN_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # older Pillow warns about feature names it does not know
        try:
            return bool(features.check(feature))
        except Exception:  # noqa: BLE001
            return False


# Pillow identifies these but decodes them only with a handler installed (or on Windows: WMF)
_PILLOW_STUBS = frozenset({"BUFR", "GRIB", "HDF5", "MPEG", "WMF"})


def formats_table() -> list[dict]:
    """What clconv writes, per output format (from _FORMATS and _EXTENSIONS), then what it reads:
    one dict per format with ``name``, ``extensions``, ``read``, ``write`` (False where this
    Pillow build lacks the codec), ``samples`` (the sample types written), ``alpha``, ``cmyk``,
    ``options`` (the apply/batch options that apply) and ``metadata`` (what is carried)."""
    PILImage.init()
    readable = set(PILImage.OPEN)
    by_name: dict = {}
    for ext, name in _EXTENSIONS.items():
        by_name.setdefault(name, []).append(ext)
    rows = []
    for name, exts in by_name.items():
        if name == "NPY":
            rows.append({"name": name, "extensions": exts, "read": True, "write": True,
                         "samples": ["uint8", "uint16", "float32"], "alpha": True, "cmyk": False,
                         "options": [], "metadata": []})
            continue
        fmt = _FORMATS[name]
        samples = ["8-bit"]
        if fmt.u16 == "all":
            samples.append("16-bit")
        elif fmt.u16 == "gray":
            samples.append("16-bit gray")
        if name == "TIFF":
            samples.append("float32")
        feature = _FEATURES.get(name)
        metadata = [label for flag, label in ((fmt.icc, "ICC"), (fmt.dpi, "DPI"), (fmt.exif, "EXIF"),
                                              (fmt.xmp, "XMP"), (fmt.comment, "comment")) if flag]
        if name == "PNG":
            metadata.append("text")
        options = (["--quality"] if fmt.quality else []) + (["--compression"] if fmt.compression else [])
        extra = [".pgm: gray only"] if name == "PPM" else []
        rows.append({"name": name, "extensions": exts, "read": name in readable,
                     "write": not feature or _available(feature), "samples": samples + extra,
                     "alpha": fmt.alpha, "cmyk": fmt.cmyk, "options": options, "metadata": metadata})
    written = set(by_name)
    for name in sorted(readable - written - _PILLOW_STUBS):
        exts = sorted(e for e, n in PILImage.registered_extensions().items() if n == name)
        if exts and all(e in _EXTENSIONS for e in exts):
            continue  # another name for a written format (DIB: BMP)
        rows.append({"name": name, "extensions": exts, "read": True, "write": False, "samples": [],
                     "alpha": None, "cmyk": None, "options": [], "metadata": []})
    return rows


def output_format(path) -> str:
    """The format name ('PNG', 'JPEG', 'TIFF', ..., 'NPY') an output path's extension selects."""
    spath = os.fsdecode(os.fspath(path))
    ext = os.path.splitext(spath)[1].lower()
    if not ext:
        raise OutputError(spath, f"unknown output format (no extension; {_USE})")
    name = _EXTENSIONS.get(ext)
    if name is None:
        raise OutputError(spath, f"unknown output format '{ext}' ({_USE})")
    feature = _FEATURES.get(name)
    if feature and not _available(feature):
        raise OutputError(spath, f"output format '{ext}' is not available in this Pillow build ({_USE})")
    return name


QUALITY_FORMATS = ("JPEG", "WEBP", "AVIF")  # the lossy outputs --quality sets
COMPRESSION_FORMATS = ("TIFF",)              # the outputs --compression sets


def ignored_options(path, options: "SaveOptions | None") -> list[str]:
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


def check_output(path, *, float_output: bool) -> None:
    """Refuse an output path whose format clconv cannot write, before any work is done."""
    spath = os.fsdecode(os.fspath(path))
    output_format(spath)
    if float_output and os.path.splitext(spath)[1].lower() not in _FLOAT_EXTENSIONS:
        raise OutputError(spath, "float output needs .tif/.tiff or .npy")


# --------------------------------------------------------------------------
# save


def _icc_space(icc: bytes) -> bytes | None:
    return bytes(icc[16:20]) if icc and len(icc) >= 20 else None


def _composite_white(a: np.ndarray) -> np.ndarray:
    top = _max_value(a.dtype)
    col = a[..., :-1].astype(np.float64)
    alpha = a[..., -1:].astype(np.float64) / top
    out = col * alpha + top * (1.0 - alpha)
    if a.dtype == np.float32:
        return out.astype(np.float32)
    return np.clip(np.rint(out), 0, top).astype(a.dtype)


def _to_8bit(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)


def save(path, pixels: np.ndarray, *, has_alpha: bool, color: str, meta: dict | None = None,
         options: SaveOptions | None = None, reuse: bool = False) -> None:
    """Write ``pixels`` (HxW or HxWxC; uint8, uint16 or float32) to ``path``, atomically.

    The format follows the extension; what it cannot hold is converted with a
    warning.  Raises :class:`OutputError` for an unknown or unsuitable format
    and for any failure to write (nothing is left behind). ``meta`` (an input's
    :attr:`Image.meta`) is carried where the format holds it; ``options``: see :class:`SaveOptions`.
    ``reuse``: the caller gives ``pixels`` up, and they may be overwritten while they are encoded
    (an :func:`output_array`'s room is then used instead of a copy: less memory).
    """
    spath = os.fsdecode(os.fspath(path))
    write_atomically(spath, writer(spath, pixels, has_alpha=has_alpha, color=color, meta=meta, options=options,
                                   reuse=reuse))


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
    if not (c == 3 and a.dtype == np.uint8 and a.flags.c_contiguous and isinstance(base, np.ndarray)
            and base.ndim == 1 and base.dtype == np.uint8 and base.flags.owndata and base.flags.writeable
            and base.size >= 4 * n and a.ctypes.data == base.ctypes.data):
        return None
    flat = base[: 4 * n]
    src, dst = flat[: 3 * n].reshape(n, 3), flat.reshape(n, 4)
    step = max(1, _BAND_BYTES // 4)
    for p1 in range(n, 0, -step):  # from the end: a band's RGBX lands at or after its RGB, never
        p0 = max(0, p1 - step)     # on the RGB of the pixels before it
        dst[p0:p1, :3] = src[p0:p1].copy()
    return dst.reshape(h, w, 4)


def writer(path, pixels: np.ndarray, *, has_alpha: bool, color: str, meta: dict | None = None,
           options: SaveOptions | None = None, reuse: bool = False):
    """Check and convert ``pixels`` for ``path``'s format (warning as :func:`save` does); return
    ``write(fileobj)``, which encodes them. ``save`` is this plus an atomic write (``reuse``:
    see there)."""
    spath = os.fsdecode(os.fspath(path))
    meta = meta or {}
    options = options or SaveOptions()
    fmt_name = output_format(spath)
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
    a = a.astype(a.dtype.newbyteorder("="), copy=False)

    if fmt_name == "NPY":
        out = np.ascontiguousarray(a[:, :, 0] if a.shape[2] == 1 else a)
        return lambda fo: np.save(fo, out, allow_pickle=False)

    fmt = _FORMATS[fmt_name]
    ext = os.path.splitext(spath)[1].lower()
    if a.dtype == np.float32 and ext not in (".tif", ".tiff"):
        raise OutputError(spath, "float output needs .tif/.tiff or .npy")

    def note(msg: str) -> None:
        warn(f"{spath}: {msg}")

    # .pgm: gray only (ImageMagick converts the same way)
    if ext == ".pgm" and color != "L":
        col = a[..., : (4 if color == "CMYK" else 3)]
        y = _rgb_to_l(_cmyk_to_rgb(col) if color == "CMYK" else col)[..., None]
        a = np.concatenate([y, a[..., -1:]], axis=2) if has_alpha else np.ascontiguousarray(y)
        note(f"PGM holds gray only; {color} converted to luminance (ITU-R 601-2)")
        color = "L"
    # depth
    if a.dtype == np.uint16 and not (fmt.u16 == "all" or (fmt.u16 == "gray" and color == "L")):
        note(f"{fmt_name} holds 8 bits per channel; 16-bit values scaled to 8-bit")
        a = _to_8bit(a)
    # alpha
    if has_alpha and not fmt.alpha:
        note(f"{fmt_name} cannot hold alpha; composited over white")
        a = _composite_white(a)
        has_alpha = False
    # CMYK
    if color == "CMYK" and not fmt.cmyk:
        note(f"{fmt_name} cannot hold CMYK; converted to RGB")
        a = _cmyk_to_rgb(a)
        color = "RGB"
    # gray written as RGB where the format has no gray (lossless, no warning)
    if color == "L" and not fmt.gray:
        col = np.repeat(a[..., :1], 3, axis=2)
        a = np.concatenate([col, a[..., 1:]], axis=2) if has_alpha else col
        color = "RGB"
    if fmt_name == "GIF" and color != "L":
        note("GIF holds at most 256 colours; colours quantized")

    icc = meta.get("icc_profile") if fmt.icc else None
    if icc:
        want = {"L": b"GRAY", "RGB": b"RGB ", "CMYK": b"CMYK"}[color]
        if _icc_space(icc) != want:
            space = (_icc_space(icc) or b"?").decode("latin-1").strip()
            note(f"{space} ICC profile dropped: it does not fit the {color} output")
            icc = None
    dpi = meta.get("dpi") if fmt.dpi else None
    if dpi is not None:
        try:
            dpi = (float(dpi[0]), float(dpi[1]))
            if not (dpi[0] > 0 and dpi[1] > 0):
                dpi = None
        except (TypeError, ValueError, IndexError):
            dpi = None

    # EXIF, XMP, comments (not with --strip)
    keep = not options.strip
    exif = meta.get("exif") if keep and fmt.exif else None
    if exif:
        exif = _exif_for_output(exif, a.shape[1], a.shape[0])
        if exif is None:
            note("EXIF dropped: its orientation could not be reset (damaged EXIF)")
    xmp = meta.get("xmp") if keep and fmt.xmp else None
    comment = meta.get("comment") if keep and fmt.comment else None
    text = meta.get("text") if keep and fmt_name == "PNG" else None
    record = options.provenance.encode("utf-8")[:65533] if keep and options.provenance else None
    if record and fmt_name == "PNG":
        text = {**(text or {}), "Software": record.decode("utf-8", "replace")}
    if fmt_name == "JPEG":  # one APP1 / COM segment each: at most 64 KiB
        if exif and len(exif) + len(_EXIF_PREFIX) > 65533:
            note(f"EXIF dropped: {len(exif)} bytes do not fit a JPEG segment (64 KiB)")
            exif = None
        if xmp and len(xmp) + 29 > 65533:
            note(f"XMP dropped: {len(xmp)} bytes do not fit a JPEG segment (64 KiB; extended XMP is not written)")
            xmp = None
        if comment and len(comment) > 65533:
            comment = comment[:65533]

    # quality / compression
    quality = None
    if fmt.quality:
        quality = options.quality or meta.get("jpeg_quality") or DEFAULT_QUALITY[fmt_name]
    compression = None
    if fmt_name == "TIFF":
        if options.compression is not None:
            compression = TIFF_COMPRESSIONS[options.compression]
        else:
            compression = _TIFF_KEPT_COMPRESSION.get(meta.get("tiff_compression") or "")

    c = a.shape[2]
    own = (a.dtype == np.uint16 and c > 1) or (a.dtype == np.float32 and c > 1)
    png_chunks = _png_meta_chunks(exif, xmp, comment, text) if fmt_name == "PNG" else []
    if own and fmt_name == "PNG":
        if color == "CMYK":  # pragma: no cover - CMYK is converted above
            raise AssertionError
        return lambda fo: _write_png16(fo, a, icc, dpi, png_chunks)
    if fmt_name == "PNG" and a.dtype == np.uint8 and color != "CMYK" and a.nbytes >= PNG_OWN_MIN_BYTES:
        rows = np.ascontiguousarray(a).reshape(a.shape[0], -1)
        if _png_rle_pays(rows, c):
            return lambda fo: _write_png8(fo, rows, c, icc, dpi, png_chunks)

    def tiff_tags(encode):
        """``encode(fileobj)`` for a TIFF, then EXIF, XMP and the comment added (see _tiff_add_tags)."""
        if not (exif or xmp or comment or record):
            return encode

        def write_tagged(fo) -> None:
            import io

            buf = io.BytesIO()
            encode(buf)
            try:
                data = _tiff_add_tags(buf.getvalue(), exif, xmp, comment, record)
            except Exception as e:  # noqa: BLE001 - metadata never costs the image
                note(f"EXIF/XMP not written ({_exc_text(e)})")
                data = buf.getvalue()
            fo.write(data)

        return write_tagged

    if own and fmt_name == "TIFF":
        if a.nbytes + (len(icc) if icc else 0) + 65536 >= 2**32:
            raise OutputError(spath, "image too large for TIFF (over 4 GiB; use .npy)")
        deflate = compression is not None
        if compression not in (None, "tiff_adobe_deflate"):
            name = {v: k for k, v in TIFF_COMPRESSIONS.items()}.get(compression, compression)
            note(f"{a.dtype.itemsize * 8}-bit {color} TIFF written with deflate compression, not {name} "
                 "(clconv's own TIFF writer)")
        return tiff_tags(lambda fo: _write_tiff(fo, a, color, has_alpha, icc, dpi, deflate))

    rgbx = _rgbx_in_place(a) if reuse and fmt_name == "JPEG" and a is pixels else None
    if rgbx is not None:  # Pillow maps RGBX (zero-copy) and writes it as RGB: the same file
        im = PILImage.frombuffer("RGBX", (a.shape[1], a.shape[0]), rgbx, "raw", "RGBX", 0, 1)
    else:
        im = _to_pil(a, color, has_alpha)
    del a, rgbx
    kwargs = dict(fmt.options)
    if icc:
        kwargs["icc_profile"] = icc
    if dpi:
        kwargs["dpi"] = dpi
    if fmt_name == "JPEG2000" and ext in (".j2k", ".j2c", ".jpc"):
        kwargs["no_jp2"] = True
    if quality is not None:
        kwargs["quality"] = int(quality)
    if fmt_name == "JPEG":
        if im.mode in ("RGB", "RGBX", "CMYK"):
            # the input's chroma subsampling; else ImageMagick's rule: 4:4:4 from quality 90, else 4:2:0
            sampling = meta.get("jpeg_subsampling")
            kwargs["subsampling"] = sampling if sampling in (0, 1, 2) else (0 if quality >= 90 else 2)
        # optimised Huffman tables, as ImageMagick writes them: about 6% smaller, same pixels; libjpeg
        # then holds every coefficient (2 bytes a sample), so only up to JPEG_OPTIMIZE_BYTES of them
        kwargs["optimize"] = im.size[0] * im.size[1] * c * 2 <= JPEG_OPTIMIZE_BYTES
        if exif:
            kwargs["exif"] = _EXIF_PREFIX + exif
        if xmp:
            kwargs["xmp"] = bytes(xmp)
        if comment:
            kwargs["comment"] = bytes(comment)
        if record:  # a COM segment of its own, after the carried comment's
            kwargs["extra"] = b"\xff\xfe" + struct.pack(">H", len(record) + 2) + record
    elif fmt_name in ("WEBP", "AVIF"):
        if exif:
            kwargs["exif"] = _EXIF_PREFIX + exif
        if xmp:
            kwargs["xmp"] = bytes(xmp)
    elif fmt_name == "PNG" and png_chunks:
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        for kind, data in png_chunks:
            if kind == b"eXIf":
                kwargs["exif"] = data  # Pillow writes no public chunk of a PngInfo but text
            else:
                info.add(kind, data)
        kwargs["pnginfo"] = info
    elif fmt_name == "GIF" and comment:
        kwargs["comment"] = bytes(comment)[:65535]
    elif fmt_name == "TIFF" and compression:
        kwargs["compression"] = compression

    def write(fo) -> None:
        with _Relay(spath):
            try:
                im.save(fo, format=fmt_name, **kwargs)
            except (ValueError, KeyError, TypeError) as e:
                raise OutputError(spath, f"cannot write as {fmt_name}: {_exc_text(e)}") from e

    return tiff_tags(write) if fmt_name == "TIFF" else write


def _to_pil(a: np.ndarray, color: str, has_alpha: bool) -> PILImage.Image:
    h, w, c = a.shape
    if a.dtype == np.float32:
        return PILImage.frombytes("F", (w, h), np.ascontiguousarray(a[:, :, 0]).tobytes())
    if a.dtype == np.uint16:
        return PILImage.frombytes("I;16", (w, h), np.ascontiguousarray(a[:, :, 0]).astype("<u2").tobytes())
    mode = {("L", False): "L", ("L", True): "LA", ("RGB", False): "RGB", ("RGB", True): "RGBA", ("CMYK", False): "CMYK"}[
        (color, has_alpha)
    ]
    # the array itself, never a bytes copy of it: L, RGBA and CMYK are mapped (zero-copy, a
    # read-only image keeping ``a`` alive), the others decoded from it into Pillow's layout
    return PILImage.frombuffer(mode, (w, h), np.ascontiguousarray(a), "raw", mode, 0, 1)


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
            raw = np.ascontiguousarray(a[y0: y0 + rows_per_block].astype(">u2")).view(np.uint8).reshape(-1, w * bpp)
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
    sample = _png_average(rows[y0: y0 + band], bpp, rows[y0 - 1] if y0 else None)
    sizes = []
    for strategy in (zlib.Z_RLE, zlib.Z_DEFAULT_STRATEGY):
        comp = zlib.compressobj(PNG_COMPRESS_LEVEL, zlib.DEFLATED, 15, 9, strategy)
        sizes.append(len(comp.compress(sample)) + len(comp.flush()))
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
        block = _png_average(rows[b0: min(b0 + step, y1)], channels, rows[b0 - 1] if b0 else None)
        adler = zlib.adler32(block, adler)
        length += block.nbytes
        pieces.append(comp.compress(block))
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


# --------------------------------------------------------------------------
# atomic write


