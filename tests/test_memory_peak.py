"""Peak memory of ``clconv apply`` on an 8-bit image: the same command on a tiny image (the
process's baseline) plus the input's and the output's pixels, and little more.

Filtering needs the input and the output at once (the in-place path reads the caller's array
and writes a new one), so 2 x the decoded image is the floor. What used to come on top: Pillow's
decoded image (4 bytes a pixel for RGB) beside its numpy copy and a bytes copy made by
np.asarray; a read-only input copied again for the device; on save, a bytes copy of the output
and Pillow's image of it while the input still lived; libjpeg's optimised Huffman tables,
which hold every coefficient (2 bytes a sample); Pillow's decoded RGB (4 bytes a pixel) beside
the array (now decoded into the array's own memory); the decoder's freed rows kept by malloc;
and a PNG's compressed bands held until all were done. Measured in a fresh child each time, by
the ru_maxrss that os.wait4 reports for that child alone.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image as PILImage

WIDTH, HEIGHT = 3000, 2000
DECODED = WIDTH * HEIGHT * 3  # 18 MB of 8-bit RGB
# The process's baseline is the same command on an 8x8 image: the interpreter, Pillow, the
# device and the built filter program. Beyond it: allocator rounding and the encoder's and
# device's working rows (a few MB measured), not a third image.
SLACK = 6 << 20

def peak_bytes(*args) -> int:
    """The peak resident memory of one fresh run of ``args`` (min of two: noise only adds), from
    os.wait4: the rusage of that child alone."""
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    peaks = []
    for _ in range(2):
        proc = subprocess.Popen([*map(str, args)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=env)  # fmt: skip
        stderr = proc.stderr.read().decode()  # small: a line or two
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        proc.stderr.close()
        assert proc.returncode == 0, stderr
        peaks.append(usage.ru_maxrss * 1024)  # ru_maxrss is in KiB on Linux
    return min(peaks)


@pytest.fixture(scope="module")
def tiny_jpeg(tmp_path_factory):
    path = tmp_path_factory.mktemp("peak") / "tiny.jpg"
    PILImage.new("RGB", (8, 8), (10, 200, 30)).save(path, quality=90)
    return path


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory):
    path = tmp_path_factory.mktemp("peak") / "big.jpg"
    rng = np.random.default_rng(12)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = np.stack([x * 255 // WIDTH, y * 255 // HEIGHT, (x + y) * 255 // (WIDTH + HEIGHT)], axis=2)
    noisy = np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8)
    PILImage.fromarray(noisy, "RGB").save(path, quality=90)
    return path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB, and RSS, as on Linux")
@pytest.mark.skipif(os.environ.get("CLCONV_CODE_PATH", "").strip().lower() == "gpu",
                    reason="the GPU path copies images into device buffers, which a CPU device keeps in host "
                           "memory (on a GPU they are GPU memory): RSS counts them")  # fmt: skip
@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_apply_peaks_at_its_baseline_plus_input_and_output(clconv_script, tiny_jpeg, big_jpeg, tmp_path, ext):
    baseline = peak_bytes(clconv_script, "apply", "-k", "sharpen", tiny_jpeg, tmp_path / f"tiny{ext}", "--force")
    out = tmp_path / f"out{ext}"
    peak = peak_bytes(clconv_script, "apply", "-k", "sharpen", big_jpeg, out, "--force")
    with PILImage.open(out) as im:
        assert im.size == (WIDTH, HEIGHT) and im.mode == "RGB"
    over = peak - baseline
    assert over <= 2 * DECODED + SLACK, (
        f"apply {ext} peaked {over / 2**20:.1f} MiB over the same apply on 8x8 pixels ({baseline / 2**20:.1f} MiB); "
        f"allowed: input + output {2 * DECODED / 2**20:.1f} MiB + {SLACK / 2**20:.0f} MiB")
