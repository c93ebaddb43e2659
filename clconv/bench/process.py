"""Whole-process comparisons for ``clconv bench --preset targets``: ``clconv apply`` and
``clconv batch`` as subprocesses against the same work done by a short Pillow + OpenCV script
(and ``vips conv`` when libvips' command line is installed), and ``clconv apply`` with cold caches.

Each side is a fresh process timed from start to exit (wall time), with warm caches: every command
runs once untimed before the rounds, and the rounds interleave the commands
(``clconv.bench.harness.interleaved``); a speed-up is the median over rounds of (reference seconds
/ clconv seconds) in the same round. The outputs are read back and checked against the float64
oracle (``clconv.bench.checks.oracle``) on the same pixels.

The references write PNG at clconv's zlib level (``clconv.imageio.PNG_COMPRESS_LEVEL``), so that
both sides pay the same encoder. Pillow and OpenCV are imported inside the functions that need
them; ``photo_like``, ``make_folder``, ``clconv_command``, ``cv2_one_liner`` and ``vips_mask`` are
also used by the scripts in ``benchmarks/``.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from clconv.bench.checks import max_error, oracle
from clconv.bench.harness import interleaved, median_ratio
from clconv.bench.references import NO_OPENCV, opencv
from clconv.constants import max_value

KERNEL = "sobel-x"
TIMEOUT_S = 600
FAILURES = (RuntimeError, subprocess.TimeoutExpired, OSError)
NO_CV2 = NO_OPENCV + ": the Pillow + cv2 script is skipped"
# What the one-liner and the Pool script compute from the image ``a`` and the kernel ``k``.
EDGE_FILTER = "np.clip(np.abs(cv2.filter2D(a,cv2.CV_32F,k,borderType=cv2.BORDER_REFLECT)),0,255).astype(np.uint8)"

U8_MAX = int(max_value(np.uint8))  # the synthetic photographs are 8-bit


# --------------------------------------------------------------------------- images


def photo_like(height: int, width: int, seed: int) -> np.ndarray:
    """An 8-bit RGB image that compresses like a photograph: waves, soft-edged discs, sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.zeros((height, width, 3), np.float32)
    for c in range(3):
        img[..., c] = 90 + 60 * np.sin(x / rng.uniform(40, 200) + rng.uniform(0, 6)) * np.cos(y / rng.uniform(40, 200))
    for _ in range(12):  # discs of flat-ish colour with soft edges
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(20, 160)
        mask = np.clip((r - np.hypot(y - cy, x - cx)) / 4, 0, 1)[..., None]
        img = img * (1 - mask) + rng.uniform(0, U8_MAX, 3) * mask
    img += rng.normal(0, 3, img.shape)  # sensor noise
    return np.clip(img, 0, U8_MAX).astype(np.uint8)


def make_folder(folder: Path, count: int, height: int, width: int) -> None:
    """``count`` photo-like PNGs (``img0000.png`` ...): 8 distinct bases, shifted from file to file."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bases = [photo_like(height, width, seed) for seed in range(min(count, 8))]
    for i in range(count):
        base = bases[i % len(bases)]
        Image.fromarray(np.roll(base, 7 * i, axis=1)).save(folder / f"img{i:04d}.png")


def gradient_png(path: str, size=(1024, 1024)) -> None:
    """An RGB PNG of three gradients with a little noise (the cold-cache apply's input)."""
    from PIL import Image

    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    noise = np.random.default_rng(5).integers(0, 32, (h, w, 3))
    rgb = np.stack([x * U8_MAX // w, y * U8_MAX // h, (x + y) * U8_MAX // (w + h)], axis=-1) + noise
    Image.fromarray(np.clip(rgb, 0, U8_MAX).astype(np.uint8)).save(path)


# --------------------------------------------------------------------------- commands


def clconv_command() -> list[str]:
    """The installed console script next to this Python (else on PATH, else python -m clconv)."""
    beside = os.path.join(os.path.dirname(sys.executable), "clconv")
    if os.path.exists(beside):
        return [beside]
    found = shutil.which("clconv")
    return [found] if found else [sys.executable, "-m", "clconv"]


def png_level() -> int:
    """The zlib level clconv writes PNGs with, so that the other tools are asked for the same."""
    from clconv.imageio import PNG_COMPRESS_LEVEL

    return PNG_COMPRESS_LEVEL


def _weights_literal(weights: np.ndarray) -> str:
    return repr([[float(v) for v in row] for row in np.asarray(weights, np.float64)])


def cv2_one_liner(weights: np.ndarray, level: int | None) -> str:
    """What a user would write instead of ``clconv apply`` for an edge detector: read the PNG with
    Pillow, cv2.filter2D (reflect border, float result), abs, clip, uint8, write the PNG at zlib
    ``level`` (None: Pillow's default). Run as ``python -c ONE_LINER in.png out.png``."""
    save = "" if level is None else f",compress_level={int(level)}"
    return (
        "import sys,numpy as np,cv2;from PIL import Image;"
        "a=np.asarray(Image.open(sys.argv[1]));"
        f"k=np.array({_weights_literal(weights)},np.float32);"
        f"o={EDGE_FILTER};"
        f"Image.fromarray(o).save(sys.argv[2]{save})"
    )


def cv2_pool_script(weights: np.ndarray, level: int) -> str:
    """The loop a user would write instead of ``clconv batch``: the one-liner's work on every file
    of a folder, in a multiprocessing Pool. Run as ``python SCRIPT.py IN_DIR OUT_DIR JOBS``."""
    return f"""import os, sys
from multiprocessing import Pool

import cv2
import numpy as np
from PIL import Image

k = np.array({_weights_literal(weights)}, np.float32)


def one(job):
    src, dst = job
    a = np.asarray(Image.open(src))
    o = {EDGE_FILTER}
    Image.fromarray(o).save(dst, compress_level={int(level)})


if __name__ == "__main__":
    src, dst, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.makedirs(dst, exist_ok=True)
    work = [(os.path.join(src, n), os.path.join(dst, n)) for n in sorted(os.listdir(src))]
    with Pool(jobs) as pool:
        for _ in pool.imap_unordered(one, work, chunksize=1):
            pass
"""


def vips_mask(weights: np.ndarray) -> str:
    """A libvips matrix file: 'width height scale offset', then the rows."""
    w = np.asarray(weights, np.float64)
    rows = "\n".join(" ".join(f"{v:g}" for v in row) for row in w)
    return f"{w.shape[1]} {w.shape[0]} 1 0\n{rows}\n"


def process_env() -> dict:
    """The environment both sides run in: as a user's shell has it, but with Python's byte code
    cached as for installed packages (PYTHONDONTWRITEBYTECODE would make the side whose code is
    not precompiled, an editable clconv, compile its modules on every start)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_timed(command: list[str], env: dict | None = None) -> float:
    """Wall seconds of ``command`` from start to exit; RuntimeError (its last stderr line) on failure."""
    env = process_env() if env is None else env
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        name = os.path.basename(command[0])
        raise RuntimeError(last if last.startswith(name + ":") else f"{name}: {last}")
    return seconds


def have_cv2() -> bool:
    """Whether OpenCV (cv2) is installed."""
    return opencv() is not None


# --------------------------------------------------------------------------- output checks


def _read(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im)


def check_file(path, expected: np.ndarray, frame: int = 0) -> float:
    """Largest |sample - expected| of the PNG at ``path``; ``frame`` pixels at each edge left out
    (for a tool whose border rule is not the oracle's)."""
    got = _read(path)
    if frame:
        got, expected = got[frame:-frame, frame:-frame], expected[frame:-frame, frame:-frame]
    return max_error(got, expected)


def differing(path_a, path_b) -> int | None:
    """Samples that differ between two images (None when their shapes differ)."""
    a, b = _read(path_a), _read(path_b)
    return int(np.count_nonzero(a != b)) if a.shape == b.shape else None


# --------------------------------------------------------------------------- clconv apply, cold


def measure_apply(device: str | None, warm_runs: int = 5, cold_runs: int = 1, kernel: str = "sharpen") -> dict:
    """Wall time of ``clconv apply -k KERNEL in.png out.png`` (1024x1024 RGB) as a subprocess:
    warm (after one untimed run; median of ``warm_runs``; none when 0), and cold (empty
    POCL_CACHE_DIR and XDG_CACHE_HOME in a temporary folder, so PoCL and pyopencl compile
    everything again)."""
    with tempfile.TemporaryDirectory(prefix="clconv-bench-") as tmp:
        src, dst = os.path.join(tmp, "in.png"), os.path.join(tmp, "out.png")
        gradient_png(src)
        command = [*clconv_command(), "apply", "-k", kernel, "--force", src, dst]
        if device:
            command += ["--device", device]
        env = dict(os.environ)
        try:
            if warm_runs:
                run_timed(command, env)
            warm = [run_timed(command, env) for _ in range(warm_runs)]
            cold = [
                run_timed(
                    command,
                    dict(
                        env,
                        POCL_CACHE_DIR=os.path.join(tmp, f"cold-{i}", "pocl"),
                        XDG_CACHE_HOME=os.path.join(tmp, f"cold-{i}", "xdg"),
                    ),
                )
                for i in range(cold_runs)
            ]
        except FAILURES as exc:
            return {"error": str(exc)}
    return {
        "command": " ".join(command[:1] + command[1:4]) + " in.png out.png",
        "warm_s": statistics.median(warm) if warm else None,
        "warm_min_s": min(warm) if warm else None,
        "warm_runs": warm,
        "cold_s": statistics.median(cold) if cold else None,
        "cold_runs": cold,
    }


# --------------------------------------------------------------------------- clconv apply vs the one-liners


def _apply_commands(tmp: str, src: str, outs: dict, kernel, device, vips, left_out: dict) -> dict:
    """The commands to time, by tool: clconv always; the one-liner with OpenCV; vips when found.
    A reference that cannot run is named in ``left_out`` with the reason."""
    level = png_level()
    commands = {
        "clconv": [*clconv_command(), "apply", "-k", kernel.spec, "--force", src, outs["clconv"]]
        + (["--device", device] if device else [])
    }
    if have_cv2():
        commands["cv2"] = [sys.executable, "-c", cv2_one_liner(kernel.weights, level), src, outs["cv2"]]
    else:
        left_out["cv2"] = NO_CV2
    if vips:
        mask = os.path.join(tmp, "mask.mat")
        Path(mask).write_text(vips_mask(kernel.weights))
        commands["vips"] = [vips, "conv", src, f"{outs['vips']}[compression={level}]", mask, "--precision", "integer"]
    else:
        left_out["vips"] = "vips not on PATH: the vips comparison is skipped"
    return commands


def _warm_up(commands: dict, left_out: dict) -> dict:
    """Each command once untimed (warm caches); a failing reference is left out, a failing clconv
    raises. Returns the runs that remain, by tool."""
    runs = {}
    for name, command in list(commands.items()):
        try:
            run_timed(command)
        except FAILURES as exc:
            if name == "clconv":
                raise
            left_out[name] = f"{name} failed, left out: {exc}"
            del commands[name]
            continue
        runs[name] = lambda command=command: run_timed(command)
    return runs


def _apply_errors(image: np.ndarray, kernel, outs: dict, commands: dict, notes: list) -> dict:
    """Each tool's largest error against the oracle. vips conv at integer precision clips negative
    sums to 0 (no abs) and extends edges by copying: the same work, compared with the clipped
    oracle away from the edges."""
    from clconv.kernels import Linear

    expected = oracle(image, kernel, "reflect")
    errors = {name: check_file(outs[name], expected) for name in ("clconv", "cv2") if name in commands}
    if "vips" in commands:
        clipped = Linear(kernel.spec + " (clipped, no abs)", kernel.weights)
        errors["vips"] = check_file(outs["vips"], oracle(image, clipped, "reflect"), frame=max(kernel.shape) // 2)
        notes.append(
            "vips conv clips negative values to 0 instead of taking |v|, and copies edge pixels: "
            "its output is checked without abs, away from the edges"
        )
    return errors


def measure_apply_vs(
    device: str | None = None,
    rounds: int = 5,
    size: tuple[int, int] = (1024, 1024),
    kernel: str = KERNEL,
    vips: str | None = None,
) -> dict:
    """``clconv apply -k KERNEL in.png out.png`` against the Pillow + cv2 one-liner (when OpenCV is
    installed) and ``vips conv`` (when the ``vips`` command is found: ``vips`` is its path, default
    from PATH, "" for none); one photo-like RGB PNG of ``size`` (h, w); warm caches, ``rounds``
    interleaved rounds. A reference that fails is left out with a note; clconv failing ends it.

    Returns ``{"clconv": [s...], "cv2": [s...], "vips": [s...] (those run), "vs_cv2", "vs_vips"
    (median ratios; None when not run or an output is wrong), "errors" (max error against the
    oracle, per tool run), "ok" (per tool run), "differ_cv2" (samples where clconv's output and
    the one-liner's differ; None when not compared), "left_out" ({tool: why} for references
    not run), "notes": [...], "rounds", "size", "command"}``, or ``{"error": ...}`` when clconv
    fails."""
    from PIL import Image

    from clconv.bench.sweep import parse_kernel

    parsed = parse_kernel(kernel)
    notes: list[str] = []
    left_out: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="clconv-bench-apply-") as tmp:
        src = os.path.join(tmp, "in.png")
        image = photo_like(size[0], size[1], seed=11)
        Image.fromarray(image).save(src)
        outs = {name: os.path.join(tmp, f"out-{name}.png") for name in ("clconv", "cv2", "vips")}
        commands = _apply_commands(
            tmp, src, outs, parsed, device, shutil.which("vips") if vips is None else vips, left_out
        )
        try:
            times = interleaved(_warm_up(commands, left_out), rounds, warm=False)
        except FAILURES as exc:
            return {"error": str(exc), "notes": list(left_out.values()), "left_out": left_out}
        errors = _apply_errors(image, parsed, outs, commands, notes)
        differ = differing(outs["clconv"], outs["cv2"]) if "cv2" in commands else None
    ok = {name: err <= 1.0 for name, err in errors.items()}
    found: dict[str, Any] = {name: times[name] for name in commands}
    for name in ("cv2", "vips"):
        found[f"vs_{name}"] = (
            median_ratio(times[name], times["clconv"]) if name in commands and ok["clconv"] and ok[name] else None
        )
    found.update(
        {
            "errors": errors,
            "ok": ok,
            "differ_cv2": differ,
            "notes": list(left_out.values()) + notes,
            "left_out": left_out,
            "rounds": rounds,
            "size": f"{size[1]}x{size[0]}",
            "command": f"clconv apply -k {kernel} in.png out.png",
        }
    )
    return found


# --------------------------------------------------------------------------- clconv batch vs a Pool


class _FreshFolders:
    """A new output folder per run of each tool; the one before it is removed, so the latest
    outputs stay for the check."""

    def __init__(self, work: Path):
        self.work = work
        self.count: dict[str, int] = {}

    def __call__(self, name: str) -> Path:
        self.count[name] = self.count.get(name, 0) + 1
        previous = self.latest(name, back=1)
        if previous.exists():
            shutil.rmtree(previous)
        return self.latest(name)

    def latest(self, name: str, back: int = 0) -> Path:
        return self.work / f"{name}-{self.count.get(name, 0) - back}"


def _batch_errors(src: Path, outs: dict, kernel) -> tuple[dict, int | None]:
    """(largest error against the oracle per tool over every file, samples that differ between
    the tools over every file; None where a file is missing or shapes differ)."""
    errors = {tool: 0.0 for tool in outs}
    differ: int | None = 0
    for name in sorted(os.listdir(src)):
        expected = oracle(_read(src / name), kernel, "reflect")
        for tool, folder in outs.items():
            path = folder / name
            errors[tool] = max(errors[tool], check_file(path, expected) if path.exists() else float("inf"))
        if (outs["clconv"] / name).exists() and (outs["cv2"] / name).exists():
            d = differing(outs["clconv"] / name, outs["cv2"] / name)
            differ = None if d is None or differ is None else differ + d
        else:
            differ = None
    return errors, differ


def measure_batch_vs(
    device: str | None = None,
    rounds: int = 3,
    files: int = 20,
    size: tuple[int, int] = (768, 1024),
    jobs: int = 2,
    kernel: str = KERNEL,
) -> dict:
    """``clconv batch -k KERNEL --jobs JOBS IN OUT`` against the Pillow + cv2 loop in a Pool of
    ``jobs`` processes, over the same ``files`` photo-like PNGs of ``size`` (h, w); warm caches,
    ``rounds`` interleaved rounds, fresh output folders each time.

    Returns ``{"clconv": [s...], "cv2": [s...], "vs_cv2", "errors", "ok", "differ_cv2" (samples
    that differ over every file), "files", "jobs", "command"}``, ``{"error": ...}`` when either
    side fails, or ``{"skipped": why}`` without OpenCV."""
    from clconv.bench.sweep import parse_kernel

    if not have_cv2():
        return {"skipped": NO_CV2}
    parsed = parse_kernel(kernel)
    with tempfile.TemporaryDirectory(prefix="clconv-bench-batch-") as tmp:
        work = Path(tmp)
        src = work / "in"
        make_folder(src, files, size[0], size[1])
        script = work / "cv2_pool.py"
        script.write_text(cv2_pool_script(parsed.weights, png_level()))
        fresh = _FreshFolders(work)
        clconv_batch = [*clconv_command(), "batch", "-q", "-k", kernel, "--jobs", str(jobs), str(src)]
        device_args = ["--device", device] if device else []
        runs = {
            "clconv": lambda: run_timed(clconv_batch + [str(fresh("clconv"))] + device_args),
            "cv2": lambda: run_timed([sys.executable, str(script), str(src), str(fresh("cv2")), str(jobs)]),
        }
        try:
            times = interleaved(runs, rounds)
        except FAILURES as exc:
            return {"error": str(exc)}
        errors, differ = _batch_errors(src, {name: fresh.latest(name) for name in runs}, parsed)
    ok = {tool: err <= 1.0 for tool, err in errors.items()}
    return {
        "clconv": times["clconv"],
        "cv2": times["cv2"],
        "vs_cv2": median_ratio(times["cv2"], times["clconv"]) if all(ok.values()) else None,
        "errors": errors,
        "ok": ok,
        "differ_cv2": differ,
        "files": files,
        "jobs": jobs,
        "rounds": rounds,
        "size": f"{size[1]}x{size[0]}",
        "command": f"clconv batch -q -k {kernel} --jobs {jobs} IN OUT",
    }
