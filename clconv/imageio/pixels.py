"""A Pillow image's pixels as an HxWxC numpy array: the mapped decode (Pillow decodes into the
array's own memory), 16-bit colour that Pillow decodes to 8 bits, colour keys as alpha, and
each Pillow mode's conversion (see the package's docstring)."""

from __future__ import annotations

import mmap
import sys
from collections.abc import Callable
from typing import Literal

import numpy as np
from PIL import Image as PILImage

from clconv.constants import MAX_VALUE
from clconv.errors import ImageError, warn
from clconv.imageio.common import _BAND_BYTES, _exc_text, _hwc
from clconv.imageio.image import _max_value


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
# the mapped decode


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
    if (
        mapped is None
        or not tiles
        or any(t[0] not in _MAPPED_CODECS for t in tiles)
        or any(";16" in r or r.startswith("I") for r in rawmodes)
    ):
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


_malloc_trim: Callable[[int], int] | Literal[False] | None = None  # looked up on first use; False where there is none


# --------------------------------------------------------------------------
# 16-bit colour: Pillow decodes it to 8 bits, so the low bytes are decoded a second time


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


def _deep_pixels(path, im, f, tiles) -> tuple[np.ndarray, bool, str] | None:
    """:func:`_sixteen_bit`, its failures as an ImageError naming ``path``."""
    try:
        return _sixteen_bit(path, im, f, tiles)
    except MemoryError as e:
        raise ImageError(path, "not enough memory to decode the image") from e
    except Exception as e:  # any decoder failure means damaged data
        raise ImageError(path, f"truncated or damaged image data ({_exc_text(e)})") from e


# --------------------------------------------------------------------------
# Pillow modes -> (pixels, has_alpha, colour)


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


def _keyed(a: np.ndarray, info: dict, color: str, scale: int = 1) -> tuple[np.ndarray, bool, str]:
    """``a`` (without alpha) with the colour key in ``info`` as its alpha, where it has one that fits."""
    if "transparency" in info:
        keyed = _key_alpha(a, info["transparency"], scale)
        if keyed is not None:
            return keyed, True, color
    return a, False, color


def _has_transparency(im) -> bool:
    flag = getattr(im, "has_transparency_data", None)  # Pillow >= 10.1
    if flag is not None:
        return bool(flag)
    return "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA")


# modes Pillow converts for clconv: mode -> (the mode converted to, has alpha, colour)
_CONVERTED = {
    "La": ("LA", True, "L"),
    "RGBa": ("RGBA", True, "RGB"),
    "PA": ("RGBA", True, "RGB"),
    "RGBX": ("RGB", False, "RGB"),
    "YCbCr": ("RGB", False, "RGB"),
    "HSV": ("RGB", False, "RGB"),
}
# modes taken as they are: mode -> (has alpha, colour)
_AS_THEY_ARE = {"LA": (True, "L"), "RGBA": (True, "RGB"), "CMYK": (False, "CMYK")}


def _pixels_of(path: str, im, f, tiles, decoded: np.ndarray | None = None) -> tuple[np.ndarray, bool, str]:
    """``decoded``: the pixels where :func:`_decode_target` had Pillow decode them (else None)."""
    mode, info = im.mode, im.info
    if mode in ("RGB", "RGBA", "CMYK"):
        deep = _deep_pixels(path, im, f, tiles)
        if deep is not None:
            a, has_alpha, color = deep
            return (a, True, color) if has_alpha else _keyed(a, info, color)
    if mode in ("L", "RGB") or mode in _AS_THEY_ARE:
        a = _array(im) if decoded is None else decoded
        if mode == "L":
            rawmode = _tile_rawmode(tiles[0]) if tiles else None
            return _keyed(a, info, "L", {"L;2": 85, "L;4": 17}.get(rawmode or "", 1))
        if mode == "RGB":
            return _keyed(a, info, "RGB")
        return (a, *_AS_THEY_ARE[mode])
    if mode == "1":
        return _keyed(_array(im.convert("L")), info, "L", int(MAX_VALUE["uint8"]))  # a key of 0 or 1
    if mode == "P":
        if _has_transparency(im):
            return _array(im.convert("RGBA")), True, "RGB"
        return _array(im.convert("RGB")), False, "RGB"
    if mode in _CONVERTED:
        target, has_alpha, color = _CONVERTED[mode]
        return _array(im.convert(target)), has_alpha, color
    if mode.startswith("I;16") or mode == "I":
        return _keyed(_gray16(path, im), info, "L")
    if mode == "F":
        return _hwc(np.asarray(im).astype(np.float32)), False, "L"
    if mode == "LAB":
        raise ImageError(path, "unsupported colour mode LAB (convert it to RGB first)")
    raise ImageError(path, f"unsupported image mode {mode}")


def _gray16(path: str, im) -> np.ndarray:
    """16-bit gray (``I;16*``), or 32-bit integers (``I``) whose values fit 16 bits."""
    a = np.asarray(im)
    if im.mode == "I" and a.size and (int(a.min()) < 0 or int(a.max()) > MAX_VALUE["uint16"]):
        raise ImageError(path, "unsupported 32-bit integer image (values outside 0..65535)")
    return _hwc(a.astype(np.uint16))
