"""What a batch leaves besides its outputs: the result (each file's outcome, the counts) and
the JSON report (the settings, enough to reproduce the run, and each file's record)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from clconv.batch.tasks import Task


@dataclass
class BatchResult:
    """What a batch run did: every task with its outcome, the settings, the seconds it took."""

    tasks: list[Task]
    settings: dict
    seconds: float
    interrupted: bool = False

    def count(self, status: str) -> int:
        """How many tasks have ``status``."""
        return sum(t.status == status for t in self.tasks)

    @property
    def failures(self) -> list[Task]:
        """The tasks that failed, in order."""
        return [t for t in self.tasks if t.status == "failed"]

    def summary(self) -> dict:
        """The counts of ok, failed and skipped files and the run's seconds."""
        return {
            "ok": self.count("ok"),
            "failed": self.count("failed"),
            "skipped": self.count("skipped"),
            "seconds": round(self.seconds, 3),
        }

    def report(self) -> dict:
        """The JSON report: clconv's version, the settings, the summary and each ended file's record."""
        from clconv import __version__

        summary = self.summary()
        if self.interrupted:
            summary["interrupted"] = True
            summary["pending"] = self.count("pending")
        return {
            "clconv": __version__,
            "settings": self.settings,
            "files": [t.record() for t in self.tasks if t.status != "pending"],
            "summary": summary,
        }


def settings_of(options, runtime_name: str, extra: dict) -> dict:
    """The run's settings, enough to reproduce a result: kernels with their weights included."""
    kernels = []
    for kernel in options.kernels:
        entry = {"spec": kernel.spec}
        parts = kernel.parts
        if len(parts) == 1:
            entry["weights"] = parts[0].weights.tolist()
        else:
            entry["magnitude_of"] = [{"spec": p.spec, "weights": p.weights.tolist()} for p in parts]
        kernels.append(entry)
    settings = {
        "kernels": kernels,
        "border": options.border,
        "border_value": options.border_value,
        "flip": options.flip,
        "gray": options.gray,
        "alpha": options.alpha,
        "abs": options.abs,
        "scale": options.scale,
        "bias": options.bias,
        "padding": options.padding,
        "stride": options.stride,
        "dilation": options.dilation,
        "dtype": options.dtype,
        "algorithm": options.algorithm,
        "device": runtime_name,
        "max_pixels": options.max_pixels,
    }
    settings.update(extra)
    return settings


def write_report(path: str, result: BatchResult) -> None:
    """Write the JSON report of ``result`` to ``path`` atomically (ASCII, indented)."""
    from clconv.atomic import write_atomically

    text = json.dumps(result.report(), indent=2, ensure_ascii=True) + "\n"
    write_atomically(path, lambda fo: fo.write(text.encode("ascii")))
