"""One galvanically separate circuit of a printed sample, as the bench reaches it through its pads.

A PNC-TS structure, the D01 bundle of ACTs, a resistor chain, the ID ladder
or a whole printed network: each is a netlist (:mod:`.circuit`) joined to the
bench only at pads (contract 2.1, 4.2). A driven pad's DAC sits behind the
card's 1.000 kohm shunt, so every D pad gets a shunt element from its DAC
node ``<pad>.dac`` to the pad's net; a DAC that is off (or a needle that is
up) leaves that node free, and then no current flows through the shunt
(6.2: an open D pad passes no shunt current). A rail node is held only while
its relay is closed and its SMU output is on (4.1); otherwise it floats with
the cells (4.4: a circuit whose rail relays are open floats).

Solutions are cached per :class:`CircuitState` (DAC levels on the 16-bit
grid, rail levels, which sense pad the DMM loads with 10 Mohm), so a reading
of several channels at one bench state solves once, and the last solution of
each wiring warm-starts the next Newton solve (one sweep point from the
previous one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from labctl.families.printed.sim.circuit import CompiledCircuit, Netlist, Solution
from labctl.families.printed.sim.egt import EgtMaterial

SHUNT_OHM = 1000.0
"""The probe card's shunt per D pad (contract 4.2)."""
DMM_LOAD_OHM = 10e6
"""A slot-7 reading at 10 Mohm input resistance loads the pad it reads (5.2, 6.2)."""
CACHE_LIMIT = 50_000


@dataclass(frozen=True)
class CircuitPads:
    """Which pads reach which nets of the circuit: D pads (driven), S pads (sensed), rail pads."""

    drive: dict[str, str]
    sense: dict[str, str]
    rails: dict[str, str]


@dataclass(frozen=True)
class CircuitState:
    """What the bench imposes on one circuit: per drive pad its DAC level (None: not driven), per rail pad
    its voltage (None: floating), and the sense pad the DMM reads at 10 Mohm (None: none)."""

    dac_v: tuple[float | None, ...]
    rail_v: tuple[float | None, ...]
    loaded: str | None = None


@dataclass(frozen=True)
class Solved:
    """One operating point of a circuit, with the quantities the bench can measure."""

    circuit: "PadCircuit"
    compiled: CompiledCircuit
    solution: Solution
    loaded: str | None = None

    def node_v(self, node: str) -> float:
        return float(self.solution.v(node)[0])

    def shunt_current_a(self, pad: str) -> float:
        """Current from the DAC into the pad through its shunt (4.2: positive into the pad)."""
        node = self.circuit.pads.drive[pad]
        return (self.node_v(f"{pad}.dac") - self.node_v(node)) / SHUNT_OHM

    def rail_current_a(self, rail_pad: str) -> float:
        """Current the rail source delivers into the circuit at ``rail_pad`` (0 while it floats)."""
        node = self.circuit.pads.rails[rail_pad]
        if node not in self.compiled.fixed:
            return 0.0
        return float(self.compiled.source_current(self.solution, node)[0])

    def dissipation_w(self) -> float:
        """Power dissipated in the sample: every element but the card's shunts and the DMM's load (1.8)."""
        total = float(self.compiled.element_power(self.solution)[0])
        for pad in self.circuit.pads.drive:
            total -= self.shunt_current_a(pad) ** 2 * SHUNT_OHM
        if self.loaded is not None:
            total -= self.node_v(self.circuit.pads.sense[self.loaded]) ** 2 / DMM_LOAD_OHM
        return total


class PadCircuit:
    """A netlist with its pads; solves (cached) for the bench state of :class:`CircuitState`."""

    def __init__(self, name: str, build: Callable[[], Netlist], pads: CircuitPads, material: EgtMaterial) -> None:
        self.name = name
        self.pads = pads
        self.material = material
        self._build = build
        self.rebuild()

    def rebuild(self) -> None:
        """Re-read the netlist (after damage changed an EGT) and forget every cached solution."""
        net = self._build()
        for pad, node in self.pads.drive.items():
            net.resistor(f"{pad}.dac", node, SHUNT_OHM, f"shunt:{pad}")
        self.netlist = net
        self._compiled: dict[tuple, CompiledCircuit] = {}
        self._guess: dict[tuple, np.ndarray] = {}
        self._solved: dict[CircuitState, Solved] = {}

    def _variant(self, fixed: tuple[str, ...], loaded: str | None) -> CompiledCircuit:
        key = (fixed, loaded)
        if key not in self._compiled:
            net = self.netlist
            if loaded is not None:
                net = Netlist(list(self.netlist.resistors), list(self.netlist.egts))
                net.resistor(self.pads.sense[loaded], "GND", DMM_LOAD_OHM, f"dmm:{loaded}")
            self._compiled[key] = CompiledCircuit(net, fixed, self.material)
        return self._compiled[key]

    def solve(self, state: CircuitState) -> Solved:
        """The operating point for ``state`` (cached; warm-started from the last one of its wiring)."""
        hit = self._solved.get(state)
        if hit is not None:
            return hit
        fixed, values = [], []
        for pad, level in zip(self.pads.drive, state.dac_v):
            if level is not None:
                fixed.append(f"{pad}.dac")
                values.append(level)
        for node, level in zip(self.pads.rails.values(), state.rail_v):
            if level is not None and node not in fixed:
                fixed.append(node)
                values.append(level)
        key = (tuple(fixed), state.loaded)
        compiled = self._variant(*key)
        solution = compiled.solve(np.array([values]), guess=self._guess.get(key))
        self._guess[key] = solution.voltages[:, :compiled.n_free].copy()
        if len(self._solved) > CACHE_LIMIT:
            self._solved.clear()
        solved = Solved(self, compiled, solution, state.loaded)
        self._solved[state] = solved
        return solved
