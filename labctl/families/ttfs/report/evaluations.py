"""On-chip evaluations of a TTFS die, as the report and the evaluation panel show them.

An evaluate step leaves ``evaluation_<name>.json`` in the run folder, next to
the characterisation (:meth:`labctl.families.ttfs.family.TtfsFamily.write_records`):
the accuracy, the energy per inference, the confusion matrix (true class by
predicted class, the last column "no output fired") and each output's
first-spike times. The GUI gets the same figures from the step's outcome
(:func:`from_outcome`), so the page and the panel read one record type.

Which output won a pattern, and the pattern's true class, are known only
where the per-pattern TDC codes and labels are at hand (the outcome; a record
with ``labels`` and ``output_tdc``): then the spike-time histogram is the
winning output's time per true class. A record without them gives each
output's own first-spike times instead, and says so (``SpikeTimes.by``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from labctl.families.seam import OnChipOutcome
from labctl.families.ttfs.evaluation import NO_CLASS, first_spike_classes

TDC_HALF_CODE_NS = 0.5
"""A TDC code k means a spike edge in [k, k + 1) ns (contract 1.8): its time is taken at the middle."""


@dataclass(frozen=True)
class SpikeTimes:
    """First-spike times (ns) grouped per true class (the winning output's) or per output (each output's own)."""

    by: str
    """``"true class"`` or ``"output"``."""
    times_ns: tuple[np.ndarray, ...]
    correct: tuple[np.ndarray, ...] | None
    """Per true class, whether each pattern's winner was that class (None when grouped per output)."""


@dataclass(frozen=True)
class EvaluationRecord:
    """One evaluated weight set on the die."""

    name: str
    accuracy: float | None
    software_accuracy: float | None
    n_samples: int
    confusion: np.ndarray
    """(classes, classes + 1): rows true class, columns predicted class, the last column "no output fired"."""
    spikes: SpikeTimes
    no_spike_fraction: float | None = None
    ties: int | None = None
    energy_per_inference_j: float | None = None
    energy_se_j: float | None = None
    dynamic_power_w: float | None = None

    @property
    def n_classes(self) -> int:
        return int(self.confusion.shape[0])


def winner_spike_times(labels: np.ndarray, output_tdc: np.ndarray, n_classes: int) -> SpikeTimes:
    """Per true class, the first-spike time of the output that won each of its patterns (patterns where no
    output fired have none), and whether that output was the right one."""
    labels, tdc = np.asarray(labels, np.int64), np.asarray(output_tdc, np.int64)
    winner = first_spike_classes(tdc)
    times, correct = [], []
    for c in range(n_classes):
        rows = np.flatnonzero((labels == c) & (winner != NO_CLASS))
        times.append(tdc[rows, winner[rows]] + TDC_HALF_CODE_NS)
        correct.append(winner[rows] == c)
    return SpikeTimes("true class", tuple(times), tuple(correct))


def from_record(name: str, record: Mapping[str, Any]) -> EvaluationRecord:
    """The figures of an ``evaluation_<name>.json`` record (KeyError: not a TTFS evaluation record)."""
    confusion = np.asarray(record["confusion"], np.int64)
    if "labels" in record and "output_tdc" in record:
        spikes = winner_spike_times(record["labels"], record["output_tdc"], confusion.shape[0])
    else:
        spikes = SpikeTimes("output", tuple(np.asarray(t, float) for t in record["output_spike_times_ns"]), None)
    return EvaluationRecord(name, record.get("on_chip_accuracy"), record.get("software_accuracy"),
                            int(record.get("n_samples", confusion.sum())), confusion, spikes,
                            record.get("no_spike_fraction"), record.get("ties"),
                            record.get("energy_per_inference_j"), record.get("energy_se_j"),
                            record.get("dynamic_power_w"))


def from_outcome(name: str, outcome: OnChipOutcome) -> EvaluationRecord | None:
    """The figures of an evaluate step's outcome (None for a program step, which classified nothing)."""
    _, result = outcome.result
    if result is None:
        return None
    energy = result.energy
    return EvaluationRecord(name, result.accuracy, outcome.software_accuracy, len(result.labels), result.confusion,
                            winner_spike_times(result.labels, result.output_tdc, result.confusion.shape[0]),
                            result.no_spike_fraction, result.ties,
                            energy.energy_per_inference_j if energy is not None else None,
                            energy.energy_se_j if energy is not None else None,
                            energy.dynamic_power_w if energy is not None else None)


def records_beside(folder: Path, serial: str) -> list[EvaluationRecord]:
    """The evaluations in ``folder`` (a run folder: one die), as recipes and ``labctl evaluate --out-dir`` leave
    them next to the characterisation. A record naming another die (``die_serial``; the TTFS records written so
    far name none) is left out, and so is one that cannot be read: the report is about the characterisation,
    and these are its sequel."""
    out = []
    for path in sorted(folder.glob("evaluation_*.json")):
        try:
            record = json.loads(path.read_text())
            if record.get("die_serial", serial) == serial:
                out.append(from_record(path.stem.removeprefix("evaluation_"), record))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return out
