"""Classify on chip from first-spike times, and measure energy per inference (contract 1.8, 3.5).

The class of a pattern is the output that fires first (seed 003): the
smallest TDC code of the output layer. 0xFFFF is "did not fire before the
window ended" (1.8); a pattern whose outputs all read 0xFFFF has no class and
counts as wrong. Two outputs with the same code (within the TDC's 1 ns) are a
tie; the lower index wins, and ties are counted so a report can show them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from labctl.families.ttfs.link import TtfsBridge
from labctl.families.ttfs.patterns import NO_SPIKE as TDC_MISSED

NO_CLASS = -1
PROGRESS_CHUNK = 500
"""Test patterns per progress step: RCS-L's 10 000 Fashion-MNIST images take minutes on a bench."""


def first_spike_classes(tdc: np.ndarray) -> np.ndarray:
    """Per pattern the index of the earliest output spike, NO_CLASS when no output fired."""
    tdc = np.asarray(tdc, dtype=np.int64)
    winner = tdc.argmin(axis=1)
    return np.where(tdc.min(axis=1) == TDC_MISSED, NO_CLASS, winner)


def tie_count(tdc: np.ndarray) -> int:
    """Patterns whose earliest output code is shared by another output (a fired one)."""
    tdc = np.asarray(tdc, dtype=np.int64)
    first = tdc.min(axis=1, keepdims=True)
    return int(np.sum(((tdc == first).sum(axis=1) > 1) & (first[:, 0] != TDC_MISSED)))


@dataclass(frozen=True)
class OnChipEvaluation:
    """What the test split did on chip."""

    accuracy: float
    predictions: np.ndarray
    labels: np.ndarray
    output_tdc: np.ndarray
    """(patterns, outputs) TDC codes as read (ns; 0xFFFF missed): the spike-time histograms are drawn from it."""
    confusion: np.ndarray
    """(classes, classes + 1): rows true class, columns predicted class, the last column "no output fired"."""
    ties: int
    energy: Any = None
    """The energy reading (:class:`labctl.families.ttfs.energy.EnergyReading`) when it was measured."""
    extras: dict[str, float] = field(default_factory=dict)

    @property
    def no_spike_fraction(self) -> float:
        return float(np.mean(self.predictions == NO_CLASS))

    def output_times_ns(self) -> list[np.ndarray]:
        """Per output, the first-spike times of the patterns where it fired (TDC code + 0.5 ns, contract 1.8)."""
        return [self.output_tdc[self.output_tdc[:, k] != TDC_MISSED, k] + 0.5
                for k in range(self.output_tdc.shape[1])]


def classify_on_chip(link: TtfsBridge, input_codes: np.ndarray, labels: np.ndarray, n_classes: int, *,
                     progress: Callable[[str, int, int], None] | None = None) -> OnChipEvaluation:
    """Apply the test patterns (time codes, patterns x inputs) and classify each from the output TDC codes."""
    codes = np.asarray(input_codes, dtype=np.uint8)
    chunks = []
    for first in range(0, len(codes), PROGRESS_CHUNK):
        if progress:
            progress("classifying on chip", first, len(codes))
        chunks.append(link.apply_patterns(codes[first:first + PROGRESS_CHUNK]))
    if progress:
        progress("classifying on chip", len(codes), len(codes))
    tdc = np.concatenate(chunks) if chunks else link.apply_patterns(codes)
    predicted = first_spike_classes(tdc)
    labels = np.asarray(labels, dtype=np.int64)
    confusion = np.zeros((n_classes, n_classes + 1), dtype=np.int64)
    np.add.at(confusion, (labels, np.where(predicted == NO_CLASS, n_classes, predicted)), 1)
    return OnChipEvaluation(accuracy=float(np.mean(predicted == labels)), predictions=predicted, labels=labels,
                            output_tdc=tdc, confusion=confusion, ties=tie_count(tdc))
