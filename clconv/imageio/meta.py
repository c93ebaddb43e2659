"""Metadata carried from an input to its outputs: ICC profile, DPI, EXIF (its orientation reset
and its pixel size set when written), XMP, comments and PNG text; and the provenance record
that clconv writes into its outputs (:func:`read_provenance`)."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

from PIL import Image as PILImage

from clconv.imageio.jpeg import _jpeg_input_settings

# TIFF tags that describe a file's layout, never carried as EXIF (a TIFF input's first IFD holds
# them beside Make, Model, ...); the sub-IFD pointers are rewritten by Pillow, the ICC profile
# and the resolution travel on their own.
_TIFF_LAYOUT_TAGS = frozenset(
    {
        254,
        255,
        256,
        257,
        258,
        259,
        262,
        263,
        266,
        269,
        273,
        277,
        278,
        279,
        280,
        281,
        282,
        283,
        284,
        296,
        297,
        301,
        317,
        318,
        319,
        320,
        321,
        322,
        323,
        324,
        325,
        330,
        332,
        338,
        339,
        340,
        341,
        347,
        513,
        514,
        530,
        531,
        532,
        700,
        33723,
        34377,
        34665,
        34853,
        34675,
        37724,
        40965,
    }
)
_TIFF_MAGICS = (b"II*\x00", b"MM\x00*")
_EXIF_PREFIX = b"Exif\x00\x00"
# PNG text chunks that are not comments but another tool's way of storing a profile
_PNG_PROFILE_KEYS = (
    "XML:com.adobe.xmp",
    "Raw profile type exif",
    "Raw profile type APP1",
    "Raw profile type xmp",
    "Raw profile type icc",
    "Raw profile type icm",
    "Raw profile type iptc",
    "Raw profile type 8bim",
)

PROVENANCE_PREFIX = "clconv "


def provenance_record(settings: str) -> str:
    """The record an output carries of how it was made, from its filter ``settings``:
    ``clconv 0.1.0: -k sharpen ...`` (see clconv.files.provenance)."""
    from clconv import __version__

    return f"{PROVENANCE_PREFIX}{__version__}: {settings}"


# --------------------------------------------------------------------------
# read


def _exif_body(raw) -> bytes | None:
    """EXIF as the bare TIFF structure (Pillow's JPEG/PNG info carry an "Exif\\0\\0" prefix, WebP's not)."""
    if not raw:
        return None
    raw = bytes(raw).removeprefix(_EXIF_PREFIX)
    return raw if raw[:4] in _TIFF_MAGICS else None


def _tiff_ifd0(f) -> PILImage.Exif:
    """The first IFD of the TIFF file ``f`` (read from its start), as Pillow's Exif: its tags,
    and the EXIF and GPS sub-IFDs read on demand. Any TIFF, also one whose pixels Pillow
    cannot decode."""
    f.seek(0)
    ex = PILImage.Exif()
    ex.load_from_fp(f)
    return ex


def _exif_of_tiff(ex: PILImage.Exif) -> bytes | None:
    """A TIFF input's EXIF from its first IFD ``ex`` (which loses its layout tags): the IFD
    without them, with the EXIF and GPS sub-IFDs."""
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


def _oriented_dpi(dx, dy, orientation: int) -> tuple[float, float] | None:
    """The DPI of the oriented pixels (the axes swapped by orientations 5-8); None if not positive."""
    try:
        dx, dy = float(dx), float(dy)
    except (TypeError, ValueError):
        return None
    if not (dx > 0 and dy > 0):
        return None
    return (dy, dx) if orientation in (5, 6, 7, 8) else (dx, dy)


def _meta_of(im, fmt: str | None, orientation: int) -> dict:
    """An opened Pillow image's :attr:`Image.meta`: ``format``, ``icc_profile``, ``dpi`` (of the
    pixels once oriented by ``orientation``) and what :func:`_carried_meta` finds."""
    meta: dict = {"format": fmt}
    icc = im.info.get("icc_profile")
    if icc:
        meta["icc_profile"] = bytes(icc)
    dpi = im.info.get("dpi")
    if dpi and len(dpi) == 2:
        dpi = _oriented_dpi(dpi[0], dpi[1], orientation)
        if dpi:
            meta["dpi"] = dpi
    meta.update(_carried_meta(im, fmt))
    return meta


def _carried_meta(im, fmt: str | None) -> dict:
    """What a Pillow image holds beyond pixels, ICC and DPI, for the output: ``exif`` (bare TIFF
    structure, as read: the orientation is reset when written), ``xmp`` (bytes), ``comment``
    (bytes: JPEG COM, GIF comment, PNG "Comment", TIFF ImageDescription), ``text`` (other PNG
    text chunks), ``jpeg_quality`` / ``jpeg_subsampling`` and ``tiff_compression``. Damaged
    metadata is left out, never fatal."""
    info = im.info
    try:
        if fmt == "TIFF":
            exif = _exif_of_tiff(im.getexif())
        else:
            exif = _exif_body(info.get("exif"))
            if exif is None and "Raw profile type exif" in info:  # ImageMagick's PNG text form
                exif = _exif_body(im.getexif().tobytes())
    except Exception:  # noqa: BLE001 - damaged EXIF: not carried (the orientation was read apart)
        exif = None
    xmp = info.get("xmp")
    if fmt == "TIFF" and not xmp:
        xmp = getattr(im, "tag_v2", {}).get(700)
    comment, text = _comment_and_text(im, fmt)
    meta = _as_meta(exif, xmp, comment, text)
    if fmt == "JPEG":
        meta.update(_jpeg_input_settings(im))
    if fmt == "TIFF" and isinstance(info.get("compression"), str):
        meta["tiff_compression"] = info["compression"]
    return meta


def _comment_and_text(im, fmt: str | None) -> tuple:
    """The comment (JPEG COM that is not a clconv record, GIF comment, TIFF ImageDescription,
    PNG "Comment") and a PNG's other text chunks (a dict; None for other formats)."""
    if fmt == "JPEG":  # the first comment that is not a clconv record
        comments = [data for kind, data in getattr(im, "applist", []) if kind == "COM"]
        return next((c for c in comments if not _is_provenance(c)), None), None
    if fmt == "GIF":
        return im.info.get("comment"), None
    if fmt == "TIFF":
        return getattr(im, "tag_v2", {}).get(270), None
    if fmt != "PNG":
        return None, None
    try:
        text = dict(getattr(im, "text", {}) or {})
    except Exception:  # noqa: BLE001 - damaged text chunks: not carried
        text = {}
    comment = text.pop("Comment", None)
    if _is_provenance(text.get("Software")):  # how that file was made, not this one
        del text["Software"]
    return comment, {str(k): str(v) for k, v in text.items() if k not in _PNG_PROFILE_KEYS}


def _as_meta(exif, xmp, comment, text) -> dict:
    """The ``exif``, ``xmp``, ``comment`` (bytes) and ``text`` entries of :attr:`Image.meta`,
    for those that hold something."""
    meta: dict = {}
    if exif:
        meta["exif"] = exif
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if isinstance(xmp, (bytes, bytearray)) and xmp:
        meta["xmp"] = bytes(xmp)
    if isinstance(comment, str):
        comment = comment.encode("utf-8")
    if isinstance(comment, (bytes, bytearray)) and comment.strip(b"\x00 \r\n\t"):
        meta["comment"] = bytes(comment)
    if text:
        meta["text"] = text
    return meta


# --------------------------------------------------------------------------
# provenance


def _is_provenance(value) -> bool:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).startswith(PROVENANCE_PREFIX.encode())
    return isinstance(value, str) and value.startswith(PROVENANCE_PREFIX)


def read_provenance(path) -> str | None:
    """The record of how clconv made ``path`` (see :class:`SaveOptions`), or None: another
    program's file, an output written with ``--strip``, or a file that cannot be read."""
    spath = os.fsdecode(os.fspath(path))
    try:
        found = _provenance_places(spath)
    except Exception:  # noqa: BLE001 - unreadable: no record
        return None
    for value in found:
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8", "replace")
        if _is_provenance(value):
            return value.rstrip("\x00")
    return None


def _provenance_places(spath: str) -> list:
    """What the file holds where clconv writes its record: JPEG comments, PNG "Software" text,
    the TIFF Software tag (of any TIFF, also one whose pixels Pillow cannot decode)."""
    with open(spath, "rb") as f:
        if f.read(4) in _TIFF_MAGICS:
            return [_tiff_ifd0(f).get(305)]
        f.seek(0)
        with PILImage.open(f) as im:
            if im.format == "JPEG":
                return [data for kind, data in im.applist if kind == "COM" and _is_provenance(data)]
            if im.format == "PNG":
                return [im.info.get("Software")]
    return []


# --------------------------------------------------------------------------
# write


def _exif_for_output(exif, width: int, height: int) -> bytes | None:
    """``exif`` (bare TIFF structure) with the Orientation reset to 1 in IFD0 and IFD1 (the
    pixels are already oriented) and PixelXDimension/PixelYDimension set to the output's size,
    patched in place so that everything else (maker notes, thumbnail) stays byte for byte.
    None when it cannot be walked: an EXIF whose orientation cannot be reset is not written."""
    if not exif or exif[:4] not in _TIFF_MAGICS:
        return None
    b = bytearray(exif)
    bo = "<" if b[:2] == b"II" else ">"
    size = {3: ("H", 2), 4: ("I", 4)}
    try:
        (ifd0,) = struct.unpack_from(bo + "I", b, 4)
        sub = None
        for ifd in (ifd0, _next_ifd(b, bo, ifd0)):
            if not ifd or ifd >= len(b):
                continue
            for at, tag, typ, count in _ifd_entries(b, bo, ifd):
                if tag == 0x0112:
                    if typ != 3 or count != 1:
                        return None
                    struct.pack_into(bo + "H", b, at, 1)
                elif tag == 0x8769 and ifd == ifd0 and typ in (4, 13) and count == 1:
                    (sub,) = struct.unpack_from(bo + "I", b, at)
        if sub and sub < len(b):
            for at, tag, typ, count in _ifd_entries(b, bo, sub):
                if tag in (0xA002, 0xA003) and typ in size and count == 1:
                    value = width if tag == 0xA002 else height
                    if typ == 3 and value >= 1 << 16:  # over a SHORT
                        struct.pack_into(bo + "HI", b, at - 6, 4, 1)  # widen to LONG
                        struct.pack_into(bo + "I", b, at, value)
                    else:
                        struct.pack_into(bo + size[typ][0], b, at, value)
    except (struct.error, ValueError):
        return None
    return bytes(b)


def _ifd_entries(b: bytes | bytearray, bo: str, offset: int) -> Iterator[tuple[int, int, int, int]]:
    """(offset of the value field, tag, type, count) of each entry of the IFD at ``offset``."""
    (n,) = struct.unpack_from(bo + "H", b, offset)
    if offset + 2 + 12 * n + 4 > len(b):
        raise ValueError("IFD beyond the end")
    for i in range(n):
        at = offset + 2 + 12 * i
        tag, typ, count = struct.unpack_from(bo + "HHI", b, at)
        yield at + 8, tag, typ, count


def _next_ifd(b: bytes | bytearray, bo: str, offset: int) -> int:
    (n,) = struct.unpack_from(bo + "H", b, offset)
    return struct.unpack_from(bo + "I", b, offset + 2 + 12 * n)[0]
