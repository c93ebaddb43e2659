"""What every part of clconv.imageio uses: Pillow's settings, the warning relay, causes as
clconv says them, the pixel limit, and the HxWxC shape."""

from __future__ import annotations

import warnings

import numpy as np
from PIL import Image as PILImage
from PIL import ImageFile

from clconv.errors import WARNINGS_LOCK, warn

# clconv enforces its own --max-pixels before decoding; Pillow's bomb check
# would only add a Python warning (or a second, differently worded error).
PILImage.MAX_IMAGE_PIXELS = None
# A damaged image is refused, never half-loaded.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Pillow's warnings are turned into clconv warnings; catch_warnings is
# process-global state, so it is entered by one thread at a time (the same lock
# as the device thread's program builds: see runtime.prefetch).
_WARN_LOCK = WARNINGS_LOCK

# pixels copied or converted a band of this many bytes at a time (bounded extra memory)
_BAND_BYTES = 4 << 20


def _os_cause(verb: str, e: OSError) -> str:
    return f"cannot {verb}: {e.strerror or e}"


def _exc_text(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


class _Relay:
    """Collect Python warnings raised inside the block and re-emit them as clconv warnings."""

    def __init__(self, path: str):
        self.path = path

    def __enter__(self):
        _WARN_LOCK.acquire()
        self._cm = warnings.catch_warnings(record=True)
        self._log = self._cm.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        try:
            self._cm.__exit__(*exc)
        finally:
            _WARN_LOCK.release()
        seen = set()
        for w in self._log:
            if w.category.__module__.startswith("pyopencl"):
                continue  # the device thread's (runtime.prefetch), never about this image
            msg = " ".join(str(w.message).split())
            if msg and msg not in seen:
                seen.add(msg)
                warn(f"{self.path}: {msg}")
        return False


def _too_large(w: int, h: int, max_pixels: int) -> str | None:
    if max_pixels and w * h > max_pixels:
        return f"image is {w}x{h} = {w * h} pixels, over --max-pixels {max_pixels}"
    return None


def _hwc(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        a = a[:, :, None]
    return np.ascontiguousarray(a)
