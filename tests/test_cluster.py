"""`clconv batch --cluster`: a real Dask cluster (a `dask scheduler` and two `dask worker`
subprocesses on 127.0.0.1, random ports: conftest's ``scheduler``, one per session) and
LocalCluster runs. Every output of a cluster run is compared byte for byte with the local `clconv batch` output of the same tree, and
the local outputs are checked against the float64 oracle."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_batch import all_files, assert_filtered, interrupt_when, temporaries, write_bad_files, write_png

pytest.importorskip("distributed")
pytestmark = pytest.mark.xdist_group("dask")  # one pytest-xdist worker starts the scheduler, once

KERNEL = "gaussian:sigma=1"
KILL_TREE_COUNT = 200


def write_tree(root: Path) -> Path:
    """Nested images (gray, RGB, RGBA), a file that is not an image, and bad images under ``root``."""
    write_png(root / "a.png", seed=1)
    write_png(root / "gray.png", shape=(20, 31), seed=2, mode="L")
    write_png(root / "sub" / "b.png", shape=(16, 16, 4), seed=3)
    write_png(root / "sub" / "deeper" / "c.png", shape=(9, 40, 3), seed=4)
    (root / "readme.txt").write_text("not an image")
    (root / "bad").mkdir()
    write_bad_files(root / "bad", root / "a.png")
    return root


@pytest.fixture(scope="module")
def mixed_tree(tmp_path_factory) -> Path:
    """write_tree's files and a 16-bit image."""
    root = write_tree(tmp_path_factory.mktemp("mixed") / "in")
    deep = np.random.default_rng(5).integers(0, 65536, size=(23, 19), dtype=np.uint16)
    Image.fromarray(deep).save(root / "sub" / "sixteen.png")
    return root


def local_and_cluster(run_cli, tree: Path, tmp_path: Path, cluster: str, *args) -> tuple:
    """The same batch locally and on ``cluster``: (local result, cluster result, their reports)."""
    results, reports = [], []
    for name, where in (("local", ("--jobs", "2")), ("cluster", ("--cluster", cluster))):
        report = tmp_path / f"{name}.json"
        results.append(run_cli("batch", *where, "--report", report, *args, tree, tmp_path / name))
        reports.append(json.loads(report.read_text()))
    return (*results, *reports)


def assert_same_bytes(local: Path, cluster: Path) -> None:
    assert all_files(cluster) == all_files(local)
    for rel in all_files(local):
        assert (cluster / rel).read_bytes() == (local / rel).read_bytes(), rel


def comparable(report: dict) -> dict:
    """A report without what differs between two runs of one job: times, OUT_DIR, where it ran."""
    settings = {k: v for k, v in report["settings"].items() if k not in ("output_folder", "jobs", "cluster")}
    files = [{k: v for k, v in f.items() if k != "seconds"} for f in report["files"]]
    summary = {k: v for k, v in report["summary"].items() if k != "seconds"}
    return {"clconv": report["clconv"], "settings": settings, "files": files, "summary": summary}


def test_scheduler_run_equals_the_local_batch_byte_for_byte(run_cli, scheduler, mixed_tree, tmp_path):
    local, cluster, local_report, cluster_report = local_and_cluster(
        run_cli, mixed_tree, tmp_path, scheduler, "-r", "-k", KERNEL
    )
    assert local.returncode == cluster.returncode == 1  # the bad files
    assert cluster.stderr == local.stderr  # the same failures, the same lines
    assert cluster.stderr.count("clconv: error: ") == 5
    assert_same_bytes(tmp_path / "local", tmp_path / "cluster")
    for rel in ("a.png", "gray.png", "sub/b.png", "sub/deeper/c.png"):
        assert_filtered(mixed_tree / rel, tmp_path / "local" / rel)
    assert comparable(cluster_report) == comparable(local_report)
    assert cluster_report["settings"]["cluster"] == scheduler and cluster_report["settings"]["jobs"] == 2
    assert set(cluster_report["settings"]) == set(local_report["settings"]) | {"cluster"}
    assert temporaries(tmp_path) == []


def test_skip_existing_force_and_format_as_locally(run_cli, scheduler, mixed_tree, tmp_path):
    for name in ("local", "cluster"):  # half the outputs there already: one made otherwise, one not an image
        write_png(tmp_path / name / "a.png", seed=9)
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "sub" / "b.png").write_bytes(b"old")
    local, cluster, local_report, cluster_report = local_and_cluster(
        run_cli, mixed_tree, tmp_path, scheduler, "-r", "-k", "sharpen", "--pattern", "*.png", "--skip-existing"
    )
    assert local.returncode == cluster.returncode == 1
    assert cluster.stderr == local.stderr
    assert_same_bytes(tmp_path / "local", tmp_path / "cluster")
    assert comparable(cluster_report) == comparable(local_report)
    assert cluster_report["summary"]["skipped"] == 2


def test_local_cluster_equals_the_local_batch(run_cli, mixed_tree, tmp_path):
    local, cluster, local_report, cluster_report = local_and_cluster(
        run_cli, mixed_tree, tmp_path, "local:2", "-r", "-k", "sobel-x", "--format", "tif"
    )
    assert local.returncode == cluster.returncode == 1
    assert cluster.stderr == local.stderr
    assert_same_bytes(tmp_path / "local", tmp_path / "cluster")
    assert comparable(cluster_report) == comparable(local_report)
    assert cluster_report["settings"]["jobs"] == 2


@pytest.mark.parametrize("files, threads", [(1, 2), (7, 2), (200, 2), (10_000, 8), (1_000_000, 400)])
def test_groups_cover_every_file_and_shrink_to_one_at_the_end(files, threads):
    """The tasks' sizes as the cluster submits them: each 1..GROUP_MAX, all the files once, the
    largest allowed while many files are left, and single files at the end (no thread left alone
    with a big group while the others idle)."""
    from clconv.batch.cluster import GROUP_MAX, group_size

    left, sizes = files, []
    while left:
        sizes.append(group_size(left, threads))
        left -= sizes[-1]
    assert sum(sizes) == files and all(1 <= size <= GROUP_MAX for size in sizes)
    assert sizes == sorted(sizes, reverse=True)  # never larger later
    assert sizes[-1] == 1 and sizes.count(1) >= min(files, 4 * threads)
    if files >= 4 * threads * GROUP_MAX:
        assert sizes[0] == GROUP_MAX
    assert len(sizes) <= files // GROUP_MAX + 4 * threads * (GROUP_MAX.bit_length() + 1)  # few tasks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_exit_2_before_out_dir_exists(run_cli, mixed_tree, tmp_path, monkeypatch):
    from clconv.batch import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 2)  # nothing listens: no need to wait 10 s
    out = tmp_path / "out"
    result = run_cli("batch", "-r", "-k", KERNEL, "--cluster", f"tcp://127.0.0.1:{free_port()}", mixed_tree, out)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("clconv: error: --cluster: cannot reach")
    assert not out.exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("--cluster", "nowhere"), "--cluster: 'nowhere' is not tcp://HOST:PORT"),
        (("--cluster", "local:0"), "local:N needs a number of workers N >= 1"),
        (("--cluster", "local:2", "--jobs", "2"), "--jobs: does not apply with --cluster"),
    ],
)
def test_bad_cluster_usage_is_exit_2(run_cli, mixed_tree, tmp_path, args, fragment):
    out = tmp_path / "out"
    result = run_cli("batch", "-k", KERNEL, *args, mixed_tree, out)
    assert result.returncode == 2 and fragment in result.stderr and result.stderr.count("\n") == 1
    assert not out.exists()


def test_a_device_no_worker_can_open_is_exit_2_before_out_dir_exists(run_cli, scheduler, mixed_tree, tmp_path):
    out = tmp_path / "out"
    result = run_cli("batch", "-k", KERNEL, "--device", "no-such-device-anywhere", "--cluster", scheduler,
                     mixed_tree, out)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "on every worker" in result.stderr
    assert not out.exists()


def test_a_worker_that_cannot_open_the_device_gets_no_files(run_cli, scheduler, kill_tree, kill_tree_local,
                                                             tmp_path):  # fmt: skip
    """A third worker joins whose default device does not exist (its CLCONV_DEVICE names none):
    the run says so once, sends it no file (it would fail each one), and equals the local batch."""
    from conftest import dask_command
    from distributed import Client

    env = dict(os.environ, CLCONV_DEVICE="no-such-device-on-this-worker")
    worker = subprocess.Popen(dask_command("worker", scheduler, "--nthreads", "1", "--no-dashboard",
                                           "--host", "127.0.0.1", "--local-directory", str(tmp_path)),
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        with Client(scheduler, timeout="30s", set_as_default=False) as client:
            client.wait_for_workers(3, timeout=60)
            out, report = tmp_path / "out", tmp_path / "r.json"
            result = run_cli("batch", "-r", "-k", KERNEL, "--cluster", scheduler, "--report", report, kill_tree, out)
            worker.terminate()
            worker.wait(10)
            deadline = time.monotonic() + 30  # the session's two workers again, for the tests after this one
            while len(client.scheduler_info()["workers"]) > 2 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(5)
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("clconv: warning: worker tcp://127.0.0.1:") and "gets no files" in line, line
    assert "no-such-device-on-this-worker" in line, line
    assert_same_bytes(kill_tree_local, out)
    summary = json.loads(report.read_text())
    assert summary["summary"]["ok"] == KILL_TREE_COUNT and summary["settings"]["jobs"] == 2


@pytest.fixture(scope="module")
def kill_tree(tmp_path_factory) -> Path:
    """200 small PNGs in four folders."""
    root = tmp_path_factory.mktemp("kill") / "in"
    base = np.random.default_rng(7).integers(0, 256, size=(64, 96, 3), dtype=np.uint8)
    for i in range(KILL_TREE_COUNT):
        folder = root / f"d{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.roll(base, i, axis=1)).save(folder / f"img{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def kill_tree_local(kill_tree, tmp_path_factory) -> Path:
    """kill_tree through the local batch (what every cluster run of it must equal), some files
    checked against the oracle."""
    from click.testing import CliRunner

    from clconv.cli import cli

    out = tmp_path_factory.mktemp("kill-local") / "out"
    result = CliRunner().invoke(cli, ["batch", "-r", "-k", KERNEL, "--jobs", "2", str(kill_tree), str(out)],
                                prog_name="clconv", catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    for rel in all_files(kill_tree)[::25]:
        assert_filtered(kill_tree / rel, out / rel)
    return out


def kill_a_worker_when(done, outputs: int, scheduler: str, killed: dict, poll: float = 0.005) -> None:
    """Once ``done()`` (outputs so far) reaches ``outputs``, SIGKILL one worker process (not its nanny)."""
    from distributed import Client

    with Client(scheduler, timeout="30s", set_as_default=False) as client:
        pids = sorted(client.run(os.getpid).values())
        deadline = time.monotonic() + 120
        while done() < outputs and time.monotonic() < deadline:
            time.sleep(poll)
        killed["outputs_then"] = done()
        os.kill(pids[0], signal.SIGKILL)
        killed["pid"] = pids[0]


def test_a_worker_killed_mid_run_loses_nothing(run_cli, scheduler, kill_tree, kill_tree_local, tmp_path):
    out, killed = tmp_path / "cluster", {}
    killer = threading.Thread(target=kill_a_worker_when,
                              args=(lambda: len(list(out.rglob("img*.png"))), 40, scheduler, killed))  # fmt: skip
    killer.start()
    try:
        result = run_cli("batch", "-r", "-k", KERNEL, "--cluster", scheduler, "--report", tmp_path / "r.json",
                         kill_tree, out)  # fmt: skip
    finally:
        killer.join(150)
    assert "pid" in killed and killed["outputs_then"] < KILL_TREE_COUNT, killed  # killed in the middle
    assert result.returncode == 0, result.stderr
    assert_same_bytes(kill_tree_local, out)
    assert temporaries(tmp_path) == []
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["summary"]["ok"] == KILL_TREE_COUNT and report["summary"]["failed"] == 0
    assert sorted(f["input"] for f in report["files"]) == all_files(kill_tree)  # each file once


def test_ctrl_c_cancels_leaves_no_temporary_writes_the_report_and_exits_130(
    clconv_script, run_cli, scheduler, kill_tree, kill_tree_local, tmp_path
):
    out, report = tmp_path / "out", tmp_path / "r.json"
    cmd = [clconv_script, "batch", "-r", "-k", KERNEL, "--cluster", scheduler, "--report", report, kill_tree, out]
    returncode, stderr, _ = interrupt_when(cmd, lambda: len(list(out.rglob("img*.png"))), 20, poll=0.005)
    assert returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].startswith("clconv: error: ")
    assert temporaries(tmp_path) == []
    written = all_files(out)
    doc = json.loads(report.read_text())
    summary = doc["summary"]
    assert summary["interrupted"] is True and 20 <= len(written) < KILL_TREE_COUNT
    # Files of the tasks in flight when Ctrl-C came (at most 2 * threads + 2 tasks of GROUP_MAX
    # files) may still be written by their workers, but not counted; every file there is whole
    # (compared byte for byte below, after the rerun).
    from clconv.batch.cluster import GROUP_MAX

    in_flight = (2 * doc["settings"]["jobs"] + 2) * GROUP_MAX
    assert summary["ok"] <= len(written) <= summary["ok"] + in_flight
    rerun = run_cli("batch", "-r", "-k", KERNEL, "--cluster", scheduler, "--skip-existing", kill_tree, out)
    assert rerun.returncode == 0, rerun.stderr
    assert_same_bytes(kill_tree_local, out)
