"""clconv.imageio: loading, saving, conversions, damaged input, atomic output."""
from __future__ import annotations

import io
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from PIL import ImageOps

from clconv import imageio
from clconv.errors import ImageError, OutputError

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
RNG = np.random.default_rng(1234)


# ---------------------------------------------------------------- helpers


def rand(shape, dtype=np.uint8, seed=None):
    rng = np.random.default_rng(seed) if seed is not None else RNG
    if np.dtype(dtype) == np.float32:
        return (rng.standard_normal(shape) * 100).astype(np.float32)
    top = np.iinfo(dtype).max
    return rng.integers(0, top + 1, size=shape, dtype=np.int64).astype(dtype)


def pil_open(path):
    """Pillow's view of a file, read into memory (nothing left open)."""
    return PILImage.open(io.BytesIO(Path(path).read_bytes()))


def pil_save(path, im, fmt=None, **kw):
    im.save(path, format=fmt, **kw)
    return str(path)


def frombytes(mode, a):
    h, w = a.shape[:2]
    if mode.startswith("I;16"):
        return PILImage.frombytes("I;16", (w, h), a.astype("<u2").tobytes())
    return PILImage.frombytes(mode, (w, h), np.ascontiguousarray(a).tobytes())


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(w, h, bit_depth, color_type, raw_rows: bytes | None = None, extra=b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    out = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra
    if raw_rows is not None:
        out += png_chunk(b"IDAT", zlib.compress(raw_rows))
    return out + png_chunk(b"IEND", b"")


def png16(a: np.ndarray) -> bytes:
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit colour)."""
    h, w, c = a.shape
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    rows = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))
    return png_bytes(w, h, 16, ctype, rows)


_ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png16_interlaced(a: np.ndarray) -> bytes:
    """A 16-bit Adam7-interlaced PNG written by hand."""
    h, w, c = a.shape
    rows = b""
    for x0, y0, dx, dy in _ADAM7:
        sub = a[y0::dy, x0::dx]
        if sub.size:
            rows += b"".join(b"\x00" + row.astype(">u2").tobytes() for row in sub)
    ihdr = struct.pack(">IIBBBBB", w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, 1)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b"")


def tiff16(a: np.ndarray, byteorder="<", compression=1, photometric=2, extra_samples=()) -> bytes:
    """A 16-bit TIFF written by hand, one strip, optionally deflate-compressed."""
    bo = byteorder
    h, w, c = a.shape
    data = a.astype(bo + "u2").tobytes()
    if compression == 8:
        data = zlib.compress(data)
    entries = [(256, 4, [w]), (257, 4, [h]), (258, 3, [16] * c), (259, 3, [compression]),
               (262, 3, [photometric]), (273, 4, [0]), (277, 3, [c]), (278, 4, [h]),
               (279, 4, [len(data)]), (284, 3, [1])]
    if extra_samples:
        entries.append((338, 3, list(extra_samples)))
    entries.sort()
    bodies = [struct.pack(bo + {3: "H", 4: "I"}[t] * len(v), *v) for _, t, v in entries]
    base = 8 + 2 + 12 * len(entries) + 4
    data_off = base + sum(len(b) for b in bodies if len(b) > 4)
    ifd, tail, pos = struct.pack(bo + "H", len(entries)), b"", base
    for (tag, typ, vals), body in zip(entries, bodies):
        if tag == 273:
            body = struct.pack(bo + "I", data_off)
        if len(body) <= 4:
            ifd += struct.pack(bo + "HHI", tag, typ, len(vals)) + body.ljust(4, b"\x00")
        else:
            ifd += struct.pack(bo + "HHII", tag, typ, len(vals), pos)
            tail += body
            pos += len(body)
    ifd += struct.pack(bo + "I", 0)
    head = (b"II*\x00" if bo == "<" else b"MM\x00*") + struct.pack(bo + "I", 8)
    return head + ifd + tail + data


def fake_icc(space: bytes = b"RGB ") -> bytes:
    """Enough of an ICC profile for Pillow to carry it (header with the colour space)."""
    head = bytearray(128)
    head[0:4] = struct.pack(">I", 128 + 4)
    head[12:16] = b"mntr"
    head[16:20] = space
    head[20:24] = b"XYZ "
    head[36:40] = b"acsp"
    return bytes(head) + b"\x00\x00\x00\x00"


def no_temp_left(folder) -> bool:
    return not [p for p in os.listdir(folder) if p.startswith(".clconv-")]


# ---------------------------------------------------------------- modes, round trips


@pytest.mark.parametrize("mode,channels,has_alpha,color", [
    ("L", 1, False, "L"),
    ("LA", 2, True, "L"),
    ("RGB", 3, False, "RGB"),
    ("RGBA", 4, True, "RGB"),
])
@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_8bit_modes_round_trip_exactly(tmp_path, mode, channels, has_alpha, color, fmt):
    a = rand((13, 17, channels))
    p = pil_save(tmp_path / f"x.{fmt.lower()}", frombytes(mode, a), fmt)
    img = imageio.load(p)
    assert img.pixels.dtype == np.uint8
    assert img.pixels.shape == (13, 17, channels)
    assert img.pixels.flags.c_contiguous
    assert (img.has_alpha, img.color) == (has_alpha, color)
    assert img.max_value == 255
    assert img.path == p
    np.testing.assert_array_equal(img.pixels, a)
    # and back through save()
    q = str(tmp_path / f"y.{fmt.lower()}")
    imageio.save(q, img.pixels, has_alpha=img.has_alpha, color=img.color, meta=img.meta)
    np.testing.assert_array_equal(imageio.load(q).pixels, a)


def test_palette_without_transparency_becomes_rgb(tmp_path):
    a = rand((10, 12, 3))
    pim = frombytes("RGB", a).quantize(16)
    p = pil_save(tmp_path / "p.png", pim)
    img = imageio.load(p)
    assert img.pixels.shape == (10, 12, 3) and img.pixels.dtype == np.uint8
    assert not img.has_alpha and img.color == "RGB"
    np.testing.assert_array_equal(img.pixels, np.asarray(pim.convert("RGB")))


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_with_transparency_becomes_rgba(tmp_path, fmt):
    idx = (np.arange(8 * 9) % 4).reshape(8, 9).astype(np.uint8)
    pim = PILImage.fromarray(idx)
    pim = pim.convert("P")
    pim.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9] + [0] * (252 * 3))
    pim.putdata(idx.ravel().tolist())
    p = pil_save(tmp_path / f"t.{fmt.lower()}", pim, fmt, transparency=3)
    img = imageio.load(p)
    assert img.has_alpha and img.color == "RGB"
    assert img.pixels.shape == (8, 9, 4)
    alpha = img.pixels[..., 3]
    np.testing.assert_array_equal(alpha == 0, idx == 3)
    np.testing.assert_array_equal(img.pixels[idx == 0][:, :3], np.tile([255, 0, 0], ((idx == 0).sum(), 1)))


def test_palette_with_alpha_palette_becomes_rgba(tmp_path):
    a = rand((6, 7, 4))
    a[..., 3] = np.where(a[..., 3] > 128, 255, 40)
    pim = frombytes("RGBA", a).quantize(8)  # PNG P + tRNS with partial alpha
    p = pil_save(tmp_path / "pa.png", pim)
    img = imageio.load(p)
    assert img.has_alpha and img.pixels.shape == (6, 7, 4)
    np.testing.assert_array_equal(img.pixels, np.asarray(pil_open(p).convert("RGBA")))


def test_bilevel_becomes_8bit_gray(tmp_path):
    bits = rand((9, 11)) > 127
    pim = PILImage.fromarray(bits)
    assert pim.mode == "1"
    p = pil_save(tmp_path / "b.png", pim)
    img = imageio.load(p)
    assert img.pixels.dtype == np.uint8 and img.pixels.shape == (9, 11, 1) and img.color == "L"
    np.testing.assert_array_equal(img.pixels[..., 0], np.where(bits, 255, 0))


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_gray_round_trip(tmp_path, fmt):
    a = rand((15, 14, 1), np.uint16)
    p = pil_save(tmp_path / f"g.{fmt.lower()}", frombytes("I;16", a[..., 0]), fmt)
    img = imageio.load(p)
    assert img.pixels.dtype == np.uint16 and img.pixels.shape == (15, 14, 1)
    assert img.color == "L" and not img.has_alpha and img.max_value == 65535
    np.testing.assert_array_equal(img.pixels, a)


def test_16bit_big_endian_tiff(tmp_path):
    a = rand((5, 6, 1), np.uint16)
    p = tmp_path / "be.tif"
    p.write_bytes(tiff16(a, ">", photometric=1))
    img = imageio.load(p)
    assert img.pixels.dtype == np.uint16 and img.pixels.dtype.byteorder in "=|<"
    np.testing.assert_array_equal(img.pixels, a)


def test_32bit_int_in_range_becomes_uint16(tmp_path):
    a = rand((7, 8), np.uint16).astype(np.int32)
    p = pil_save(tmp_path / "i.tif", PILImage.frombytes("I", (8, 7), a.tobytes()), "TIFF")
    assert pil_open(p).mode == "I"
    img = imageio.load(p)
    assert img.pixels.dtype == np.uint16
    np.testing.assert_array_equal(img.pixels[..., 0], a)


def test_32bit_int_out_of_range_refused(tmp_path):
    a = np.array([[0, 70000], [-5, 3]], np.int32)
    p = pil_save(tmp_path / "i.tif", PILImage.frombytes("I", (2, 2), a.tobytes()), "TIFF")
    with pytest.raises(ImageError, match="unsupported 32-bit integer image") as e:
        imageio.load(p)
    assert e.value.subject == p


def test_float_tiff_round_trip_exact(tmp_path):
    a = rand((9, 10, 1), np.float32)
    a[0, 0, 0] = -1234.5
    p = pil_save(tmp_path / "f.tif", PILImage.frombytes("F", (10, 9), a.tobytes()), "TIFF")
    img = imageio.load(p)
    assert img.pixels.dtype == np.float32 and img.pixels.shape == (9, 10, 1) and img.max_value == 1.0
    np.testing.assert_array_equal(img.pixels, a)
    q = str(tmp_path / "g.tiff")
    imageio.save(q, img.pixels, has_alpha=False, color="L", meta=img.meta)
    assert pil_open(q).mode == "F"
    np.testing.assert_array_equal(imageio.load(q).pixels, a)


def test_cmyk_kept_as_four_channels(tmp_path):
    a = rand((8, 6, 4))
    p = pil_save(tmp_path / "c.tif", frombytes("CMYK", a), "TIFF")
    img = imageio.load(p)
    assert img.color == "CMYK" and not img.has_alpha and img.pixels.shape == (8, 6, 4)
    np.testing.assert_array_equal(img.pixels, a)
    q = str(tmp_path / "c2.tif")
    imageio.save(q, img.pixels, has_alpha=False, color="CMYK", meta={})
    assert pil_open(q).mode == "CMYK"
    np.testing.assert_array_equal(imageio.load(q).pixels, a)


def test_cmyk_jpeg(tmp_path):
    a = np.full((16, 16, 4), 60, np.uint8)
    p = pil_save(tmp_path / "c.jpg", frombytes("CMYK", a), "JPEG", quality=95)
    img = imageio.load(p)
    assert img.color == "CMYK" and img.pixels.shape == (16, 16, 4)
    assert np.abs(img.pixels.astype(int) - 60).max() <= 3


def test_ycbcr_jpeg_becomes_rgb(tmp_path):
    y, x = np.mgrid[0:32, 0:32]
    a = np.stack([x * 8, y * 8, np.full_like(x, 128)], -1).astype(np.uint8)
    p = pil_save(tmp_path / "y.jpg", frombytes("RGB", a), "JPEG", quality=98, subsampling=0)
    img = imageio.load(p)
    assert img.pixels.dtype == np.uint8 and img.pixels.shape == (32, 32, 3) and img.color == "RGB"
    assert np.abs(img.pixels.astype(int) - a).max() <= 6
    # a YCbCr-mode image (stored as such in a TIFF) becomes RGB too
    q = pil_save(tmp_path / "y.tif", frombytes("RGB", a).convert("YCbCr"), "TIFF")
    assert pil_open(q).mode == "YCbCr"
    img = imageio.load(q)
    assert img.color == "RGB" and img.pixels.shape == (32, 32, 3)
    assert np.abs(img.pixels.astype(int) - a).max() <= 3


def test_lab_refused(tmp_path):
    p = pil_save(tmp_path / "lab.tif", PILImage.new("LAB", (4, 4), (50, 0, 0)), "TIFF")
    with pytest.raises(ImageError, match="LAB"):
        imageio.load(p)


@pytest.mark.parametrize("channels,has_alpha,color", [(2, True, "L"), (3, False, "RGB"), (4, True, "RGB")])
def test_16bit_colour_png_keeps_16_bits(tmp_path, channels, has_alpha, color):
    a = rand((7, 9, channels), np.uint16)
    p = tmp_path / "c16.png"
    p.write_bytes(png16(a))
    img = imageio.load(p)
    assert img.pixels.dtype == np.uint16 and img.pixels.shape == (7, 9, channels)
    assert (img.has_alpha, img.color) == (has_alpha, color)
    np.testing.assert_array_equal(img.pixels, a)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_16bit_interlaced_png_keeps_16_bits(tmp_path, channels):
    a = rand((11, 13, channels), np.uint16)
    p = tmp_path / "i16.png"
    p.write_bytes(png16_interlaced(a))
    img = imageio.load(p)
    assert img.pixels.dtype == np.uint16
    np.testing.assert_array_equal(img.pixels, a)


@pytest.mark.parametrize("byteorder", ["<", ">"])
@pytest.mark.parametrize("compression", [1, 8])
@pytest.mark.parametrize("channels,extra,keep", [(3, (), 3), (4, (2,), 4), (4, (0,), 3)])
def test_16bit_colour_tiff_keeps_16_bits(tmp_path, byteorder, compression, channels, extra, keep):
    a = rand((6, 5, channels), np.uint16)
    p = tmp_path / "c16.tif"
    p.write_bytes(tiff16(a, byteorder, compression, 2, extra))
    img = imageio.load(p)
    assert img.pixels.dtype == np.uint16
    assert img.has_alpha == (keep == 4)
    np.testing.assert_array_equal(img.pixels, a[..., :keep])


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
@pytest.mark.parametrize("channels,has_alpha,color", [
    (2, True, "L"), (3, False, "RGB"), (4, True, "RGB"), (4, False, "CMYK"),
])
def test_multichannel_16bit_and_float_tiff_round_trip(tmp_path, dtype, channels, has_alpha, color):
    a = rand((11, 7, channels), dtype)
    p = str(tmp_path / "m.tif")
    imageio.save(p, a, has_alpha=has_alpha, color=color, meta={"dpi": (150, 300)})
    img = imageio.load(p)
    assert img.pixels.dtype == dtype and img.pixels.shape == a.shape
    assert (img.has_alpha, img.color) == (has_alpha, color)
    assert img.meta["dpi"] == pytest.approx((150, 300))
    np.testing.assert_array_equal(img.pixels, a)
    if dtype == np.uint16 and color != "L":
        # an independent reader agrees on the structure (Pillow reads it, if only to 8 bits)
        with pil_open(p) as pim:
            assert pim.size == (7, 11) and pim.mode == ("RGBA" if has_alpha else color)
            np.testing.assert_array_equal(np.asarray(pim), (a >> 8).astype(np.uint8))


@pytest.mark.parametrize("channels,has_alpha", [(2, True), (3, False), (4, True)])
def test_16bit_colour_png_written_and_read_back(tmp_path, channels, has_alpha):
    a = rand((12, 10, channels), np.uint16)
    p = str(tmp_path / "w.png")
    color = "L" if channels == 2 else "RGB"
    imageio.save(p, a, has_alpha=has_alpha, color=color, meta={"icc_profile": fake_icc(color.ljust(4).encode() if color == "RGB" else b"GRAY"), "dpi": (72, 72)})
    with pil_open(p) as pim:
        pim.verify()  # valid chunks and CRCs
    img = imageio.load(p)
    assert img.pixels.dtype == np.uint16 and img.pixels.shape == a.shape and img.has_alpha == has_alpha
    np.testing.assert_array_equal(img.pixels, a)
    assert "icc_profile" in img.meta and img.meta["dpi"] == pytest.approx((72, 72), abs=0.01)


def test_colour_key_transparency_becomes_alpha(tmp_path):
    a = rand((6, 6, 3))
    a[0, 0] = (1, 2, 3)
    a[a.sum(-1) == 6] = (1, 2, 3)
    p = pil_save(tmp_path / "k.png", frombytes("RGB", a), transparency=(1, 2, 3))
    img = imageio.load(p)
    assert img.has_alpha and img.pixels.shape == (6, 6, 4)
    np.testing.assert_array_equal(img.pixels[..., :3], a)
    np.testing.assert_array_equal(img.pixels[..., 3] == 0, np.all(a == (1, 2, 3), -1))
    g = rand((5, 5))
    g[2, 2] = 77
    q = pil_save(tmp_path / "kg.png", PILImage.fromarray(g), transparency=77)
    img = imageio.load(q)
    assert img.has_alpha and img.color == "L" and img.pixels.shape == (5, 5, 2)
    assert img.pixels[2, 2, 1] == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(1, 9), w=st.integers(1, 9),
    kind=st.sampled_from([("L", np.uint8), ("LA", np.uint8), ("RGB", np.uint8), ("RGBA", np.uint8),
                          ("L", np.uint16), ("LA", np.uint16), ("RGB", np.uint16), ("RGBA", np.uint16),
                          ("L", np.float32), ("RGB", np.float32), ("CMYK", np.uint8)]),
    ext=st.sampled_from([".png", ".tif", ".npy"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_save_load_round_trip_lossless(tmp_path, h, w, kind, ext, seed):
    mode, dtype = kind
    if dtype == np.float32 and ext == ".png":
        ext = ".tif"
    if mode == "CMYK" and ext == ".png":
        ext = ".tif"
    has_alpha = mode in ("LA", "RGBA")
    color = {"L": "L", "LA": "L", "RGB": "RGB", "RGBA": "RGB", "CMYK": "CMYK"}[mode]
    c = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "CMYK": 4}[mode]
    a = rand((h, w, c), dtype, seed)
    p = str(tmp_path / f"rt{ext}")
    imageio.save(p, a, has_alpha=has_alpha, color=color, meta={})
    img = imageio.load(p)
    assert img.pixels.dtype == dtype and img.pixels.shape == (h, w, c)
    if ext != ".npy" or c in (1, 3) or (has_alpha and color != "CMYK"):
        assert img.has_alpha == has_alpha
    np.testing.assert_array_equal(img.pixels, a)


# ---------------------------------------------------------------- gray


def test_gray_matches_pillow_convert_l(tmp_path):
    a = rand((20, 30, 3))
    p = pil_save(tmp_path / "c.png", frombytes("RGB", a))
    img = imageio.load(p, gray=True)
    assert img.color == "L" and img.pixels.shape == (20, 30, 1) and img.pixels.dtype == np.uint8
    np.testing.assert_array_equal(img.pixels[..., 0], np.asarray(frombytes("RGB", a).convert("L")))


def test_gray_keeps_alpha(tmp_path):
    a = rand((8, 9, 4))
    p = pil_save(tmp_path / "c.png", frombytes("RGBA", a))
    img = imageio.load(p, gray=True)
    assert img.has_alpha and img.color == "L" and img.pixels.shape == (8, 9, 2)
    np.testing.assert_array_equal(img.pixels[..., 0], np.asarray(frombytes("RGB", a[..., :3]).convert("L")))
    np.testing.assert_array_equal(img.pixels[..., 1], a[..., 3])


def test_gray_from_cmyk_goes_through_rgb(tmp_path):
    a = rand((8, 9, 4))
    p = pil_save(tmp_path / "c.tif", frombytes("CMYK", a), "TIFF")
    img = imageio.load(p, gray=True)
    np.testing.assert_array_equal(img.pixels[..., 0], np.asarray(frombytes("CMYK", a).convert("RGB").convert("L")))


def test_gray_16bit_colour_and_noops(tmp_path):
    a = rand((5, 6, 3), np.uint16)
    p = tmp_path / "c16.png"
    p.write_bytes(png16(a))
    img = imageio.load(p, gray=True)
    assert img.pixels.dtype == np.uint16 and img.pixels.shape == (5, 6, 1)
    exp = np.rint(a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114)
    assert np.abs(img.pixels[..., 0].astype(float) - exp).max() <= 1
    g = rand((4, 4, 1), np.uint16)
    q = pil_save(tmp_path / "g.png", frombytes("I;16", g[..., 0]))
    np.testing.assert_array_equal(imageio.load(q, gray=True).pixels, g)
    f = rand((4, 4), np.float32)
    r = pil_save(tmp_path / "f.tif", PILImage.frombytes("F", (4, 4), f.tobytes()), "TIFF")
    np.testing.assert_array_equal(imageio.load(r, gray=True).pixels[..., 0], f)


# ---------------------------------------------------------------- EXIF orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied(tmp_path, orientation):
    a = rand((5, 8, 3))
    pim = frombytes("RGB", a)
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    p = pil_save(tmp_path / "o.png", pim, exif=exif.tobytes(), dpi=(100, 200))
    img = imageio.load(p)
    expected = np.asarray(ImageOps.exif_transpose(pil_open(p)))
    np.testing.assert_array_equal(img.pixels, expected)
    if orientation in (5, 6, 7, 8):
        assert img.pixels.shape == (8, 5, 3)
        assert img.meta["dpi"] == pytest.approx((200, 100), rel=1e-3)
    else:
        assert img.meta["dpi"] == pytest.approx((100, 200), rel=1e-3)
    # EXIF is carried to the output (tests/test_metadata.py), its orientation reset to 1 there
    written = PILImage.Exif()
    written.load(b"Exif\x00\x00" + imageio._exif_for_output(img.meta["exif"], img.width, img.height))
    assert written[0x0112] == 1


def test_exif_orientation_6_jpeg_rotates_clockwise(tmp_path):
    a = np.zeros((16, 32, 3), np.uint8)
    a[:, :16] = 255  # left half white, right half black
    exif = PILImage.Exif()
    exif[0x0112] = 6
    p = pil_save(tmp_path / "o.jpg", frombytes("RGB", a), "JPEG", exif=exif.tobytes(), quality=95)
    img = imageio.load(p)
    assert img.pixels.shape == (32, 16, 3)
    # rotated 90 degrees clockwise: the former left half is now on top
    assert img.pixels[:12].mean() > 200 and img.pixels[20:].mean() < 50


# ---------------------------------------------------------------- frames


def test_animated_gif_first_frame_with_warning(tmp_path, capfd):
    frames = [PILImage.new("RGB", (10, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    p = str(tmp_path / "anim.gif")
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=50, loop=0)
    img = imageio.load(p)
    assert img.pixels.shape == (8, 10, 3)
    assert (img.pixels == (255, 0, 0)).all()
    err = capfd.readouterr().err
    assert f"clconv: warning: {p}: 3 frames; only the first is filtered" in err


def test_apng_and_multipage_tiff_first_frame(tmp_path, capfd):
    frames = [PILImage.new("L", (6, 5), v) for v in (10, 20)]
    p = str(tmp_path / "anim.png")
    frames[0].save(p, save_all=True, append_images=frames[1:])
    assert (imageio.load(p).pixels == 10).all()
    q = str(tmp_path / "pages.tif")
    frames[1].save(q, save_all=True, append_images=frames[:1])
    assert (imageio.load(q).pixels == 20).all()
    err = capfd.readouterr().err
    assert f"{p}: 2 frames; only the first is filtered" in err
    assert f"{q}: 2 frames; only the first is filtered" in err


def test_single_frame_gives_no_warning(tmp_path, capfd):
    p = pil_save(tmp_path / "one.gif", PILImage.new("L", (3, 3), 5))
    imageio.load(p)
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------- limits


def test_max_pixels_checked_on_declared_size_before_decoding(tmp_path):
    # The header declares 100000x100000 but there is no pixel data at all:
    # only the declared size can have caused the refusal.
    p = tmp_path / "huge.png"
    p.write_bytes(png_bytes(100_000, 100_000, 8, 0, None))
    with pytest.raises(ImageError) as e:
        imageio.load(p)
    assert e.value.subject == str(p)
    assert e.value.cause == "image is 100000x100000 = 10000000000 pixels, over --max-pixels 89478485"


def test_max_pixels_small_limit_and_zero_disables(tmp_path):
    p = pil_save(tmp_path / "s.png", PILImage.new("RGB", (100, 100)))
    with pytest.raises(ImageError, match="over --max-pixels 5000"):
        imageio.load(p, max_pixels=5000)
    assert imageio.load(p, max_pixels=10_000).pixels.shape == (100, 100, 3)
    assert imageio.load(p, max_pixels=0).pixels.shape == (100, 100, 3)


def test_max_pixels_npy_and_tiff_fallback(tmp_path):
    p = str(tmp_path / "a.npy")
    np.save(p, np.zeros((100, 100), np.uint8))
    with pytest.raises(ImageError, match="over --max-pixels"):
        imageio.load(p, max_pixels=9999)
    q = str(tmp_path / "m.tif")
    imageio.save(q, np.zeros((100, 100, 3), np.float32), has_alpha=False, color="RGB", meta={})
    with pytest.raises(ImageError, match="over --max-pixels"):
        imageio.load(q, max_pixels=9999)


def test_npy_header_checked_before_reading(tmp_path):
    # a header declaring a huge array, with no data behind it
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": (100_000, 100_000)})
    p = tmp_path / "huge.npy"
    assert buf.getvalue().startswith(b"\x93NUMPY")
    p.write_bytes(buf.getvalue())
    with pytest.raises(ImageError, match="over --max-pixels"):
        imageio.load(p)


def test_pillow_bomb_limit_is_not_in_the_way(tmp_path):
    # Pillow's own limit is off: only --max-pixels decides, and no warning appears.
    assert PILImage.MAX_IMAGE_PIXELS is None


# ---------------------------------------------------------------- damaged and bad input


def good_png(tmp_path) -> bytes:
    b = io.BytesIO()
    frombytes("RGB", rand((40, 50, 3), seed=7)).save(b, "PNG")
    return b.getvalue()


def good_jpeg() -> bytes:
    b = io.BytesIO()
    frombytes("RGB", rand((40, 50, 3), seed=8)).save(b, "JPEG")
    return b.getvalue()


def damaged_cases(tmp_path):
    png = good_png(tmp_path)
    jpg = good_jpeg()
    flipped = bytearray(png)
    flipped[png.index(b"IDAT") + 60] ^= 0x55
    no_iend = png[: png.rindex(b"IEND") - 4]
    gif = io.BytesIO()
    frombytes("RGB", rand((40, 50, 3), seed=9)).save(gif, "GIF")
    tif = io.BytesIO()
    frombytes("RGB", rand((40, 50, 3), seed=9)).save(tif, "TIFF")
    return {
        "truncated.png": png[: len(png) // 2],
        "truncated-iend.png": no_iend,
        "flipped-idat.png": bytes(flipped),
        "truncated.jpg": jpg[: len(jpg) // 2],
        "truncated-end.jpg": jpg[:-10],
        "truncated.gif": gif.getvalue()[: len(gif.getvalue()) // 2],
        "truncated.tif": tif.getvalue()[: len(tif.getvalue()) // 2],
    }


@pytest.mark.parametrize("name", ["truncated.png", "truncated-iend.png", "flipped-idat.png", "truncated.jpg",
                                  "truncated-end.jpg", "truncated.gif", "truncated.tif"])
def test_damaged_images_refused(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(damaged_cases(tmp_path)[name])
    with pytest.raises(ImageError) as e:
        imageio.load(p)
    assert e.value.subject == str(p)
    assert "truncated or damaged" in e.value.cause or "damaged" in e.value.cause


def test_bad_idat_crc_refused_although_pillow_accepts_it(tmp_path):
    """Why load() runs verify() on PNGs: Pillow does not check IDAT's CRC when decoding."""
    png = good_png(tmp_path)
    crc_at = png.rindex(b"IEND") - 4 - 4  # the last 4 bytes before IEND's length are IDAT's CRC
    data = bytearray(png)
    data[crc_at] ^= 0x01
    with PILImage.open(io.BytesIO(bytes(data))) as im:
        im.load()  # Pillow alone: no complaint, the pixel data is intact
    p = tmp_path / "crc.png"
    p.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="truncated or damaged image data") as e:
        imageio.load(p)
    assert "checksum" in e.value.cause
    # every single-bit flip inside the compressed data is refused too
    start = png.index(b"IDAT") + 4
    for i in range(start, crc_at, 97):
        data = bytearray(png)
        data[i] ^= 0x10
        p.write_bytes(bytes(data))
        with pytest.raises(ImageError):
            imageio.load(p)


def test_text_named_png_is_not_an_image(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("hello, this is text\n")
    with pytest.raises(ImageError) as e:
        imageio.load(p)
    assert e.value.subject == str(p)
    assert e.value.cause == "not an image (cannot identify image file)"


def test_damaged_png_header(tmp_path):
    data = bytearray(good_png(tmp_path))
    data[20] ^= 0xFF  # inside IHDR: its CRC no longer matches
    p = tmp_path / "hdr.png"
    p.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="damaged or unsupported PNG"):
        imageio.load(p)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    with pytest.raises(ImageError, match="empty file") as e:
        imageio.load(p)
    assert e.value.subject == str(p)


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(ImageError, match="Is a directory") as e:
        imageio.load(tmp_path)
    assert e.value.subject == str(tmp_path)
    missing = tmp_path / "nope.png"
    with pytest.raises(ImageError, match="No such file or directory") as e:
        imageio.load(missing)
    assert e.value.subject == str(missing)


def test_format_recognised_by_content(tmp_path):
    a = rand((6, 7, 3))
    p = tmp_path / "really-a-png.jpg"
    frombytes("RGB", a).save(p, "PNG")
    img = imageio.load(p)
    np.testing.assert_array_equal(img.pixels, a)
    assert img.meta["format"] == "PNG"
    q = tmp_path / "really-a-jpeg.png"
    frombytes("RGB", a).save(q, "JPEG")
    assert imageio.load(q).meta["format"] == "JPEG"
    r = tmp_path / "really-npy.png"
    np.save(str(r), a)
    os.replace(str(r) + ".npy", r)
    np.testing.assert_array_equal(imageio.load(r).pixels, a)


# ---------------------------------------------------------------- .npy


@pytest.mark.parametrize("shape,channels,has_alpha,color", [
    ((5, 6), 1, False, "L"), ((5, 6, 1), 1, False, "L"), ((5, 6, 2), 2, True, "L"),
    ((5, 6, 3), 3, False, "RGB"), ((5, 6, 4), 4, True, "RGB"),
])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_npy_images(tmp_path, shape, channels, has_alpha, color, dtype):
    a = rand(shape, dtype)
    p = str(tmp_path / "a.npy")
    np.save(p, a)
    img = imageio.load(p)
    assert img.pixels.shape == (5, 6, channels) and img.pixels.dtype == dtype
    assert (img.has_alpha, img.color) == (has_alpha, color)
    np.testing.assert_array_equal(img.pixels.reshape(a.shape), a)
    np.testing.assert_array_equal(imageio.load_array(p).reshape(a.shape), a)


def test_npy_other_floats_become_float32_and_fortran_order(tmp_path):
    a = np.asfortranarray(rand((4, 5, 3), np.float32).astype(np.float64))
    p = str(tmp_path / "d.npy")
    np.save(p, a)
    img = imageio.load(p)
    assert img.pixels.dtype == np.float32 and img.pixels.flags.c_contiguous
    np.testing.assert_array_equal(img.pixels, a.astype(np.float32))
    b = rand((3, 3), np.float32).astype(">f4")
    np.save(p, b)
    assert imageio.load(p).pixels.dtype == np.float32


@pytest.mark.parametrize("array,match", [
    (np.zeros((3, 3), bool), "dtype bool"),
    (np.zeros((3, 3), np.complex64), "dtype complex64"),
    (np.zeros((3, 3), np.int32), "dtype int32"),
    (np.zeros((3, 3, 5), np.uint8), "shape"),
    (np.zeros(7, np.uint8), "shape"),
    (np.zeros((0, 3), np.uint8), "empty"),
])
def test_npy_refused(tmp_path, array, match):
    p = str(tmp_path / "bad.npy")
    np.save(p, array)
    with pytest.raises(ImageError, match=match) as e:
        imageio.load(p)
    assert e.value.subject == p


def test_npy_with_objects_never_unpickled(tmp_path):
    p = str(tmp_path / "obj.npy")
    np.save(p, np.array([[1, "x"], [None, 2]], dtype=object), allow_pickle=True)
    with pytest.raises(ImageError, match="dtype object"):
        imageio.load(p)


def test_npy_truncated(tmp_path):
    p = tmp_path / "t.npy"
    buf = io.BytesIO()
    np.save(buf, rand((20, 20), np.uint16))
    p.write_bytes(buf.getvalue()[:-100])
    with pytest.raises(ImageError, match="truncated or damaged"):
        imageio.load(p)


def test_npy_save_drops_single_channel_axis(tmp_path):
    a = rand((4, 5, 1), np.float32)
    p = str(tmp_path / "o.npy")
    imageio.save(p, a, has_alpha=False, color="L", meta={})
    out = np.load(p)
    assert out.shape == (4, 5) and out.dtype == np.float32
    np.testing.assert_array_equal(out, a[..., 0])
    b = rand((4, 5, 3), np.uint16)
    imageio.save(p, b, has_alpha=False, color="RGB", meta={})
    np.testing.assert_array_equal(np.load(p), b)


# ---------------------------------------------------------------- output format checks


@pytest.mark.parametrize("name", ["o.png", "o.PNG", "o.jpg", "o.JPEG", "o.tif", "o.tiff", "o.webp", "o.bmp",
                                  "o.gif", "o.pgm", "o.ppm", "o.tga", "o.npy", "o.qoi"])
def test_check_output_accepts_known_formats(name):
    imageio.check_output(name, float_output=False)


@pytest.mark.parametrize("name", ["o.tif", "o.TIFF", "o.npy"])
def test_check_output_float_ok(name):
    imageio.check_output(name, float_output=True)


def test_check_output_unknown_and_float_refused():
    with pytest.raises(OutputError) as e:
        imageio.check_output("out.xyz", float_output=False)
    assert e.value.subject == "out.xyz"
    assert e.value.cause == "unknown output format '.xyz' (use .png, .jpg, .tif, ...)"
    with pytest.raises(OutputError, match="unknown output format"):
        imageio.check_output("noextension", float_output=False)
    for name in ("out.png", "out.jpg", "out.bmp"):
        with pytest.raises(OutputError) as e:
            imageio.check_output(name, float_output=True)
        assert e.value.cause == "float output needs .tif/.tiff or .npy"
        assert e.value.subject == name


def test_save_float_to_png_refused(tmp_path):
    p = str(tmp_path / "f.png")
    with pytest.raises(OutputError, match="float output needs"):
        imageio.save(p, np.zeros((3, 3, 1), np.float32), has_alpha=False, color="L", meta={})
    assert not os.path.exists(p) and no_temp_left(tmp_path)


# ---------------------------------------------------------------- conversions on save


def test_jpeg_alpha_composited_over_white_with_warning(tmp_path, capfd):
    a = np.zeros((16, 16, 4), np.uint8)
    a[..., 0] = 200  # red-ish colour...
    a[:, :8, 3] = 0  # ...fully transparent on the left half
    a[:, 8:, 3] = 255
    p = str(tmp_path / "o.jpg")
    imageio.save(p, a, has_alpha=True, color="RGB", meta={})
    err = capfd.readouterr().err
    assert f"clconv: warning: {p}: JPEG cannot hold alpha; composited over white" in err
    out = imageio.load(p).pixels.astype(int)
    assert out.shape == (16, 16, 3)
    assert (out[:, :6] >= 245).all()  # white where transparent
    assert np.abs(out[:, 10:] - (200, 0, 0)).max() <= 12


def test_bmp_alpha_composite_is_exact(tmp_path, capfd):
    a = rand((6, 7, 4))
    p = str(tmp_path / "o.bmp")
    imageio.save(p, a, has_alpha=True, color="RGB", meta={})
    assert "composited over white" in capfd.readouterr().err
    alpha = a[..., 3:].astype(float) / 255
    exp = np.rint(a[..., :3] * alpha + 255 * (1 - alpha))
    np.testing.assert_array_equal(imageio.load(p).pixels, exp)


def test_16bit_to_jpeg_scaled_with_warning(tmp_path, capfd):
    a = np.full((8, 8, 1), 257 * 100, np.uint16)
    p = str(tmp_path / "o.jpg")
    imageio.save(p, a, has_alpha=False, color="L", meta={})
    assert "16-bit values scaled to 8-bit" in capfd.readouterr().err
    out = imageio.load(p).pixels
    assert out.dtype == np.uint8 and np.abs(out.astype(int) - 100).max() <= 1


def test_16bit_gray_pgm_keeps_16_bits(tmp_path, capfd):
    a = rand((5, 5, 1), np.uint16)
    p = str(tmp_path / "o.pgm")
    imageio.save(p, a, has_alpha=False, color="L", meta={})
    assert capfd.readouterr().err == ""
    img = imageio.load(p)
    assert img.pixels.dtype == np.uint16
    np.testing.assert_array_equal(img.pixels, a)


def test_cmyk_to_png_converted_with_warning(tmp_path, capfd):
    a = rand((5, 5, 4))
    p = str(tmp_path / "o.png")
    imageio.save(p, a, has_alpha=False, color="CMYK", meta={})
    assert "PNG cannot hold CMYK; converted to RGB" in capfd.readouterr().err
    img = imageio.load(p)
    assert img.color == "RGB"
    np.testing.assert_array_equal(img.pixels, np.asarray(frombytes("CMYK", a).convert("RGB")))


def test_gif_quantization_warned(tmp_path, capfd):
    p = str(tmp_path / "o.gif")
    imageio.save(p, rand((8, 8, 3)), has_alpha=False, color="RGB", meta={})
    assert "colours quantized" in capfd.readouterr().err
    q = str(tmp_path / "g.gif")
    g = rand((8, 8, 1))
    imageio.save(q, g, has_alpha=False, color="L", meta={})
    assert capfd.readouterr().err == ""
    np.testing.assert_array_equal(imageio.load(q).pixels[..., 0], g[..., 0])


def test_gray_to_webp_is_rgb_without_warning(tmp_path, capfd):
    p = str(tmp_path / "o.webp")
    imageio.save(p, np.full((8, 8, 1), 90, np.uint8), has_alpha=False, color="L", meta={})
    assert capfd.readouterr().err == ""
    assert imageio.load(p).pixels.shape == (8, 8, 3)


ALL_OUTPUTS = [e for e in (".png", ".jpg", ".tif", ".webp", ".bmp", ".gif", ".ppm", ".pgm", ".tga", ".qoi",
                            ".jp2", ".j2k", ".avif", ".npy")]


@pytest.mark.parametrize("ext", ALL_OUTPUTS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("color,has_alpha", [("L", False), ("L", True), ("RGB", False), ("RGB", True), ("CMYK", False)])
def test_every_output_format_takes_every_kind(tmp_path, ext, dtype, color, has_alpha):
    try:
        imageio.check_output(f"o{ext}", float_output=False)
    except OutputError as e:  # a Pillow build without this codec
        pytest.skip(e.cause)
    c = {"L": 1, "RGB": 3, "CMYK": 4}[color] + has_alpha
    y, x = np.mgrid[0:24, 0:20]
    a = np.stack([(x * 12 + y * 3 + 17 * k) % 256 for k in range(c)], -1).astype(np.uint8)
    if has_alpha:
        a[..., -1] = 255
    if dtype == np.uint16:
        a = a.astype(np.uint16) * 257
    p = str(tmp_path / f"o{ext}")
    imageio.save(p, a, has_alpha=has_alpha, color=color, meta={"dpi": (96, 96)})
    assert no_temp_left(tmp_path)
    img = imageio.load(p)
    assert img.pixels.shape[:2] == (24, 20)
    assert img.pixels.dtype in (np.uint8, np.uint16)
    lossless = ext in (".png", ".tif", ".bmp", ".ppm", ".pgm", ".tga", ".qoi", ".jp2", ".j2k", ".npy")
    if (lossless and color != "CMYK" and not (ext in (".ppm", ".pgm") and color == "RGB" and dtype == np.uint16)
            and not (ext == ".pgm" and color != "L")):  # .pgm: colour becomes gray (tests/test_metadata.py)
        got = img.pixels.astype(np.float64) / img.max_value
        want = a[..., : img.pixels.shape[2]].astype(np.float64) / imageio._max_value(a.dtype)
        if img.pixels.shape[2] == a.shape[2] - 1:  # alpha composited (opaque here): colour unchanged
            want = a[..., :-1].astype(np.float64) / imageio._max_value(a.dtype)
        if got.shape == want.shape:
            assert np.abs(got - want).max() <= 0.5 / 255


# ---------------------------------------------------------------- metadata


@pytest.mark.parametrize("ext", [".png", ".tif", ".jpg"])
def test_icc_profile_and_dpi_carried(tmp_path, ext):
    icc = fake_icc(b"RGB ")
    src = pil_save(tmp_path / f"in{ext}", frombytes("RGB", rand((6, 6, 3))), icc_profile=icc, dpi=(300, 150))
    img = imageio.load(src)
    assert img.meta["icc_profile"] == icc
    assert img.meta["dpi"] == pytest.approx((300, 150), rel=1e-3)
    out = str(tmp_path / f"out{ext}")
    imageio.save(out, img.pixels, has_alpha=False, color="RGB", meta=img.meta)
    with pil_open(out) as pim:
        assert pim.info.get("icc_profile") == icc
        assert tuple(pim.info["dpi"]) == pytest.approx((300, 150), rel=1e-3)


def test_icc_profile_of_another_colour_space_dropped(tmp_path, capfd):
    out = str(tmp_path / "g.png")
    imageio.save(out, rand((4, 4, 1)), has_alpha=False, color="L", meta={"icc_profile": fake_icc(b"RGB "), "dpi": (72, 72)})
    assert "RGB ICC profile dropped: it does not fit the L output" in capfd.readouterr().err
    with pil_open(out) as pim:
        assert "icc_profile" not in pim.info


# ---------------------------------------------------------------- atomic output


def test_save_replaces_existing_output_completely(tmp_path):
    p = tmp_path / "o.png"
    p.write_bytes(b"old content" * 1000)
    imageio.save(p, rand((5, 5, 3)), has_alpha=False, color="RGB", meta={})
    assert p.read_bytes().startswith(b"\x89PNG")
    assert no_temp_left(tmp_path)


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failed_save_leaves_nothing(tmp_path, monkeypatch, exc):
    def bad_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG partial data")
        raise exc

    monkeypatch.setattr(PILImage.Image, "save", bad_save)
    p = tmp_path / "o.png"
    with pytest.raises(OutputError if isinstance(exc, OSError) else KeyboardInterrupt) as e:
        imageio.save(p, rand((5, 5, 3)), has_alpha=False, color="RGB", meta={})
    if isinstance(exc, OSError):
        assert e.value.subject == str(p)
        assert e.value.cause == "cannot write: No space left on device"
    assert not p.exists()
    assert no_temp_left(tmp_path)


def test_failed_save_keeps_previous_output(tmp_path, monkeypatch):
    p = tmp_path / "o.tif"
    p.write_bytes(b"previous")

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(imageio.tiff, "_write_tiff", boom)
    with pytest.raises(KeyboardInterrupt):
        imageio.save(p, rand((5, 5, 3), np.uint16), has_alpha=False, color="RGB", meta={})
    assert p.read_bytes() == b"previous"
    assert no_temp_left(tmp_path)


def test_failed_fsync_or_rename_cleans_up(tmp_path, monkeypatch):
    target = tmp_path / "is-a-dir.png"
    target.mkdir()
    (target / "keep").write_text("x")
    with pytest.raises(OutputError, match="cannot write") as e:
        imageio.save(target, rand((5, 5, 3)), has_alpha=False, color="RGB", meta={})
    assert e.value.subject == str(target)
    assert no_temp_left(tmp_path)
    assert (target / "keep").exists()


def test_save_into_missing_directory(tmp_path):
    p = tmp_path / "no" / "such" / "dir" / "o.png"
    with pytest.raises(OutputError) as e:
        imageio.save(p, rand((5, 5, 3)), has_alpha=False, color="RGB", meta={})
    assert e.value.subject == str(p)
    assert e.value.cause == "cannot write: No such file or directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_save_into_read_only_directory(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="Permission denied"):
            imageio.save(d / "o.png", rand((5, 5, 3)), has_alpha=False, color="RGB", meta={})
    finally:
        d.chmod(0o755)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
@pytest.mark.parametrize("ext", [".png", ".tif", ".npy"])
def test_output_permissions_follow_umask(tmp_path, umask, ext):
    old = os.umask(umask)
    try:
        p = tmp_path / f"o{ext}"
        imageio.save(p, rand((5, 5, 3), np.uint16), has_alpha=False, color="RGB", meta={})
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask


def test_temp_file_is_in_the_output_folder(tmp_path, monkeypatch):
    seen = []
    real = imageio._write_png16

    def spy(fo, *args):
        seen.append(os.readlink(f"/proc/self/fd/{fo.fileno()}") if os.path.exists("/proc/self/fd") else None)
        return real(fo, *args)

    monkeypatch.setattr(imageio.png, "_write_png16", spy)
    imageio.save(tmp_path / "o.png", rand((5, 5, 3), np.uint16), has_alpha=False, color="RGB", meta={})
    if seen[0] is not None:
        assert os.path.dirname(seen[0]) == str(tmp_path)
        assert os.path.basename(seen[0]).startswith(".clconv-") and seen[0].endswith(".png")


def test_save_validates_its_arguments(tmp_path):
    with pytest.raises(ValueError):
        imageio.save(tmp_path / "o.png", np.zeros((3, 3, 3), np.int32), has_alpha=False, color="RGB", meta={})
    with pytest.raises(ValueError):
        imageio.save(tmp_path / "o.png", np.zeros((3, 3, 2), np.uint8), has_alpha=False, color="RGB", meta={})
    with pytest.raises(ValueError, match="CMYK with alpha"):
        imageio.save(tmp_path / "o.tif", np.zeros((3, 3, 5), np.uint8), has_alpha=True, color="CMYK", meta={})
    with pytest.raises(OutputError, match="unknown output format"):
        imageio.save(tmp_path / "o.xyz", np.zeros((3, 3, 3), np.uint8), has_alpha=False, color="RGB", meta={})
    assert no_temp_left(tmp_path) and os.listdir(tmp_path) == []


# ---------------------------------------------------------------- warnings


def test_loading_in_threads_leaves_warning_filters_alone(tmp_path):
    import threading
    import warnings

    paths = []
    for i in range(6):
        exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x09\x00\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00"
        paths.append(pil_save(tmp_path / f"t{i}.jpg", frombytes("RGB", rand((64, 64, 3))), "JPEG", exif=exif))
    before = list(warnings.filters)
    errors = []

    def work(p):
        try:
            for _ in range(5):
                imageio.load(p)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert warnings.filters == before


def test_pillow_warnings_become_clconv_warnings(tmp_path, capfd):
    # corrupt EXIF: Pillow raises a UserWarning; under -W error that would be
    # an exception if it escaped
    exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x09\x00\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00"
    p = pil_save(tmp_path / "cex.jpg", frombytes("RGB", rand((8, 8, 3))), "JPEG", exif=exif)
    img = imageio.load(p)
    assert img.pixels.shape == (8, 8, 3)
    err = capfd.readouterr().err
    assert err.startswith(f"clconv: warning: {p}: ")
    assert "Warning" not in err and "Traceback" not in err


# ---------------------------------------------------------------- samples


def test_samples_exist_and_are_what_they_claim():
    shapes = imageio.load(SAMPLES / "shapes.png")
    assert shapes.pixels.dtype == np.uint8 and shapes.pixels.shape == (480, 640, 3) and not shapes.has_alpha
    logo = imageio.load(SAMPLES / "logo-rgba.png")
    assert logo.has_alpha and logo.pixels.shape == (256, 256, 4)
    alpha = logo.pixels[..., 3]
    assert (alpha == 0).any() and (alpha == 255).any()
    assert (logo.pixels[alpha == 0] == 0).all()  # transparent pixels are black: the fringe demo
    g16 = imageio.load(SAMPLES / "gray16.png")
    assert g16.pixels.dtype == np.uint16 and g16.pixels.shape == (240, 320, 1)
    assert (g16.pixels % 257 != 0).any()  # genuinely 16-bit
    total = sum(os.path.getsize(SAMPLES / n) for n in ("shapes.png", "logo-rgba.png", "gray16.png"))
    assert total < 1_500_000


def test_samples_are_reproducible(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    np.testing.assert_array_equal(mod.shapes(), imageio.load(SAMPLES / "shapes.png").pixels)
    np.testing.assert_array_equal(mod.logo_rgba(), imageio.load(SAMPLES / "logo-rgba.png").pixels)
    np.testing.assert_array_equal(mod.gray16(), imageio.load(SAMPLES / "gray16.png").pixels[..., 0])
