"""Whole-process comparisons for ``clconv bench --preset targets``: ``clconv apply`` and
``clconv batch`` as subprocesses against the same work done by a short Pillow + OpenCV script
(and ``vips conv`` when libvips' command line is installed).

Each side is a fresh process timed from start to exit (wall time), with warm caches: every command
runs once untimed before the rounds. The rounds interleave the commands in an order that rotates
from round to round, so that a shared, noisy machine slows both sides alike; a speed-up is the
median over rounds of (reference seconds / clconv seconds) in the same round. The outputs are
read back and checked against the float64 oracle (``clconv.bench.oracle``) on the same pixels.

The references write PNG at clconv's zlib level (``clconv.imageio.PNG_COMPRESS_LEVEL``), so that
both sides pay the same encoder. numpy, Pillow and OpenCV are imported inside the functions that
need them; ``photo_like`` and ``make_folder`` are also used by ``benchmarks/batch_bench.py``.
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
from typing import Callable

import numpy as np

KERNEL = "sobel-x"
TIMEOUT_S = 600


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
        img = img * (1 - mask) + rng.uniform(0, 255, 3) * mask
    img += rng.normal(0, 3, img.shape)  # sensor noise
    return np.clip(img, 0, 255).astype(np.uint8)


def make_folder(folder: Path, count: int, height: int, width: int) -> None:
    """``count`` photo-like PNGs (``img0000.png`` ...): 8 distinct bases, shifted from file to file."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bases = [photo_like(height, width, seed) for seed in range(min(count, 8))]
    for i in range(count):
        base = bases[i % len(bases)]
        Image.fromarray(np.roll(base, 7 * i, axis=1)).save(folder / f"img{i:04d}.png")


# --------------------------------------------------------------------------- commands


def clconv_command() -> list[str]:
    """The installed console script next to this Python (else on PATH, else python -m clconv)."""
    beside = os.path.join(os.path.dirname(sys.executable), "clconv")
    if os.path.exists(beside):
        return [beside]
    found = shutil.which("clconv")
    return [found] if found else [sys.executable, "-m", "clconv"]


def png_level() -> int:
    from clconv.imageio import PNG_COMPRESS_LEVEL

    return PNG_COMPRESS_LEVEL


def _weights_literal(weights: np.ndarray) -> str:
    return repr([[float(v) for v in row] for row in np.asarray(weights, np.float64)])


def cv2_one_liner(weights: np.ndarray, level: int) -> str:
    """What a user would write instead of ``clconv apply`` for an edge detector: read the PNG with
    Pillow, cv2.filter2D (reflect border, float result), abs, clip, uint8, write the PNG.
    Run as ``python -c ONE_LINER in.png out.png``."""
    return ("import sys,numpy as np,cv2;from PIL import Image;"
            "a=np.asarray(Image.open(sys.argv[1]));"
            f"k=np.array({_weights_literal(weights)},np.float32);"
            "o=np.clip(np.abs(cv2.filter2D(a,cv2.CV_32F,k,borderType=cv2.BORDER_REFLECT)),0,255).astype(np.uint8);"
            f"Image.fromarray(o).save(sys.argv[2],compress_level={int(level)})")


def cv2_pool_script(weights: np.ndarray, level: int) -> str:
    """The loop a user would write instead of ``clconv batch``: the one-liner's work on every file
    of a folder, in a multiprocessing Pool. Run as ``python SCRIPT.py IN_DIR OUT_DIR JOBS``."""
    return f'''import os, sys
from multiprocessing import Pool

import cv2
import numpy as np
from PIL import Image

K = np.array({_weights_literal(weights)}, np.float32)


def one(job):
    src, dst = job
    a = np.asarray(Image.open(src))
    o = np.clip(np.abs(cv2.filter2D(a, cv2.CV_32F, K, borderType=cv2.BORDER_REFLECT)), 0, 255).astype(np.uint8)
    Image.fromarray(o).save(dst, compress_level={int(level)})


if __name__ == "__main__":
    src, dst, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.makedirs(dst, exist_ok=True)
    work = [(os.path.join(src, n), os.path.join(dst, n)) for n in sorted(os.listdir(src))]
    with Pool(jobs) as pool:
        for _ in pool.imap_unordered(one, work, chunksize=1):
            pass
'''


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
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
                          stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        name = os.path.basename(command[0])
        raise RuntimeError(last if last.startswith(name + ":") else f"{name}: {last}")
    return seconds


def interleaved(runs: dict[str, Callable[[], float]], rounds: int, warm: bool = True) -> dict[str, list[float]]:
    """Each run once untimed (``warm``), then ``rounds`` rounds of every run, the order rotating
    from round to round. A run returns its seconds. Returns the seconds per round, by name."""
    names = list(runs)
    if warm:
        for name in names:
            runs[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            times[name].append(runs[name]())
    return times


def median_ratio(reference: list[float], mine: list[float]) -> float | None:
    """Median over rounds of reference seconds / clconv seconds in the same round (> 1: clconv faster)."""
    ratios = [a / b for a, b in zip(reference, mine) if a is not None and b]
    return statistics.median(ratios) if ratios else None


# --------------------------------------------------------------------------- output checks


def expected_8bit(image: np.ndarray, kernel, border: str = "reflect") -> np.ndarray:
    from clconv.bench import oracle

    return oracle(image, kernel, border)


def _read(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im)


def check_file(path, expected: np.ndarray, frame: int = 0) -> float:
    """Largest |sample - expected| of the PNG at ``path``; ``frame`` pixels at each edge left out
    (for a tool whose border rule is not the oracle's)."""
    from clconv.bench import max_error

    got = _read(path)
    if frame:
        got, expected = got[frame:-frame, frame:-frame], expected[frame:-frame, frame:-frame]
    return max_error(got, expected)


def differing(path_a, path_b) -> int | None:
    """Samples that differ between two images (None when their shapes differ)."""
    a, b = _read(path_a), _read(path_b)
    return int(np.count_nonzero(a != b)) if a.shape == b.shape else None


# --------------------------------------------------------------------------- clconv apply


def have_cv2() -> bool:
    import importlib.util

    return importlib.util.find_spec("cv2") is not None


NO_CV2 = "OpenCV not installed (pip install opencv-python-headless): the Pillow + cv2 script is skipped"


def measure_apply_vs(device: str | None = None, rounds: int = 5, size: tuple[int, int] = (1024, 1024),
                     kernel: str = KERNEL, vips: str | None = None) -> dict:
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

    from clconv.kernels import Linear, parse_spec

    parsed = parse_spec(kernel)
    level = png_level()
    vips = vips if vips is not None else shutil.which("vips")
    notes, left_out = [], {}
    with tempfile.TemporaryDirectory(prefix="clconv-bench-apply-") as tmp:
        src = os.path.join(tmp, "in.png")
        image = photo_like(size[0], size[1], seed=11)
        Image.fromarray(image).save(src)
        outs = {name: os.path.join(tmp, f"out-{name}.png") for name in ("clconv", "cv2", "vips")}
        commands = {"clconv": [*clconv_command(), "apply", "-k", kernel, "--force", src, outs["clconv"]]
                    + (["--device", device] if device else [])}
        if have_cv2():
            commands["cv2"] = [sys.executable, "-c", cv2_one_liner(parsed.weights, level), src, outs["cv2"]]
        else:
            left_out["cv2"] = NO_CV2
        if vips:
            mask = os.path.join(tmp, "mask.mat")
            Path(mask).write_text(vips_mask(parsed.weights))
            commands["vips"] = [vips, "conv", src, f"{outs['vips']}[compression={level}]", mask,
                                "--precision", "integer"]
        else:
            left_out["vips"] = "vips not on PATH: the vips comparison is skipped"
        runs = {name: (lambda c=c: run_timed(c)) for name, c in commands.items()}
        try:
            for name in list(runs):  # warm caches; a failing reference is left out, a failing clconv ends it
                try:
                    runs[name]()
                except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
                    if name == "clconv":
                        raise
                    left_out[name] = f"{name} failed, left out: {exc}"
                    del runs[name], commands[name]
            times = interleaved(runs, rounds, warm=False)
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
            return {"error": str(exc), "notes": list(left_out.values()), "left_out": left_out}
        expected = expected_8bit(image, parsed)
        errors = {name: check_file(outs[name], expected) for name in ("clconv", "cv2") if name in commands}
        if "vips" in commands:
            # vips conv at integer precision clips negative sums to 0 (no abs) and extends edges by
            # copying: the same work, compared with the clipped oracle away from the edges.
            clipped = Linear(parsed.spec + " (clipped, no abs)", parsed.weights)
            frame = max(parsed.shape) // 2
            errors["vips"] = check_file(outs["vips"], expected_8bit(image, clipped), frame=frame)
            notes.append("vips conv clips negative values to 0 instead of taking |v|, and copies edge pixels: "
                         "its output is checked without abs, away from the edges")
        differ = differing(outs["clconv"], outs["cv2"]) if "cv2" in commands else None
    ok = {name: err <= 1.0 for name, err in errors.items()}
    found = {name: times[name] for name in commands}
    for name in ("cv2", "vips"):
        found[f"vs_{name}"] = (median_ratio(times[name], times["clconv"]) if name in commands and ok["clconv"]
                               and ok[name] else None)
    found.update({"errors": errors, "ok": ok, "differ_cv2": differ, "notes": list(left_out.values()) + notes,
                  "left_out": left_out, "rounds": rounds,
                  "size": f"{size[1]}x{size[0]}", "command": f"clconv apply -k {kernel} in.png out.png"})
    return found


# --------------------------------------------------------------------------- clconv batch


def measure_batch_vs(device: str | None = None, rounds: int = 3, files: int = 20,
                     size: tuple[int, int] = (768, 1024), jobs: int = 2, kernel: str = KERNEL) -> dict:
    """``clconv batch -k KERNEL --jobs JOBS IN OUT`` against the Pillow + cv2 loop in a Pool of
    ``jobs`` processes, over the same ``files`` photo-like PNGs of ``size`` (h, w); warm caches,
    ``rounds`` interleaved rounds, fresh output folders each time.

    Returns ``{"clconv": [s...], "cv2": [s...], "vs_cv2", "errors", "ok", "differ_cv2" (samples
    that differ over every file), "files", "jobs", "command"}``, ``{"error": ...}`` when either
    side fails, or ``{"skipped": why}`` without OpenCV."""
    from clconv.kernels import parse_spec

    if not have_cv2():
        return {"skipped": NO_CV2}
    parsed = parse_spec(kernel)
    level = png_level()
    with tempfile.TemporaryDirectory(prefix="clconv-bench-batch-") as tmp:
        work = Path(tmp)
        src = work / "in"
        make_folder(src, files, size[0], size[1])
        script = work / "cv2_pool.py"
        script.write_text(cv2_pool_script(parsed.weights, level))
        counter = {"clconv": 0, "cv2": 0}

        def fresh(name: str) -> Path:
            counter[name] += 1
            previous = work / f"{name}-{counter[name] - 1}"
            if previous.exists():  # keep the latest outputs for the check; drop older ones
                shutil.rmtree(previous)
            return work / f"{name}-{counter[name]}"

        def clconv_batch() -> float:
            command = [*clconv_command(), "batch", "-q", "-k", kernel, "--jobs", str(jobs), str(src),
                       str(fresh("clconv"))]
            return run_timed(command + (["--device", device] if device else []))

        def cv2_pool() -> float:
            return run_timed([sys.executable, str(script), str(src), str(fresh("cv2")), str(jobs)])

        try:
            times = interleaved({"clconv": clconv_batch, "cv2": cv2_pool}, rounds)
        except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
            return {"error": str(exc)}
        outs = {name: work / f"{name}-{counter[name]}" for name in counter}
        names = sorted(os.listdir(src))
        from PIL import Image

        errors = {"clconv": 0.0, "cv2": 0.0}
        differ: int | None = 0
        for name in names:
            with Image.open(src / name) as im:
                expected = expected_8bit(np.asarray(im), parsed)
            for tool in errors:
                path = outs[tool] / name
                errors[tool] = max(errors[tool], check_file(path, expected) if path.exists() else float("inf"))
            if (outs["clconv"] / name).exists() and (outs["cv2"] / name).exists():
                d = differing(outs["clconv"] / name, outs["cv2"] / name)
                differ = None if d is None or differ is None else differ + d
            else:
                differ = None
    ok = {tool: err <= 1.0 for tool, err in errors.items()}
    return {"clconv": times["clconv"], "cv2": times["cv2"],
            "vs_cv2": median_ratio(times["cv2"], times["clconv"]) if all(ok.values()) else None,
            "errors": errors, "ok": ok, "differ_cv2": differ, "files": files, "jobs": jobs, "rounds": rounds,
            "size": f"{size[1]}x{size[0]}",
            "command": f"clconv batch -q -k {kernel} --jobs {jobs} IN OUT"}
