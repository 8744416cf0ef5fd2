"""The measured description of one die: what characterisation hands to training.

This is the only thing training knows about a die. It is filled from
measurements through the bench contract (``labctl.calibration``) or, for the
naive baseline, with nominal values. Conventions follow Binas et al. (seed 004,
section 3.3): within each layer ``a_plus`` has mean 1; ``a_minus`` shares that
normalisation, so ``a_minus / a_plus`` is the measured ratio; ``scale`` is the
factor back to absolute gain (NaN where the measurement cannot tell).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labctl.families.cmna.chip import ChipDescription

NOMINAL_W_LSB = 1.0 / 12.0
"""Nominal unit synapse weight (mirror W/L 0.5 against the soma's 6), contract section 1."""


@dataclass
class LayerGains:
    """Per-neuron output gains of one layer, normalised to mean(a_plus) = 1."""

    a_plus: np.ndarray
    a_plus_std: np.ndarray
    a_minus: np.ndarray
    a_minus_std: np.ndarray
    scale: float = float("nan")
    compression_onset_a: np.ndarray | None = None
    """Soma input (A) where each soma starts to compress, NaN where not measured; None: unknown."""
    compression_onset_a_std: np.ndarray | None = None
    max_input_a: np.ndarray | None = None
    """Largest soma input (A) characterisation applied to each soma (an estimate); None: unknown."""

    @classmethod
    def nominal(cls, size: int, has_negative: bool) -> "LayerGains":
        ones = np.ones(size)
        minus = ones.copy() if has_negative else np.full(size, np.nan)
        return cls(ones, np.zeros(size), minus, np.where(has_negative, 0.0, np.nan) * ones, 1.0)


@dataclass
class DieParameters:
    """Everything characterisation measured that the model of the die needs."""

    chip: ChipDescription
    layers: list[LayerGains]
    bias_gain: np.ndarray
    bias_offset_a: np.ndarray
    c2f_gain_hz_per_a: np.ndarray
    c2f_dark_hz: np.ndarray
    synapse_spread: float = float("nan")
    """Relative 1-sigma spread of synapse mirror gains (not separable per neuron); NaN if unknown."""
    notes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def nominal(cls, chip: ChipDescription) -> "DieParameters":
        """Nominal gains everywhere: what a lab would assume without characterisation."""
        last = chip.n_layers - 1
        return cls(
            chip=chip,
            layers=[LayerGains.nominal(n, has_negative=(i < last)) for i, n in enumerate(chip.layer_sizes)],
            bias_gain=np.ones(chip.n_inputs),
            bias_offset_a=np.zeros(chip.n_inputs),
            c2f_gain_hz_per_a=np.full(chip.n_outputs, chip.c2f_gain_hz_per_a),
            c2f_dark_hz=np.zeros(chip.n_outputs),
            synapse_spread=float("nan"),
            notes={"source": "nominal"},
        )
