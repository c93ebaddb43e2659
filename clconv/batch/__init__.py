"""``clconv batch``: a folder tree through the filter, pipelined.

:func:`run` is a sequence of named steps: check the options and folders, plan
the tasks, mark outputs that exist, open the device, create OUT_DIR, say the
run-wide warnings once, run the pipeline (:mod:`clconv.batch.pipeline`:
workers decode and encode, this process filters and writes), and write the
report.
"""

from __future__ import annotations

import contextlib
import os

from clconv.batch.report import BatchResult, settings_of, write_report
from clconv.batch.tasks import (
    Task,
    find_inputs,
    mark_existing,
    normalized_format,
    output_name,
    plan_tasks,
    readable_extensions,
    shown,
)
from clconv.errors import ImageError, OptionError, OutputError, warn

__all__ = [
    "BatchResult",
    "Task",
    "find_inputs",
    "normalized_format",
    "output_name",
    "plan_tasks",
    "readable_extensions",
    "run",
    "settings_of",
    "shown",
    "write_report",
]


def run(
    in_dir: str,
    out_dir: str,
    options,
    *,
    recursive: bool = False,
    patterns=(),
    format: str | None = None,
    skip_existing: bool = False,
    force: bool = False,
    jobs: int | None = None,
    report: str | None = None,
    progress_stream=None,
    on_warning=None,
    save_options=None,
    hints: bool = True,
    cluster: str | None = None,
) -> BatchResult:
    """Filter every matching file under ``in_dir`` into the same relative path under ``out_dir``.

    Bad usage (options, kernels, folders, device) raises before any file is
    touched. A file that fails is recorded and the run goes on. Ctrl-C or
    SIGTERM (KeyboardInterrupt or clconv.cli.Terminated) stops the workers,
    writes the report so far, and is raised again. ``progress_stream``: where
    the progress bar is drawn (a terminal; None: nowhere). ``cluster``: run on a Dask cluster
    (``tcp://host:port`` or ``local[:N]``, see clconv.batch.cluster) instead of local processes.
    """
    from clconv.batch.pipeline import Work
    from clconv.files import with_provenance

    in_dir, out_dir = _as_path(os.fspath(in_dir)), _as_path(os.fspath(out_dir))
    options = options.validate()
    format = normalized_format(format)
    local_workers = _cluster_usage(cluster, jobs)
    jobs = _checked_jobs(jobs)
    _check_folders(in_dir, out_dir, report)
    if skip_existing and force:
        raise OptionError("--skip-existing", "cannot be combined with --force")
    _check_report(report)
    warn_line = on_warning or warn
    save_options = with_provenance(save_options, options)

    passed_over: list[str] = []
    tasks = _planned(in_dir, out_dir, recursive, tuple(patterns), format, passed_over)
    mark_existing(tasks, options, skip_existing, force)
    with _device_or_cluster(options.device, cluster, local_workers) as rt:
        _make_folder(out_dir)
        _say_once(warn_line, tasks, in_dir, out_dir, format, save_options, passed_over if hints else [])
        folders = {"input_folder": _folder_shown(in_dir), "output_folder": _folder_shown(out_dir),
                   "recursive": recursive, "subfolders_passed_over": [shown(p) for p in passed_over],
                   "patterns": list(patterns), "format": format}  # fmt: skip
        where = {"jobs": jobs} if cluster is None else {"jobs": rt.jobs, "cluster": cluster}
        settings = _settings(options, rt, save_options, folders, **where, skip_existing=skip_existing, force=force)
        result = BatchResult(tasks, settings, 0.0)
        try:
            _filter_all(rt, cluster, jobs, result, Work(rt, options, save_options), progress_stream, warn_line, out_dir)
        finally:
            if report:
                write_report(report, result)
    return result


@contextlib.contextmanager
def _device_or_cluster(device: str | None, cluster: str | None, local_workers: int | None):
    """The device's Runtime; with ``cluster``, the connected clconv.batch.cluster.Cluster instead
    (a scheduler that cannot be reached: exit 2 here, before OUT_DIR exists), closed after."""
    from clconv.runtime import get_runtime

    if cluster is None:
        yield get_runtime(device)
        return
    from clconv.batch.cluster import Cluster

    connected = Cluster.connect(cluster, device, local_workers)
    try:
        yield connected
    finally:
        connected.close()


def _filter_all(rt, cluster: str | None, jobs: int, result: BatchResult, work, *where) -> None:
    """The pipeline: local worker processes, or the cluster (``where``: progress stream, warn_line, OUT_DIR)."""
    from clconv.batch.pipeline import Pipeline
    from clconv.batch.workers import LocalWorkers

    if cluster is None:
        Pipeline(result, work, *where).run(LocalWorkers(jobs))
    else:
        rt.run(result, work, *where)


def _cluster_usage(cluster: str | None, jobs: int | None) -> int | None:
    """``--cluster``'s bad usage (exit 2 up front); N of ``local:N``, else None."""
    if cluster is None:
        return None
    from clconv.batch.cluster import check_address

    return check_address(cluster, jobs)


def _settings(options, rt, save_options, folders: dict, **run) -> dict:
    """The report's settings: the filter options, the device, the folders, how the run went
    (``run``: jobs, skip_existing, force) and how outputs are written."""
    extra = {**folders, **run, "device_platform": rt.info.platform}
    settings = settings_of(options, rt.info.name, extra)
    settings.update({"strip": save_options.strip, "quality": save_options.quality,
                     "compression": save_options.compression})  # fmt: skip
    return settings


def _checked_jobs(jobs: int | None) -> int:
    if jobs is None:
        return os.cpu_count() or 1
    if jobs < 1:
        raise OptionError("--jobs", f"must be at least 1, got {jobs}")
    return jobs


def _as_path(where: str) -> str:
    """A ``file://`` URL as its path; a remote URL (clconv.batch.remote) or a path as given."""
    if "://" not in where:
        return where
    from clconv.batch.remote import as_path

    return as_path(where)


def _folder_shown(where: str) -> str:
    """A folder as the report names it: a URL as given, a path made absolute."""
    return where if "://" in where else shown(os.path.abspath(where))


def _check_folders(in_dir: str, out_dir: str, report: str | None) -> None:
    if "://" in in_dir or "://" in out_dir:  # a remote URL: its own checks, then the local side's
        from clconv.batch.remote import check_folders

        check_folders(in_dir, out_dir)
        if "://" not in out_dir and os.path.exists(out_dir) and not os.path.isdir(out_dir):
            raise OutputError(out_dir, "is not a folder")
        if "://" not in in_dir and not os.path.isdir(in_dir):
            raise ImageError(in_dir, "is not a folder" if os.path.exists(in_dir) else "no such folder")
        return
    if not os.path.isdir(in_dir):
        raise ImageError(in_dir, "is not a folder" if os.path.exists(in_dir) else "no such folder")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise OutputError(out_dir, "is not a folder")
    if os.path.exists(out_dir) and os.path.samefile(in_dir, out_dir):
        raise OutputError(out_dir, "is IN_DIR; write the results to another folder")
    if _inside(in_dir, out_dir):
        raise OutputError(out_dir, "contains IN_DIR; write the results to a folder outside it")


def _check_report(report: str | None) -> None:
    if report and not os.path.isdir(os.path.dirname(os.path.abspath(report))):
        raise OutputError(report, "its folder does not exist")
    if report and os.path.isdir(report):
        raise OutputError(report, "is a folder")


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _planned(
    in_dir: str, out_dir: str, recursive: bool, patterns: tuple[str, ...], format: str | None, passed_over: list[str]
) -> list[Task]:
    """The tasks, one per input found; none is an error (with a hint where --recursive may help)."""
    tasks = plan_tasks(in_dir, out_dir, find_inputs(in_dir, out_dir, recursive, patterns, passed_over), format)
    if not tasks:
        what = f"matching {' or '.join(patterns)}" if patterns else "image"
        raise ImageError(in_dir, f"no {what} file{'' if recursive else ' (add --recursive for subfolders)'}")
    return tasks


def _make_folder(out_dir: str) -> None:
    if "://" in out_dir:
        from clconv.batch.remote import make_folder

        return make_folder(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise OutputError(out_dir, f"cannot create the folder: {e.strerror or e}") from e


def _say_once(
    warn_line, tasks: list[Task], in_dir: str, out_dir: str, format: str | None, save_options, passed_over: list[str]
) -> None:
    """The warnings about the whole run, said once it is sure to start (bad usage raised first)."""
    if format is not None:  # one output format for every file: say once what it does not use
        from clconv import imageio

        for name in imageio.ignored_options(f"x.{format}", save_options):
            warn_line(f"{name} does not apply to {imageio.output_format(f'x.{format}')} outputs (ignored)")
    if passed_over:  # not with -q (the caller passes none)
        many = len(passed_over) != 1
        warn_line(
            f"{shown(in_dir)}: passed over {len(passed_over)} subfolder{'s' if many else ''} "
            f"(add --recursive to filter {'them' if many else 'it'} too)"
        )
    otherwise = [t for t in tasks if t.status == "skipped" and t.warnings]
    if otherwise:  # --skip-existing would keep outputs of another filter: say so, with -q too
        first = otherwise[0]
        if len(otherwise) == 1:
            warn_line(f"{first.warnings[0]} (use --force to make it again)")
        else:
            warn_line(
                f"{shown(out_dir)}: {len(otherwise)} existing outputs were made with other settings "
                f"({shown(first.output)}: {first.made_with}, ...); skipped (use --force to make them again)"
            )
