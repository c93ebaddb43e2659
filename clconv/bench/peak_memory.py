"""Peak memory of one ``clconv.convolve`` in a fresh process: ``measure_peak_memory`` runs this
module as ``python -m clconv.bench.peak_memory DEVICE SPEC H W C``, which prints one JSON line:
``peak`` (bytes, after the call), ``base`` (before the image: Python, numpy, the opened OpenCL
device), ``input`` and ``output`` (the arrays' bytes)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

MIB = 1 << 20


def peak_rss() -> int:
    """This process's own high-water mark in bytes (VmHWM). Not ru_maxrss: Linux carries the
    parent's RSS at fork over into the child's ru_maxrss through exec."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(argv: list[str]) -> None:
    """The child process: ``argv`` is DEVICE SPEC H W C; prints the JSON line (see the module)."""
    import numpy as np

    import clconv
    from clconv.runtime import get_runtime

    device = argv[0] or None
    spec, h, w, c = argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    get_runtime(device)
    base = peak_rss()
    image = np.random.default_rng(0).random((h, w, c), dtype=np.float32)
    out = clconv.convolve(image, spec, device=device)
    print(json.dumps({"peak": peak_rss(), "base": base, "input": image.nbytes, "output": out.nbytes}))


def measure_peak_memory(device: str | None, spec: str, size=(4096, 4096), channels: int = 3) -> dict:
    """In a fresh process: peak RSS of creating the image and one clconv.convolve, minus the
    bytes of its input and output (``over_mib``: what convolve costs beyond the arrays themselves)."""
    command = [
        sys.executable,
        "-m",
        "clconv.bench.peak_memory",
        device or "",
        spec,
        str(size[0]),
        str(size[1]),
        str(channels),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    found["over_mib"] = (found["peak"] - found["input"] - found["output"]) / MIB
    return found


if __name__ == "__main__":
    main(sys.argv[1:])
