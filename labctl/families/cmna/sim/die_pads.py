"""The three analog pads of a simulated CMNA: VDD, EXT_IN, MON (contract sections 1, 3, 4).

Each pad is a static I(V) curve (current from the instrument into the pad),
monotonic so that an SMU emulator finds a unique operating point with
:func:`labctl.sim.pads.solve_operating_point`. The curves depend on the die's
state, which the die publishes as an immutable :class:`PadState` snapshot.

Threading rule: :meth:`current_into` runs in the instrument emulator's thread.
It never takes the die's lock and never asks another pad for its operating
point; it reads the last snapshot (and, for MON, asks the die for the present
copy current, which the die computes lock-free from its own snapshot).

Curves (V in volts, I in amperes, n Vt = 1.5 * 25.85 mV, Is = 1 fA):

- VDD: ``V < 0``: substrate diode ``-1 pA * (exp(-V / 25.85 mV) - 1)``;
  ``0 <= V < 1.0``: the unpowered supply network, ``0.1 uA * tanh(V / 60 mV)``:
  ohmic at a wiring probe's millivolts, where it draws the quiescent current x
  V / 1.2 V as contract section 4 says (2.5 nA at 1.5 mV, while EXT_IN and MON
  carry femtoamperes), saturating at 0.1 uA below power-on (a supply limited
  under the quiescent current holds VDD near 1.0 V); ``V >= 1.0`` (powered):
  ``2 uA + I_branches + V / 1 MOhm``.
- EXT_IN: ESD diodes to the VDD rail ``Is (exp((V - V_VDD) / n Vt) - 1)`` and
  to ground ``-Is (exp(-V / n Vt) - 1)``, always; plus, powered and routed,
  the input soma's diode ``Is (exp(V / n Vt) - 1)``, otherwise the floating
  pad's leakage ``V * 1 pA/V``.
- MON: powered with a neuron selected:
  ``I_copy * (1 + 0.25 (V - 0.9)) + V * 1 pA/V``, else ``V * 1 pA/V``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from labctl.sim.pads import Pad

POWER_ON_V = 1.0
SUPPLY_MIN_V = 1.71
SUPPLY_MAX_V = 1.89
VDD_ABS_MAX_V = 2.00
EXT_IN_ABS_MAX_A = 2e-6
EXT_IN_OVER_VDD_V = 0.3
EXT_IN_OVER_VDD_MIN_A = 1e-9
MON_MIN_V = 0.0
MON_MAX_V = 1.8
MON_TOLERANCE_V = 1e-3
MON_NOMINAL_V = 0.9
MON_VOLTAGE_COEFF_PER_V = 0.25

QUIESCENT_A = 2e-6
SUPPLY_NETWORK_V = 1.2
"""Unpowered, at millivolts, the VDD pad draws the quiescent current times V / 1.2 V (contract section 4)..."""
SUPPLY_NETWORK_MAX_A = 0.1e-6
"""...and at most this below power-on (the network saturates)."""
DIODE_IS_A = 1e-15
DIODE_NVT_V = 1.5 * 0.02585
SUBSTRATE_IS_A = 1e-12
SUBSTRATE_VT_V = 0.02585
LEAK_A_PER_V = 1e-12
_MAX_EXPONENT = 700.0


def _exp(x: float) -> float:
    """exp() that saturates instead of overflowing (SMU bisection probes far-off voltages)."""
    return math.exp(min(x, _MAX_EXPONENT))


def diode_current_a(voltage_v: float) -> float:
    """Current of the EXT_IN soma diode (and of each ESD diode) at forward voltage ``voltage_v``."""
    return DIODE_IS_A * (_exp(voltage_v / DIODE_NVT_V) - 1.0)


@dataclass(frozen=True)
class PadState:
    """What the pads need to know about the die, published by the die after every change."""

    powered: bool = False
    vdd_v: float = 0.0
    ext_in_routed: bool = False


class DieSide(Protocol):
    """The die as its pads see it."""

    pad_state: PadState

    def branch_current_a(self) -> float:
        """Sum of the currents in all soma and synapse branches (0 when unpowered)."""

    def mon_copy_a(self) -> float:
        """Copy current of the selected neuron at 0.9 V (0 when none is selected or unpowered)."""


class DiePad(Pad):
    """A pad that belongs to a die; the reading noise is the die's."""

    def __init__(self, die: DieSide, noise_frac: float) -> None:
        super().__init__()
        self._die = die
        self.noise_frac = noise_frac


class VddPad(DiePad):
    """Supply pad: powered at and above 1.0 V, supply current 2 uA + branch currents; below, the
    supply network (the quiescent current x V / 1.2 V at a wiring probe's millivolts, at most 0.1 uA)."""

    name = "VDD"

    def current_into(self, voltage_v: float) -> float:
        if voltage_v < 0.0:
            return -SUBSTRATE_IS_A * (_exp(-voltage_v / SUBSTRATE_VT_V) - 1.0)
        if voltage_v < POWER_ON_V:
            slope = QUIESCENT_A / SUPPLY_NETWORK_V
            return SUPPLY_NETWORK_MAX_A * math.tanh(voltage_v * slope / SUPPLY_NETWORK_MAX_A)
        return QUIESCENT_A + self._die.branch_current_a() + voltage_v / 1e6


class ExtInPad(DiePad):
    """External input: the routed layer-0 soma's diode, or a floating pad, plus ESD diodes."""

    name = "EXT_IN"

    def current_into(self, voltage_v: float) -> float:
        state = self._die.pad_state
        esd = diode_current_a(voltage_v - state.vdd_v) - diode_current_a(-voltage_v)
        if state.powered and state.ext_in_routed:
            return esd + diode_current_a(voltage_v)
        return esd + voltage_v * LEAK_A_PER_V

    @staticmethod
    def soma_current_a(voltage_v: float, state: PadState) -> float:
        """Share of the pad current that flows into the input soma (0 unless powered and routed)."""
        return diode_current_a(voltage_v) if state.powered and state.ext_in_routed else 0.0


class MonPad(DiePad):
    """Monitor: sinks the copy of the selected neuron's positive-path output current."""

    name = "MON"

    def current_into(self, voltage_v: float) -> float:
        copy_a = self._die.mon_copy_a()
        factor = 1.0 + MON_VOLTAGE_COEFF_PER_V * (voltage_v - MON_NOMINAL_V)
        return copy_a * factor + voltage_v * LEAK_A_PER_V
