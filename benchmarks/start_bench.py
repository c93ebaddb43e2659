"""Whole-process start-up benchmark: ``clconv apply -k sobel-x in.png out.png`` on a 1 MP PNG
against the same work as a Pillow + OpenCV one-liner, each a fresh process, timed from start to
exit (wall time).

    python benchmarks/start_bench.py [--rounds 15] [--size 1024x1024] [--baseline DIR] [--json F]

* Every command runs once untimed first (warm OS, PoCL kernel and clconv device caches), then the
  rounds interleave the commands, in an order that rotates from round to round
  (clconv.bench.harness, as `clconv bench`), so a shared, noisy machine slows every side alike.
  Reported: the median and minimum seconds of each side, and the speed-up of clconv over each
  reference as the median over rounds of (reference seconds / clconv seconds) in the same round;
  also the median CPU seconds (user + system, every thread) of each process, which depend less on
  what else the machine runs.
* The one-liner reads the PNG with Pillow, runs cv2.filter2D (reflect border, float32), takes
  |v|, clips, and writes the PNG with Pillow at clconv's zlib level
  (``clconv.imageio.PNG_COMPRESS_LEVEL``; ``clconv.bench.process.cv2_one_liner``, the one
  ``clconv bench --preset targets`` times); a second variant writes at Pillow's default level 6,
  as a one-liner that does not set it would. ``vips conv`` is timed too when it is on PATH.
* ``--baseline DIR`` also times another clconv source tree (a folder holding ``clconv/`` and
  ``cl/``, e.g. ``git archive COMMIT clconv cl | tar -x -C DIR``) run as ``python -m clconv`` with
  PYTHONPATH=DIR: before/after figures from one interleaved run.
* Outputs are checked: every side must write the same pixels as clconv.
* Python byte code: an installed package has its ``.pyc`` files; a checkout run with
  PYTHONDONTWRITEBYTECODE=1 compiles clconv's modules on every start. So the commands run with
  that variable removed and PYTHONPYCACHEPREFIX set to a temporary folder (the working tree is
  not written to); ``--as-is`` keeps the environment unchanged.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

from clconv.bench.harness import interleaved, median_ratio
from clconv.bench.process import clconv_command, cv2_one_liner, photo_like, png_level, vips_mask
from clconv.kernels import parse_spec

SOBEL_X = parse_spec("sobel-x").weights


def run(command: list[str], env: dict, cwd: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, all threads) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=600)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0 or proc.stderr.strip():
        raise RuntimeError(f"{command[0]} ...: exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def commands_for(work: str, src: str, env: dict, baseline: str | None) -> tuple[dict, dict, dict]:
    """(commands, their environments, their output paths), by name."""
    level = png_level()
    out = {name: os.path.join(work, f"{name}.png") for name in ("clconv", "cv2", "cv2-l6", "vips", "baseline")}
    commands = {
        "clconv": clconv_command() + ["apply", "-k", "sobel-x", "--force", src, out["clconv"]],
        "cv2": [sys.executable, "-c", cv2_one_liner(SOBEL_X, level), src, out["cv2"]],
        "cv2-l6": [sys.executable, "-c", cv2_one_liner(SOBEL_X, None), src, out["cv2-l6"]],
    }
    envs = {name: env for name in commands}
    if shutil.which("vips"):
        mask = os.path.join(work, "sobel.mat")
        with open(mask, "w") as f:
            f.write(vips_mask(SOBEL_X))
        # vips clips negatives where clconv takes |v|: timed, not compared
        commands["vips"] = ["vips", "conv", src, f"{out['vips']}[compression={level}]", mask, "--precision", "integer"]
        envs["vips"] = env
    if baseline:
        commands["baseline"] = [sys.executable, "-m", "clconv", "apply", "-k", "sobel-x", "--force", src,
                                out["baseline"]]
        envs["baseline"] = dict(env, PYTHONPATH=os.path.abspath(baseline))
    return commands, envs, out


def check_outputs(commands: dict, out: dict) -> None:
    """Every side but vips must write clconv's pixels."""
    ref = np.asarray(Image.open(out["clconv"]))
    for name in commands:
        if name != "vips" and not np.array_equal(np.asarray(Image.open(out[name])), ref):
            raise SystemExit(f"{name} wrote other pixels than clconv")


def timed_rounds(commands: dict, envs: dict, work: str, rounds: int) -> tuple[dict, dict]:
    """(wall seconds, CPU seconds) per round, by name."""
    cpu: dict[str, list[float]] = {name: [] for name in commands}

    def timed(name):
        wall, used = run(commands[name], envs[name], work)  # cwd: not this checkout
        cpu[name].append(used)
        return wall

    times = interleaved({name: (lambda name=name: timed(name)) for name in commands}, rounds, warm=False)
    return times, cpu


def report(times: dict, cpu: dict, args, size: str) -> None:
    speedup = {name: median_ratio(times[name], times["clconv"]) for name in times if name != "clconv"}
    print(f"{size} RGB PNG, {args.rounds} interleaved rounds, "
          f"{'environment as is' if args.as_is else 'byte code cached'}; wall seconds per process")
    for name in times:
        line = (f"  {name:9s} median {statistics.median(times[name]):.3f}  min {min(times[name]):.3f}"
                f"  (CPU {statistics.median(cpu[name]):.3f})")
        if name != "clconv":
            line += f"  clconv speed-up {speedup[name]:.2f}x (its time / clconv's)"
        print(line)
    if args.json:
        w, h = (int(v) for v in size.split("x"))
        with open(args.json, "w") as f:
            json.dump({"size": [w, h], "rounds": args.rounds, "as_is": args.as_is, "seconds": times, "cpu": cpu,
                       "speedup": speedup}, f, indent=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--size", default="1024x1024", help="WxH of the PNG (default 1024x1024)")
    parser.add_argument("--baseline", metavar="DIR", help="another clconv tree to time as well")
    parser.add_argument("--as-is", action="store_true", help="keep PYTHONDONTWRITEBYTECODE and the pyc location")
    parser.add_argument("--json", metavar="FILE", help="write the timings as JSON")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.lower().split("x"))
    work = tempfile.mkdtemp(prefix="clconv-start-")
    try:
        env = dict(os.environ)
        env.pop("PYTHONWARNINGS", None)
        if not args.as_is:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = os.path.join(work, "pycache")
        src = os.path.join(work, "in.png")
        Image.fromarray(photo_like(h, w, seed=1)).save(src)
        commands, envs, out = commands_for(work, src, env, args.baseline)
        for name, command in commands.items():  # warm-up: caches filled, outputs checked
            run(command, envs[name], work)
        check_outputs(commands, out)
        times, cpu = timed_rounds(commands, envs, work, args.rounds)
        report(times, cpu, args, f"{w}x{h}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
