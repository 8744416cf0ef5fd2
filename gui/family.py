"""The family's GUI parts as the shell uses them: the module named by ``DeviceFamily.gui``, or defaults.

The shell knows a device only through the seam. What only the family knows
(how to watch an idle bench, its status in a recorded transaction, its live
characterisation estimate, its confusion matrix, its stage panels) comes from
the module its ``gui`` names, imported here by name (as
:func:`labctl.families.simulator_of` imports a simulator). A family without
one (``gui = None``) still gets the shell: the bench tab shows the
description :meth:`~labctl.families.seam.DeviceFamily.describe` gives, and
the training and evaluation tabs work from the seam's records.
"""

from __future__ import annotations

import importlib
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

from labctl.families.seam import DeviceDescription, DeviceFamily, DeviceStatus, OnChipOutcome, StepContext

Key = tuple[str, str]
"""(role, quantity) of a reading."""


class _DescribedBench:
    """The default idle watch: the description ``describe`` gives (nothing powered), no status to poll."""

    def __init__(self, family: DeviceFamily, bench_file: Path) -> None:
        self.name = bench_file.name
        self.description, _ = family.describe(bench_file, StepContext(bench_file=bench_file))

    def poll(self) -> DeviceStatus | None:
        return None


class FamilyGui:
    """One family's parts of the window; every part has a default when the family's module lacks it."""

    def __init__(self, family: DeviceFamily) -> None:
        self.family = family
        self.module: ModuleType | None = importlib.import_module(family.gui) if family.gui else None

    def _part(self, name: str, default: Any = None) -> Any:
        return getattr(self.module, name, default) if self.module is not None else default

    @property
    def readings(self) -> tuple[tuple[Key, str, str], ...]:
        """The role readings the bench panel shows: (role, quantity), title, unit."""
        return tuple(self._part("READINGS", ()))

    @property
    def plotted_reading(self) -> tuple[Key, str, str] | None:
        """The reading whose history the bench panel plots: (role, quantity), title, unit."""
        return self._part("PLOTTED_READING")

    @contextmanager
    def watch(self, bench_file: Path, on_reading: Callable) -> Iterator[Any]:
        """The idle bench, nothing powered: ``name``, ``description`` and ``poll() -> DeviceStatus | None``."""
        watch_bench = self._part("watch_bench")
        if watch_bench is None:
            yield _DescribedBench(self.family, bench_file)
            return
        with watch_bench(bench_file, on_reading) as watch:
            yield watch

    def transaction_status(self, tx) -> DeviceStatus | None:
        read = self._part("transaction_status")
        return read(tx) if read is not None else None

    def transaction_description(self, tx) -> DeviceDescription | None:
        read = self._part("transaction_description")
        return read(tx) if read is not None else None

    def live_estimate(self, path: Path, description: DeviceDescription) -> Any:
        """The family's live characterisation estimate for its stage panels (None: the family has none)."""
        estimate = self._part("live_estimate")
        return estimate(path, description) if estimate is not None else None

    def confusion_matrix(self, outcome: OnChipOutcome) -> Any:
        confusion = self._part("confusion_matrix")
        return confusion(outcome) if confusion is not None else None

    def stage_panels(self) -> list:
        """The family's stage panels (widgets with ``title``, ``stages``, ``clear()``, ``step_done(kind, outcome)``
        and optionally ``show_live(estimate)``), in pipeline order."""
        make = self._part("stage_panels")
        return list(make()) if make is not None else []
