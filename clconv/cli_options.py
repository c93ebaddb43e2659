"""The options ``clconv apply`` and ``batch`` (and partly ``bench``) share, spelled the same
everywhere, their shell completion, and what they become: FilterOptions and SaveOptions."""

from __future__ import annotations

import click

from clconv.params import BORDER_ALIASES, BORDER_PICTURES, BORDERS, DEFAULT_MAX_PIXELS


def debug_option(fn):
    """The --debug flag on a command: read by ClconvGroup.main before parsing, declared so that
    click accepts it anywhere."""
    return click.option("--debug", is_flag=True, expose_value=False, help="Show tracebacks of errors.")(fn)


BORDER_HELP = (
    "Border mode, as scipy.ndimage names them: "
    + "; ".join(f"{name} ({BORDER_PICTURES[name]})" for name in BORDERS)
    + ". Aliases: "
    + ", ".join(f"{a}={c}" for a, c in BORDER_ALIASES.items())
    + "."
)


class AlgorithmChoice(click.Choice):
    """clconv.algorithms.CHOICES, read when first needed: `clconv --help` and `clconv kernels`
    do not import the algorithms (numpy)."""

    def __init__(self):
        super().__init__((), case_sensitive=False)

    @property
    def choices(self):
        """The algorithm names, imported on first use."""
        from clconv.algorithms import CHOICES

        return tuple(CHOICES)

    @choices.setter
    def choices(self, value):
        """Ignored: click.Choice's __init__ assigns the empty tuple given to it."""


def complete_kernel(ctx, param, incomplete: str) -> list:
    """Shell completion of -k: the named kernels (files complete as the shell does them)."""
    from click.shell_completion import CompletionItem

    from clconv.kernels import NAMED

    return [CompletionItem(name) for name in sorted(NAMED) if name.startswith(incomplete)]


def complete_border(ctx, param, incomplete: str) -> list:
    """Shell completion of --border: the modes and their aliases."""
    from click.shell_completion import CompletionItem

    from clconv.params import BORDER_ALIASES, BORDERS

    return [CompletionItem(name) for name in (*BORDERS, *sorted(BORDER_ALIASES)) if name.startswith(incomplete)]


# The filter options shared by apply (and batch, bench): spelled the same everywhere.
FILTER_OPTIONS = [
    click.option(
        "-k",
        "--kernel",
        "kernels",
        multiple=True,
        required=True,
        metavar="SPEC",
        shell_complete=complete_kernel,
        help='Kernel: a name (sobel-x, gaussian:sigma=2, ...), a matrix "1 0 -1; 2 0 -2; 1 0 -1", '
        '"WxH: v,v,...", or a .txt/.csv/.npy file. Repeat to chain kernels.',
    ),
    click.option(
        "--border",
        default="reflect",
        show_default=True,
        metavar="MODE",
        help=BORDER_HELP,
        shell_complete=complete_border,
    ),
    click.option(
        "--border-value",
        default=0.0,
        type=float,
        show_default=True,
        help="Value outside the image for --border constant, in pixel units (0..255 for 8-bit).",
    ),
    click.option(
        "--flip", is_flag=True, help="Mathematical convolution (kernel rotated 180 degrees) instead of correlation."
    ),
    click.option("--gray", is_flag=True, help="Convert to luminance (ITU-R 601-2) first, keeping alpha."),
    click.option(
        "--alpha",
        type=click.Choice(["keep", "filter"]),
        default="keep",
        show_default=True,
        help="keep: alpha unchanged, colour weighted by alpha for every kernel; filter: alpha filtered like colour.",
    ),
    click.option(
        "--abs/--no-abs", "use_abs", default=None, help="Take |value| before scaling (default: on for edge detectors)."
    ),
    click.option("--scale", type=float, default=None, help="Multiply the result (default 1)."),
    click.option(
        "--bias", type=float, default=None, help="Add to the result, in output units (default 0; emboss: half range)."
    ),
    click.option(
        "--padding",
        default=None,
        metavar="N|valid",
        help="CNN geometry: pad N pixels per side with the border mode, kernel top-left aligned.",
    ),
    click.option("--stride", default=1, type=int, show_default=True, help="Output every S-th pixel."),
    click.option("--dilation", default=1, type=int, show_default=True, help="Spread kernel taps D pixels apart."),
    click.option(
        "--dtype",
        type=click.Choice(["uint8", "uint16", "float32"]),
        default=None,
        help="Output sample type (default: the input's; float32 needs .tif/.tiff or .npy).",
    ),
    click.option(
        "--algorithm", type=AlgorithmChoice(), default="auto", show_default=True, help="Convolution algorithm."
    ),
    click.option(
        "--device",
        default=None,
        metavar="cpu|gpu|P:D|NAME",
        help="OpenCL device (default: CLCONV_DEVICE, PYOPENCL_CTX, else a GPU if present, else PoCL).",
    ),
    click.option(
        "--max-pixels",
        default=DEFAULT_MAX_PIXELS,
        type=int,
        show_default=True,
        help="Refuse images (and outputs) larger than this many pixels; 0 disables.",
    ),
    debug_option,
]


def _decorated(fn, options: list):
    for option in reversed(options):
        fn = option(fn)
    return fn


def filter_options(fn):
    """The filter options (FILTER_OPTIONS) on a command."""
    return _decorated(fn, FILTER_OPTIONS)


TIFF_COMPRESSION_NAMES = ("none", "lzw", "deflate", "packbits")  # imageio.TIFF_COMPRESSIONS (not imported here)


# How apply and batch write their outputs: metadata, quality, compression.
OUTPUT_OPTIONS = [
    click.option(
        "--strip",
        is_flag=True,
        help="Drop the input's EXIF, XMP, comments and PNG text from the output. Kept even so: the "
        "ICC profile (it defines the colours) and the DPI. Without --strip they are all carried "
        "where the output format holds them, the EXIF orientation reset to 1.",
    ),
    click.option(
        "--quality",
        type=click.IntRange(1, 100),
        default=None,
        metavar="1-100",
        help="JPEG, WebP and AVIF quality. Default: a JPEG input's quality, estimated from its "
        "quantisation tables (a JPEG output also keeps its chroma subsampling); else 92 for "
        "JPEG (4:4:4 from quality 90, else 4:2:0) and 90 for WebP and AVIF.",
    ),
    click.option(
        "--compression",
        type=click.Choice(TIFF_COMPRESSION_NAMES),
        default=None,
        help="TIFF compression. Default: a TIFF input's lossless compression (LZW, deflate, "
        "PackBits), else none. 16-bit colour and float32 TIFFs are written with none or deflate.",
    ),
]


def output_options(fn):
    """The output options (OUTPUT_OPTIONS) on a command."""
    return _decorated(fn, OUTPUT_OPTIONS)


def make_save_options(values: dict):
    """The output options (popped from ``values``) as an imageio.SaveOptions."""
    from clconv.imageio import SaveOptions

    return SaveOptions(strip=values.pop("strip"), quality=values.pop("quality"), compression=values.pop("compression"))


def make_options(values: dict):
    """The FilterOptions of the filter options' values (as click parsed them), not yet validated."""
    from clconv.files import FilterOptions

    return FilterOptions(
        kernels=tuple(values["kernels"]),
        border=values["border"],
        border_value=values["border_value"],
        flip=values["flip"],
        gray=values["gray"],
        alpha=values["alpha"],
        abs=values["use_abs"],
        scale=values["scale"],
        bias=values["bias"],
        padding=values["padding"],
        stride=values["stride"],
        dilation=values["dilation"],
        dtype=values["dtype"],
        algorithm=values["algorithm"].lower(),
        device=values["device"],
        max_pixels=values["max_pixels"],
    )


CLUSTER_HELP = (
    "Run on a Dask cluster: tcp://HOST:PORT of a running scheduler, or local[:N] to start N worker "
    "processes for the run (needs clconv[dask]; paths on a filesystem every worker sees, or fsspec "
    "URLs such as s3://bucket/in)."
)
