"""Reading and writing images: Pillow for the formats, numpy for the pixels, tifffile for the
TIFFs Pillow cannot read or write.

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
  gray+alpha, float64, ...) are read by tifffile (first page).
* ``.npy`` input (no pickle): 2D, or 3D with 1..4 channels, read like
  ``numpy.asarray(PIL image)``: 1 = L, 2 = L+alpha, 3 = RGB, 4 = RGBA.
  uint8/uint16/float32 kept, other float types -> float32, anything else
  refused.
* Output: 16-bit colour goes to PNG (own writer: Pillow cannot write it) and
  TIFF (tifffile) with 16 bits; float32 goes to ``.tif``/``.tiff`` (one
  channel through Pillow, several through tifffile) or ``.npy``.  Formats that
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

The modules, one job each: ``load`` (files to :class:`Image`), ``pixels``
(Pillow images to arrays), ``image`` (the :class:`Image` and colour
conversions), ``meta`` (metadata carried, provenance), ``jpeg`` (quality),
``png`` (own PNG writers), ``tiff`` (tifffile, TIFF tags), ``formats`` (what
each output format holds), ``save`` (conversions and encoders), ``common``.
"""

from __future__ import annotations

# the private names are those the tests reach; png and tiff, whose writers they replace
from clconv.imageio import png, tiff  # noqa: F401
from clconv.imageio.common import _Relay  # noqa: F401
from clconv.imageio.formats import COMPRESSION_FORMATS, QUALITY_FORMATS, check_output, formats_table, output_format
from clconv.imageio.image import Image, _max_value, to_gray  # noqa: F401
from clconv.imageio.jpeg import JPEG_OPTIMIZE_BYTES, estimate_jpeg_quality
from clconv.imageio.load import check_input, load, load_array
from clconv.imageio.meta import PROVENANCE_PREFIX, _exif_body, _exif_for_output, read_provenance  # noqa: F401
from clconv.imageio.png import (  # noqa: F401
    PNG_BAND_BYTES,
    PNG_COMPRESS_LEVEL,
    PNG_OWN_MIN_BYTES,
    PNG_RLE_TOLERANCE,
    _adler32_combine,
    _png_rle_pays,
    _png_workers,
    _write_png,
    _write_png8,
    _write_png16,
)
from clconv.imageio.save import DEFAULT_QUALITY, SaveOptions, ignored_options, output_array, save, writer
from clconv.imageio.tiff import TIFF_COMPRESSIONS, _write_tiff  # noqa: F401
from clconv.params import DEFAULT_MAX_PIXELS

__all__ = [
    "COMPRESSION_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_QUALITY",
    "JPEG_OPTIMIZE_BYTES",
    "PNG_BAND_BYTES",
    "PNG_COMPRESS_LEVEL",
    "PNG_OWN_MIN_BYTES",
    "PNG_RLE_TOLERANCE",
    "PROVENANCE_PREFIX",
    "QUALITY_FORMATS",
    "TIFF_COMPRESSIONS",
    "Image",
    "SaveOptions",
    "check_input",
    "check_output",
    "estimate_jpeg_quality",
    "formats_table",
    "ignored_options",
    "load",
    "load_array",
    "output_array",
    "output_format",
    "read_provenance",
    "save",
    "to_gray",
    "writer",
]
