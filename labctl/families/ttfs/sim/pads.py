"""The four supply and bias pads of a simulated RC-Spike die, as SMUs see them (contract 1.11, 3.5, 5.1).

Each pad is a :class:`labctl.sim.pads.Pad`: a monotonic static I(V) curve
(current from the SMU into the pad) on which an SMU emulator settles. The
curves (V volts, I amperes):

- VDD: below 0 V the substrate diode; unpowered (below 1.6 V) the supply
  network and power-on bleeder, ``V / 500 kohm`` (3 nA at a wiring probe's
  1.5 mV, inside 5.1's 1 to 10 nA); powered, the die's idle current
  (part dependent, 1.11, scaled by V / 1.80 V) plus 250 uA while the probe
  buffer is on, plus the average restoring and digital charge of the
  patterns running (:mod:`.charge`) over their period, plus the clamp's
  share of a held row.
- VTH: its 10 Mohm bleeder.
- EREV_EXC: its bleeder less the excitatory charge the branches sink, per
  period, and less a held row's excitatory DC current; EREV_INH: its
  bleeder plus the inhibitory charge and DC current it sources.

A pattern batch publishes an :class:`Activity` (its span on the bench clock and
its average currents); a reading whose start falls inside the span sees them,
as an SMU integrating across a running batch would (3.2: the decoupling
carries the microsecond pulses; the SMU sees their average).

:class:`DiePads` keeps the die's pad voltages equal to what the SMUs hold:
every configuration step of a channel calls ``pad.changed()``, and the new
operating points go to :meth:`SimulatedTtfsDie.set_pads`, so power sequencing
sets STATUS bits and an overstress damages the die. An output that is off
leaves its pad to its bleeder (0 V).
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np

from labctl.families.ttfs.sim.charge import PatternCharges
from labctl.sim.pads import Pad

BLEEDER_OHM = 10e6  # 1.2, 1.11
UNPOWERED_VDD_OHM = 500e3
POWER_ON_V = 1.6  # 1.9
NOMINAL_VDD_V = 1.80
PROBE_BUFFER_A = 250e-6  # 1.10, 1.11
IDLE_VDD_A = {"RCS-S": 0.5e-3, "RCS-L": 0.7e-3}  # 1.11 (T)
IDLE_SPREAD = 0.05
"""Relative die-to-die spread of the idle current (the simulator's choice; at most 2 mA, G)."""
VDD_NOISE_FRAC = 2.2e-5
"""One VDD reading's relative noise at NPLC 1: 3.5 nA at NPLC 10 on 0.5 mA, i.e. about +-5 nA per pair (3.5)."""
BIAS_NOISE_FRAC = 1e-3
SUBSTRATE_IS_A = 1e-12
THERMAL_V = 0.02585
PAD_NAMES = ("VDD", "VTH", "EREV_EXC", "EREV_INH")
PAD_FIELD = {"VDD": "vdd", "VTH": "vth", "EREV_EXC": "e_exc", "EREV_INH": "e_inh"}
"""Pad name -> field of the die's operating point (:class:`.parts.OperatingPoint`)."""


class Activity:
    """A running pattern batch: its span on the bench clock and the average currents it adds (A).

    The charges are computed when a reading first looks inside the span (most
    batches, characterisation's, are never read by an SMU).
    """

    def __init__(self, start_s: float, end_s: float, period_s: float,
                 charges: Callable[[], PatternCharges] | None = None) -> None:
        self.start_s, self.end_s, self.period_s = start_s, end_s, period_s
        self._charges = charges

    @functools.cached_property
    def currents_a(self) -> tuple[float, float, float]:
        """(VDD, sunk by EREV_EXC, sourced by EREV_INH): each pattern's charge over its period, averaged."""
        if self._charges is None:
            return 0.0, 0.0, 0.0
        q = self._charges()
        return (float(q.q_vdd.mean()) / self.period_s, float(q.q_exc.mean()) / self.period_s,
                float(q.q_inh.mean()) / self.period_s)


IDLE = Activity(0.0, 0.0, 1.0)


NO_HELD_ROW = (0.0, 0.0, 0.0)


class DieSide:
    """What the pads read from the die: the clock, whether it is powered, the probe, the running batch, and
    the DC currents of a held row (VDD, sunk by EREV_EXC, sourced by EREV_INH; :data:`NO_HELD_ROW` if none)."""

    def __init__(self, clock: Callable[[], float], powered: Callable[[], bool], probe_on: Callable[[], bool],
                 held_a: Callable[[], tuple[float, float, float]] = lambda: NO_HELD_ROW) -> None:
        self.clock = clock
        self.powered = powered
        self.probe_on = probe_on
        self.held_a = held_a
        self.activity = IDLE

    def running(self) -> Activity:
        """The batch running now, else :data:`IDLE`."""
        act, now = self.activity, self.clock()
        return act if act.start_s <= now < act.end_s else IDLE


class TtfsPad(Pad):
    def __init__(self, side: DieSide, noise_frac: float) -> None:
        super().__init__()
        self.side = side
        self.noise_frac = noise_frac


class VddPad(TtfsPad):
    name = "VDD"

    def __init__(self, side: DieSide, idle_a: float) -> None:
        super().__init__(side, VDD_NOISE_FRAC)
        self.idle_a = idle_a

    def current_into(self, voltage_v: float) -> float:
        if voltage_v < 0.0:
            return -SUBSTRATE_IS_A * (math.exp(min(-voltage_v / THERMAL_V, 700.0)) - 1.0)
        if voltage_v < POWER_ON_V:
            return voltage_v / UNPOWERED_VDD_OHM
        extra = PROBE_BUFFER_A if self.side.probe_on() else 0.0
        return (self.idle_a * voltage_v / NOMINAL_VDD_V + extra + self.side.running().currents_a[0]
                + self.side.held_a()[0])


class BiasPad(TtfsPad):
    """VTH, EREV_EXC or EREV_INH: the 10 Mohm bleeder plus the rail's share of the running batch."""

    def __init__(self, side: DieSide, name: str) -> None:
        super().__init__(side, BIAS_NOISE_FRAC)
        self.name = name

    def current_into(self, voltage_v: float) -> float:
        if not self.side.powered():
            return voltage_v / BLEEDER_OHM
        _, sunk, sourced = np.add(self.side.running().currents_a, self.side.held_a())
        synaptic = {"EREV_EXC": -sunk, "EREV_INH": sourced}.get(self.name, 0.0)
        return voltage_v / BLEEDER_OHM + synaptic


def idle_current_a(part: str, seed: int) -> float:
    """The die's idle VDD current at 1.80 V: the part's typical value with a die-to-die spread."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    return IDLE_VDD_A[part] * (1.0 + IDLE_SPREAD * float(np.clip(rng.standard_normal(), -3.0, 3.0)))


class DiePads:
    """The four pads of one die, and the rule that keeps the die's pad voltages equal to the SMUs' outputs."""

    def __init__(self, die, side: DieSide) -> None:
        self.die = die
        self.side = side
        self.pads: dict[str, TtfsPad] = {"VDD": VddPad(side, idle_current_a(die.chip.part, die.truth.seed))}
        for name in PAD_NAMES[1:]:
            self.pads[name] = BiasPad(side, name)
        for pad in self.pads.values():
            pad.on_change(self.update)

    def update(self) -> None:
        """Operating point of every pad (an open output: 0 V through its bleeder) into ``die.set_pads``."""
        volts = {}
        for name, pad in self.pads.items():
            point = pad.operating_point()
            volts[PAD_FIELD[name]] = point.voltage_v if point.voltage_v is not None else 0.0
        if any(getattr(self.die.pads, field) != value for field, value in volts.items()):
            self.die.set_pads(**volts)

    def __getitem__(self, name: str) -> TtfsPad:
        return self.pads[name]
