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


@dataclass(frozen=True)
class SupplyModel:
    """The die's supply current, fitted to readings of the supply SMU (contract section 1).

    The contract gives the physics, not the coefficients: the supply current is
    a quiescent current plus the currents in all soma and synapse branches. The
    model is ``quiescent + soma * sum(z) + drive * sum(z (a+ + a-)) + synapse *
    sum(|synapse currents|)`` over every soma output ``z`` of the state
    (:mod:`labctl.families.cmna.training.power_model`); characterisation fits the four numbers on
    some states and reports the relative residuals on states it held out.
    """

    quiescent_a: float
    """Supply current with every branch idle (every input at code 0 leaves only offsets and leakage)."""
    soma: float
    """Supply current per A of soma input (the input branch of every soma)."""
    drive: float
    """Supply current per A of a soma's drivers (a+ z and a- z: the gate-voltage branches)."""
    synapse: float
    """Supply current per A flowing in synapses (the output unit synapses into the C2Fs included)."""
    std: tuple[float, float, float, float]
    """1-sigma errors of (quiescent_a, soma, drive, synapse)."""
    vdd_v: float
    """VDD while the supply current was read (power = VDD x current)."""
    held_out_rms: float
    """Relative rms residual of the prediction on the held-out states."""
    held_out_max: float
    """Largest relative residual on the held-out states."""
    n_fitted: int
    n_held_out: int

    @classmethod
    def nominal(cls, vdd_v: float = 1.8) -> "SupplyModel":
        """The contract's words taken literally (2 uA, every branch counted once): the model without a fit."""
        return cls(2e-6, 1.0, 1.0, 1.0, (0.0, 0.0, 0.0, 0.0), vdd_v, float("nan"), float("nan"), 0, 0)


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
    supply: SupplyModel | None = None
    """The fitted supply-current model; None where characterisation did not read the supply."""

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
