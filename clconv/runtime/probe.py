"""The probe a device passes before clconv uses it: PROBE_PROGRAM builds, and one small
correlation runs and gives the right numbers (``_first_launch``). Also what the device thread
builds after the probe (SPECULATIVE_PROGRAMS, see clconv.runtime.prefetch)."""

from __future__ import annotations

from clconv.errors import DeviceError
from clconv.runtime.device import Runtime

PROBE_PROGRAM = "direct.cl"  # nearly every run needs it, so building it to probe a device costs nothing
# Built by the device thread after the probe, while the main thread still decodes: the program
# `auto` picks for the other common case (rank-1 kernels). Only when the probe came from PoCL's
# kernel cache (fast): a cold build takes seconds, and the process would wait for it at exit.
SPECULATIVE_PROGRAMS = ("separable.cl",)
SPECULATE_BELOW_S = 0.25  # CPU seconds the probe's build took in its thread (Runtime.build_seconds)

PROBE_SHAPE = (6, 20)  # rows, columns: direct's interior tile (2 x 16) fits once, the rest is its frame


def _first_launch(rt: Runtime) -> None:
    """One 3x3 correlation of a small float32 image, compared with numpy on the host: a device
    that builds but cannot run a kernel, or runs it wrongly, is a DeviceError, as one that
    cannot build. It runs direct's float kernels (interior and frame) at the local size a 3x3
    run on float planes takes: the work-group functions PoCL compiles for it serve those runs.
    About 5 ms once PoCL's kernel cache holds them (0.4 s on a cold cache)."""
    import numpy as np

    from clconv.algorithms import direct
    from clconv.kernels import Linear
    from clconv.params import BORDER_CODES, Geometry, Planes

    h, w = PROBE_SHAPE
    image = ((np.arange(h * w).reshape(h, w) * 7) % 13 - 6).astype(np.float32)
    weights = np.array([[1, 2, -3], [4, 5, 6], [-7, 8, 9]], np.float32)  # no symmetry hides a flip
    kernel = Linear("first launch", weights)
    window = Geometry().window((h, w), weights.shape)
    got = np.empty_like(image)
    try:
        src = Planes(rt.upload(image), 0, 1, (h, w))
        dst = Planes(rt.alloc(got.nbytes), 0, 1, window.out_shape)
        direct.correlate(rt, src, dst, kernel, window, BORDER_CODES["reflect"], 0.0)
        rt.download(dst.buffer, got)
    except (rt.cl.Error, DeviceError) as exc:  # raw (a kernel object, say) or already a DeviceError
        cause = exc.cause if isinstance(exc, DeviceError) else str(exc)
        first = (str(cause).strip().splitlines() or [type(exc).__name__])[0]
        raise DeviceError(rt.info.describe(), f"first launch failed: {first}") from exc
    padded = np.pad(image.astype(np.float64), 1, mode="symmetric")  # scipy's "reflect"
    expected = sum(weights[i, j] * padded[i : i + h, j : j + w] for i in range(3) for j in range(3))
    if not np.array_equal(got, expected):  # small integers: exact in float32, in any order
        raise DeviceError(
            rt.info.describe(), "first launch gave wrong results (a 3x3 correlation, checked against numpy)"
        )
