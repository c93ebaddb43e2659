"""Loading images: ``.npy`` (no pickle) by numpy, every other format by Pillow, and the TIFFs
Pillow cannot open by tifffile (:mod:`clconv.imageio.tiff`). The declared size is checked
against ``max_pixels`` before anything is decoded, damaged data is refused, EXIF orientation is
applied to the pixels."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from clconv.errors import ImageError, warn
from clconv.imageio.common import _exc_text, _hwc, _os_cause, _Relay, _too_large
from clconv.imageio.image import Image, _orient, to_gray
from clconv.imageio.meta import _meta_of
from clconv.imageio.pixels import _decode_target, _decoded_pixels, _pixels_of, _release_freed_heap
from clconv.imageio.tiff import _load_tiff_fallback
from clconv.params import DEFAULT_MAX_PIXELS

_NPY_MAGIC = b"\x93NUMPY"
_MAGICS = [
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF: tifffile reads it
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),
]


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
                pixels=pixels, has_alpha=c in (2, 4), color="L" if c <= 2 else "RGB", meta={"format": "NPY"}, path=spath
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
    from clconv.npyheader import read_npy_header

    try:
        shape, dtype = read_npy_header(f)
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
    im, frames, tiles, decoded = _decode(path, f, im)
    if frames > 1:
        warn(f"{path}: {frames} frames; only the first is filtered")

    pixels, has_alpha, color = _pixels_of(path, im, f, tiles, decoded)
    del decoded
    orientation = _orientation_of(im)
    meta = _meta_of(im, fmt, orientation)
    del im  # Pillow's decoded image (4 bytes a pixel for RGB) goes before the orientation's copy
    _release_freed_heap()  # the decoder's working rows (about 5 MB for a 6000x4000 JPEG)
    if orientation != 1:
        pixels = _orient(pixels, orientation)
    return Image(pixels=pixels, has_alpha=has_alpha, color=color, meta=meta, path=path)


def _decode(path: str, f, im) -> tuple:
    """Decode the first frame of ``im`` (opened, not loaded): (the image, its number of frames,
    its tiles as opened, the pixels where :func:`_decode_target` had Pillow decode them or
    None). ImageError for damaged data."""
    try:
        if im.format == "PNG":
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
        return im, frames, tiles, _decoded_pixels(im, target)
    except MemoryError as e:
        raise ImageError(path, "not enough memory to decode the image") from e
    except Exception as e:  # any decoder failure means damaged data
        raise ImageError(path, f"truncated or damaged image data ({_exc_text(e)})") from e


def _orientation_of(im) -> int:
    try:
        value = im.getexif().get(0x0112)
        value = int(value) if value is not None else 1
    except Exception:  # noqa: BLE001 - corrupt EXIF: nothing to orient by
        return 1
    return value if 1 <= value <= 8 else 1
