"""RC-Spike parts, nominal constants and the operating point (contract 1.1, 1.2, 1.5, 1.6, 1.8).

Everything here is a nominal (T) or guaranteed (G) number of the contract;
a die's own values are drawn around them by :mod:`.mismatch`.
"""

from __future__ import annotations

from dataclasses import dataclass

BOLTZMANN_OVER_Q = 8.617333262e-5  # V/K

C_MIM_F = 103.3e-15  # 1.5, seed
C_NODE_F = 4.0e-15  # 1.5: comparator input, discharger, probe-mux switch (T)
C_ROW_F = 0.40e-15  # 1.5: per row of the neuron's matrix (T)
C_PROBE_F = 0.5e-15  # 1.10: the probe mux's load on the selected membrane (T)
I_LSB_A = 2.00e-9  # 1.4: current per code step at the verify point (T)
V_REST_V = 1.300  # 1.5 (T)
MAX_MAGNITUDE = 15  # 1.4: codes -15..+15
INPUT_LSB_NS = 10.0  # 1.8: input time DAC
NO_SPIKE_CODE = 255  # 1.3, 1.8: an input/bias time code that never switches its row on
TDC_MISSED = 0xFFFF  # 1.8
T_RESET_NS = 2000.0  # 1.3 (G)
CLAMP_TAU_NS = 4.0  # 1.3: a fired membrane is clamped to V_REST "within 20 ns" (T): 5 time constants


@dataclass(frozen=True)
class Part:
    """A part's geometry (1.1): layer sizes, the input layer first."""

    name: str
    layers: tuple[int, ...]

    @property
    def n_matrices(self) -> int:
        return len(self.layers) - 1

    def matrix_shape(self, m: int) -> tuple[int, int]:
        """Rows (the layer's neurons plus the bias row) x columns of matrix m (1.4)."""
        return self.layers[m] + 1, self.layers[m + 1]

    @property
    def n_sites(self) -> int:
        return sum(r * c for r, c in (self.matrix_shape(m) for m in range(self.n_matrices)))

    @property
    def n_neurons(self) -> int:
        return sum(self.layers[1:])

    def nominal_capacitance(self, layer: int) -> float:
        """``C_MIM + C_0 + c_row (n_(l-1) + 1)`` of a neuron of ``layer`` >= 1 (1.5)."""
        return C_MIM_F + C_NODE_F + C_ROW_F * (self.layers[layer - 1] + 1)


PARTS = {
    "RCS-S": Part("RCS-S", (4, 16, 3)),
    "RCS-L": Part("RCS-L", (784, 256, 128, 10)),
}


@dataclass(frozen=True)
class OperatingPoint:
    """Pad voltages, output window and die temperature (1.2); the default is the ROP."""

    vdd: float = 1.80
    vth: float = 0.80
    e_exc: float = 0.40
    e_inh: float = 1.70
    window_ns: float = 16000.0
    temperature_c: float = 25.0

    @property
    def v_k(self) -> float:
        """The weak-inversion knee ``V_K = kT/q`` (1.6): 25.7 mV at 25 degC."""
        return BOLTZMANN_OVER_Q * (273.15 + self.temperature_c)


ROP = OperatingPoint()
