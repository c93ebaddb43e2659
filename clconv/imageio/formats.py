"""The output formats: what each holds (alpha, CMYK, gray, 16 bits, metadata, options), the
extension that selects it, and the rows of ``clconv formats``."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

from PIL import Image as PILImage
from PIL import features

from clconv.constants import SAMPLE_TYPES
from clconv.errors import OutputError
from clconv.imageio.common import _WARN_LOCK
from clconv.imageio.png import PNG_COMPRESS_LEVEL


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


_FORMATS = {
    "PNG": _Fmt(
        "PNG",
        alpha=True,
        cmyk=False,
        gray=True,
        u16="all",
        icc=True,
        dpi=True,
        options=(("compress_level", PNG_COMPRESS_LEVEL),),
        exif=True,
        xmp=True,
        comment=True,
    ),
    "JPEG": _Fmt(
        "JPEG",
        alpha=False,
        cmyk=True,
        gray=True,
        u16="none",
        icc=True,
        dpi=True,
        exif=True,
        xmp=True,
        comment=True,
        quality=True,
    ),
    "TIFF": _Fmt(
        "TIFF",
        alpha=True,
        cmyk=True,
        gray=True,
        u16="all",
        icc=True,
        dpi=True,
        exif=True,
        xmp=True,
        comment=True,
        compression=True,
    ),
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


def _row(name: str, exts: list, read: bool, write: bool, samples=(), alpha=None, cmyk=None, options=(), metadata=()):
    """One row of :func:`formats_table`."""
    return {"name": name, "extensions": exts, "read": read, "write": write, "samples": list(samples),
            "alpha": alpha, "cmyk": cmyk, "options": list(options), "metadata": list(metadata)}  # fmt: skip


def _written_row(name: str, exts: list, readable: set) -> dict:
    """The row of a format clconv writes, from its _FORMATS entry."""
    fmt = _FORMATS[name]
    samples = ["8-bit"] + {"all": ["16-bit"], "gray": ["16-bit gray"]}.get(fmt.u16, [])
    samples += (["float32"] if name == "TIFF" else []) + ([".pgm: gray only"] if name == "PPM" else [])
    flags = ((fmt.icc, "ICC"), (fmt.dpi, "DPI"), (fmt.exif, "EXIF"), (fmt.xmp, "XMP"), (fmt.comment, "comment"))
    metadata = [label for flag, label in flags if flag] + (["text"] if name == "PNG" else [])
    options = (["--quality"] if fmt.quality else []) + (["--compression"] if fmt.compression else [])
    feature = _FEATURES.get(name)
    return _row(
        name,
        exts,
        name in readable,
        not feature or _available(feature),
        samples,
        fmt.alpha,
        fmt.cmyk,
        options,
        metadata,
    )


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
    rows = [_row(name, exts, True, True, SAMPLE_TYPES, alpha=True, cmyk=False) if name == "NPY"
            else _written_row(name, exts, readable) for name, exts in by_name.items()]  # fmt: skip
    for name in sorted(readable - set(by_name) - _PILLOW_STUBS):
        exts = sorted(e for e, n in PILImage.registered_extensions().items() if n == name)
        if exts and all(e in _EXTENSIONS for e in exts):
            continue  # another name for a written format (DIB: BMP)
        rows.append(_row(name, exts, True, False))
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
COMPRESSION_FORMATS = ("TIFF",)  # the outputs --compression sets


def check_output(path, *, float_output: bool) -> None:
    """Refuse an output path whose format clconv cannot write, before any work is done."""
    spath = os.fsdecode(os.fspath(path))
    output_format(spath)
    if float_output and os.path.splitext(spath)[1].lower() not in _FLOAT_EXTENSIONS:
        raise OutputError(spath, "float output needs .tif/.tiff or .npy")
