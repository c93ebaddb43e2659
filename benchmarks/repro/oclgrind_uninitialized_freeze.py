"""Oclgrind 21.10's uninitialised-value checker aborts on LLVM's `freeze` instruction.

Any kernel that takes both the quotient and the remainder of the same operands is enough:
with optimisation on, LLVM's DivRemPairs pass (for targets with no combined div/rem, as
Oclgrind's SPIR target) rewrites `x % y` as `x - (x / y) * y` and inserts `freeze x` to keep
the rewrite legal. Oclgrind executes `freeze` itself, but its Uninitialized plugin does not
know it and stops the simulation:

    OCLGRIND FATAL ERROR (./src/plugins/Uninitialized.cpp:1805)
    Unsupported instruction: freeze

    OCL_ICD_VENDORS=/tmp/icd OCLGRIND_UNINITIALIZED=1 python benchmarks/repro/oclgrind_uninitialized_freeze.py

(/tmp/icd holding an ICD file that names /usr/lib/oclgrind/liboclgrind-rt-icd.so). Without
OCLGRIND_UNINITIALIZED, or with --opt-disable (-cl-opt-disable: no freeze), it runs and
prints the right values. clconv's kernels compute positions as quotient and remainder in
many places (frames, tiles, channels), so CI runs Oclgrind with its memory-access and
data-race checks and without this plugin. Exits 1 when the values are wrong.
"""
import sys

import numpy as np
import pyopencl as cl

SRC = r"""
__kernel void k(__global const long *in, __global long *out, long n)
{
    const int i = get_global_id(0);
    const long v = in[i];
    out[i] = v / n * 1000 + v % n;
}
"""


def main() -> int:
    platforms = [p for p in cl.get_platforms() if p.get_devices()]
    platform = next((p for p in platforms if "Oclgrind" in p.name), platforms[0])
    device = platform.get_devices()[0]
    options = ["-cl-opt-disable"] if "--opt-disable" in sys.argv else []
    print(f"platform: {platform.name}, device: {device.name}, options: {options}")
    ctx = cl.Context([device])
    queue = cl.CommandQueue(ctx)
    data = np.array([5, 17, 23, 40, 41, 99, 100, 7], np.int64)
    mf = cl.mem_flags
    src = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=data)
    dst = cl.Buffer(ctx, mf.WRITE_ONLY, data.nbytes)
    cl.Program(ctx, SRC).build(options=options).k(queue, data.shape, None, src, dst, np.int64(7))
    got = np.empty_like(data)
    cl.enqueue_copy(queue, got, dst)
    expected = data // 7 * 1000 + data % 7
    print("expected:", expected.tolist())
    print("got:     ", got.tolist())
    return 0 if (got == expected).all() else 1


if __name__ == "__main__":
    sys.exit(main())
