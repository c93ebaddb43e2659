"""`clconv batch` with IN_DIR / OUT_DIR as fsspec URLs: ``file://`` (the local batch and a
cluster of `dask` processes) and ``s3://`` against a real S3-compatible server (moto in server mode on
127.0.0.1, a random port, started here; never a mock of fsspec). Every output is compared byte
for byte with the local batch's output of the same tree, itself checked against the oracle."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_batch import all_files, assert_filtered, interrupt_when, temporaries
from test_cluster import assert_same_bytes, comparable, kill_a_worker_when, write_tree

pytest.importorskip("distributed")
pytest.importorskip("fsspec")
pytestmark = pytest.mark.xdist_group("dask")  # one pytest-xdist worker starts each server and cluster, once

KERNEL = "gaussian:sigma=1"
BUCKET = "clconv-test"


@pytest.fixture(scope="module")
def url_tree(tmp_path_factory) -> Path:
    """Nested images, a file that is not an image, bad images (no link: object stores have none)."""
    root = write_tree(tmp_path_factory.mktemp("urls") / "in")
    (root / "bad" / "dangling.png").unlink()
    return root


@pytest.fixture(scope="module")
def local_run(url_tree, tmp_path_factory) -> tuple[Path, dict, str]:
    """The plain local batch of url_tree: (OUT_DIR, report, stderr), checked against the oracle."""
    from click.testing import CliRunner

    from clconv.cli import cli

    folder = tmp_path_factory.mktemp("local-run")
    out, report = folder / "out", folder / "r.json"
    args = ["batch", "-r", "-k", KERNEL, "--jobs", "2", "--report", str(report), str(url_tree), str(out)]
    result = CliRunner().invoke(cli, args, prog_name="clconv", catch_exceptions=False)
    assert result.exit_code == 1  # the bad files
    for rel in ("a.png", "gray.png", "sub/b.png", "sub/deeper/c.png"):
        assert_filtered(url_tree / rel, out / rel)
    return out, json.loads(report.read_text()), result.stderr


def test_file_urls_on_a_cluster_equal_the_local_batch(run_cli, scheduler, url_tree, local_run, tmp_path):
    local_out, local_report, local_stderr = local_run
    out, report = tmp_path / "out", tmp_path / "r.json"
    result = run_cli("batch", "-r", "-k", KERNEL, "--cluster", scheduler, "--report", report,
                     url_tree.as_uri(), out.as_uri())  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.replace(str(out), "OUT") == local_stderr.replace(str(local_out), "OUT")
    assert_same_bytes(local_out, out)
    doc = json.loads(report.read_text())
    assert comparable(doc) == comparable(local_report)
    assert temporaries(tmp_path) == []


def test_file_urls_in_the_local_batch(run_cli, url_tree, local_run, tmp_path):
    out = tmp_path / "out"
    result = run_cli("batch", "-r", "-k", KERNEL, "--jobs", "2", url_tree.as_uri(), out.as_uri())
    assert result.returncode == 1
    assert_same_bytes(local_run[0], out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server():
    """``http://127.0.0.1:PORT`` of a moto S3 server (a thread of this process), stopped after."""
    pytest.importorskip("s3fs", reason="S3 tests need s3fs: pip install s3fs")
    server_module = pytest.importorskip("moto.server", reason="S3 tests need moto: pip install 'moto[server]'")
    port = free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def s3_env(s3_server):
    """The environment that points s3fs (here, and in the workers of s3_cluster) at the server."""
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": s3_server, "FSSPEC_S3_ENDPOINT_URL": s3_server}  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield env


@pytest.fixture(scope="module")
def s3_cluster(s3_env, scheduler):
    """conftest's cluster of `dask` processes, its workers pointed at the S3 server by their
    environment, as a user's workers would be (set in each worker process for this module, then
    taken back): one cluster for every S3 run, not a local:2 started per run."""
    from distributed import Client

    with Client(scheduler, timeout="30s", set_as_default=False) as client:
        # exec, not a function of this module: the workers cannot import the test modules. In the
        # nannies too: a worker they restart (after a kill) starts with their environment.
        for nanny in (False, True):
            client.run(exec, f"import os; os.environ.update({s3_env!r})", nanny=nanny)
        yield scheduler
        for nanny in (False, True):
            client.run(exec, f"import os; [os.environ.pop(name, None) for name in {sorted(s3_env)!r}]", nanny=nanny)


@pytest.fixture()
def s3(s3_env, s3_server, url_tree):
    """A fresh bucket holding url_tree under ``in/``; yields a boto3 client for checking."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server)
    for key in _keys(client):
        client.delete_object(Bucket=BUCKET, Key=key)
    client.create_bucket(Bucket=BUCKET)
    for rel in all_files(url_tree):
        client.upload_file(str(url_tree / rel), BUCKET, f"in/{rel}")
    return client


def _keys(client, prefix: str = "", bucket: str = BUCKET) -> list[str]:
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))
    except client.exceptions.NoSuchBucket:
        return []


def download(client, prefix: str, folder: Path, bucket: str = BUCKET) -> None:
    for key in _keys(client, prefix, bucket):
        target = folder / key[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(target))


def test_s3_urls_equal_the_local_batch(s3_cluster, run_cli, s3, url_tree, local_run, tmp_path):
    local_out, local_report, _ = local_run
    report = tmp_path / "r.json"
    result = run_cli("batch", "-r", "-k", KERNEL, "--cluster", s3_cluster, "--report", report,
                     f"s3://{BUCKET}/in", f"s3://{BUCKET}/out/")  # fmt: skip
    assert result.returncode == 1, result.stderr
    bad = sorted(line for line in result.stderr.splitlines() if line.startswith("clconv: error: "))
    assert [line.split(": ")[2] for line in bad] == [f"s3://{BUCKET}/in/bad/{name}"
                                                      for name in ("crc.png", "empty.png", "text.png", "truncated.png")]  # fmt: skip
    download(s3, "out/", tmp_path / "out")
    assert_same_bytes(local_out, tmp_path / "out")  # the good files written, byte for byte
    expected = sorted(f"out/{rel}" for rel in all_files(local_out))
    assert _keys(s3, "out/") == expected  # nothing else: no temporary key, no partial output
    assert _keys(s3) == sorted([f"in/{rel}" for rel in all_files(url_tree)] + expected)
    doc = json.loads(report.read_text())
    local_files = [{k: v for k, v in f.items() if k != "seconds"} for f in local_report["files"]]
    assert [{k: v for k, v in f.items() if k != "seconds"} for f in doc["files"]] == local_files
    assert doc["settings"]["input_folder"] == f"s3://{BUCKET}/in"
    assert doc["settings"]["output_folder"] == f"s3://{BUCKET}/out/"


def test_s3_urls_in_the_local_batch(run_clconv, s3, url_tree, local_run, tmp_path, monkeypatch):
    # The installed script, not run_cli: the batch's worker processes come from a forkserver that
    # an earlier test of this process may have started before the s3 fixture set the environment.
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))  # where the encoded files wait
    (tmp_path / "tmp").mkdir()
    result = run_clconv("batch", "-r", "-k", KERNEL, "--jobs", "2", "--report", tmp_path / "r.json",
                        f"s3://{BUCKET}/in", f"s3://{BUCKET}/out")  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"clconv: error: s3://{BUCKET}/in/bad/empty.png: empty file (not an image)" in result.stderr
    download(s3, "out/", tmp_path / "out")
    assert_same_bytes(local_run[0], tmp_path / "out")
    assert _keys(s3, "out/") == sorted(f"out/{rel}" for rel in all_files(local_run[0]))
    assert list((tmp_path / "tmp").iterdir()) == []  # no local temporary left either
    doc = json.loads((tmp_path / "r.json").read_text())
    assert comparable(doc)["files"] == comparable(local_run[1])["files"]


def test_s3_skip_existing_and_existing_outputs(s3_cluster, run_cli, s3, url_tree, local_run, tmp_path):
    s3.upload_file(str(url_tree / "a.png"), BUCKET, "out/a.png")  # made by another program
    args = ("batch", "-r", "-k", KERNEL, "--cluster", s3_cluster, f"s3://{BUCKET}/in", f"s3://{BUCKET}/out")
    refused = run_cli(*args)
    assert refused.returncode == 1
    assert f"clconv: error: s3://{BUCKET}/out/a.png: exists (use --force to overwrite)" in refused.stderr
    assert s3.get_object(Bucket=BUCKET, Key="out/a.png")["Body"].read() == (url_tree / "a.png").read_bytes()
    forced = run_cli(*args, "--force")
    assert forced.returncode == 1
    download(s3, "out/", tmp_path / "out")
    assert_same_bytes(local_run[0], tmp_path / "out")
    again = run_cli(*args, "--skip-existing", "--report", tmp_path / "r.json")
    assert again.returncode == 1  # the bad files fail again; the good ones are passed over
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["skipped"] == 4
    other = run_cli(*args[:3], "sharpen", *args[4:], "--skip-existing")  # read back through a local copy
    assert other.returncode == 1
    said = [line for line in other.stderr.splitlines() if line.startswith("clconv: warning: ")]
    assert len(said) == 1 and said[0].startswith(
        f"clconv: warning: s3://{BUCKET}/out: 4 existing outputs were made with other settings "
        f"(s3://{BUCKET}/out/a.png: "
    ) and "gaussian" in said[0], other.stderr  # fmt: skip


def test_s3_out_dir_inside_in_dir_is_never_read(s3_cluster, run_cli, s3, url_tree, local_run, tmp_path):
    args = ("batch", "-k", KERNEL, "--cluster", s3_cluster, f"s3://{BUCKET}/in", f"s3://{BUCKET}/in/out")
    first = run_cli(*args)  # not recursive: the top folder's images, the subfolders named
    assert first.returncode == 0, first.stderr
    assert f"s3://{BUCKET}/in: passed over 2 subfolders (add --recursive" in first.stderr
    assert _keys(s3, "in/out/") == ["in/out/a.png", "in/out/gray.png"]
    again = run_cli(*args[:1], "-r", *args[1:], "--skip-existing", "--report", tmp_path / "r.json")
    assert again.returncode == 1, again.stderr  # the bad files
    doc = json.loads((tmp_path / "r.json").read_text())
    assert sorted(f["input"] for f in doc["files"]) == sorted(f["input"] for f in local_run[1]["files"])
    download(s3, "in/out/", tmp_path / "out")
    assert_same_bytes(local_run[0], tmp_path / "out")


def test_s3_missing_in_dir_is_exit_2_before_anything(s3_cluster, run_cli, s3, tmp_path):
    result = run_cli("batch", "-k", KERNEL, "--cluster", s3_cluster, f"s3://{BUCKET}/missing", f"s3://{BUCKET}/out")
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"clconv: error: s3://{BUCKET}/missing: no such folder\n"
    assert _keys(s3, "out/") == []


def test_s3_to_a_local_folder_and_back(s3_cluster, run_cli, s3, url_tree, local_run, tmp_path):
    down = run_cli("batch", "-r", "-k", KERNEL, "--cluster", s3_cluster, f"s3://{BUCKET}/in", tmp_path / "down")
    assert down.returncode == 1, down.stderr
    assert_same_bytes(local_run[0], tmp_path / "down")
    assert temporaries(tmp_path) == []
    up = run_cli("batch", "-r", "-k", KERNEL, "--cluster", s3_cluster, url_tree, f"s3://{BUCKET}/up")
    assert up.returncode == 1, up.stderr
    assert f"clconv: error: {url_tree / 'bad' / 'empty.png'}: empty file (not an image)" in up.stderr
    download(s3, "up/", tmp_path / "up")
    assert_same_bytes(local_run[0], tmp_path / "up")


MANY = 64  # enough that a run on the S3 server is still going when its 10th output appears
MANY_BUCKET = "clconv-many"  # its own bucket, uploaded once: the s3 fixture empties BUCKET for each test


@pytest.fixture(scope="module")
def many_tree(tmp_path_factory, s3_env, s3_server) -> tuple[Path, Path, object]:
    """MANY small PNGs in three folders, uploaded to MANY_BUCKET under in/: (the folder, its
    local batch output, checked against the oracle, and a boto3 client)."""
    import boto3
    from click.testing import CliRunner

    from clconv.cli import cli

    root = tmp_path_factory.mktemp("many") / "in"
    base = np.random.default_rng(11).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)
    for i in range(MANY):
        (root / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.roll(base, i, axis=0)).save(root / f"d{i % 3}" / f"img{i:03d}.png")
    out = root.parent / "local"
    result = CliRunner().invoke(cli, ["batch", "-r", "-k", KERNEL, "--jobs", "2", str(root), str(out)],
                                prog_name="clconv", catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    for rel in all_files(root)[::16]:
        assert_filtered(root / rel, out / rel)
    client = boto3.client("s3", endpoint_url=s3_server)
    client.create_bucket(Bucket=MANY_BUCKET)
    for rel in all_files(root):
        client.upload_file(str(root / rel), MANY_BUCKET, f"in/{rel}")
    return root, out, client


def test_s3_ctrl_c_leaves_whole_outputs_only_and_a_rerun_finishes(clconv_script, s3_cluster, run_cli, many_tree,
                                                                 tmp_path):  # fmt: skip
    """Ctrl-C during a run from S3 to S3: exit 130 and the report so far; every key under OUT_DIR
    is a whole output (files of the tasks in flight may still land, uncounted; the rerun, which
    passes over them, is compared byte for byte); no other key, no local temporary."""
    from clconv.batch.cluster import GROUP_MAX

    root, local, s3 = many_tree
    report, scratch = tmp_path / "r.json", tmp_path / "tmp"
    scratch.mkdir()
    args = ["batch", "-r", "-k", KERNEL, "--cluster", s3_cluster, f"s3://{MANY_BUCKET}/in",
            f"s3://{MANY_BUCKET}/ctrl-c"]  # fmt: skip
    returncode, stderr, _ = interrupt_when([clconv_script, *args, "--report", report],
                                           lambda: len(_keys(s3, "ctrl-c/", MANY_BUCKET)), 10,
                                           env=dict(os.environ, TMPDIR=str(scratch)))  # fmt: skip
    assert returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].startswith("clconv: error: ")
    doc = json.loads(report.read_text())
    written = _keys(s3, "ctrl-c/", MANY_BUCKET)
    assert doc["summary"]["interrupted"] is True and 10 <= len(written) < MANY
    in_flight = (2 * doc["settings"]["jobs"] + 2) * GROUP_MAX
    assert doc["summary"]["ok"] <= len(written) <= doc["summary"]["ok"] + in_flight
    assert list(scratch.iterdir()) == [] and temporaries(tmp_path) == []
    rerun = run_cli(*args, "--skip-existing")
    assert rerun.returncode == 0, rerun.stderr
    assert f"{MANY - len(written)} written, 0 failed, {len(written)} skipped" in rerun.stdout
    download(s3, "ctrl-c/", tmp_path / "all", MANY_BUCKET)
    assert_same_bytes(local, tmp_path / "all")


def test_s3_a_worker_killed_mid_run_loses_nothing(s3_cluster, run_cli, many_tree, tmp_path):
    """One worker SIGKILLed (not its nanny) once 10 outputs are in the bucket: the run still
    exits 0, every output is there once and whole, no other key, each file reported once."""
    import threading

    root, local, s3 = many_tree
    killed: dict = {}

    def written() -> int:
        return len(_keys(s3, "killed/", MANY_BUCKET))

    killer = threading.Thread(target=kill_a_worker_when, args=(written, 10, s3_cluster, killed, 0.02))
    killer.start()
    try:
        result = run_cli("batch", "-r", "-k", KERNEL, "--cluster", s3_cluster, "--report", tmp_path / "r.json",
                         f"s3://{MANY_BUCKET}/in", f"s3://{MANY_BUCKET}/killed")  # fmt: skip
    finally:
        killer.join(150)
    assert 10 <= killed["outputs_then"] < MANY, killed  # killed in the middle
    assert result.returncode == 0, result.stderr
    download(s3, "killed/", tmp_path / "out", MANY_BUCKET)
    assert_same_bytes(local, tmp_path / "out")  # every output, whole, and nothing else
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["summary"]["ok"] == MANY and doc["summary"]["failed"] == 0
    assert sorted(f["input"] for f in doc["files"]) == all_files(root)  # each file once


def test_the_plain_batch_imports_no_fsspec(url_tree, tmp_path):
    import subprocess
    import sys

    code = ("import sys\nfrom clconv.cli import cli\n"
            f"try:\n    cli(['batch', '-k', 'blur', '--jobs', '1', {str(url_tree)!r}, {str(tmp_path / 'out')!r}])\n"
            "except SystemExit:\n    pass\n"
            "print(sorted(m for m in ('fsspec', 's3fs', 'dask', 'distributed') if m in sys.modules))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stderr
    assert (tmp_path / "out" / "a.png").exists()


def test_s3_without_credentials_is_exit_2_naming_the_url(run_clconv, s3, url_tree, tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    for name in ("AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        monkeypatch.setenv(name, str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = run_clconv("batch", "-k", KERNEL, "--jobs", "1", url_tree, f"s3://{BUCKET}/out")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"clconv: error: s3://{BUCKET}/out: cannot reach it: NoCredentialsError")
    assert result.stderr.count("\n") == 1 and _keys(s3, "out/") == []
