"""What a batch does: the input files found under IN_DIR, each with its output and its outcome."""

from __future__ import annotations

import fnmatch
import functools
import os
from dataclasses import dataclass, field

from clconv.atomic import TEMP_PREFIX
from clconv.errors import ClconvError, ImageError, OptionError, warn


def shown(path: str) -> str:
    """A path as text that always prints and encodes as UTF-8: undecodable bytes become \\xNN."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass
class Task:
    """One input file and its output; ``status``/``error`` are filled in as the run goes."""

    rel_input: str
    rel_output: str
    input: str
    output: str
    status: str = "pending"  # then "ok", "failed" or "skipped"
    made_with: str | None = None  # a skipped output's filter settings, where they differ
    error: str | None = None
    error_path: str | None = None  # the file the error is about, when it is not the input
    warnings: list = field(default_factory=list)  # what was said about this file (also on stderr)
    pixels: int | None = None
    seconds: float = 0.0
    started: float = field(default=0.0, repr=False)

    def record(self) -> dict:
        """This file's entry in the JSON report."""
        error = f"{shown(self.error_path)}: {self.error}" if self.error and self.error_path else self.error
        return {
            "input": shown(self.rel_input),
            "output": shown(self.rel_output),
            "status": self.status,
            "error": error,
            "warnings": list(self.warnings),
            "pixels": self.pixels,
            "seconds": round(self.seconds, 4),
        }


def readable_extensions() -> frozenset[str]:
    """The extensions of every format Pillow can read here, and .npy."""
    from PIL import Image

    Image.init()
    return frozenset(
        {ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN} | {".npy"}
    )


def _same_file(a: os.stat_result, b: os.stat_result | None) -> bool:
    return b is not None and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def find_inputs(
    in_dir: str, out_dir: str, recursive: bool, patterns: tuple[str, ...], passed_over: list | None = None
) -> list[str]:
    """Relative paths of the input files under ``in_dir``, sorted.

    Files match ``patterns`` (case-insensitive globs on the name) or, with none,
    an extension Pillow reads. Symbolic links to files are followed; symbolic
    links to folders are not descended into, and no folder is visited twice, so
    links cannot loop. ``out_dir`` (when it lies inside ``in_dir``) is left out: the run never
    reads what it writes. Without ``recursive``, the subfolders not entered go to ``passed_over``.
    """
    extensions = None if patterns else readable_extensions()
    lowered = [p.lower() for p in patterns]
    if "://" in in_dir:  # a remote URL (see clconv.batch.remote)
        from clconv.batch import remote

        wanted = functools.partial(_wanted, extensions=extensions, patterns=lowered)
        return remote.find_inputs(in_dir, out_dir, recursive, wanted, passed_over)
    try:
        out_stat = os.stat(out_dir)
    except OSError:
        out_stat = None
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        folder = os.path.join(in_dir, rel_dir) if rel_dir else in_dir
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen or (rel_dir and _same_file(st, out_stat)):
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as e:
            if not rel_dir:
                raise ImageError(in_dir, f"cannot read the folder: {e.strerror or e}") from e
            warn(f"{shown(folder)}: folder skipped: {e.strerror or e}")
            continue
        for entry in entries:
            rel = os.path.join(rel_dir, entry.name) if rel_dir else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        pending.append(rel)
                    elif passed_over is not None and not _same_file(entry.stat(), out_stat):
                        passed_over.append(rel)
                    continue
                if entry.is_symlink() and entry.is_dir():
                    continue  # a link to a folder: not descended into
                if entry.is_symlink() and not os.path.exists(entry.path):
                    pass  # a dangling link that matches is listed, and fails like any unreadable file
                elif not entry.is_file():
                    continue  # FIFOs, sockets, devices: never opened
            except OSError:
                continue
            if _wanted(entry.name, extensions, lowered):
                found.append(rel)
    return sorted(found)


def _wanted(name: str, extensions: frozenset[str] | None, patterns: list[str]) -> bool:
    """A file's name matches: an extension Pillow reads (``extensions``), else one of the lowered
    ``patterns``; never the temporary file of an interrupted writer."""
    if name.startswith(TEMP_PREFIX):
        return False
    if extensions is not None:
        return os.path.splitext(name)[1].lower() in extensions
    return any(fnmatch.fnmatchcase(name.lower(), p) for p in patterns)


def output_name(rel_input: str, format: str | None) -> str:
    """The output's path relative to OUT_DIR: the input's, with the extension of ``format`` when given."""
    if not format:
        return rel_input
    return os.path.splitext(rel_input)[0] + "." + format


def normalized_format(format: str | None) -> str | None:
    """``--format``: an extension clconv can write (``png``, ``.jpg``, ...), without the dot."""
    if format is None:
        return None
    from clconv.imageio import output_format

    ext = format.strip().lstrip(".").lower()
    if not ext or os.sep in ext:
        raise OptionError("--format", f"{format!r} is not a file extension")
    try:
        output_format("x." + ext)
    except ClconvError as e:
        raise OptionError("--format", e.cause) from None
    return ext


def plan_tasks(in_dir: str, out_dir: str, rel_inputs: list[str], format: str | None) -> list[Task]:
    """One Task per input; a second input whose output would be the same file (names compared
    through os.path.normcase) fails at once rather than overwrite the first's."""
    tasks: list[Task] = []
    owners: dict[str, str] = {}  # normcase'd output name -> the input that writes it
    for rel in rel_inputs:
        rel_out = output_name(rel, format)
        task = Task(rel, rel_out, _under(in_dir, rel), _under(out_dir, rel_out))
        key = os.path.normcase(rel_out)
        if key in owners:
            task.status, task.error = "failed", f"same output {shown(rel_out)} as {shown(owners[key])}"
        else:
            owners[key] = rel
        tasks.append(task)
    return tasks


def _under(folder: str, rel: str) -> str:
    """The path of ``rel`` under ``folder``, a path or a remote URL (with ``/`` between)."""
    return folder.rstrip("/") + "/" + rel.replace(os.sep, "/") if "://" in folder else os.path.join(folder, rel)


def mark_existing(tasks: list[Task], options, skip_existing: bool, force: bool) -> None:
    """Outputs that exist already: passed over with ``skip_existing`` (noting those another filter
    made), else failed unless ``force``; an output that is its own input always fails."""
    from clconv.files import check_paths

    there = _remote_existing([t.output for t in tasks if t.status == "pending" and "://" in t.output])
    for task in tasks:
        if task.status != "pending":
            continue
        exists = task.output in there if "://" in task.output else os.path.lexists(task.output)
        if skip_existing and exists:
            task.status = "skipped"
            other = _made_otherwise(task.output, options)
            if other is not None:
                task.warnings.append(f"{shown(task.output)}: exists, made with other settings ({other}); skipped")
                task.made_with = other
            continue
        if "://" in task.output:  # remote: never the input (OUT_DIR cannot hold IN_DIR)
            if exists and not force:
                task.status, task.error, task.error_path = "failed", "exists (use --force to overwrite)", task.output
            continue
        try:
            check_paths(task.input, task.output, force, need_folder=False)
        except ClconvError as e:  # about the output (it exists, it is the input ...): name it
            task.status, task.error, task.error_path = "failed", e.cause, task.output


def _remote_existing(outputs: list[str]) -> set[str]:
    """Those of the remote ``outputs`` that exist (fsspec imported only when there are some)."""
    if not outputs:
        return set()
    from clconv.batch.remote import existing

    return existing(outputs)


def _made_otherwise(output: str, options) -> str | None:
    """How an existing ``output`` was made, where its record says other filter settings than
    ``options``; None when they agree or it has no record (another program's, or --strip)."""
    from clconv.batch.remote import local_copy  # a remote output is read through a local copy
    from clconv.files import settings_in
    from clconv.imageio import read_provenance

    with local_copy(output) as copy:
        made = settings_in(read_provenance(copy))
    return made if made is not None and made != options.describe() else None
