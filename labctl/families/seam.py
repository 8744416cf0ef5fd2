"""The device-family seam: what every family provides and the typed records that cross it.

labctl's generic code (the CLI, recipes, the session record, replay, the GUI
shell) knows devices only through :class:`DeviceFamily`. A family bundles the
parts of one kind of device (docs/families.md):

- its **description** as the device reports it (:class:`DeviceDescription`);
- its **bench plan**: the roles a bench file binds, the ratings, power-up and
  power-down and the wiring check before power (the family's ``open_bench``);
- its **link**: program, read back, apply patterns, status;
- its **characteriser**: a plan of runs and an analysis into typed parameters;
- its **model**: one torch implementation of the device that training,
  replay and live views share;
- its **simulator** and twin, named as ``module:attr`` strings and imported only
  by the commands that start a simulated bench, so no pipeline module imports one;
- its **GUI parts** (optional), a module named by ``gui`` and imported only by the GUI shell:
  watching an idle bench, status from recorded transactions, live estimates, stage panels;
- its **step options** (pydantic models): recipes validate steps with them, and
  the CLI builds its options from them, so a choice or a default is written once.

The stage operations take a :class:`StepContext` and a validated options model
and return the records below; nothing crosses the seam as a dict or a JSON string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: what long steps report (a bar, the GUI, a stop check)."""
Announce = Callable[[str], None]
"""A sentence for the user before something slow starts."""

STAGES = ("characterise", "train", "program", "evaluate")
RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"
"""The recipes shipped with labctl (``recipes/`` of the source tree), where ``shipped_recipes`` point."""


class StepOptions(BaseModel):
    """Base of a family's step options: strict (an unknown key is an error) and frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    cli_positional: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True)
class DeviceDescription:
    """What a device says about itself (IDENTIFY or its design file), in family-blind terms."""

    family: str
    part: str
    serial: str
    geometry: tuple[int, ...]
    """Neurons per layer, inputs first."""
    weight_levels: tuple[float, ...]
    """The values a programmed weight can take (codes); empty when weights are continuous (printed conductances)."""
    input_range: tuple[float, float]
    input_unit: str
    details: tuple[tuple[str, str], ...] = ()
    """Further facts to show (firmware, protocol, ...), as label and text."""
    attrs: Mapping[str, Any] = field(default_factory=dict)
    """The family's own flat attributes of the device, as HDF5 files and the session record store them."""

    def lines(self) -> list[str]:
        """Human-readable lines for ``labctl identify``."""
        lo, hi = self.input_range
        layers = f", layers {'-'.join(map(str, self.geometry))}" if self.geometry else ""
        weights = f"{len(self.weight_levels)} weight levels" if self.weight_levels else "continuous weights"
        out = [f"device  {self.family} {self.part}, serial {self.serial}{layers}, {weights}, "
               f"inputs {lo:g}..{hi:g} {self.input_unit}"]
        out += [f"        {label}: {text}" for label, text in self.details]
        return out


@dataclass(frozen=True)
class DeviceStatus:
    """A device's state as the GUI shell shows it (the family's GUI parts read it: idle, or from a run's record)."""

    words: str
    """The status in words (e.g. set flags, or "ok")."""
    temperature_c: float | None = None
    """Die temperature, when the device reports one."""


@dataclass
class StepContext:
    """What every stage operation gets besides its options: where, how to report, what to record."""

    bench_file: Path | None = None
    progress: Progress | None = None
    announce: Announce | None = None
    bench_options: dict[str, Any] = field(default_factory=dict)
    """Passed to the family's bench (e.g. the session recorder's transcript and reading hooks)."""
    calibration: Path | None = None
    """The characterisation this run made (recipes), which programming may use (CMNA: stuck-bit retraining)."""
    on_epoch: Callable[[int, int, float, float], None] | None = None
    """``on_epoch(epoch, epochs, loss, accuracy)`` during training (curves in the GUI)."""
    force: bool = False
    """Replace an existing output file (``--force``); without it a complete file is never touched."""


@dataclass(frozen=True)
class CharacterisationOutcome:
    path: Path
    description: DeviceDescription
    summary_lines: tuple[str, ...]
    summary: Mapping[str, Any]
    """Figures for the run's summary.json (JSON at the storage boundary only)."""
    result: Any = None
    """The family's own analysis result, for family panels (the generic code does not look inside)."""


@dataclass(frozen=True)
class TrainingOutcome:
    path: Path
    dataset: str
    software_accuracy: float
    summary_line: str
    record: Mapping[str, Any]
    """The training record written next to the weights (training_<name>.json)."""
    weights: Any = None
    report: Any = None


@dataclass(frozen=True)
class OnChipOutcome:
    """What programming (and, when asked, evaluation) on the device produced."""

    verified: bool
    summary_lines: tuple[str, ...]
    on_chip_accuracy: float | None = None
    software_accuracy: float | None = None
    n_samples: int = 0
    json_extra: Mapping[str, Any] = field(default_factory=dict)
    """Family keys added to ``evaluate --json`` after the common ones."""
    files: tuple[Path, ...] = ()
    """Files written (evaluation records, programmed weights)."""
    result: Any = None
    failure: Exception | None = None
    """A measurement that failed after the classification had finished (energy, say): callers write the records
    first and raise it afterwards, so the finished classification is never lost with it."""

    def as_json(self) -> dict[str, Any]:
        """The common keys every family prints with ``evaluate --json``, then the family's."""
        return {"on_chip_accuracy": self.on_chip_accuracy, "software_accuracy": self.software_accuracy,
                "n_samples": self.n_samples, **self.json_extra}


@runtime_checkable
class DeviceFamily(Protocol):
    """One device family behind the seam (docs/families.md lists required and optional parts)."""

    name: str
    summary: str
    parts: tuple[str, ...]
    bench_roles: tuple[str, ...]
    """Roles a bench file of this family binds to instrument channels."""
    step_options: Mapping[str, type[StepOptions]]
    """Options model per stage (``characterise``, ``train``, ``program``, ``evaluate``)."""
    simulator: str | None
    """Module of the family's simulator (``PARTS``, ``add_arguments``, ``start``, ``start_twin``), imported
    only by the commands that start a simulated bench; None: the family has none."""
    commands: str | None
    """``module:function`` that adds the family's own subcommands to the CLI (None: none)."""
    reporter: str | None
    """``module:function(path, out_dir)`` that writes a characterisation report and returns an object with
    ``paths`` (the files written) and ``missing`` (what a partial file lacked); None: no report."""
    replayer: str | None
    """``module:function(session, loaded_recipe, work_dir, progress)`` -> :class:`labctl.replay.ReplayReport`:
    a recorded session replayed against the device's twin (None: sessions cannot be replayed)."""
    shipped_recipes: Mapping[str, Path]
    """Part -> the recipe ``labctl demo`` runs for it."""
    gui: str | None
    """Module of the family's GUI parts (``watch_bench``, ``transaction_status``, ``transaction_description``,
    ``live_estimate``, ``confusion_matrix``, ``stage_panels``; docs/families.md), imported by name only by the
    GUI shell (``labctl.gui.family``); None: the shell's bench, training and evaluation tabs only."""

    def recognises(self, identify_payload: bytes) -> bool:
        """Whether an IDENTIFY answer (bridge protocol v1) comes from a device of this family."""

    def owns_file(self, attrs: Mapping[str, Any]) -> bool:
        """Whether an HDF5 file with these root attributes was written for this family (older files too)."""

    def describe(self, bench_file: Path, context: StepContext) -> tuple[DeviceDescription, dict[str, str]]:
        """Open the bench without powering anything: the device's description and each instrument's identity."""

    def characterise(self, out: Path, options: StepOptions, context: StepContext) -> CharacterisationOutcome: ...

    def train(self, calibration: Path, out: Path, options: StepOptions, context: StepContext) -> TrainingOutcome: ...

    def program(self, weights: Path, options: StepOptions, context: StepContext, *,
                evaluate: bool) -> OnChipOutcome: ...

    def write_records(self, run_dir: Path, weights_name: str, outcome: OnChipOutcome) -> list[Path]:
        """The evaluation record files of one program/evaluate step in a run folder."""
