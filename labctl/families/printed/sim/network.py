"""A printed network (contract 2.5, 3.3): a print job through a simulated run and sample.

The printer prints every component of the job with the run's sheet
resistances and material and the sample's variation (1.6), adds the frame
components (2.2: a bleed on every used D pad, the ID ladder of the job's
``id_code``) and puts every cell on rail group 1. The whole network is one
circuit (:class:`~.pad_circuit.PadCircuit`): the crossbar loads the cell
outputs that drive its rows, NEG inputs load their drivers, the shunts and
bleeds load the input pads (1.3: this loading is the process's behaviour, not
corrected). It is solved per DAC state when the host reads, and cached, so a
test set of hundreds of patterns solves in seconds.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from labctl.families.printed.print_job import PrintJob
from labctl.families.printed.sim.cells import HEALTHY, CellPorts
from labctl.families.printed.sim.circuit import Netlist
from labctl.families.printed.sim.nonideal import draw_quirks
from labctl.families.printed.sim.pad_circuit import CircuitPads, PadCircuit
from labctl.families.printed.sim.printing import Printer
from labctl.families.printed.sim.process import ProcessRun
from labctl.families.printed.sim.sample import PrintedCell, PrintedSample
from labctl.families.printed.sim.ts_layout import BLEED_L_UM, BLEED_W_UM, Structure, id_ladder
from labctl.families.printed.sim.ts_sample import chain_circuit

NETWORK_GROUP = 1
DRIVEN_ROLES = ("input", "bias")
SENSED_ROLES = ("output", "probe", "probe-hiz")


def _print_cells(job: PrintJob, printer: Printer) -> dict[str, PrintedCell]:
    cells = {}
    for cell in job.cells:
        resistors = {name: (g.layer, g.w_um, g.l_um) for name, g in cell.resistors.items()}
        egts = {name: (g.w_um, g.l_um) for name, g in cell.egts.items()}
        parts = (printer.act if cell.type == "ACT" else printer.neg)(cell.id, resistors, egts)
        shifts = (HEALTHY, HEALTHY) if cell.type == "ACT" else (HEALTHY,)
        ports = CellPorts(cell.id, cell.net_in, cell.net_out, "VDD", "VSS")
        cells[cell.id] = PrintedCell(cell.id, parts, ports, NETWORK_GROUP, shifts)
    return cells


def _gates_of_pads(job: PrintJob, cells: dict[str, PrintedCell]) -> dict[str, list[str]]:
    """Cells whose EGT gates a driven pad reaches: NEGs on its net, ACTs of the columns its resistors feed."""
    gates = {}
    for pad in job.pads:
        if pad.role in DRIVEN_ROLES:
            columns = {r.b for r in job.resistors if r.a == pad.net}
            gates[pad.pad] = [c.id for c in cells.values() if c.ports.inp == pad.net or c.ports.inp in columns]
    return gates


def _network_circuit(job: PrintJob, printer: Printer, cells: dict[str, PrintedCell]) -> PadCircuit:
    crossbar = [(r.a, r.b, printer.resistor(r.id, r.geometry.layer, r.geometry.w_um, r.geometry.l_um), r.id)
                for r in job.resistors]
    driven = {p.pad: p.net for p in job.pads if p.role in DRIVEN_ROLES}
    bleeds = {pad: printer.resistor(f"bleed.{pad}", "RH", BLEED_W_UM, BLEED_L_UM) for pad in driven}

    def build() -> Netlist:
        net = Netlist()
        for pad, r_ohm in bleeds.items():
            net.resistor(driven[pad], "GND", r_ohm, f"bleed:{pad}")
        for a, b, r_ohm, name in crossbar:
            net.resistor(a, b, r_ohm, name)
        for cell in cells.values():
            net.extend(cell.netlist(printer.run))
        return net

    sensed = {p.pad: p.net for p in job.pads if p.role in SENSED_ROLES}
    pads = CircuitPads(driven, sensed, {"VDD01": "VDD", "VSS01": "VSS"})
    return PadCircuit(job.job, build, pads, printer.run.material)


def build_network_sample(job: PrintJob, run: ProcessRun, eps: float, seed: int,
                         open_pads: Iterable[str] = ()) -> PrintedSample:
    """Sample ``seed`` of ``job`` printed in ``run`` with variation ``eps``."""
    rng = np.random.default_rng([seed, 0x4E4554, job.id_code])
    printer = Printer(run, eps, rng)
    cells = _print_cells(job, printer)
    circuits = [_network_circuit(job, printer, cells),
                chain_circuit(Structure("ID", "ID", {"DRIVE": "D24", "TAPS": ["S45", "S46"]},
                                        chain=id_ladder(job.id_code)), printer)]
    outputs = {c.ports.out: c for c in cells.values()}
    quirks = {p.pad: draw_quirks(outputs[p.net].id, NETWORK_GROUP, None, rng)
              for p in job.pads if p.role in ("output", "probe") and p.net in outputs}
    return PrintedSample(run, eps, circuits, cells, quirks, _gates_of_pads(job, cells), seed, open_pads,
                         printer.printed)
