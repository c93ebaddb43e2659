"""TIFFs Pillow cannot open or write, through tifffile: layouts read, metadata carried, codecs refused."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image as PILImage

from clconv import imageio
from clconv.errors import ImageError


def rand(shape, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)


@pytest.mark.parametrize("name, data, kwargs", [
    ("planar", np.moveaxis(rand((7, 5, 3)), -1, 0), {"photometric": "rgb", "planarconfig": "separate"}),
    ("tiled", rand((32, 48, 3)), {"photometric": "rgb", "tile": (16, 16)}),
    ("float64", rand((7, 5, 3), np.float64), {"photometric": "rgb"}),
    ("float16", rand((7, 5), np.float16), {"photometric": "minisblack"}),
    ("bigtiff", rand((7, 5, 3)), {"photometric": "rgb", "bigtiff": True}),
    ("predictor", rand((7, 5, 2), np.uint16), {"photometric": "minisblack", "extrasamples": [2],
                                                "planarconfig": "contig", "compression": "adobe_deflate",
                                                "predictor": True}),
])
def test_layouts_pillow_cannot_open_are_read_exactly(tmp_path, name, data, kwargs):
    p = tmp_path / f"{name}.tif"
    tifffile.imwrite(p, data, metadata=None, **kwargs)
    with pytest.raises(Exception):  # noqa: B017 - only that Pillow really cannot
        PILImage.open(p).load()
    want = np.moveaxis(data, 0, -1) if name == "planar" else data
    want = want if want.ndim == 3 else want[..., None]
    img = imageio.load(p)
    np.testing.assert_array_equal(img.pixels, want.astype(img.pixels.dtype))
    assert img.pixels.dtype in (np.float32, np.uint16)


def test_associated_alpha_is_unpremultiplied(tmp_path):
    colour, alpha = rand((6, 4, 3)), np.full((6, 4, 1), 0.5, np.float32)
    p = tmp_path / "a.tif"
    tifffile.imwrite(p, np.concatenate([colour * alpha, alpha], 2), photometric="rgb", extrasamples=[1], metadata=None)
    img = imageio.load(p)
    assert img.has_alpha
    np.testing.assert_allclose(img.pixels[..., :3], colour, atol=1e-6)


def test_first_page_with_a_warning(tmp_path, capfd):
    pages = np.stack([np.zeros((4, 3, 3), np.float32), np.ones((4, 3, 3), np.float32)])
    p = tmp_path / "pages.tif"
    tifffile.imwrite(p, pages, photometric="rgb", metadata=None)
    assert (imageio.load(p).pixels == 0).all()
    assert f"{p}: 2 frames; only the first is filtered" in capfd.readouterr().err


def test_a_codec_tifffile_lacks_is_an_unsupported_layout(tmp_path):
    p = tmp_path / "lzw.tif"
    tifffile.imwrite(p, rand((4, 3, 3)), photometric="rgb", metadata=None)
    b = bytearray(p.read_bytes())  # Compression 1 -> 5 (LZW): tifffile decodes it only with imagecodecs
    at = b.find(bytes.fromhex("0301030001000000")) + 8
    b[at:at + 2] = (5).to_bytes(2, "little")
    p.write_bytes(bytes(b))
    with pytest.raises(ImageError, match=r"unsupported TIFF layout \(compression LZW"):
        imageio.load(p)


def test_float_rgb_tiff_keeps_exif_xmp_comment_and_its_record(tmp_path):
    ex = PILImage.Exif()
    ex[0x010F] = "Cam"
    ex.get_ifd(0x8769)[0x9003] = "2020:01:01 10:00:00"
    meta = {"exif": imageio._exif_body(ex.tobytes()), "xmp": b"<x/>", "comment": b"holiday", "dpi": (72, 144)}
    a = rand((7, 5, 3))
    first, second = tmp_path / "1.tif", tmp_path / "2.tif"
    imageio.save(first, a, has_alpha=False, color="RGB", meta=meta,
                 options=imageio.SaveOptions(provenance="clconv test"))
    img = imageio.load(first)  # read by tifffile
    np.testing.assert_array_equal(img.pixels, a)
    assert (img.meta["xmp"], img.meta["comment"], img.meta["dpi"]) == (b"<x/>", b"holiday", (72.0, 144.0))
    assert imageio.read_provenance(first) == "clconv test"
    imageio.save(second, img.pixels, has_alpha=False, color="RGB", meta=img.meta)  # and carried on
    out = PILImage.Exif()
    out.load(b"Exif\x00\x00" + imageio.load(second).meta["exif"])
    assert out.get(0x010F) == "Cam" and out.get_ifd(0x8769).get(0x9003) == "2020:01:01 10:00:00"


def test_tifffile_log_lines_are_clconv_warnings(tmp_path, capfd):
    p = tmp_path / "odd.tif"
    tifffile.imwrite(p, rand((4, 3, 3)), photometric="rgb", metadata=None, software=False,
                     extratags=[(65000, 3, 1, 7, True)])
    b = bytearray(p.read_bytes())
    at = b.find((65000).to_bytes(2, "little") + (3).to_bytes(2, "little"))
    b[at + 2:at + 4] = (99).to_bytes(2, "little")  # a type no TIFF has
    p.write_bytes(bytes(b))
    assert imageio.load(p).pixels.shape == (4, 3, 3)
    err = capfd.readouterr().err
    assert err.startswith(f"clconv: warning: {p}: ") and "invalid data type 99" in err
