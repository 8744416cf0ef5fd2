"""A printed PNC-TS rev A sample (contract 2.2, 2.3): the layout of :mod:`.ts_layout` through a run and a sample.

Circuits, each galvanically separate (:class:`~.pad_circuit.PadCircuit`):

- the D01 bundle: A01 to A18 share their input pad, so one circuit holds the
  18 ACTs, D01's bleed and its shunt; each ACT has its own rail group, and a
  group whose relays are open floats (4.4), its gate leakage still loading D01
  (contract 8.1: 25 nA of bleed and 18 gate leakages at 0.25 V);
- N01 to N17, each with its own input pad, bleed and rail group;
- the resistor structures H1, H2, L (Kelvin S42 on the drive node, a small
  GND return after the last resistor), R22, R23 and the ID ladder of code 1.

Node names are pad names, so a sense pad reads the node it names.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from labctl.families.printed.sim.cells import CellPorts, HEALTHY
from labctl.families.printed.sim.circuit import Netlist
from labctl.families.printed.sim.nonideal import draw_quirks
from labctl.families.printed.sim.pad_circuit import CircuitPads, PadCircuit
from labctl.families.printed.sim.printing import Printer
from labctl.families.printed.sim.process import ProcessRun
from labctl.families.printed.sim.sample import PrintedCell, PrintedSample
from labctl.families.printed.sim.ts_layout import BLEED_L_UM, BLEED_W_UM, Structure, bleed_pads, cell_structures, \
    resistor_structures

L_GND_RETURN_OHM = 0.3
"""The L chain's last resistor includes the GND return (2.3: < 0.5 ohm, T)."""


def _drawn(structure: Structure) -> tuple[dict, dict]:
    resistors = {name: (r.layer, r.w_um, r.l_um) for name, r in structure.resistors.items()}
    return resistors, dict(structure.egts)


def _print_cells(printer: Printer) -> dict[str, PrintedCell]:
    cells = {}
    for s in cell_structures():
        print_cell = printer.act if s.kind == "ACT" else printer.neg
        parts = print_cell(s.id, *_drawn(s))
        ports = CellPorts(s.id, s.pads["IN"], s.pads["OUT"], s.pads["VDD"], s.pads["VSS"])
        group = int(s.pads["VDD"][3:])
        cells[s.id] = PrintedCell(s.id, parts, ports, group, (HEALTHY, HEALTHY) if s.kind == "ACT" else (HEALTHY,))
    return cells


def _cell_circuit(name: str, members: list[PrintedCell], bleeds: dict[str, float], run: ProcessRun) -> PadCircuit:
    """Cells sharing one input pad, that pad's bleed and its shunt."""
    def build() -> Netlist:
        net = Netlist()
        for pad, r_ohm in bleeds.items():
            net.resistor(pad, "GND", r_ohm, f"bleed:{pad}")
        for cell in members:
            net.extend(cell.netlist(run))
        return net

    pads = CircuitPads(drive={p: p for p in bleeds}, sense={c.ports.out: c.ports.out for c in members},
                       rails={p: p for c in members for p in (c.ports.vdd, c.ports.vss)})
    return PadCircuit(name, build, pads, run.material)


def chain_circuit(structure: Structure, printer: Printer) -> PadCircuit:
    """A resistor chain, drive end first, bottom at GND (2.3); TAPS[i] lies after resistor i."""
    drive = structure.pads["DRIVE"]
    taps = list(structure.pads.get("TAPS", []))
    values = [printer.resistor(f"{structure.id}.R{k + 1}", r.layer, r.w_um, r.l_um)
              for k, r in enumerate(structure.chain)]
    nodes = [drive, *taps, "GND"]
    if structure.id == "L":
        values[-1] += L_GND_RETURN_OHM

    def build() -> Netlist:
        net = Netlist()
        for k, r_ohm in enumerate(values):
            net.resistor(nodes[k], nodes[k + 1], r_ohm, f"{structure.id}.R{k + 1}")
        return net

    sense = {tap: tap for tap in taps}
    if "KELVIN" in structure.pads:
        sense[structure.pads["KELVIN"]] = drive
    return PadCircuit(structure.id, build, CircuitPads({drive: drive}, sense, {}), printer.run.material)


def build_ts_sample(run: ProcessRun, eps: float, seed: int, open_pads: Iterable[str] = ()) -> PrintedSample:
    """Sample ``seed`` of PNC-TS rev A printed in ``run`` with variation ``eps`` (contract 1.6, 2.3)."""
    rng = np.random.default_rng([seed, 0x5453])
    printer = Printer(run, eps, rng)
    cells = _print_cells(printer)
    bleeds = {pad: printer.resistor(f"bleed.{pad}", "RH", BLEED_W_UM, BLEED_L_UM) for pad in bleed_pads()}
    acts = [c for c in cells.values() if c.kind == "ACT"]
    circuits = [_cell_circuit("D01", acts, {"D01": bleeds["D01"]}, run)]
    circuits += [_cell_circuit(c.id, [c], {c.ports.inp: bleeds[c.ports.inp]}, run)
                 for c in cells.values() if c.kind == "NEG"]
    circuits += [chain_circuit(s, printer) for s in resistor_structures()]
    quirks = {c.ports.out: draw_quirks(c.id, c.group, c.ports.inp, rng) for c in cells.values()}
    gates = {pad: [c.id for c in cells.values() if c.ports.inp == pad] for pad in bleed_pads()}
    return PrintedSample(run, eps, circuits, cells, quirks, gates, seed, open_pads, printer.printed)
