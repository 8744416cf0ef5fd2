"""A simulated printed sample on the probe card: its circuits, pads, cells, damage and output quirks.

The sample answers what the bench can observe (contract 4.2, 4.3, 6.2): a
shunt's voltage, a sense pad's voltage, a rail pad's current, and (for tests)
its true dissipation. It never talks SCPI; :mod:`.bench` wires it to the
emulated mainframe and SMU through a :class:`BenchView`. Builders
(:mod:`.ts_sample`, :mod:`.network`) decide what is printed; this class is
the same for a test-structure sample and a printed network.

Open needles (6.2, G): a pad in ``open_pads`` is not contacted. An open D pad
passes no shunt current, an open rail needle no current, and an open S pad
floats (:meth:`sense_volts` returns None; the bench applies the DMM's
floating-input rule). Bare pads (nothing printed on them) behave alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from labctl.families.printed.sim.cells import (HEALTHY, ActComponents, CellPorts, EgtShift, NegComponents,
                                               act_netlist, neg_netlist)
from labctl.families.printed.sim.circuit import Netlist
from labctl.families.printed.sim.nonideal import OutputQuirks
from labctl.families.printed.sim.overstress import Overstress
from labctl.families.printed.sim.pad_circuit import CircuitState, PadCircuit, Solved
from labctl.families.printed.sim.process import ProcessRun

GATE_BREAKDOWN = EgtShift(dv_t=0.30, leak_s=1e-6)
"""An EGT whose gate saw more than 2 V: threshold shift > 0.1 V, gate leakage to uA (contract 4.4)."""
ELECTROLYTE_BREAKDOWN = EgtShift(dv_t=0.60, leak_s=2e-6)
"""Every EGT of a rail group driven out of its rail ratings (4.4: the sample is scrap)."""
FULL_RAIL_V = 1.9
"""A group counts as powered (for drift and hysteresis) while both rails are beyond this."""


class BenchView(Protocol):
    """What the sample reads from the bench: DAC levels, rail source levels, closed rail groups, time."""

    def dac_v(self, pad: str) -> float | None: ...

    def rail_v(self, kind: str) -> float | None: ...

    def rail_groups(self, kind: str) -> set[int]: ...

    def now(self) -> float: ...


@dataclass
class PrintedCell:
    """One ACT or NEG as printed: components, terminals, rail group, damage state (one shift per EGT)."""

    id: str
    parts: ActComponents | NegComponents
    ports: CellPorts
    group: int
    shifts: tuple[EgtShift, ...] = field(default=(HEALTHY, HEALTHY))

    @property
    def kind(self) -> str:
        return "ACT" if isinstance(self.parts, ActComponents) else "NEG"

    def netlist(self, run: ProcessRun) -> Netlist:
        if self.kind == "ACT":
            return act_netlist(self.parts, self.ports, run.material.mu_c, run.material.v_t, self.shifts[:2])
        return neg_netlist(self.parts, self.ports, run.material.mu_c, run.material.v_t, self.shifts[:1])


def rail_pad(kind: str, group: int) -> str:
    return f"{kind}{group:02d}"


class PrintedSample:
    """Circuits joined to pads; cells by id; which cells a D pad's gate overstress reaches."""

    def __init__(self, run: ProcessRun, eps: float, circuits: Iterable[PadCircuit], cells: dict[str, PrintedCell],
                 quirks: dict[str, OutputQuirks], gates_of_pad: dict[str, list[str]], seed: int,
                 open_pads: Iterable[str] = (), printed: dict[str, float] | None = None) -> None:
        self.run, self.eps, self.cells, self.quirks = run, eps, cells, quirks
        self.printed = printed or {}
        """Every printed value by component name (the truth file's)."""
        self.circuits = list(circuits)
        self.gates_of_pad = gates_of_pad
        self.open_pads = set(open_pads)
        self.damage_log: list[str] = []
        """What broke and why (tests read it; no instrument ever reports it, 6.5)."""
        self._rng = np.random.default_rng([seed, 0x4E4F4953])
        self._drive = {pad: c for c in self.circuits for pad in c.pads.drive}
        self._sense = {pad: c for c in self.circuits for pad in c.pads.sense}
        self._direction: dict[str, float] = {}
        self._last_dac: dict[str, float] = {}
        self._powered_since: dict[int, float] = {}

    # -- bench state -> circuit state -------------------------------------------------------------

    def _rail_level(self, pad: str, view: BenchView, override: tuple[str, float] | None) -> float | None:
        kind, group = pad[:3], int(pad[3:])
        if pad in self.open_pads or group not in view.rail_groups(kind):
            return None
        if override is not None and override[0] == kind:
            return override[1]
        return view.rail_v(kind)

    def state(self, circuit: PadCircuit, view: BenchView, loaded: str | None = None,
              override: tuple[str, float] | None = None) -> CircuitState:
        """The circuit's state on this bench; ``override`` puts one rail kind at a trial voltage (SMU solve)."""
        dac = tuple(None if pad in self.open_pads else view.dac_v(pad) for pad in circuit.pads.drive)
        rails = tuple(self._rail_level(pad, view, override) for pad in circuit.pads.rails)
        return CircuitState(dac, rails, loaded)

    def solve(self, circuit: PadCircuit, view: BenchView, loaded: str | None = None) -> Solved:
        return circuit.solve(self.state(circuit, view, loaded))

    # -- what the instruments observe ----------------------------------------------------------------

    def shunt_volts(self, pad: str, view: BenchView) -> float:
        """The shunt's voltage, DAC side minus pad side (4.2); 0 for an open or bare pad or a DAC that is off."""
        circuit = self._drive.get(pad)
        if circuit is None or pad in self.open_pads or view.dac_v(pad) is None:
            return 0.0
        return self.solve(circuit, view).shunt_current_a(pad) * 1000.0

    def sense_volts(self, pad: str, view: BenchView, loaded: bool, nplc: float) -> float | None:
        """The pad's voltage (loaded by 10 Mohm if ``loaded``), cell output quirks included; None: floating."""
        circuit = self._sense.get(pad)
        if circuit is None or pad in self.open_pads:
            return None
        value = self.solve(circuit, view, pad if loaded else None).node_v(circuit.pads.sense[pad])
        quirk = self.quirks.get(pad)
        if quirk is not None and quirk.group in self._powered_since:
            direction = self._direction.get(quirk.input_pad or "", 1.0)
            powered_s = view.now() - self._powered_since[quirk.group]
            value += quirk.offset_v(direction, powered_s, nplc, self._rng)
        return value

    def rail_current(self, kind: str, volts: float, view: BenchView) -> float:
        """Current into the closed groups' ``kind`` rail pads with that rail at ``volts`` (the SMU's load)."""
        total = 0.0
        for circuit in self.circuits:
            pads = [p for p in circuit.pads.rails if p.startswith(kind) and p not in self.open_pads
                    and int(p[3:]) in view.rail_groups(kind)]
            if pads:
                solved = circuit.solve(self.state(circuit, view, override=(kind, volts)))
                total += sum(solved.rail_current_a(p) for p in pads)
        return total

    def dissipation_w(self, view: BenchView) -> float:
        """True power dissipated in the sample (contract 1.8), every circuit at the present bench state."""
        return sum(self.solve(circuit, view).dissipation_w() for circuit in self.circuits)

    # -- changes: sweep direction, powered time, damage ------------------------------------------------

    def note_change(self, view: BenchView, groups: Iterable[int]) -> None:
        """Track each DAC's direction of travel (hysteresis) and since when each group is powered (drift)."""
        for pad in self._drive:
            level = view.dac_v(pad)
            if level is not None and level != self._last_dac.get(pad, level):
                self._direction[pad] = 1.0 if level > self._last_dac[pad] else -1.0
            if level is not None:
                self._last_dac[pad] = level
        vdd, vss = view.rail_v("VDD"), view.rail_v("VSS")
        full = vdd is not None and vss is not None and vdd > FULL_RAIL_V and vss < -FULL_RAIL_V
        for group in groups:
            powered = full and group in view.rail_groups("VDD") and group in view.rail_groups("VSS")
            if powered:
                self._powered_since.setdefault(group, view.now())
            else:
                self._powered_since.pop(group, None)

    def overstress(self, event: Overstress) -> None:
        """Break what the event reaches (6.5); nothing is reported, the curves just change."""
        if event.pad is not None:
            self._break(self.gates_of_pad.get(event.pad, []), lambda cell: (GATE_BREAKDOWN,) + cell.shifts[1:],
                        event.reason)
        if event.group is not None:
            ids = [c.id for c in self.cells.values() if c.group == event.group]
            self._break(ids, lambda cell: (ELECTROLYTE_BREAKDOWN,) * len(cell.shifts), event.reason)

    def _break(self, ids: list[str], shifted: Callable[[PrintedCell], tuple[EgtShift, ...]], reason: str) -> None:
        changed = False
        for cell_id in ids:
            cell = self.cells[cell_id]
            new = shifted(cell)
            if new != cell.shifts:
                cell.shifts = new
                self.damage_log.append(f"{cell_id}: {reason}")
                changed = True
        if changed:
            for circuit in self.circuits:
                circuit.rebuild()
