"""What labctl believes about one RC-Spike die: the measured parameters of the vendor's model (contract 1.6, 1.7).

Characterisation writes this record (with a standard error beside every
fitted value); the model that training, programming and replay share reads
it. It holds what persists across writes (section 1.7): the ladders, the
column gains, the neurons' capacitance, start level, threshold and delay,
lambda, the reversal potentials, V_K, leakage and coupling. The write
residual eps of a site is known only for the write it was measured with, so
the record carries its distribution (``write_residual_half_width``), not the
values. Nothing here knows the simulator: the numbers come from a bench.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MAGNITUDE_BITS = 4
"""Codes -15..+15: sign and a 4-bit magnitude (1.4)."""
MAX_CODE = (1 << MAGNITUDE_BITS) - 1


@dataclass(frozen=True)
class Measured:
    """A fitted value (scalar or array) and its standard error, of the same shape."""

    value: np.ndarray | float
    se: np.ndarray | float


@dataclass(frozen=True)
class Polarity:
    """One branch polarity's die-wide parameters (excitatory: NMOS on EREV_EXC; inhibitory: PMOS on EREV_INH)."""

    i_lsb_a: Measured
    """The ladder's current per code step at the verify point (2 nA typical)."""
    bit_weights: Measured
    """(4,) the ladder's bit k in steps: 2^k (1 + delta_k)."""
    lam_per_v: Measured
    """Die mean of the channel-length modulation lambda (1/V)."""
    lam_site_sd: float
    """Relative spread of lambda per site (1.6: 5 % typical), as measured."""
    reversal_v: Measured
    """Where the branch current really reverses (E+ or E-), at the reference pad voltage ``pad_v``."""
    pad_v: float
    """The rail pad's voltage during the characterisation (and the reference operating point)."""
    site_lam_per_v: tuple[Measured, ...] | None = None
    """Per matrix (rows x columns): each site's own lambda (1.7: it persists across writes), where
    characterisation measured it; None: only the die mean and spread are known."""

    def magnitude_current(self, magnitude: np.ndarray) -> np.ndarray:
        """The ladder's current for ``|code|`` steps (A): the weights of the bits of the magnitude, times I_LSB."""
        magnitude = np.asarray(magnitude, dtype=np.int64)
        bits = (magnitude[..., None] >> np.arange(MAGNITUDE_BITS)) & 1
        return float(np.asarray(self.i_lsb_a.value)) * (bits * np.asarray(self.bit_weights.value)).sum(axis=-1)


@dataclass(frozen=True)
class NeuronLayer:
    """The neurons of one layer l >= 1 (arrays of length n_l)."""

    capacitance_f: Measured
    start_v: Measured
    """V0_i = V_REST - p_i: the membrane at release."""
    threshold_v: Measured
    """V_th,i = V(VTH) + o_i at the characterisation's VTH (``TtfsDieParameters.vth_pad_v``)."""
    delay_ns: Measured
    """d_i: threshold crossing to the TDC's capture (the TDC offset)."""
    column_gain: Measured
    """g_i: the column's verify gain, the ladders divided out."""
    leak_a: Measured
    """Net parasitic current out of the membrane (A; either sign)."""


@dataclass(frozen=True)
class TtfsDieParameters:
    """One die's measured model parameters at the reference operating point of its characterisation."""

    part: str
    serial: str
    layer_sizes: tuple[int, ...]
    v_rest_v: Measured
    vth_pad_v: float
    """VTH during the characterisation: a neuron's threshold moves with the pad, offset kept."""
    v_k_v: Measured
    kappa_v: Measured
    """The coupling step per row switching on (upwards, away from the threshold)."""
    excitatory: Polarity
    inhibitory: Polarity
    layers: tuple[NeuronLayer, ...]
    """Layers 1..L-1."""
    input_delay_ns: float = 1.0
    """d_in: a code-driven row switches on at 10 ns x code + d_in (1.3)."""
    window_ns: float = 16000.0
    write_residual_half_width: float = 0.025
    """A write lands each site within +-this of its target (1.7: the verify window); drawn anew per write."""
    extras: dict[str, Measured] = field(default_factory=dict)
    """Further fitted figures a characterisation reports (MON chain gain and offset, ...)."""

    @property
    def n_matrices(self) -> int:
        return len(self.layer_sizes) - 1

    def matrix_shape(self, m: int) -> tuple[int, int]:
        """Rows (layer m's neurons and the bias row) x columns (layer m+1's neurons)."""
        return self.layer_sizes[m] + 1, self.layer_sizes[m + 1]

    def verify_current(self, m: int, codes: np.ndarray) -> np.ndarray:
        """Each site's programmed current at the verify point (A), signed (+ excitatory), before the write residual:
        ``|c| I_LSB,pol (1 + delta_pol(|c|)) g_i`` of contract 1.7."""
        codes = np.asarray(codes, dtype=np.int64)
        gain = np.asarray(self.layers[m].column_gain.value)
        exc = self.excitatory.magnitude_current(np.clip(codes, 0, MAX_CODE))
        inh = self.inhibitory.magnitude_current(np.clip(-codes, 0, MAX_CODE))
        return (exc - inh) * gain
