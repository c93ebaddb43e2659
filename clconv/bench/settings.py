"""The options of one ``clconv bench`` run: defaults, --quick, validation into ``Settings``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict, Union

import numpy as np

from clconv.constants import SAMPLE_TYPES
from clconv.errors import OptionError

if TYPE_CHECKING:
    from clconv.kernels.model import Kernel

DTYPES = SAMPLE_TYPES
PRESETS = ("targets",)

Size = tuple[int, int]  # (height, width)
KernelSpec = Union[str, "Kernel"]  # a spec string, or a kernel already parsed


class BenchOptions(TypedDict, total=False):
    """What ``clconv bench`` hands ``run_cli``, every key optional (see run_cli)."""

    sizes: Sequence[Size | str]
    kernels: Sequence[KernelSpec]
    dtypes: Sequence[str]
    channels: int | Sequence[int]
    algorithm: str | None
    devices: str | Sequence[str | None] | None
    repeat: int | None
    quick: bool
    preset: str | None
    json: str | None
    plot: str | None
    border: str | None


@dataclass(frozen=True)
class Baseline:
    """What a run measures for the options not given."""

    sizes: tuple[Size, ...]
    kernels: tuple[str, ...]
    dtypes: tuple[str, ...]
    repeat: int


# What `clconv bench` measures when an option is not given; --quick: under a minute on 2 cores.
DEFAULT = Baseline(
    sizes=((2048, 2048),),
    kernels=("gaussian:size=3", "gaussian:size=7", "gaussian:size=15"),
    dtypes=("float32", "uint8"),
    repeat=5,
)
QUICK = Baseline(
    sizes=((512, 512), (1024, 1024)),
    kernels=("gaussian:size=3", "gaussian:size=7"),
    dtypes=("float32", "uint8"),
    repeat=3,
)


@dataclass(frozen=True)
class Settings:
    """The validated options of one bench run."""

    sizes: tuple[Size, ...] = DEFAULT.sizes
    kernels: tuple[KernelSpec, ...] = DEFAULT.kernels
    dtypes: tuple[str, ...] = DEFAULT.dtypes
    channels: tuple[int, ...] = (1,)
    algorithm: str = "all"  # 'all', 'auto' or a REGISTRY name
    devices: tuple[str | None, ...] = (None,)  # device specs; None = clconv's default device
    repeat: int = DEFAULT.repeat
    quick: bool = False
    preset: str | None = None
    json: str | None = None
    plot: str | None = None
    border: str = "reflect"


def parse_size(text: Size | Sequence[int] | str) -> Size:
    """'WxH' (as in 3840x2160) or 'N' (square) -> (height, width); a (h, w) pair passes through."""
    if isinstance(text, (tuple, list)):
        if len(text) != 2:
            raise OptionError("--size", f"expected (height, width), got {text!r}")
        h, w = text
    else:
        parts = str(text).lower().replace(" ", "").split("x")
        if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts):
            raise OptionError("--size", f"expected WxH such as 4096x4096, got {text!r}")
        w, h = (int(parts[0]), int(parts[-1]))
    h, w = int(h), int(w)
    if h < 1 or w < 1:
        raise OptionError("--size", f"sides must be at least 1, got {w}x{h}")
    return h, w


def size_text(shape: Sequence[int]) -> str:
    """(h, w) -> 'WxH', as the options spell a size."""
    return f"{shape[1]}x{shape[0]}"


def _listed(value: str | int | Iterable[Any] | None) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, int)):
        return (value,)
    return tuple(value)


def _whole_number(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def settings_from(options: BenchOptions) -> Settings:
    """Validate the CLI's option dict (see ``clconv.bench.run_cli``) into Settings; OptionError on bad values."""
    from clconv.algorithms import check_name
    from clconv.params import normalize_border

    quick = bool(options.get("quick"))
    base = QUICK if quick else DEFAULT
    sizes = tuple(parse_size(s) for s in _listed(options.get("sizes"))) or base.sizes
    kernels = _listed(options.get("kernels")) or base.kernels
    dtypes = tuple(str(d).lower() for d in _listed(options.get("dtypes"))) or base.dtypes
    for dtype in dtypes:
        if dtype not in DTYPES:
            raise OptionError("--dtype", f"unsupported dtype {dtype!r} (choose from {', '.join(DTYPES)})")
    channels = tuple(_listed(options.get("channels"))) or (1,)
    for c in channels:
        if not _whole_number(c) or not 1 <= c <= 64:
            raise OptionError("--channels", f"expected a whole number of channels from 1 to 64, got {c!r}")
    algorithm = str(options.get("algorithm") or "all").lower()
    if algorithm != "all":
        algorithm = check_name(algorithm)
    given_repeat = options.get("repeat")
    repeat = base.repeat if given_repeat is None else given_repeat
    if not _whole_number(repeat) or repeat < 1:
        raise OptionError("--repeat", f"expected a whole number of rounds >= 1, got {repeat!r}")
    preset = options.get("preset")
    if preset is not None and preset not in PRESETS:
        raise OptionError("--preset", f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    return Settings(
        sizes=sizes,
        kernels=tuple(kernels),
        dtypes=dtypes,
        channels=tuple(int(c) for c in channels),
        algorithm=algorithm,
        devices=_device_specs(options.get("devices")),
        repeat=int(repeat),
        quick=quick,
        preset=preset,
        json=options.get("json") or None,
        plot=options.get("plot") or None,
        border=normalize_border(options.get("border") or "reflect"),
    )


def _device_specs(value: str | Iterable[str | None] | None) -> tuple[str | None, ...]:
    specs = tuple(str(v).strip() for v in _listed(value) if v is not None and str(v).strip())
    if not specs:
        return (None,)
    if any(s.lower() == "all" for s in specs):
        from clconv.runtime import list_devices

        return tuple(d.index for d in list_devices())
    return specs


def check_output_folder(path: str, option: str) -> None:
    """An output file's folder must exist before anything is measured."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OptionError(option, f"folder {folder} does not exist")
