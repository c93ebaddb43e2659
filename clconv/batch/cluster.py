"""``clconv batch --cluster ADDRESS``: the batch's files filtered on a Dask cluster.

Needs the extra ``clconv[dask]``; imported only when ``--cluster`` is given.

ADDRESS is a running scheduler (``tcp://host:8786``) or ``local`` / ``local:N``: a LocalCluster
of N worker processes (default: the cores) started for the run and stopped after it (see
start_local_cluster). Each worker process opens the device once and imports what a file needs
(clconv.batch.cluster_worker.RuntimePlugin) and does whole files:
decode, filter, encode into a temporary name chosen here, rename onto the output, all on its own
filesystem, which must be one every worker sees (a shared mount); or, for fsspec URLs
(``s3://``), read through a local copy and put in one put_file (clconv.batch.remote). This process plans the tasks,
keeps at most ``2 * threads + 2`` tasks of at most GROUP_MAX files in flight (so a million-file
tree is never a million futures; see group_size), draws the progress bar and writes the report:
the local batch's steps and rules.

Workers that cannot open the device get no files (one warning names them): the tasks then ask
for the resource the others offer (clconv.batch.cluster_worker.device_resource).

A worker killed mid-run loses its files in flight; the scheduler runs them again elsewhere, and
each retry first removes the temporary its dead attempt may have left. Ctrl-C cancels the
futures and waits for the files the workers had started, which end without being renamed into
place; their temporaries are removed, and the report so far is written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from dataclasses import dataclass

from clconv.atomic import discard, temporary_path
from clconv.batch.pipeline import Pipeline, Work
from clconv.batch.tasks import Task, shown
from clconv.batch.workers import DEAD_WORKER
from clconv.errors import DeviceError, OptionError

CONNECT_TIMEOUT_S = 10  # a scheduler that does not answer in this time cannot be reached
WORKERS_TIMEOUT_S = 60  # a scheduler with no worker after this time is an error
SETTLE_TIMEOUT_S = 30  # after Ctrl-C, how long the files being written on workers may take
READY_POLL_SECONDS = 0.01  # how often the run looks for finished tasks (and a held Ctrl-C/SIGTERM)
GROUP_MAX = 16  # files per task at most (see group_size)


def check_address(address: str, jobs: int | None) -> int | None:
    """Bad usage of ``--cluster`` (exit 2, before anything): the form of ADDRESS, ``--jobs`` with
    it, a missing extra. Returns N of ``local:N`` (None for a scheduler's address)."""
    if jobs is not None:
        raise OptionError("--jobs", "does not apply with --cluster (local:N starts N worker processes)")
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise OptionError("--cluster", f"needs the extra clconv[dask]: pip install 'clconv[dask]' ({exc})") from None
    if address == "local":
        return os.cpu_count() or 1
    if address.startswith("local:"):
        count = address[len("local:") :]
        if not count.isdigit() or int(count) < 1:
            raise OptionError("--cluster", f"{address!r}: local:N needs a number of workers N >= 1")
        return int(count)
    if "://" not in address and ":" not in address:
        raise OptionError("--cluster", f"{address!r} is not tcp://HOST:PORT of a scheduler, local or local:N")
    return None


@dataclass
class DeviceInfo:
    """The workers' device, as the report names it (rt.info of the local batch)."""

    name: str
    platform: str


class Cluster:
    """A client connected to the scheduler (and the LocalCluster it started, if any), the device
    plugin registered on every worker; ``info``: the workers' device, ``jobs``: their threads."""

    def __init__(self, client, local_cluster, device: str | None):
        self.client, self.local_cluster, self.device = client, local_cluster, device
        self.jobs, self.info = 0, DeviceInfo("", "")
        self.failed_workers: dict[str, str] = {}  # worker address -> why it cannot open the device

    @classmethod
    def connect(cls, address: str, device: str | None, local_workers: int | None) -> Cluster:
        """Connect (or start ``local_workers`` processes), open the device on every worker.
        A scheduler that cannot be reached, or no worker that can open the device: exit 2."""
        from distributed import Client

        from clconv.batch.cluster_worker import quiet_logs

        quiet_logs()
        local_cluster = None
        try:
            if local_workers is not None:
                local_cluster = start_local_cluster(local_workers)
                client = Client(local_cluster, set_as_default=False)
            else:
                client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)
        except (OSError, TimeoutError) as e:
            if local_cluster is not None:
                local_cluster.close()
            cause = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise OptionError("--cluster", f"cannot reach the scheduler at {address}: {cause}") from None
        cluster = cls(client, local_cluster, device)
        try:
            cluster._prepare_workers(address)
        except BaseException:
            cluster.close()
            raise
        return cluster

    def _prepare_workers(self, address: str) -> None:
        """Wait for a worker, open the device on each (now and on any that joins later)."""
        from clconv.batch.cluster_worker import RuntimePlugin, device_facts

        try:
            self.client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
        except TimeoutError:
            raise OptionError(
                "--cluster", f"no worker joined the scheduler at {address} in {WORKERS_TIMEOUT_S} s"
            ) from None
        # The workers of a LocalCluster write to this command's stderr: their log lines off too
        plugin = RuntimePlugin(self.device, quiet=self.local_cluster is not None)
        self.client.register_plugin(plugin, name=f"clconv-runtime-{self.device}")
        facts = self.client.run(device_facts, self.device, on_error="return")
        good = {w: f for w, f in facts.items() if isinstance(f, dict) and "name" in f}
        self.failed_workers = {w: f.get("error", str(f)) if isinstance(f, dict) else str(f)
                               for w, f in facts.items() if w not in good}  # fmt: skip
        if not good:  # no worker can filter anything: bad usage, as for the local batch
            raise DeviceError(
                self.device or "default device", f"on every worker: {next(iter(self.failed_workers.values()))}"
            )
        self.info = DeviceInfo(_joined(f["name"] for f in good.values()), _joined(f["platform"] for f in good.values()))
        self.jobs = sum(threads for w, threads in self.client.nthreads().items() if w in good)

    def run(self, result, work: Work, progress_stream, warn_line, out_dir: str) -> None:
        """Every pending task of ``result`` through the cluster (see ClusterPipeline); ``work``:
        the options and save options (its ``rt`` is this Cluster, not used)."""
        ClusterPipeline(result, work, progress_stream, warn_line, out_dir).run(self)

    def cancel(self, futures: list, run_id: str) -> None:
        """Cancel ``futures`` (of run ``run_id``) and wait until none of its files is being
        written on any worker: those still running are not renamed into place."""
        from clconv.batch.cluster_worker import stop_run

        with contextlib.suppress(Exception):
            self.client.cancel(futures, force=True)
        with contextlib.suppress(Exception):
            self.client.run(stop_run, run_id, SETTLE_TIMEOUT_S, on_error="ignore")

    def close(self) -> None:
        """Disconnect; stop the LocalCluster started for the run."""
        with contextlib.suppress(Exception):
            self.client.close()
        if self.local_cluster is not None:
            with contextlib.suppress(Exception):
                self.local_cluster.close()


def start_local_cluster(workers: int):
    """A LocalCluster of ``workers`` one-thread worker processes."""
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                        silence_logs=logging.ERROR,
                        # its HTTP server (health, metrics) on a free port: not a warning that 8787 is taken
                        scheduler_kwargs={"dashboard_address": ":0"})  # fmt: skip


def _joined(values) -> str:
    return ", ".join(sorted(set(values)))


class ClusterPipeline(Pipeline):
    """The local Pipeline's bookkeeping (progress, counts, warnings, the stop message) with one
    future per file (or small group of files) on the cluster in place of decode -> filter -> encode."""

    def run(self, cluster: Cluster) -> None:
        """Every pending task through the cluster in groups of files, at most ``limit`` groups in
        flight; any exception (Ctrl-C, SIGTERM) cancels the run's futures (see abort) and is raised again."""
        from distributed import as_completed

        from clconv.batch.cluster_worker import FileJob, device_resource

        self.cluster, self.limit = cluster, 2 * max(cluster.jobs, 1) + 2
        self.restrictions: dict = {}
        if cluster.failed_workers:  # files only where the device opened (unrestricted tasks queue better)
            self.restrictions = {"resources": {device_resource(cluster.device): 1}}
            worker, cause = next(iter(cluster.failed_workers.items()))
            more = f" (and {len(cluster.failed_workers) - 1} more)" if len(cluster.failed_workers) > 1 else ""
            self.say(f"worker {worker}{more} cannot open the device, so it gets no files: {cause}")
        self.running: dict = {}  # future -> [(task, temporary), ...]
        self.run_id = uuid.uuid4().hex
        job = FileJob(cluster.device, self.work.options, self.work.save_options, self.run_id)
        self.job = cluster.client.scatter(job, broadcast=True, hash=False)
        self.completed = as_completed(loop=cluster.client.loop)
        with self.steps() as deliver_signals:
            self.fill()
            while not self.completed.is_empty():
                ready = self.completed.next_batch(block=False)
                for future in ready:
                    self.on_filtered(future)
                    self.fill()
                if not ready:
                    time.sleep(READY_POLL_SECONDS)
                deliver_signals()

    def fill(self) -> None:
        """Submit the next groups of files, up to ``limit`` groups in flight."""
        from clconv.batch.cluster_worker import filter_files

        while self.todo and len(self.running) < self.limit:
            group: list[tuple[Task, str]] = []  # (task, its temporary output)
            size = group_size(len(self.todo), self.cluster.jobs)
            while self.todo and len(group) < size:
                task = self.todo.popleft()
                task.started = time.monotonic()
                group.append((task, "" if "://" in task.output else temporary_path(task.output)))
            files = [(_absolute(task.input), _absolute(task.output), temporary) for task, temporary in group]
            future = self.cluster.client.submit(filter_files, self.job, files, key=f"clconv-files-{uuid.uuid4().hex}",
                                                pure=False, **self.restrictions)  # fmt: skip
            self.running[future] = group
            self.completed.add(future)

    def on_filtered(self, future) -> None:
        """A group's task ended: record each file (its output is in place, or it failed and left nothing)."""
        group = self.running.pop(future)
        for (task, temporary), (error, pixels, warnings) in zip(group, _outcomes(future, len(group))):
            for message in warnings:
                self.say(_as_given(message, task), task)
            if error:
                discard(temporary)  # a last attempt's, where its worker was killed
            self.finished(task, error, pixels)

    def abort(self) -> None:
        """Cancel the futures, let the files being written end, remove their temporaries; the
        files in flight are pending again."""
        self.cluster.cancel(list(self.running), self.run_id)
        self.result.interrupted = True
        for group in self.running.values():
            for task, temporary in group:
                task.status = "pending"
                discard(temporary)
        self.say(
            f"{shown(self.out_dir)}: stopped after {self.done} of {len(self.result.tasks)} files, "
            "no partial file left; run again with --skip-existing to finish"
        )


def group_size(files: int, threads: int) -> int:
    """Files in the next task, ``files`` being those not yet submitted: up to GROUP_MAX, so that
    Dask's cost per task (a few ms) is a small share of its files', and a quarter of a thread's
    share of what is left, so that groups shrink towards the end and no thread is left working
    alone on a large group while the others are idle."""
    return max(1, min(GROUP_MAX, files // (4 * max(threads, 1))))


def _outcomes(future, count: int) -> list:
    """(error, pixels, warnings) of each file of a group's future; a worker lost too often fails them."""
    from distributed import KilledWorker

    try:
        return future.result()
    except KilledWorker:
        return [(DEAD_WORKER, None, [])] * count
    except Exception as e:  # noqa: BLE001 - a bug or a lost cluster: those files fail, the run goes on
        return [(f"internal error: {type(e).__name__}: {e}", None, [])] * count


def _absolute(where: str) -> str:
    """A path made absolute (the workers may run elsewhere); a remote URL as given."""
    return where if "://" in where else os.path.abspath(where)


def _as_given(message: str, task: Task) -> str:
    """A worker's message with the absolute paths it was given back to the paths as given here."""
    for given in (task.input, task.output):
        message = message.replace(_absolute(given), given)
    return message
