"""Oclgrind 21.10 (and its master, v26.03.1) miscomputes `switch (x & 15)` once LLVM optimises it.

Found through cl/fft.cl's columns shape (FFT_COLUMNS=1), which gave wrong FFTs on Oclgrind.
The private arrays are irrelevant: fft_private_dft picks each sub-pass's radix with
`switch (subs & 15)`, and with optimisation on clang shrinks that to

    %t = trunc i32 %x to i4
    switch i4 %t, label %default [ i4 2, ... ]

Oclgrind stores an i4 in one byte, and its `trunc` (WorkItem.cpp, INSTRUCTION(itrunc))
copies the low byte without masking it to 4 bits; `swtch` then compares that byte
(0x25 for x = 0x25) with the case values (5), finds no match and takes the default branch.
So a packed radix list like 0x25 (radix 5, then 2) ran the radix-9 code. Values below 16
work, and -cl-opt-disable (no trunc: `and i32` + `switch i32`) works too.

    OCL_ICD_VENDORS=/tmp/icd python benchmarks/repro/oclgrind_switch_i4.py   # Oclgrind: mismatch
    python benchmarks/repro/oclgrind_switch_i4.py                            # PoCL: OK
    ... --opt-disable                                                             # build with -cl-opt-disable

It uses the Oclgrind platform when one is listed, otherwise the first platform with a
device. It prints expected and obtained values and exits 1 on a mismatch.
"""
import sys

import numpy as np
import pyopencl as cl

SRC = r"""
__kernel void k(__global const int *in, __global int *out)
{
    const int i = get_global_id(0);
    int r;
    switch (in[i] & 15) {
    case 2: r = 20; break;
    case 3: r = 30; break;
    case 5: r = 50; break;
    case 8: r = 80; break;
    default: r = -1; break;
    }
    out[i] = r;
}
"""


def main() -> int:
    options = ["-cl-opt-disable"] if "--opt-disable" in sys.argv[1:] else []
    platforms = [p for p in cl.get_platforms() if p.get_devices()]
    platform = next((p for p in platforms if p.name == "Oclgrind"), platforms[0])
    device = platform.get_devices()[0]
    ctx = cl.Context([device])
    queue = cl.CommandQueue(ctx)
    program = cl.Program(ctx, SRC).build(options=options)

    x = np.array([2, 5, 8, 9, 0x25, 0x12, 0x38, 0x13], np.int32)
    expected = np.array([{2: 20, 3: 30, 5: 50, 8: 80}.get(int(v) & 15, -1) for v in x], np.int32)
    mf = cl.mem_flags
    src = cl.Buffer(ctx, mf.READ_ONLY | mf.COPY_HOST_PTR, hostbuf=x)
    dst = cl.Buffer(ctx, mf.WRITE_ONLY, x.nbytes)
    program.k(queue, x.shape, None, src, dst)
    got = np.empty_like(x)
    cl.enqueue_copy(queue, got, dst)
    queue.finish()

    print(f"platform: {platform.name} ({platform.version}), device: {device.name}, options: {options}")
    print("input:   ", [hex(int(v)) for v in x])
    print("expected:", expected.tolist())
    print("got:     ", got.tolist())
    if (got == expected).all():
        print("OK")
        return 0
    print("MISMATCH at inputs", [hex(int(v)) for v in x[got != expected]])
    return 1


if __name__ == "__main__":
    sys.exit(main())
