"""The clconv command line: thin click commands over the library.

With clconv/cli_options.py (the shared options) and clconv/cli_boundary.py (where errors
become messages and exit codes: ``ClconvGroup.main``) the only modules that import click.
"""

from __future__ import annotations

import os
import sys

import click

from clconv import __version__
from clconv.cli_boundary import ClconvGroup, Terminated, error_line, warnings_as_lines
from clconv.cli_options import (
    CLUSTER_HELP,
    debug_option,
    filter_options,
    make_options,
    make_save_options,
    output_options,
)
from clconv.errors import ClconvError

__all__ = ["Terminated", "cli", "main"]


@click.group(cls=ClconvGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="clconv")
@debug_option
def cli():
    """Filter images with convolution kernels on OpenCL devices (a GPU, or the PoCL CPU device).

    \b
    Examples:
      clconv apply -k sobel-x photo.png edges.png
      clconv apply -k gaussian:sigma=2 -k sharpen --border mirror in.jpg out.jpg
      clconv kernels gaussian
      clconv batch -r -k sharpen photos/ sharpened/
      clconv bench --quick
    """


@cli.command()
@filter_options
@output_options
@click.option("--force", is_flag=True, help="Overwrite an existing output (never the input).")
@click.option(
    "--each",
    is_flag=True,
    help="A filter bank: apply every -k to INPUT separately (not chained), one output per kernel; "
    "{kernel} in OUTPUT is replaced by each kernel's file-safe spec.",
)
@click.option("--explain", is_flag=True, help="Say on stderr which algorithm runs each kernel, and why.")
@click.option(
    "--format",
    "format",
    default=None,
    metavar="EXT",
    help="Output format (png, jpg, tif, ...): needed when OUTPUT is - (standard output).",
)
@click.argument("input", type=click.Path(allow_dash=True))  # a folder: a .zarr array
@click.argument("output", type=click.Path(allow_dash=True))
def apply(input, output, force, each, explain, format, **values):
    """Filter one image INPUT into OUTPUT (format from OUTPUT's extension, or --format).
    Either may be - for standard input / output.

    \b
    Examples:
      clconv apply -k sobel-x samples/shapes.png edges.png
      clconv apply -k sobel-x -k sobel-y --each in.png out-{kernel}.png
      clconv apply -k blur - - --format png < in.png > out.png
    """
    from clconv.files import apply_file
    from clconv.stdio import standard_streams

    say = (lambda line: click.echo(f"clconv: explain: {line}", err=True)) if explain else None
    save = make_save_options(values)
    options = make_options(values)
    with standard_streams(input, output, format) as (source, target):
        apply_file(source, target, options, force=force or target != output, each=each, explain=say, save_options=save)


@cli.command()
@filter_options
@output_options
@click.option("-r", "--recursive", is_flag=True, help="Descend into subfolders (not into symbolic links to folders).")
@click.option(
    "--pattern",
    "patterns",
    multiple=True,
    metavar="GLOB",
    help="Only files whose name matches (case-insensitive, repeatable; default: every extension "
    "Pillow reads). Files it names that are not images fail like any bad file.",
)
@click.option("--format", "format", default=None, metavar="EXT", help="Write every output as EXT (png, jpg, tif, ...).")
@click.option("--skip-existing", is_flag=True, help="Pass over files whose output exists (to finish a stopped run).")
@click.option("--force", is_flag=True, help="Overwrite existing outputs (never an input).")
@click.option("-j", "--jobs", type=int, default=None, help="Processes decoding and encoding (default: the cores).")
@click.option("--report", default=None, metavar="FILE.json", help="Write a report: settings, and each file's outcome.")
@click.option("--cluster", default=None, metavar="ADDRESS", help=CLUSTER_HELP)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary; failures are still listed.")
@click.argument("in_dir", type=click.Path(file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
def batch(in_dir, out_dir, recursive, patterns, format, skip_existing, force, jobs, report, cluster, quiet, **values):
    """Filter every image in IN_DIR into the same relative path under OUT_DIR.

    Files that fail are listed at the end (exit 1); the others are still written.
    OUT_DIR may lie inside IN_DIR: what is written is never read.

    \b
    Examples:
      clconv batch -k gaussian:sigma=2 photos/ blurred/
      clconv batch -r -k sharpen --format jpg --report run.json scans/ out/
      clconv batch -r -k sharpen --skip-existing scans/ out/    # finish a stopped run
      clconv batch -r -k sharpen --cluster local:4 s3://bucket/in s3://bucket/out
    """
    from clconv import batch as library

    stream = sys.stdout if sys.stdout.isatty() and not quiet else None
    save = make_save_options(values)
    result = library.run(
        in_dir,
        out_dir,
        make_options(values),
        recursive=recursive,
        patterns=patterns,
        format=format,
        skip_existing=skip_existing,
        force=force,
        jobs=jobs,
        report=report,
        progress_stream=stream,
        save_options=save,
        hints=not quiet,
        cluster=cluster,
    )
    for task in result.failures:
        error_line(f"{library.shown(task.error_path or task.input)}: {task.error}")
    if not quiet:
        s = result.summary()
        processed = s["ok"] + s["failed"]
        rate = processed / result.seconds if result.seconds > 0 else 0.0
        click.echo(
            f"clconv batch: {s['ok']} written, {s['failed']} failed, {s['skipped']} skipped "
            f"in {result.seconds:.1f} s ({rate:.1f} images/s)"
        )
    return 1 if result.failures else 0


@cli.command()
@click.option("-k", "--kernel", required=True, metavar="SPEC", help="One linear kernel (any -k form).")
@click.option("--shape", required=True, metavar="HxW", help="The input image's height and width.")
@click.option("--border", default="reflect", show_default=True, metavar="MODE", help="Border mode (as for apply).")
@click.option("--border-value", default=0.0, type=float, help="Constant for --border constant (0 keeps it linear).")
@click.option("--flip", is_flag=True, help="Mathematical convolution instead of correlation.")
@click.option("--padding", default=None, metavar="N|valid", help="CNN geometry (as for apply).")
@click.option("--stride", default=1, type=int, show_default=True, help="Output every S-th pixel (as for apply).")
@click.option("--dilation", default=1, type=int, show_default=True, help="Spread kernel taps D pixels apart.")
@click.option("-o", "--output", default=None, metavar="FILE.npz", help="Save the sparse matrix instead of printing it.")
@click.option("--force", is_flag=True, help="Overwrite an existing --output.")
@debug_option
def matrix(kernel, shape, border, border_value, flip, padding, stride, dilation, output, force):
    """Print the convolution as a matrix M (Ho*Wo x H*W): M @ image.ravel() == the filtered image.

    \b
    Examples:
      clconv matrix -k sobel-x --shape 3x4
      clconv matrix -k gaussian:sigma=2 --shape 256x256 -o m.npz
    """
    import os

    from clconv.errors import OptionError, OutputError
    from clconv.matrix import MAX_PRINT, convolution_matrix, format_matrix, parse_shape, save_matrix

    size = parse_shape(shape)
    if output is None and size[0] * size[1] > MAX_PRINT:  # refuse before building a matrix nobody sees
        raise OptionError(
            "--shape",
            f"{size[0]}x{size[1]} is too large to print (at most {MAX_PRINT} input pixels); use --output FILE.npz",
        )
    m = convolution_matrix(
        kernel, size, border, flip=flip, padding=padding, stride=stride, dilation=dilation, border_value=border_value
    )
    if output is None:
        click.echo(format_matrix(m, size))
        return
    if os.path.lexists(output) and not force:
        raise OutputError(output, "exists (use --force to overwrite)")
    save_matrix(output, m)


@cli.command()
@click.option("--size", "sizes", multiple=True, metavar="WxH", help="Image size (repeatable), e.g. 4096x4096.")
@click.option("-k", "--kernel", "kernels", multiple=True, metavar="SPEC", help="Kernel (repeatable; each a workload).")
@click.option(
    "--dtype",
    "dtypes",
    multiple=True,
    type=click.Choice(["uint8", "uint16", "float32"]),
    help="Sample type (repeatable).",
)
@click.option("--channels", "channels", multiple=True, type=int, help="Channels (repeatable).")
@click.option(
    "--algorithm", default="all", show_default=True, metavar="all|auto|NAME", help="Which algorithms to measure."
)
@click.option("--device", "devices", multiple=True, metavar="SPEC|all", help="Device (repeatable, or all).")
@click.option(
    "--border",
    default="reflect",
    show_default=True,
    metavar="MODE",
    help="Border mode of every measured run (as for apply).",
)
@click.option("--repeat", type=int, default=None, help="Rounds per measurement (median and min over them).")
@click.option("--quick", is_flag=True, help="Small sizes and kernels: under a minute on 2 cores.")
@click.option(
    "--preset",
    type=click.Choice(["targets"]),
    default=None,
    help="targets: the workloads of the performance targets, with each goal checked.",
)
@click.option("--json", "json_path", default=None, metavar="FILE", help="Write the results as JSON.")
@click.option("--plot", "plot_path", default=None, metavar="FILE.png", help="Plot throughput by kernel size.")
@debug_option
def bench(sizes, kernels, dtypes, channels, algorithm, devices, border, repeat, quick, preset, json_path, plot_path):
    """Measure clconv's algorithms against numpy/scipy (and OpenCV when installed) on a device.

    \b
    Examples:
      clconv bench --quick
      clconv bench --size 4096x4096 -k sobel-x -k gaussian:sigma=3 --dtype float32 --json b.json
      clconv bench --preset targets --plot targets.png
    """
    from clconv import bench as library

    options = library.BenchOptions(
        algorithm=algorithm, border=border, repeat=repeat, quick=quick, preset=preset, json=json_path, plot=plot_path
    )
    if sizes:
        options["sizes"] = [library.parse_size(s) for s in sizes]
    if kernels:
        options["kernels"] = list(kernels)
    if dtypes:
        options["dtypes"] = list(dtypes)
    if channels:
        options["channels"] = list(channels)
    if devices:
        options["devices"] = "all" if "all" in devices else list(devices)
    return library.run_cli(options, click.echo)


@cli.command()
@click.argument("name", required=False)
@debug_option
def kernels(name):
    """List the named kernels, or print one kernel's weights (NAME may carry parameters or be any SPEC)."""
    from clconv import kernels as library

    if name is None:
        for line in library.summary_lines():
            click.echo(line)
    else:
        click.echo(library.describe(name))


@cli.command()
@debug_option
def formats():
    """List the image formats clconv writes (by the output's extension) and reads (by content).

    For each written format: its extensions, the sample types written (others are converted with a
    warning), alpha, the options that apply and the metadata carried from the input."""
    from clconv.imageio import formats_table

    rows = formats_table()
    header = ("FORMAT", "EXTENSIONS", "SAMPLES WRITTEN", "ALPHA", "OPTIONS", "METADATA KEPT")
    table = [header]
    for r in rows:
        if not r["write"] and r["samples"]:
            table.append((r["name"], " ".join(r["extensions"]), "(not in this Pillow build)", "", "", ""))
        elif r["write"]:
            table.append(
                (
                    r["name"],
                    " ".join(r["extensions"]),
                    ", ".join(r["samples"]),
                    "yes" if r["alpha"] else "no",
                    " ".join(r["options"]) or "-",
                    ", ".join(r["metadata"]) or "-",
                )
            )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    click.echo("Written (read too):")
    for row in table:
        click.echo("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    read_only = [r["name"] for r in rows if r["read"] and not r["write"] and not r["samples"]]
    click.echo("")
    click.echo("Read only (decoded as 8-bit, 16-bit or float32 per the file):")
    line = " "
    for i, name in enumerate(read_only):
        word = f" {name}" + ("," if i < len(read_only) - 1 else "")
        if len(line) + len(word) > 98:
            click.echo(line)
            line = " "
        line += word
    click.echo(line)


@cli.command()
@click.option("--device", default=None, metavar="SPEC", help="Device to measure (cpu, gpu, P:D or a name substring).")
@click.option("--quick", is_flag=True, help="Small images only (256x256 and 512x512): a first cache in seconds.")
@click.option("--repeat", type=click.IntRange(1, 20), default=3, show_default=True, help="Runs per candidate (median).")
@click.option("-v", "--verbose", is_flag=True, help="Print every measurement.")
@debug_option
def tune(device, quick, repeat, verbose):
    """Measure the algorithms and their variants on a device; `auto` then uses the measurements.

    The result is cached per device (platform, device, driver, clconv version) under
    $XDG_CACHE_HOME/clconv/tuning (default ~/.cache); run it again after a driver update.
    CLCONV_TUNING=0 makes auto ignore the cache."""
    from clconv import tuning
    from clconv.runtime import get_runtime

    rt = get_runtime(device)
    click.echo(f"tuning {rt.info.describe()} ...", err=True)
    path, doc = tuning.tune(
        rt, quick=quick, repeat=repeat, echo=(lambda line: click.echo(line, err=True)) if verbose else None
    )
    click.echo(f"{len(doc['measurements'])} measurements in {doc['seconds']:.0f} s, written to {path}")


@cli.command()
@click.option(
    "--check",
    is_flag=True,
    help="Build every program on every device, self-test each algorithm "
    "against scipy, and measure a 3x3 filter; exit 1 if the default device fails.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(1),
    default=300,
    show_default=True,
    help="Seconds each device's --check may take (a hanging driver fails its own line).",
)
@debug_option
def devices(check, timeout):
    """List OpenCL platforms and devices; the one used by default is marked with *."""
    from clconv import runtime

    found = runtime.list_devices()
    try:
        default = runtime.get_runtime(None).info
    except ClconvError as exc:
        default = None
        click.echo(f"clconv: warning: no usable default device: {exc}", err=True)
    for d in found:
        mark = "*" if default is not None and d.index == default.index else " "
        click.echo(
            f"{mark} {d.index}  {d.name}  [{d.kind}, {d.compute_units} compute units, "
            f"{d.global_mem / 2**30:.1f} GiB, max buffer {d.max_alloc / 2**30:.2f} GiB]  {d.platform}"
        )
    if not check:
        return 0
    from clconv import devcheck

    click.echo("")
    default_ok = default is not None
    for d in found:
        result = devcheck.check_in_subprocess(d.index, timeout)
        click.echo(("* " if default is not None and d.index == default.index else "  ") + devcheck.describe(result))
        if default is not None and d.index == default.index:
            default_ok = result["ok"]
    return 0 if default_ok else 1


def open_device_early(args) -> bool:
    """`clconv apply`: open the device in a background thread while the options are parsed and
    the image decoded (runtime.prefetch), through the device cache when no device is named.
    Looked up in the raw arguments, conservatively: help and version requests open nothing; a
    named device (--device, CLCONV_DEVICE, PYOPENCL_CTX) and standard input (which a rerun could
    not read again: see runtime.enable_device_cache) skip the cache; should click read the
    options otherwise, get_runtime does not take the thread's device. Returns whether this is
    `apply`."""
    if any(a in ("-h", "--help", "--version") for a in args):
        return False
    if next((a for a in args if not a.startswith("-")), None) != "apply":
        return False
    from clconv import runtime

    device = None
    for i, a in enumerate(args):
        if a == "--device" and i + 1 < len(args):
            device = args[i + 1]
        elif a.startswith("--device="):
            device = a[len("--device=") :]
    warnings_as_lines()  # before the device thread starts: it may warn too
    if device is None and "-" not in args:
        runtime.enable_device_cache()
    runtime.prefetch(device)
    return True


def exit_now(code: int) -> None:
    """End the process without Python's and the OpenCL driver's teardown (releasing programs,
    LLVM's static destructors: 50-100 ms after a build). Only once everything is written: the
    output is already renamed into place; stdout and stderr are flushed here, and if that fails
    the ordinary exit reports it."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - e.g. a closed pipe: let Python say so as usual
        sys.exit(code)
    os._exit(code)


def main(argv=None):
    """The console script's entry (``argv`` None: the process's arguments). As the script itself,
    `clconv apply` opens its device while parsing and ends without the OpenCL teardown (see
    open_device_early and exit_now)."""
    if argv is None:  # the console script: this process is ours (a rerun, env variables, its exit)
        argv = sys.argv[1:]
        if open_device_early(argv):
            exit_now(cli.main(argv, standalone_mode=False))
    return cli.main(argv)
