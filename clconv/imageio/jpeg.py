"""JPEG: a JPEG input's quality (estimated from its quantisation tables, as ImageMagick does) and
chroma subsampling, and how a JPEG output is encoded (Pillow's save options)."""

from __future__ import annotations

import struct

import numpy as np

# The IJG (libjpeg) example tables (ITU T.81 Annex K), in natural (row-major) order, as
# Pillow's ``quantization`` gives them; libjpeg scales them by quality (jpeg_quality_scaling).
_IJG_LUMA = (
    16,
    11,
    10,
    16,
    24,
    40,
    51,
    61,
    12,
    12,
    14,
    19,
    26,
    58,
    60,
    55,
    14,
    13,
    16,
    24,
    40,
    57,
    69,
    56,
    14,
    17,
    22,
    29,
    51,
    87,
    80,
    62,
    18,
    22,
    37,
    56,
    68,
    109,
    103,
    77,
    24,
    35,
    55,
    64,
    81,
    104,
    113,
    92,
    49,
    64,
    78,
    87,
    103,
    121,
    120,
    101,
    72,
    92,
    95,
    98,
    112,
    100,
    103,
    99,
)
_IJG_CHROMA = (
    17,
    18,
    24,
    47,
    99,
    99,
    99,
    99,
    18,
    21,
    26,
    66,
    99,
    99,
    99,
    99,
    24,
    26,
    56,
    99,
    99,
    99,
    99,
    99,
    47,
    66,
    99,
    99,
    99,
    99,
    99,
    99,
    *([99] * 32),
)

# libjpeg holds every coefficient (2 bytes a sample) to optimise Huffman tables: up to 16 MiB of
# them (an 8-bit RGB image of 2.8 megapixels), which keeps a filtered image's peak memory within
# input + output + 16 MiB (tests/test_memory_peak.py); larger JPEGs are about 6% larger instead.
JPEG_OPTIMIZE_BYTES = 16 << 20


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


def _jpeg_input_settings(im) -> dict:
    """A JPEG input's ``jpeg_quality`` (estimated) and ``jpeg_subsampling``, where known."""
    meta: dict = {}
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
    return meta


def _jpeg_kwargs(im, channels: int, quality: int, meta: dict, comment, record) -> dict:
    """Pillow's JPEG save options beyond quality, ICC, DPI, EXIF and XMP: subsampling, Huffman
    optimisation, the carried comment and ``record`` (the provenance) in a COM segment of its own."""
    kwargs: dict = {}
    if im.mode in ("RGB", "RGBX", "CMYK"):
        # the input's chroma subsampling; else ImageMagick's rule: 4:4:4 from quality 90, else 4:2:0
        sampling = meta.get("jpeg_subsampling")
        kwargs["subsampling"] = sampling if sampling in (0, 1, 2) else (0 if quality >= 90 else 2)
    # optimised Huffman tables, as ImageMagick writes them: about 6% smaller, same pixels; libjpeg
    # then holds every coefficient (2 bytes a sample), so only up to JPEG_OPTIMIZE_BYTES of them
    kwargs["optimize"] = im.size[0] * im.size[1] * channels * 2 <= JPEG_OPTIMIZE_BYTES
    if comment:
        kwargs["comment"] = bytes(comment)
    if record:  # a COM segment of its own, after the carried comment's
        kwargs["extra"] = b"\xff\xfe" + struct.pack(">H", len(record) + 2) + record
    return kwargs
