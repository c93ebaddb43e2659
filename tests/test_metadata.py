"""Trust with people's files: metadata carried (EXIF, XMP, comments), --strip, quality and TIFF
compression kept or chosen, `clconv formats`, gray .pgm. Through the command line (run_cli, in this
process) where the CLI is what is promised."""
from __future__ import annotations

import os
import shutil
import struct
import subprocess

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageFilter, JpegImagePlugin

from clconv import imageio

MAKE, MODEL, WHEN = "Canon", "EOS 5D Mark IV", "2024:05:06 07:08:09"
GPS_LAT = (48.0, 51.0, 29.5)
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'


def fake_icc(space: bytes = b"RGB ") -> bytes:
    head = bytearray(132)
    head[0:4] = struct.pack(">I", 132)
    head[12:16] = b"mntr"
    head[16:20] = space
    head[20:24] = b"XYZ "
    head[36:40] = b"acsp"
    return bytes(head)


def camera_exif(orientation: int = 6) -> PILImage.Exif:
    ex = PILImage.Exif()
    ex[0x010F] = MAKE
    ex[0x0110] = MODEL
    ex[0x0132] = WHEN
    ex[0x0112] = orientation
    gps = ex.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = GPS_LAT
    sub = ex.get_ifd(0x8769)
    sub[0x9003] = WHEN
    sub[0xA002] = 32  # PixelXDimension / PixelYDimension of the stored (unrotated) image
    sub[0xA003] = 16
    return ex


def halves() -> np.ndarray:
    """16x32: left half white, right half black (orientation 6 puts the white half on top)."""
    a = np.zeros((16, 32, 3), np.uint8)
    a[:, :16] = 255
    return a


@pytest.fixture
def camera_jpeg(tmp_path):
    p = tmp_path / "camera.jpg"
    PILImage.fromarray(halves()).save(p, quality=90, exif=camera_exif(6), xmp=XMP, comment=b"holiday",
                                      icc_profile=fake_icc())
    return p


def exif_of(path) -> PILImage.Exif:
    with PILImage.open(path) as im:
        im.load()
        return im.getexif()


def check_camera_exif(path, width, height):
    ex = exif_of(path)
    assert ex.get(0x010F) == MAKE and ex.get(0x0110) == MODEL and ex.get(0x0132) == WHEN
    assert ex.get(0x0112, 1) == 1  # the pixels are oriented: readers must not rotate again
    gps = ex.get_ifd(0x8825)
    assert gps.get(1) == "N" and tuple(float(v) for v in gps[2]) == pytest.approx(GPS_LAT)
    sub = ex.get_ifd(0x8769)
    assert sub.get(0x9003) == WHEN
    assert (sub.get(0xA002), sub.get(0xA003)) == (width, height)  # the output's size


# ---------------------------------------------------------------- EXIF, XMP, comments


@pytest.mark.parametrize("ext", [".jpg", ".png", ".tif"])
def test_exif_xmp_comment_carried_with_orientation_reset(run_cli, camera_jpeg, tmp_path, ext):
    out = tmp_path / f"out{ext}"
    r = run_cli("apply", "-k", "identity", camera_jpeg, out)
    assert r.returncode == 0, r.stderr
    check_camera_exif(out, 16, 32)
    with PILImage.open(out) as im:
        im.load()
        a = np.asarray(im.convert("RGB"))
        info = dict(im.info)
        text = dict(getattr(im, "text", {}) or {})
        description = im.tag_v2.get(270) if ext == ".tif" else None
    assert a.shape == (32, 16, 3)  # rotated once, on load
    assert a[:12].mean() > 200 and a[20:].mean() < 50  # the former left half is on top
    assert info.get("xmp") == XMP
    assert info.get("icc_profile") == fake_icc()
    comment = {".jpg": info.get("comment"), ".png": text.get("Comment"), ".tif": description}[ext]
    assert comment in (b"holiday", "holiday")


@pytest.mark.parametrize("ext", [".jpg", ".png", ".tif", ".webp"])
def test_strip_drops_exif_xmp_comment_keeps_icc(run_cli, camera_jpeg, tmp_path, ext):
    out = tmp_path / f"out{ext}"
    r = run_cli("apply", "--strip", "-k", "identity", camera_jpeg, out)
    assert r.returncode == 0, r.stderr
    ex = exif_of(out)
    assert 0x010F not in ex and 0x0110 not in ex and 0x8825 not in ex and 0x0112 not in ex
    with PILImage.open(out) as im:
        im.load()
        assert "xmp" not in im.info and "comment" not in im.info and "Comment" not in im.info
        assert im.info.get("icc_profile") == fake_icc()
        assert im.size == (16, 32)  # still oriented


def test_webp_keeps_exif(run_cli, camera_jpeg, tmp_path):
    out = tmp_path / "out.webp"
    assert run_cli("apply", "-k", "identity", camera_jpeg, out).returncode == 0
    check_camera_exif(out, 16, 32)


def test_output_size_written_into_exif(run_cli, camera_jpeg, tmp_path):
    out = tmp_path / "out.jpg"
    assert run_cli("apply", "-k", "identity", "--stride", "2", camera_jpeg, out).returncode == 0
    check_camera_exif(out, 8, 16)


def test_tiff_input_exif_carried(tmp_path, run_cli):
    src = tmp_path / "in.tif"
    PILImage.fromarray(halves()).save(src, exif=camera_exif(1).tobytes())  # sub-IFDs: only uncompressed, from bytes
    assert exif_of(src).get_ifd(0x8825).get(1) == "N"
    out = tmp_path / "out.jpg"
    assert run_cli("apply", "-k", "identity", src, out).returncode == 0
    ex = exif_of(out)
    assert ex.get(0x010F) == MAKE and ex.get_ifd(0x8825).get(1) == "N"
    assert 256 not in ex and 273 not in ex  # the TIFF's layout is not EXIF


def test_png_text_carried_to_png(tmp_path, run_cli):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Ada")
    info.add_itxt("Title", "Été")
    info.add_text("Comment", "scan 12")
    src = tmp_path / "in.png"
    PILImage.fromarray(halves()).save(src, pnginfo=info)
    out = tmp_path / "out.png"
    assert run_cli("apply", "-k", "identity", src, out).returncode == 0
    with PILImage.open(out) as im:
        im.load()
        assert {k: im.text[k] for k in ("Author", "Title", "Comment")} == {"Author": "Ada", "Title": "Été",
                                                                         "Comment": "scan 12"}
    out_jpg = tmp_path / "out.jpg"
    assert run_cli("apply", "-k", "identity", src, out_jpg).returncode == 0
    with PILImage.open(out_jpg) as im:
        assert im.info.get("comment") == b"scan 12"


def test_big_endian_exif_orientation_reset_in_place():
    ex = camera_exif(8)
    ex.endian = ">"
    raw = imageio._exif_body(ex.tobytes())
    assert raw[:2] in (b"MM", b"II")
    out = imageio._exif_for_output(raw, 7, 9)
    assert len(out) == len(raw)  # patched in place: maker notes and thumbnails keep their offsets
    back = PILImage.Exif()
    back.load(b"Exif\x00\x00" + out)
    assert back[0x0112] == 1 and back.get_ifd(0x8769)[0xA002] == 7 and back.get_ifd(0x8769)[0xA003] == 9
    assert imageio._exif_for_output(b"II*\x00\xff\xff\x00\x00", 1, 1) is None  # damaged: not written


def test_damaged_exif_is_not_fatal(tmp_path, capfd):
    p = tmp_path / "d.jpg"
    bad = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x09\x00\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00"
    PILImage.fromarray(halves()).save(p, exif=bad)
    img = imageio.load(p)
    out = tmp_path / "o.jpg"
    imageio.save(out, img.pixels, has_alpha=False, color="RGB", meta=img.meta)
    assert imageio.load(out).pixels.shape == img.pixels.shape


# ---------------------------------------------------------------- quality


def smooth_photo(h=800, w=1200, seed=7) -> PILImage.Image:
    rng = np.random.default_rng(seed)
    im = PILImage.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).filter(ImageFilter.GaussianBlur(3))
    a = np.asarray(im).astype(np.float64)
    return PILImage.fromarray(np.clip((a - a.mean()) * 6 + 128, 0, 255).astype(np.uint8))


def test_jpeg_quality_estimated_for_every_quality(tmp_path):
    im = smooth_photo(64, 64)
    for q in (1, 10, 25, 49, 50, 51, 75, 85, 90, 92, 95, 98, 100):
        for sampling in (0, 2):
            p = tmp_path / f"q{q}-{sampling}.jpg"
            im.save(p, quality=q, subsampling=sampling)
            meta = imageio.load(p).meta
            assert meta["jpeg_quality"] == q
            assert meta["jpeg_subsampling"] == sampling
    gray = tmp_path / "g.jpg"
    im.convert("L").save(gray, quality=77)
    assert imageio.load(gray).meta["jpeg_quality"] == 77


def test_jpeg_quality_and_size_kept(run_cli, tmp_path):
    src = tmp_path / "in.jpg"
    smooth_photo().save(src, quality=90, optimize=True)
    assert imageio.load(src).meta["jpeg_quality"] == 90
    out = tmp_path / "out.jpg"
    r = run_cli("apply", "-k", "identity", src, out)
    assert r.returncode == 0, r.stderr
    with PILImage.open(src) as a, PILImage.open(out) as b:
        assert b.quantization == a.quantization
        assert JpegImagePlugin.get_sampling(b) == JpegImagePlugin.get_sampling(a)
    size_in, size_out = os.path.getsize(src), os.path.getsize(out)
    assert abs(size_out / size_in - 1) <= 0.05, (size_in, size_out)
    convert = shutil.which("convert")
    if convert is None:
        pytest.skip("ImageMagick's convert is not installed: size compared with the input only")
    magick = tmp_path / "magick.jpg"
    subprocess.run([convert, str(src), str(magick)], check=True, timeout=60)
    assert abs(size_out / os.path.getsize(magick) - 1) <= 0.05, (size_out, os.path.getsize(magick))


def test_quality_option_and_defaults(run_cli, tmp_path):
    src = tmp_path / "in.jpg"
    smooth_photo(64, 96).save(src, quality=80)
    out = tmp_path / "q50.jpg"
    assert run_cli("apply", "--quality", "50", "-k", "identity", src, out).returncode == 0
    assert imageio.load(out).meta["jpeg_quality"] == 50
    png = tmp_path / "in.png"
    smooth_photo(64, 96).save(png)
    out = tmp_path / "from-png.jpg"
    assert run_cli("apply", "-k", "identity", png, out).returncode == 0
    meta = imageio.load(out).meta
    assert meta["jpeg_quality"] == imageio.DEFAULT_QUALITY["JPEG"] == 92
    assert meta["jpeg_subsampling"] == 0  # 4:4:4 from quality 90, as ImageMagick
    r = run_cli("apply", "--quality", "0", "-k", "identity", src, tmp_path / "bad.jpg")
    assert r.returncode == 2 and "--quality" in r.stderr and not (tmp_path / "bad.jpg").exists()


def test_quality_changes_webp(tmp_path):
    a = np.asarray(smooth_photo(64, 96))
    low, high = tmp_path / "low.webp", tmp_path / "high.webp"
    imageio.save(low, a, has_alpha=False, color="RGB", options=imageio.SaveOptions(quality=20))
    imageio.save(high, a, has_alpha=False, color="RGB", options=imageio.SaveOptions(quality=95))
    assert os.path.getsize(low) < os.path.getsize(high)


# ---------------------------------------------------------------- TIFF compression


def test_lzw_tiff_in_lzw_tiff_out(run_cli, tmp_path):
    src = tmp_path / "in.tif"
    PILImage.fromarray(halves()).save(src, compression="tiff_lzw")
    out = tmp_path / "out.tif"
    assert run_cli("apply", "-k", "identity", src, out).returncode == 0
    with PILImage.open(out) as im:
        assert im.info["compression"] == "tiff_lzw"
    for name, pillow in (("deflate", "tiff_adobe_deflate"), ("none", "raw"), ("packbits", "packbits")):
        other = tmp_path / f"{name}.tif"
        assert run_cli("apply", "--compression", name, "-k", "identity", src, other).returncode == 0
        with PILImage.open(other) as im:
            assert im.info["compression"] == pillow
            np.testing.assert_array_equal(np.asarray(im), halves())


def test_16bit_colour_tiff_deflate(tmp_path, capfd):
    a = (np.arange(6 * 7 * 3, dtype=np.uint16) * 997).reshape(6, 7, 3)
    p = tmp_path / "d.tif"
    imageio.save(p, a, has_alpha=False, color="RGB", options=imageio.SaveOptions(compression="deflate"))
    img = imageio.load(p)
    np.testing.assert_array_equal(img.pixels, a)
    assert img.meta["tiff_compression"] == "tiff_adobe_deflate"
    assert capfd.readouterr().err == ""
    imageio.save(tmp_path / "l.tif", a, has_alpha=False, color="RGB", options=imageio.SaveOptions(compression="lzw"))
    assert "written with deflate compression, not lzw" in capfd.readouterr().err
    np.testing.assert_array_equal(imageio.load(tmp_path / "l.tif").pixels, a)


# ---------------------------------------------------------------- formats, .pgm, batch


def test_formats_command(run_cli):
    r = run_cli("formats")
    assert r.returncode == 0, r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.strip()}
    assert "8-bit, 16-bit" in lines["PNG"]
    assert "8-bit" in lines["JPEG"] and "--quality" in lines["JPEG"] and "EXIF" in lines["JPEG"]
    assert "8-bit, 16-bit, float32" in lines["TIFF"] and "--compression" in lines["TIFF"]
    assert "Read only" in r.stdout and "PSD" in r.stdout


def test_pgm_from_colour_is_gray_with_warning(run_cli, tmp_path):
    rgb = np.random.default_rng(3).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    src = tmp_path / "c.png"
    PILImage.fromarray(rgb).save(src)
    out = tmp_path / "g.pgm"
    r = run_cli("apply", "-k", "identity", src, out)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == f"clconv: warning: {out}: PGM holds gray only; RGB converted to luminance (ITU-R 601-2)"
    with PILImage.open(out) as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), np.asarray(PILImage.fromarray(rgb).convert("L")))
    r = run_cli("apply", "-k", "identity", src, tmp_path / "c.ppm")
    assert r.returncode == 0 and r.stderr == ""


def test_batch_carries_and_strips(run_cli, camera_jpeg, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(camera_jpeg, src / "a.jpg")
    kept, stripped = tmp_path / "kept", tmp_path / "stripped"
    r = run_cli("batch", "-q", "-j", "1", "-k", "identity", "--format", "png", src, kept)
    assert r.returncode == 0, r.stderr
    check_camera_exif(kept / "a.png", 16, 32)
    r = run_cli("batch", "-q", "-j", "1", "--strip", "--quality", "70", "-k", "identity", src, stripped,
                   "--report", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    assert 0x010F not in exif_of(stripped / "a.jpg")
    assert imageio.load(stripped / "a.jpg").meta["jpeg_quality"] == 70
    import json

    settings = json.loads((tmp_path / "r.json").read_text())["settings"]
    assert settings["strip"] is True and settings["quality"] == 70 and settings["compression"] is None
