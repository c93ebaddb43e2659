"""`clconv batch --cluster local:N` against the local `clconv batch --jobs N`, and Dask's cost per task.

    python benchmarks/cluster_bench.py [--files 200] [--size 640x480] [--jobs 2] [--rounds 3]
                                       [--kernel gaussian:sigma=1,size=5] [--tasks 2000] [--json FILE]

Throughput: a generated folder of photo-like PNGs (clconv.bench.process.make_folder). Each round
runs both, in an order that rotates from round to round (clconv.bench.harness.interleaved), as
the installed script into a fresh OUT_DIR with --report:
  local    clconv batch --jobs N
  cluster  clconv batch --cluster local:N (a LocalCluster of N one-thread worker processes,
           started and stopped by the run)
Two figures each: images/s of the pipeline (files / the report's seconds: from the first file
submitted to the last one written, the local batch's own figure) and of the whole command (wall
time: interpreter, device, and for the cluster its start-up and shutdown). The ratio is the median
of the per-round ratios. The first round is a warm-up (untimed): PoCL's kernel cache is filled.

Per-task cost: ``--tasks`` no-op tasks through a LocalCluster of N workers, in flight at most
2 * N + 2 at a time as the batch keeps them (submit, schedule, run, result back): the scheduler's
and the client's share of every file, whatever the file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from clconv.bench.harness import interleaved, median_ratio
from clconv.bench.process import clconv_command, make_folder


def batch_run(src: Path, work: Path, kernel: str, where: list[str], seconds: dict) -> float:
    """One run of the installed script into a fresh folder: its wall seconds; the report's
    seconds appended to ``seconds``."""
    out, report = Path(tempfile.mkdtemp(dir=work)), work / "report.json"
    start = time.perf_counter()
    subprocess.run([*clconv_command(), "batch", "-q", "-k", kernel, *where, "--report", str(report), str(src),
                    str(out / "out")], check=True, stdin=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - start
    seconds.setdefault(where[0], []).append(json.loads(report.read_text())["summary"]["seconds"])
    subprocess.run(["rm", "-rf", str(out)], check=True)
    return wall


def no_op(i: int) -> int:
    return i


def per_task_seconds(tasks: int, workers: int) -> float:
    """Seconds per no-op task through a LocalCluster, at most 2 * threads + 2 in flight."""
    import logging

    from distributed import Client, LocalCluster, as_completed

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR, scheduler_kwargs={"dashboard_address": ":0"}) as cluster, \
            Client(cluster, set_as_default=False) as client:  # fmt: skip
        limit = 2 * workers + 2
        client.submit(no_op, -1, pure=False).result()  # the workers are up
        start = time.perf_counter()
        queue = as_completed(loop=client.loop)
        submitted = 0
        while submitted < min(limit, tasks):
            queue.add(client.submit(no_op, submitted, pure=False))
            submitted += 1
        for future in queue:
            future.result()
            if submitted < tasks:
                queue.add(client.submit(no_op, submitted, pure=False))
                submitted += 1
        return (time.perf_counter() - start) / tasks


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size", default="640x480", metavar="WxH")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kernel", default="gaussian:sigma=1,size=5")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--json", default=None, metavar="FILE")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="clconv-cluster-bench-") as folder:
        work = Path(folder)
        src = work / "in"
        make_folder(src, args.files, height, width)
        pipeline: dict = {}
        wheres = {"local": ["--jobs", str(args.jobs)], "cluster": ["--cluster", f"local:{args.jobs}"]}
        runs = {name: (lambda w=where: batch_run(src, work, args.kernel, w, pipeline)) for name, where in wheres.items()}
        walls = interleaved(runs, args.rounds)
        for values in pipeline.values():
            del values[0]  # the warm-up round
    pipe = {"local": pipeline["--jobs"], "cluster": pipeline["--cluster"]}
    result = {
        "files": args.files, "size": args.size, "jobs": args.jobs, "kernel": args.kernel, "rounds": args.rounds,
        "pipeline_images_s": {k: args.files / statistics.median(v) for k, v in pipe.items()},
        "command_images_s": {k: args.files / statistics.median(v) for k, v in walls.items()},
        "pipeline_ratio": median_ratio(pipe["local"], pipe["cluster"]),
        "command_ratio": median_ratio(walls["local"], walls["cluster"]),
        "pipeline_seconds": pipe, "command_seconds": walls,
        "per_task_ms": 1000 * per_task_seconds(args.tasks, args.jobs),
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
