"""The decoded image (:class:`Image`) and the colour conversions done on its pixels: gray,
CMYK -> RGB, alpha composited over white, 16 -> 8 bits."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clconv.constants import MAX_VALUE


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
        """Full scale of the pixels' sample type (1.0 for floats)."""
        return _max_value(self.pixels.dtype)

    @property
    def height(self) -> int:
        """Rows of pixels."""
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        """Columns of pixels."""
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        """Channels per pixel, alpha included."""
        return int(self.pixels.shape[2])


def _max_value(dtype) -> float:
    """Full scale of ``dtype`` (clconv.constants.MAX_VALUE): 1.0 for any float type."""
    return MAX_VALUE.get(np.dtype(dtype).name, 1.0)


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
        nk = top - c[..., 3:]
        t = c[..., :3] * nk + 128
        return np.clip(nk - (((t >> 8) + t) >> 8), 0, top).astype(np.uint8)
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


def _composite_white(a: np.ndarray) -> np.ndarray:
    top = _max_value(a.dtype)
    col = a[..., :-1].astype(np.float64)
    alpha = a[..., -1:].astype(np.float64) / top
    out = col * alpha + top * (1.0 - alpha)
    if a.dtype == np.float32:
        return out.astype(np.float32)
    return np.clip(np.rint(out), 0, top).astype(a.dtype)


def _to_8bit(a: np.ndarray) -> np.ndarray:
    """16-bit values scaled to 8 bits: rint(v / 257) (65535 / 255 = 257)."""
    top = MAX_VALUE["uint8"]
    return np.clip(np.rint(a.astype(np.float64) / (MAX_VALUE["uint16"] / top)), 0, top).astype(np.uint8)


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """``a`` turned by an EXIF orientation (2-8; the same transforms as ImageOps.exif_transpose)."""
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
