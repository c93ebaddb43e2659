"""TIFF where Pillow falls short, through tifffile: reading what Pillow cannot open (float RGB,
16-bit or float gray+alpha, float64, planar or tiled float layouts, ...) and writing 16-bit and
float32 images of several channels (Pillow writes neither). Pillow reads and writes every other
TIFF (its libtiff has LZW and PackBits, which tifffile writes only with the imagecodecs
package). And, for every TIFF output, the tags tifffile cannot write: the EXIF and GPS
sub-IFDs, with the XMP packet, the comment and the provenance (:func:`_append_tags`).

tifffile is imported where it is used: it takes about 0.1 s to import, which ``apply`` on a
PNG or JPEG does not need to pay."""

from __future__ import annotations

import io
import logging
import struct
import warnings

import numpy as np
from PIL import Image as PILImage

from clconv.errors import ImageError, OutputError, warn
from clconv.imageio.common import _exc_text, _too_large
from clconv.imageio.image import Image, _max_value, _orient
from clconv.imageio.meta import _EXIF_PREFIX, _TIFF_LAYOUT_TAGS, _as_meta, _exif_of_tiff, _oriented_dpi, _tiff_ifd0

# --compression NAME -> Pillow's name (None: uncompressed)
TIFF_COMPRESSIONS = {"none": None, "lzw": "tiff_lzw", "deflate": "tiff_adobe_deflate", "packbits": "packbits"}
# what a TIFF input's compression becomes in a TIFF output: the lossless codecs are kept;
# others (JPEG, fax, WebP in TIFF) are written uncompressed, as before
_TIFF_KEPT_COMPRESSION = {
    "tiff_lzw": "tiff_lzw",
    "tiff_adobe_deflate": "tiff_adobe_deflate",
    "tiff_deflate": "tiff_adobe_deflate",
    "packbits": "packbits",
}
# a TIFF's Compression tag -> Pillow's name for it (as Image.meta["tiff_compression"] holds it)
_COMPRESSION_NAMES = {5: "tiff_lzw", 8: "tiff_adobe_deflate", 32946: "tiff_deflate", 32773: "packbits"}
# the Photometric tags clconv reads -> (colour, colour samples)
_PHOTOMETRIC = {1: ("L", 1), 2: ("RGB", 3), 5: ("CMYK", 4)}


def _output_compression(meta: dict, choice: str | None) -> str | None:
    """Pillow's name of a TIFF output's compression: ``choice`` (a key of TIFF_COMPRESSIONS),
    else the input's lossless compression, else None (uncompressed)."""
    if choice is not None:
        return TIFF_COMPRESSIONS[choice]
    return _TIFF_KEPT_COMPRESSION.get(meta.get("tiff_compression") or "")


# --------------------------------------------------------------------------
# read


class _Unsupported(Exception):
    pass


class _LogAsWarnings(logging.Handler):
    """tifffile's log lines (damaged tags and the like) while a file is read, as Python warnings:
    :class:`clconv.imageio.common._Relay` says them as clconv warnings naming the file, and
    Python's last-resort handler does not print them as they are."""

    def __enter__(self):
        self.setLevel(logging.WARNING)
        logging.getLogger("tifffile").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("tifffile").removeHandler(self)
        return False

    def emit(self, record) -> None:
        warnings.warn(record.getMessage(), stacklevel=2)


def _load_tiff_fallback(path: str, f, max_pixels: int) -> Image:
    """The first page of a TIFF that Pillow cannot open, read by tifffile (the others are
    counted and a warning says that only the first is filtered)."""
    import tifffile

    try:
        f.seek(0)  # tifffile reads from where the file stands
        with _LogAsWarnings(), tifffile.TiffFile(f) as tif:
            return _read_first_page(path, tif, f, max_pixels)
    except ImageError:
        raise
    except _Unsupported as e:
        raise ImageError(path, f"unsupported TIFF layout ({e})") from e
    except MemoryError as e:
        raise ImageError(path, "not enough memory to decode the image") from e
    except Exception as e:  # any decoder failure means damaged data
        raise ImageError(path, f"truncated or damaged image data ({_exc_text(e)})") from e


def _read_first_page(path: str, tif, f, max_pixels: int) -> Image:
    """The first page of ``tif`` (tifffile's TiffFile of ``f``), its size checked before it is decoded."""
    page = tif.pages[0]
    w, h = int(page.imagewidth), int(page.imagelength)
    if not w or not h:
        raise ValueError("no image size")
    reason = _too_large(w, h, max_pixels)
    if reason:
        raise ImageError(path, reason)
    color, base, has_alpha = _layout(page)
    a = _page_pixels(page, base, has_alpha)
    frames = len(tif.pages)
    if frames > 1:
        warn(f"{path}: {frames} frames; only the first is filtered")
    orientation, meta = _page_meta(page, f)
    if orientation != 1:
        a = _orient(a, orientation)
    return Image(pixels=a, has_alpha=has_alpha, color=color, meta=meta, path=path)


def _layout(page) -> tuple[str, int, bool]:
    """(colour, colour samples, has alpha) of a TIFF page clconv can read; _Unsupported else."""
    from tifffile import TIFF

    photometric, samples = int(page.photometric), int(page.samplesperpixel)
    color, base = _PHOTOMETRIC.get(photometric, (None, 0))
    if color is None or samples < base:
        raise _Unsupported(f"photometric {photometric} with {samples} samples")
    if int(page.imagedepth) > 1:
        raise _Unsupported(f"volume of depth {page.imagedepth}")
    dtype = page.dtype
    if dtype is None or (dtype.kind != "f" and dtype not in (np.uint8, np.uint16)):
        raise _Unsupported(f"{page.bitspersample}-bit samples of format {int(page.sampleformat)}")
    for kind, code, codecs in (
        ("compression", page.compression, TIFF.DECOMPRESSORS),
        ("predictor", page.predictor, TIFF.UNPREDICTORS),
    ):
        if code not in codecs:  # LZW, JPEG, the float predictor, ...: those of the imagecodecs package
            name = getattr(code, "name", None)
            raise _Unsupported(
                f"{kind} {name}: tifffile decodes it only with the imagecodecs package"
                if name
                else f"unknown {kind} {code}"
            )
    extras = tuple(page.extrasamples or ())
    has_alpha = samples > base and bool(extras) and int(extras[0]) in (1, 2) and color != "CMYK"
    return color, base, has_alpha


def _page_pixels(page, base: int, has_alpha: bool) -> np.ndarray:
    """The page's pixels as HxWxC (uint8, uint16 or float32): colour, then alpha (unpremultiplied
    where the file holds associated alpha); other extra samples left out."""
    a = page.asarray()
    if page.axes == "SYX":  # planar: one plane a sample
        a = np.moveaxis(a, 0, -1)
    elif page.axes == "YX":
        a = a[:, :, None]
    elif page.axes != "YXS":
        raise _Unsupported(f"axes {page.axes}")
    a = a.astype(np.float32 if a.dtype.kind == "f" else a.dtype.newbyteorder("="), copy=False)
    if has_alpha and int(page.extrasamples[0]) == 1:  # associated alpha: unpremultiply
        top = _max_value(a.dtype)
        alpha = a[..., base : base + 1].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            col = np.where(alpha > 0, a[..., :base] * top / np.where(alpha > 0, alpha, 1), 0)
        if a.dtype != np.float32:
            col = np.clip(np.rint(col), 0, top)
        a = np.concatenate([col.astype(a.dtype), a[..., base : base + 1]], axis=2)
    return np.ascontiguousarray(a[..., : base + (1 if has_alpha else 0)])


def _page_meta(page, f) -> tuple[int, dict]:
    """(EXIF orientation, :attr:`Image.meta`) of a TIFF page: its compression, ICC profile, DPI,
    and EXIF (read by Pillow from the file ``f``), XMP and ImageDescription as carried."""
    tags = page.tags

    def value(code, default=None):
        tag = tags.get(code)
        return default if tag is None else tag.value

    orientation = int(value(274, 1) or 1)
    orientation = orientation if 1 <= orientation <= 8 else 1
    meta: dict = {"format": "TIFF"}
    name = _COMPRESSION_NAMES.get(int(page.compression))
    if name:
        meta["tiff_compression"] = name
    icc = value(34675)
    if icc:
        meta["icc_profile"] = bytes(icc)
    xr, yr, unit = value(282), value(283), value(296, 2)
    if xr and yr and xr[1] and yr[1] and unit in (2, 3):
        k = 2.54 if unit == 3 else 1.0  # 3: per centimetre
        dpi = _oriented_dpi(xr[0] / xr[1] * k, yr[0] / yr[1] * k, orientation)
        if dpi:
            meta["dpi"] = dpi
    try:
        exif = _exif_of_tiff(_tiff_ifd0(f))
    except Exception:  # noqa: BLE001 - damaged EXIF: not carried
        exif = None
    meta.update(_as_meta(exif, value(700), value(270), None))
    return orientation, meta


# --------------------------------------------------------------------------
# write


def _tifffile_writer(spath: str, a: np.ndarray, color: str, has_alpha: bool, icc, dpi, compression, note):
    """``write(fileobj)`` for a 16-bit or float32 TIFF of several channels, by tifffile: with
    deflate where ``compression`` (Pillow's name) asks for any, with a warning where it asks for
    another codec."""
    if a.nbytes + (len(icc) if icc else 0) + 65536 >= 2**32:
        raise OutputError(spath, "image too large for TIFF (over 4 GiB; use .npy)")
    if compression not in (None, "tiff_adobe_deflate"):
        name = {v: k for k, v in TIFF_COMPRESSIONS.items()}.get(compression, compression)
        note(
            f"{a.dtype.itemsize * 8}-bit {color} TIFF written with deflate compression, not {name} "
            "(tifffile writes that only with the imagecodecs package)"
        )
    deflate = compression is not None
    return lambda fo: _write_tiff(fo, a, color, has_alpha, icc, dpi, deflate)


def _write_tiff(fo, a: np.ndarray, color: str, has_alpha: bool, icc, dpi, deflate: bool = False) -> None:
    """Little-endian TIFF of ``a`` (HxWxC) by tifffile: strips of about 1 MiB, uncompressed or
    deflated (Adobe deflate, no predictor), alpha unassociated, and no ImageDescription or
    Software of tifffile's own (the comment and the provenance go there)."""
    import tifffile

    h, w, c = a.shape
    # a name of tifffile's own: it takes the file's, which a file opened from a descriptor lacks
    fh = tifffile.FileHandle(fo, "wb", name="clconv-output.tif")
    tifffile.imwrite(
        fh,
        a,
        byteorder="<",
        photometric={"L": "minisblack", "RGB": "rgb", "CMYK": "separated"}[color],
        planarconfig="contig",
        extrasamples=(2,) if has_alpha else None,
        rowsperstrip=max(1, min(h, (1 << 20) // (w * c * a.dtype.itemsize))),
        compression="adobe_deflate" if deflate else None,
        extratags=[(34675, 7, len(icc), bytes(icc), True)] if icc else None,  # InterColorProfile
        resolution=(dpi[0], dpi[1]) if dpi else None,
        resolutionunit="inch" if dpi else None,
        metadata=None,
        software=False,
    )


def _tagged(encode, exif, xmp, comment, record, note):
    """``encode(fileobj)`` for a TIFF, then EXIF, XMP, the comment and ``record`` (the provenance)
    added by :func:`_append_tags`; ``encode`` itself where there is none of them."""
    if not (exif or xmp or comment or record):
        return encode

    def write_tagged(fo) -> None:
        if not (fo.seekable() and fo.readable()):  # a stream: the file is made in memory first
            buf = io.BytesIO()
            write_tagged(buf)
            fo.write(buf.getvalue())
            return
        start = fo.tell()
        encode(fo)
        try:
            _append_tags(fo, start, exif, xmp, comment, record)
        except OSError:
            raise
        except Exception as e:  # noqa: BLE001 - metadata never costs the image
            note(f"EXIF/XMP not written ({_exc_text(e)})")
        fo.seek(0, io.SEEK_END)

    return write_tagged


def _append_tags(
    fo, start: int, exif: bytes | None, xmp: bytes | None, comment: bytes | None, software: bytes | None = None
) -> None:
    """Add to the TIFF (classic, as Pillow and tifffile write it) in ``fo`` from ``start`` EXIF's
    first-IFD tags, its EXIF and GPS sub-IFDs, the XMP packet (tag 700), the comment
    (ImageDescription) and ``software`` (the Software tag: clconv's provenance): Pillow
    serialises them after the file's end, a new first IFD follows them (the old entries with
    the new ones; tags the file already has win), and the header points at it. Only the header
    and the first IFD are read back, so the pixels are never held in memory. Neither writer can
    do it: libtiff cannot write the sub-IFDs when it compresses, tifffile never."""
    fo.seek(start)
    head = fo.read(8)
    bo = "<" if head[:2] == b"II" else ">"
    magic, ifd0 = struct.unpack_from(bo + "HI", head, 2)
    ex = _exif_with(exif, xmp, comment, software)
    if magic != 42 or not len(ex):
        return  # BigTIFF: not extended
    ex.endian = bo
    length = fo.seek(0, io.SEEK_END) - start
    place = length + (length & 1)
    blob = ex.tobytes(place)[len(_EXIF_PREFIX) + 8 :]
    fo.seek(start + ifd0)
    (n_old,) = struct.unpack(bo + "H", fo.read(2))
    old = fo.read(12 * n_old + 4)
    (n_new,) = struct.unpack_from(bo + "H", blob, 0)
    entries = {}
    for table, first, count in ((blob, 2, n_new), (old, 0, n_old)):
        for i in range(count):
            e = table[first + 12 * i : first + 12 * (i + 1)]
            entries[struct.unpack_from(bo + "H", e)[0]] = e
    (following,) = struct.unpack_from(bo + "I", old, 12 * n_old)
    end = place + len(blob)
    new_ifd0 = end + (end & 1)
    if new_ifd0 + 2 + 12 * len(entries) + 4 >= 2**32:
        return
    fo.seek(start + length)
    fo.write(
        b"\x00" * (place - length)
        + blob
        + b"\x00" * (new_ifd0 - end)
        + struct.pack(bo + "H", len(entries))
        + b"".join(entries[t] for t in sorted(entries))
        + struct.pack(bo + "I", following)
    )
    fo.seek(start + 4)
    fo.write(struct.pack(bo + "I", new_ifd0))


def _exif_with(exif, xmp, comment, software) -> PILImage.Exif:
    """The tags :func:`_append_tags` adds, as Pillow's Exif: EXIF's first-IFD tags (not the
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
