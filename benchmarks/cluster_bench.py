"""`clconv batch --cluster local:N` against the local `clconv batch --jobs N`, and Dask's cost per task.

    python benchmarks/cluster_bench.py [--files 200] [--size 640x480] [--jobs 2] [--rounds 3]
                                       [--kernel gaussian:sigma=1,size=5] [--tasks 2000] [--json FILE]
                                       [--address tcp://HOST:PORT]

Throughput: a generated folder of photo-like PNGs (clconv.bench.process.make_folder). Each round
runs both, in an order that rotates from round to round (clconv.bench.harness.interleaved), as
the installed script into a fresh OUT_DIR with --report:
  local    clconv batch --jobs N
  cluster  clconv batch --cluster local:N (a LocalCluster of N one-thread worker processes,
           started and stopped by the run), or --cluster ADDRESS with --address (a running
           scheduler and its workers: the whole command then pays no cluster start-up)
Three figures each, in images/s:
  pipeline      files / the report's seconds: from the first file submitted to the last one
                written (the local batch's own figure; the cluster's workers are up by then)
  steady        the middle 80% of the files (from the 10th to the 90th percentile output, by
                the outputs' modification times): the rate once both are going, without the
                first files' program builds and the last files' tail
  command       files / the wall time of the whole command: interpreter, device, and for the
                cluster its start-up and shutdown
Each ratio (cluster / local) is the median of the per-round ratios. The first round is a warm-up
(untimed): PoCL's kernel cache is filled.

Per-task cost: ``--tasks`` no-op tasks through a LocalCluster of N workers made as the batch makes
it (clconv.batch.cluster.start_local_cluster), in flight at most 2 * N + 2 at a time as the batch
keeps them (submit, schedule, run, result back): the scheduler's and the client's share of every
task, whatever its files (up to GROUP_MAX files a task: ``per_file_ms`` at full groups).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from clconv.batch.cluster import GROUP_MAX
from clconv.bench.harness import interleaved, median_ratio
from clconv.bench.process import clconv_command, make_folder


def batch_run(src: Path, work: Path, kernel: str, where: list[str], seconds: dict, steady: dict) -> float:
    """One run of the installed script into a fresh folder: its wall seconds; the report's seconds
    appended to ``seconds``, the steady state's (seconds per file) to ``steady``."""
    out, report = Path(tempfile.mkdtemp(dir=work)), work / "report.json"
    start = time.perf_counter()
    subprocess.run([*clconv_command(), "batch", "-q", "-k", kernel, *where, "--report", str(report), str(src),
                    str(out / "out")], check=True, stdin=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - start
    seconds.setdefault(where[0], []).append(json.loads(report.read_text())["summary"]["seconds"])
    steady.setdefault(where[0], []).append(steady_seconds_per_file(out / "out"))
    subprocess.run(["rm", "-rf", str(out)], check=True)
    return wall


def steady_seconds_per_file(out: Path) -> float:
    """Seconds per file between the 10th and the 90th percentile of the outputs' modification times."""
    times = sorted(f.stat().st_mtime_ns for f in out.rglob("*") if f.is_file())
    first, last = len(times) // 10, len(times) - 1 - len(times) // 10
    return (times[last] - times[first]) / 1e9 / max(last - first, 1)


def no_op(i: int) -> int:
    return i


def per_task_seconds(tasks: int, workers: int) -> float:
    """Seconds per no-op task through the batch's LocalCluster, at most 2 * threads + 2 in flight."""
    from distributed import Client, as_completed

    from clconv.batch.cluster import start_local_cluster

    with start_local_cluster(workers) as cluster, Client(cluster, set_as_default=False) as client:
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
    parser.add_argument("--address", default=None, metavar="tcp://HOST:PORT",
                        help="run the cluster side on this running scheduler, not a local:N of its own")  # fmt: skip
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="clconv-cluster-bench-") as folder:
        work = Path(folder)
        src = work / "in"
        make_folder(src, args.files, height, width)
        pipeline: dict = {}
        steady: dict = {}
        wheres = {"local": ["--jobs", str(args.jobs)], "cluster": ["--cluster", args.address or f"local:{args.jobs}"]}
        runs = {name: (lambda w=where: batch_run(src, work, args.kernel, w, pipeline, steady))
                for name, where in wheres.items()}  # fmt: skip
        walls = interleaved(runs, args.rounds)
        for values in (*pipeline.values(), *steady.values()):
            del values[0]  # the warm-up round
    pipe = {"local": pipeline["--jobs"], "cluster": pipeline["--cluster"]}
    per_file = {"local": steady["--jobs"], "cluster": steady["--cluster"]}
    per_task_ms = 1000 * per_task_seconds(args.tasks, args.jobs)
    result = {
        "files": args.files, "size": args.size, "jobs": args.jobs, "kernel": args.kernel, "rounds": args.rounds,
        "pipeline_images_s": {k: args.files / statistics.median(v) for k, v in pipe.items()},
        "steady_images_s": {k: 1 / statistics.median(v) for k, v in per_file.items()},
        "command_images_s": {k: args.files / statistics.median(v) for k, v in walls.items()},
        "pipeline_ratio": median_ratio(pipe["local"], pipe["cluster"]),
        "steady_ratio": median_ratio(per_file["local"], per_file["cluster"]),
        "command_ratio": median_ratio(walls["local"], walls["cluster"]),
        "pipeline_seconds": pipe, "steady_seconds_per_file": per_file, "command_seconds": walls,
        "per_task_ms": per_task_ms, "group_max": GROUP_MAX, "per_file_ms": per_task_ms / GROUP_MAX,
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
