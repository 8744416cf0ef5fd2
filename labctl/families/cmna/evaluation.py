"""Classify a test set on the die itself, through RUN_BATCH.

The on-chip accuracy is the number that counts (seed 004, section 1.4): the
software accuracy is a prediction, the die's output counters are the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from labctl.families.cmna.link import Bridge
from labctl.families.cmna.ratings import DEFAULT_GATE_MS
from labctl.families.cmna.weights import WeightSet

BATCH_PATTERNS = 64
"""Patterns per progress step (the bridge client splits further to fit its payload)."""


@dataclass
class EvaluationResult:
    on_chip_accuracy: float
    software_accuracy: float
    n_samples: int
    labels: np.ndarray
    predictions: np.ndarray
    rates_hz: np.ndarray
    confusion: np.ndarray

    @property
    def per_class_accuracy(self) -> np.ndarray:
        totals = self.confusion.sum(axis=1)
        return np.where(totals > 0, np.diag(self.confusion) / np.maximum(totals, 1), np.nan)

    def as_json(self) -> dict:
        return {
            "on_chip_accuracy": self.on_chip_accuracy,
            "software_accuracy": self.software_accuracy,
            "n_samples": self.n_samples,
            "per_class_accuracy": [None if np.isnan(v) else float(v) for v in self.per_class_accuracy],
            "confusion": self.confusion.tolist(),
        }


def evaluate_on_chip(bridge: Bridge, weights: WeightSet, features: np.ndarray, labels: np.ndarray, *,
                     n_classes: int | None = None, gate_ms: int = DEFAULT_GATE_MS,
                     progress: Callable[[str, int, int], None] | None = None) -> EvaluationResult:
    """Stream the samples through RUN_BATCH and compare the most active class output with the labels."""
    patterns = weights.encoding.encode(features)
    rates = np.zeros((len(patterns), bridge.chip.n_outputs))
    for start in range(0, len(patterns), BATCH_PATTERNS):
        batch = bridge.run_batch(patterns[start:start + BATCH_PATTERNS], gate_ms)
        rates[start:start + len(batch.rates_hz)] = batch.rates_hz
        if progress:
            progress("on-chip evaluation", min(start + BATCH_PATTERNS, len(patterns)), len(patterns))
    predictions = weights.encoding.classify(rates)
    labels = np.asarray(labels, dtype=np.int64)
    k = n_classes or len(weights.encoding.class_outputs)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    return EvaluationResult(float(np.mean(predictions == labels)), weights.software_accuracy, len(labels),
                            labels, predictions, rates, confusion)
