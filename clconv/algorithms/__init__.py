"""The convolution algorithms: one registry, what each can do, and the one schedule.

Every algorithm correlates float32 planes already on the device with one linear
kernel: ``correlate(rt, src, dst, kernel, window, border_code, cval, **params)``;
``refuses(kernel)`` says why it cannot (or None). What else an algorithm can do
is declared here as data (``Algorithm``'s flags), so the engine asks "can this
step run in place?" and never branches on algorithm names.

``schedule(plan, shape, device)`` decides, once per run, which algorithm (and
which parameters) runs each linear filter of a plan: ``--algorithm`` when named,
else the device's tuned measurements (``clconv tune``, clconv.tuning) when they
cover the case, else the built-in cost model below. The engine runs the
schedule and ``--explain`` prints it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clconv.algorithms import direct, fft, im2col, separable
from clconv.errors import OptionError

if TYPE_CHECKING:
    from clconv.kernels.model import Linear


def _never(kernel) -> None:
    return None


@dataclass(frozen=True)
class Algorithm:
    """One registered algorithm: its correlate functions, what it refuses, and what it can do (the
    flags the engine asks instead of branching on names)."""

    name: str
    summary: str
    correlate: Callable
    refuses: Callable = _never
    correlate_bank: Callable | None = None  # same-shaped kernels over the same planes at once
    fused_bank: Callable | None = None  # a float32 bank read once, in place (correlate_bank_fused's form)
    in_place: bool = False  # reads and writes interleaved images of any sample type, mapping inside
    strided_in_place: bool = False  # ... with a stride too
    exact_zeros: bool = True  # a sum of zero contributions is exactly 0 (FFT round-off is not)
    by_terms: bool = False  # runs a kernel as its separable terms: cost grows with the rank
    alone: bool = True  # a candidate for one kernel alone (gemm only pays for banks)
    variants: tuple = ({},)  # the parameter sets `clconv tune` measures


REGISTRY: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm(
            "direct",
            direct.SUMMARY,
            direct.correlate,
            fused_bank=direct.correlate_bank_fused,
            in_place=True,
            strided_in_place=True,
            variants=tuple({"rows": r} for r in direct.ROW_CHOICES),
        ),
        Algorithm(
            "separable",
            separable.SUMMARY,
            separable.correlate,
            separable.refuses,
            in_place=True,
            by_terms=True,
            variants=tuple(
                {"band_bytes": b, "col_rows": r} for b in separable.BAND_CHOICES for r in separable.COLUMN_ROWS
            ),
        ),
        Algorithm("gemm", im2col.SUMMARY, im2col.correlate, correlate_bank=im2col.correlate_bank, alone=False),
        Algorithm("fft", fft.SUMMARY, fft.correlate, fft.refuses, exact_zeros=False),
    )
}
CHOICES = ("auto", *REGISTRY)

# The built-in model of `auto`: a cost per output value in tap-equivalents, from measurements on
# the PoCL CPU device (2-core AMD EPYC Zen 5; README "How auto decides"). `clconv tune` replaces
# it with measurements on the device at hand.
# The tuned table's smallest image is 512x512: below this its nearest size says little, and the
# model decides. (The model used to send these images direct, for one launch: a launch took
# 0.2 ms then, 2 us now, and direct was up to 6x slower there than separable or fft.)
TINY_IMAGE_PIXELS = 64 * 64
GEMM_MIN_BANK_GPU = 16  # a bank this large goes through one GEMM on a GPU; on a CPU never
PASS_OVERHEAD_TAPS = 6  # a separable term's extra row pass and intermediate, in taps
FFT_COST_TAPS = 168  # fft's cost, flat in the kernel size: it beats direct from 13x13 (169 taps)


def model_costs(kernel) -> dict[str, float]:
    """Estimated cost per output value (tap-equivalents) of each algorithm that can run
    ``kernel`` alone (gemm is only ever a bank's choice)."""
    kh, kw = kernel.shape
    costs = {"direct": float(kh * kw), "fft": float(FFT_COST_TAPS)}
    rank = kernel.rank
    if rank is not None and min(kh, kw) > 1:
        costs["separable"] = float(rank * (kh + kw + PASS_OVERHEAD_TAPS))
    return costs


def model_params(name: str, kernel) -> dict:
    """The built-in model's parameters for an algorithm: direct takes 4 output rows per work-item
    from 5 rows of taps up (7x7 17% and 15x15 31% faster than 2 rows here; 3x3 10% slower)."""
    if name == "direct" and kernel.shape[0] >= 5:
        return {"rows": 4}
    return {}


def params_text(params: dict) -> str:
    """An algorithm's parameters as --explain shows them: "band_bytes=64 MiB, col_rows=4"."""
    return ", ".join(f"{k}={v >> 20} MiB" if k.endswith("_bytes") else f"{k}={v}" for k, v in params.items())


def check_name(name: str) -> str:
    """``--algorithm``'s value, lower-cased: 'auto' or a REGISTRY name (empty: 'auto'); OptionError otherwise."""
    key = (name or "auto").lower()
    if key not in CHOICES:
        raise OptionError("--algorithm", f"unknown algorithm {name!r} (choose from {', '.join(CHOICES)})")
    return key


def _shape_text(kernel) -> str:
    kh, kw = kernel.shape
    return f"{kh}x{kw}, " + (f"rank {kernel.rank}" if kernel.rank else "rank above 4")


def choose_model(kernel, *, device_kind: str, bank_size: int = 1) -> tuple[str, str]:
    """The built-in model's algorithm for one linear kernel, and why (a pure function)."""
    if bank_size >= GEMM_MIN_BANK_GPU and device_kind == "gpu":
        return "gemm", f"a bank of {bank_size} kernels on a GPU: one unfold and one GEMM"
    costs = model_costs(kernel)
    best = min(costs, key=lambda name: (costs[name], name != "direct"))
    others = ", ".join(f"{name} {cost:.0f}" for name, cost in sorted(costs.items(), key=lambda c: c[1]) if name != best)
    return best, f"{_shape_text(kernel)}: model cost {costs[best]:.0f} taps per value (vs {others})"


@dataclass(frozen=True)
class Step:
    """How one linear filter runs: its algorithm, the algorithm's parameters, and why."""

    kernel: Linear
    algorithm: Algorithm
    reason: str
    params: dict = field(default_factory=dict)
    source: str = "model"  # "model", "tuned" or "forced"

    def correlate(self, rt, src, dst, window, border_code: int, cval: float, mapping=None) -> None:
        """Run this step's kernel from ``src`` into ``dst`` with its algorithm and parameters."""
        extra = {"mapping": mapping} if mapping is not None else {}
        self.algorithm.correlate(rt, src, dst, self.kernel, window, border_code, cval, **extra, **self.params)


@dataclass(frozen=True)
class Schedule:
    """The steps of a plan on one input shape, in order; looked up by (filter, input shape)."""

    steps: tuple[Step, ...]
    keys: tuple[tuple[int, tuple[int, ...]], ...]  # (id(kernel), input shape) of each step
    note: str = ""  # where the choices came from (for --explain)

    def step(self, kernel, shape: tuple[int, int]) -> Step:
        """The Step of ``kernel`` (a linear part of the plan) on an input of ``shape``."""
        return self.steps[self.keys.index((id(kernel), tuple(shape)))]

    def __iter__(self):
        return iter(self.steps)


def _checked(name: str, kernel) -> Algorithm:
    why_not = REGISTRY[name].refuses(kernel)
    if why_not:
        raise OptionError("--algorithm", f"{name} cannot run this kernel: {why_not}")
    return REGISTRY[name]


def choose(name: str, kernel, *, image_pixels: int, device_kind: str, bank_size: int = 1, table=None) -> Step:
    """The Step for ``kernel``: the named algorithm, or auto's choice (tuned table, else model)."""
    key = check_name(name)
    if key != "auto":
        return Step(kernel, _checked(key, kernel), "chosen with --algorithm", source="forced")
    if table is not None and bank_size < GEMM_MIN_BANK_GPU and image_pixels >= TINY_IMAGE_PIXELS:
        found = table.choose(kernel, image_pixels)
        if found is not None:
            algorithm, params, reason = found
            return Step(kernel, REGISTRY[algorithm], f"auto: {_shape_text(kernel)}: {reason}", dict(params), "tuned")
    algorithm, reason = choose_model(kernel, device_kind=device_kind, bank_size=bank_size)
    return Step(kernel, REGISTRY[algorithm], f"auto: {reason}", model_params(algorithm, kernel))


def resolve(name: str, kernel, *, image_pixels: int, device_kind: str, bank_size: int = 1) -> tuple[Algorithm, str]:
    """The Algorithm for ``name`` and ``kernel`` by the model alone, with the reason (validation)."""
    step = choose(name, kernel, image_pixels=image_pixels, device_kind=device_kind, bank_size=bank_size)
    return step.algorithm, step.reason


def schedule(plan, shape: tuple[int, int], device, *, bank: bool = False, table=None) -> Schedule:
    """Every linear filter of ``plan`` on an input of ``shape`` (the chain's shapes follow the
    geometry; with ``bank`` every kernel reads the input), decided once. ``device`` has
    ``kind``; ``table`` is the device's tuned measurements or None (the model decides)."""
    steps: list[Step] = []
    keys: list[tuple[int, tuple[int, ...]]] = []
    at: tuple[int, ...] = tuple(shape)  # the input shape of the kernel at hand
    for kernel in plan.kernels:
        bank_size = len(plan.kernels) if bank else len(kernel.parts)
        for part in kernel.parts:
            steps.append(
                choose(
                    plan.algorithm,
                    part,
                    image_pixels=at[0] * at[1],
                    device_kind=device.kind,
                    bank_size=bank_size,
                    table=table,
                )
            )
            keys.append((id(part), at))
        if not bank:
            at = tuple(plan.geometry.window(at, kernel.shape, plan.flip).out_shape)
    sources = {s.source for s in steps}
    if "tuned" in sources:
        note = f"tuned measurements of this device ({table.path})"
    elif plan.algorithm != "auto":
        note = "--algorithm"
    elif table is not None:
        note = f"built-in model (the tuned measurements in {table.path} do not cover this case)"
    else:
        note = "built-in model (no measurements of this device: run clconv tune)"
    return Schedule(tuple(steps), tuple(keys), note)
