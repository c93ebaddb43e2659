#!/usr/bin/env bash
# The GPU check: on a machine with a GPU for about ten minutes, from the repository root:
#
#   bash benchmarks/gpu_check.sh [REPORT_DIR]      (default: $OUT, else ./gpu-report)
#
# 1. finds an OpenCL GPU platform; if pyopencl sees none, writes an ICD file naming the NVIDIA
#    driver's libnvidia-opencl.so* into a temporary folder and points OCL_ICD_VENDORS at it;
# 2. clconv devices --check (every program built, each algorithm against scipy, 3x3 throughput);
# 3. the oracle tests on the GPU (the implementation subset, low-rank kernels, then convolve);
# 4. clconv bench --preset targets --device gpu (the 3x3 row's device-only GB/s is the one to
#    compare with the card's memory bandwidth: the goal is 60% or more).
# Each step has a time limit and the script goes on after a failure; REPORT_DIR/report.txt
# gathers everything, with targets.json beside it. It needs Python with clconv's dependencies
# (pip install '.[test,bench]'); with PYTHONPATH at the repository it runs from a checkout.
set -uo pipefail
cd "$(dirname "$0")/.."
report_dir="${1:-${OUT:-gpu-report}}"
mkdir -p "$report_dir"
report="$report_dir/report.txt"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python="${PYTHON:-python3}"

log() { echo "== $*" | tee -a "$report"; }
: > "$report"
log "$(date -u +%FT%TZ) $(uname -n); nvidia-smi:"
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || true) | tee -a "$report"

if ! "$python" -c "import pyopencl as cl, sys; sys.exit(0 if any(d.type & cl.device_type.GPU for p in cl.get_platforms() for d in p.get_devices()) else 1)" 2>/dev/null; then
    lib="$(ls /usr/lib/x86_64-linux-gnu/libnvidia-opencl.so* /usr/lib64/libnvidia-opencl.so* /usr/lib/libnvidia-opencl.so* 2>/dev/null | head -1)"
    if [ -n "$lib" ]; then
        icd_dir="$(mktemp -d)"
        echo "$lib" > "$icd_dir/nvidia.icd"
        export OCL_ICD_VENDORS="$icd_dir"
        log "no GPU platform listed: OCL_ICD_VENDORS=$icd_dir naming $lib"
    else
        log "no GPU platform and no libnvidia-opencl.so found"
    fi
fi

log "clconv devices --check"
timeout 150 "$python" -m clconv devices --check --timeout 120 2>&1 | tee -a "$report"

log "oracle tests on the GPU"
CLCONV_DEVICE=gpu CLCONV_TEST_DEVICE=gpu timeout 240 "$python" -m pytest -q -x -p no:cacheprovider \
    tests/test_implementations.py tests/test_low_rank.py tests/test_convolve.py 2>&1 | tail -15 | tee -a "$report"

log "clconv bench --preset targets --device gpu"
timeout 200 "$python" -m clconv bench --preset targets --device gpu --json "$report_dir/targets.json" 2>&1 \
    | tail -60 | tee -a "$report"
log "done: $report"
