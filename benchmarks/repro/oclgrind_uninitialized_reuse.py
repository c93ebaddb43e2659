"""Oclgrind 21.10's uninitialised-value checker keeps a released buffer's shadow for the next one.

Oclgrind numbers its buffers and hands a released buffer's number to the next allocation
(Memory::getNextBuffer: a FIFO of freed numbers), and an address is (number << bits) | offset.
Its Uninitialized plugin keeps shadow memory per buffer number, but has no memoryAllocated or
memoryDeallocated hook: at a kernel launch it creates a (poisoned) shadow only for a buffer
number that has none yet. A new buffer that gets a released buffer's number therefore inherits
the old shadow: its size and contents. Stores beyond the old size are dropped
(ShadowMemory::store does nothing outside the shadow buffer) and loads there read "poisoned"
(ShadowMemory::load), so a buffer written whole by one kernel and read by the next is reported,
from the old buffer's size on, as uninitialised: a false positive. (The converse holds too: a
buffer never written that takes the number of a released one written whole, at least as large,
reads as initialised: no report.) A host write of the whole buffer (enqueue_copy,
COPY_HOST_PTR: hostMemoryStore re-creates the shadow) clears it.

    OCL_ICD_VENDORS=/tmp/icd OCLGRIND_UNINITIALIZED=1 python benchmarks/repro/oclgrind_uninitialized_reuse.py

(/tmp/icd holding an ICD file that names /usr/lib/oclgrind/liboclgrind-rt-icd.so). The kernels
are built with -cl-opt-disable (see oclgrind_uninitialized_freeze.py). Here a 120-float buffer
is written, read and released, then a 1024-float buffer is written whole by `fill` and read by
`check`: Oclgrind reports "Controlflow depends on uninitialized value" in `check` for the 904
values past the first 120, while the values read back are all right. With --hold (the small
buffer kept alive, so the large one gets a fresh number) or --host-write (the large buffer
written from the host first) there are no reports.

In clconv this is what the checker reported for the separable column pass
(column_pass_vec_*: "Controlflow depends on uninitialized value" at its fma calls): the
scratch band (Runtime.scratch) took the number of a smaller buffer released before it (the
480-byte buffers of the runtime's first-launch probe; before that probe existed, the filter
uploads of an earlier call, hence reports for "box then dense" only), and every value past
that old size read as uninitialised although the row passes had written the whole band
(checked: the band filled with NaN first has no NaN left where the column pass reads).
Which number a buffer gets depends on the order earlier buffers were released, so the
reports come and go with the calls made before. Exits 1 when Oclgrind reports.
"""
import os
import re
import sys
import tempfile

import numpy as np
import pyopencl as cl

SRC = r"""
__kernel void fill(__global float *dst, int n)
{
    const int i = get_global_id(0);
    if (i < n)
        dst[i] = (float)i;
}

__kernel void check(__global const float *src, __global int *ok, int n)
{
    const int i = get_global_id(0);
    if (i >= n)
        return;
    if (src[i] == (float)i)  /* a branch on the loaded value: the checker looks at it */
        ok[i] = 1;
    else
        ok[i] = 0;
}
"""
SMALL, LARGE = 120, 1024  # floats


class Reports:
    """Oclgrind's messages during the block: from OCLGRIND_LOG when set, else from stderr."""

    def __init__(self):
        self.log = os.environ.get("OCLGRIND_LOG")
        self.text = ""

    def __enter__(self):
        if self.log:
            self.start = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        else:
            sys.stderr.flush()
            self.tmp = tempfile.TemporaryFile()
            self.saved = os.dup(2)
            os.dup2(self.tmp.fileno(), 2)
        return self

    def __exit__(self, *exc):
        if self.log:
            if os.path.exists(self.log):
                with open(self.log, "rb") as f:
                    f.seek(self.start)
                    self.text = f.read().decode("utf-8", "replace")
        else:
            os.dup2(self.saved, 2)
            os.close(self.saved)
            self.tmp.seek(0)
            self.text = self.tmp.read().decode("utf-8", "replace")
            sys.stderr.write(self.text[:2000])  # let the first reports show as usual
        return False

    def count(self, kernel: str) -> int:
        return len(re.findall(r"uninitialized value\s+Kernel: " + kernel + r"\b", self.text))


def run(queue, kernels, n, buf, ok):
    """`fill` writes all n values of buf, `check` reads them: how many are right."""
    fill, check = kernels
    fill(queue, (n,), None, buf, np.int32(n))
    check(queue, (n,), None, buf, ok, np.int32(n))
    got = np.empty(n, np.int32)
    cl.enqueue_copy(queue, got, ok)
    queue.finish()
    return int(got.sum())


def main() -> int:
    platforms = [p for p in cl.get_platforms() if p.get_devices()]
    platform = next((p for p in platforms if "Oclgrind" in p.name), platforms[0])
    device = platform.get_devices()[0]
    mode = "--hold" if "--hold" in sys.argv else "--host-write" if "--host-write" in sys.argv else "release"
    print(f"platform: {platform.name}, device: {device.name}, "
          f"OCLGRIND_UNINITIALIZED={os.environ.get('OCLGRIND_UNINITIALIZED', '(unset: no checks)')}, mode: {mode}")
    ctx = cl.Context([device])
    queue = cl.CommandQueue(ctx)
    prog = cl.Program(ctx, SRC).build(options=["-cl-opt-disable"])
    kernels = cl.Kernel(prog, "fill"), cl.Kernel(prog, "check")
    mf = cl.mem_flags
    ok = cl.Buffer(ctx, mf.READ_WRITE, LARGE * 4)  # held throughout: only `small` is released
    with Reports() as reports:
        small = cl.Buffer(ctx, mf.READ_WRITE, SMALL * 4)
        small_ok = run(queue, kernels, SMALL, small, ok)
        if mode != "--hold":
            small.release()  # its buffer number goes back to Oclgrind's free list
        large = cl.Buffer(ctx, mf.READ_WRITE, LARGE * 4)  # gets that number (or a new one with --hold)
        if mode == "--host-write":
            cl.enqueue_copy(queue, large, np.zeros(LARGE, np.float32))
        large_ok = run(queue, kernels, LARGE, large, ok)
    print(f"values right: small {small_ok}/{SMALL}, large {large_ok}/{LARGE}")
    got = reports.count("check")
    print(f"uninitialised-value reports in `check`: expected 0, got {got}"
          + (f" (the large buffer's values past the small one's {SMALL})" if got else ""))
    return 1 if got or small_ok != SMALL or large_ok != LARGE else 0


if __name__ == "__main__":
    sys.exit(main())
