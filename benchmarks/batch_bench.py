"""`clconv batch` against the I/O floor, and its memory with few and many files.

    python benchmarks/batch_bench.py [--files 200] [--size 1024x768] [--jobs N] [--repeat 3]
                                     [--kernel gaussian:sigma=1,size=5] [--memory] [--json FILE]

Throughput: a generated folder of PNGs (photo-like: smooth shapes, gradients and sensor noise, so
that they compress like photographs, not like noise or flat colour; clconv.bench.process.make_folder,
which `clconv bench --preset targets` uses too). Each round runs, in an order that rotates from round
to round (clconv.bench.harness, as `clconv bench`):
  floor         Pillow decode + encode of the same files into PNGs, with the same number of
                processes (a multiprocessing pool), no filtering: what any tool must at least spend.
                PNGs are written with clconv's zlib level (imageio.PNG_COMPRESS_LEVEL) unless
                --floor-level says otherwise
  clconv batch  the installed script, the 5x5 Gaussian, the same number of jobs, and right after it
  output floor  the same decode + encode over clconv's outputs: encoders take longer or shorter on
                filtered pixels than on the originals, and this floor holds that apart, so that the
                ratio against it is the pipeline's own overhead (filtering, hand-offs, start-up)
The figure is images/s (median over rounds) and clconv's share of each floor's images/s (median of
the per-round ratios, so a noisy, shared machine still gives comparable figures).

--memory: peak RSS of `clconv batch` over 20 and over 2,000 small files (64x48): of the main process
(the largest) and of the whole process tree (sampled every 20 ms).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

from clconv.bench.harness import interleaved, median_ratio
from clconv.bench.process import clconv_command, make_folder


def _decode_encode(job: tuple[str, str, int]) -> None:
    src, dst, level = job
    with Image.open(src) as image:
        image.load()
        image.save(dst, compress_level=level)


def floor_run(src: Path, dst: Path, jobs: int, level: int) -> float:
    files = sorted(os.listdir(src))
    dst.mkdir(parents=True, exist_ok=True)
    work = [(str(src / name), str(dst / name), level) for name in files]
    context = multiprocessing.get_context("forkserver")
    start = time.perf_counter()
    with context.Pool(jobs) as pool:
        for _ in pool.imap_unordered(_decode_encode, work, chunksize=1):
            pass
    return time.perf_counter() - start


def clconv_run(src: Path, dst: Path, jobs: int, kernel: str) -> float:
    start = time.perf_counter()
    subprocess.run([*clconv_command(), "batch", "-q", "-k", kernel, "--jobs", str(jobs), str(src), str(dst)],
                   check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def tree_rss(pid: int) -> tuple[int, int]:
    """(RSS of pid, RSS of pid and all its descendants), in bytes."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack.extend(children.get(p, []))
    return rss.get(pid, 0), total


def peak_memory(src: Path, dst: Path, jobs: int, kernel: str) -> dict:
    proc = subprocess.Popen([*clconv_command(), "batch", "-q", "-k", kernel, "--jobs", str(jobs), str(src),
                             str(dst)], stdin=subprocess.DEVNULL)
    peaks = {"main": 0, "tree": 0}

    def sample():
        while proc.poll() is None:
            main, tree = tree_rss(proc.pid)
            peaks["main"], peaks["tree"] = max(peaks["main"], main), max(peaks["tree"], tree)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    if proc.wait() != 0:
        raise SystemExit(f"clconv batch failed with exit {proc.returncode}")
    sampler.join()
    return {k: round(v / 2**20, 1) for k, v in peaks.items()}


def throughput(src: Path, work: Path, jobs: int, kernel: str, level: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per round of the floor and of clconv batch, interleaved, and of the output floor
    over each round's clconv outputs (run right after clconv)."""
    clconv_run(src, work / "warm", jobs, kernel)  # compile the programs once
    output_floor: list[float] = []

    def floor() -> float:
        seconds = floor_run(src, work / "floor", jobs, level)
        shutil.rmtree(work / "floor")
        return seconds

    def clconv_then_output_floor() -> float:
        seconds = clconv_run(src, work / "clconv", jobs, kernel)
        output_floor.append(floor_run(work / "clconv", work / "again", jobs, level))
        for folder in ("clconv", "again"):
            shutil.rmtree(work / folder)
        return seconds

    times = interleaved({"floor": floor, "clconv": clconv_then_output_floor}, rounds, warm=False)
    times["output floor"] = output_floor
    return times


def summary(times: dict[str, list[float]], files: int) -> dict:
    """Images/s (median over rounds) of each side, and clconv's share of each floor (median of
    per-round ratios)."""
    for i in range(len(times["clconv"])):
        print(f"round {i + 1}: " + ", ".join(f"{name} {files / t[i]:.1f} images/s" for name, t in times.items()))
    share, share_out = (median_ratio(times[floor], times["clconv"]) for floor in ("floor", "output floor"))
    found = {
        "floor_images_s": round(files / statistics.median(times["floor"]), 2),
        "clconv_images_s": round(files / statistics.median(times["clconv"]), 2),
        "output_floor_images_s": round(files / statistics.median(times["output floor"]), 2),
        "share_of_floor": round(share, 3),
        "share_of_output_floor": round(share_out, 3),
    }
    print(f"median: floor {found['floor_images_s']} images/s, clconv batch {found['clconv_images_s']} "
          f"images/s: {100 * share:.0f}% of the floor (goal: at least 85%); output floor "
          f"{found['output_floor_images_s']} images/s: clconv at {100 * share_out:.0f}% of it")
    return found


def memory(work: Path, jobs: int, kernel: str) -> dict:
    found = {}
    for count in (20, 2000):
        small = work / f"small{count}"
        make_folder(small, count, 48, 64)
        peaks = peak_memory(small, work / f"small{count}-out", jobs, kernel)
        found[f"peak_rss_mib_{count}_files"] = peaks
        print(f"{count} files of 64x48: peak RSS main process {peaks['main']} MiB, process tree {peaks['tree']} MiB")
    return found


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size", default="1024x768", metavar="WxH")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kernel", default="gaussian:sigma=1,size=5")
    parser.add_argument("--floor-level", type=int, default=None,
                        help="zlib level of the floor's PNGs (default: the level clconv writes)")
    parser.add_argument("--memory", action="store_true", help="also measure peak RSS for 20 and 2,000 files")
    parser.add_argument("--json", default=None, metavar="FILE")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    from clconv.imageio import PNG_COMPRESS_LEVEL

    level = PNG_COMPRESS_LEVEL if args.floor_level is None else args.floor_level
    work = Path(tempfile.mkdtemp(prefix="clconv-batch-bench-"))
    result: dict = {"files": args.files, "size": f"{width}x{height}", "jobs": args.jobs, "kernel": args.kernel,
                    "floor_png_level": level, "clconv_png_level": PNG_COMPRESS_LEVEL}
    try:
        src = work / "in"
        make_folder(src, args.files, height, width)
        megabytes = sum(p.stat().st_size for p in src.iterdir()) / 2**20
        print(f"{args.files} PNGs of {width}x{height} ({megabytes:.0f} MiB), {args.jobs} processes, {args.kernel}, "
              f"PNG zlib level: floor {level}, clconv {PNG_COMPRESS_LEVEL}")
        result.update(summary(throughput(src, work, args.jobs, args.kernel, level, args.repeat), args.files))
        if args.memory:
            result.update(memory(work, args.jobs, args.kernel))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
