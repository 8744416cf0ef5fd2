"""DC transfer of one isolated cell between ideal rails: the ground truth tests and truth files use.

The bench never calls this (it solves whole circuits with pads, shunts and
loads); it is the cell's own curve, contract 1.4/1.5's "(T) transfer",
measured on the simulator's physics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labctl.families.printed.sim.cells import ActComponents, CellPorts, NegComponents, act_netlist, neg_netlist
from labctl.families.printed.sim.circuit import CompiledCircuit
from labctl.families.printed.sim.egt import EgtMaterial

VDD_V, VSS_V = 2.0, -2.0


@dataclass(frozen=True)
class CellCurve:
    """Output (V) and terminal currents (A, positive into the cell) over the input sweep."""

    v_in: NDArray[np.float64]
    v_out: NDArray[np.float64]
    i_vdd: NDArray[np.float64]
    i_vss: NDArray[np.float64]
    i_in: NDArray[np.float64]
    i_gnd: NDArray[np.float64]
    """Current into the cell from its GND terminal (closes KCL: the four sum to zero)."""


def cell_curve(parts: ActComponents | NegComponents, material: EgtMaterial, v_in: ArrayLike,
               load_ohm: float | None = None) -> CellCurve:
    """Solve the cell at every input voltage with VDD = +2 V, VSS = -2 V (optionally a load to GND)."""
    ports = CellPorts("X", "IN", "OUT")
    build = act_netlist if isinstance(parts, ActComponents) else neg_netlist
    net = build(parts, ports, material.mu_c, material.v_t)
    if load_ohm is not None:
        net.resistor("OUT", "GND", load_ohm, "load")
    circuit = CompiledCircuit(net, ("VDD", "VSS", "IN"), material)
    vin = np.asarray(v_in, dtype=float)
    sol = circuit.solve(np.stack([np.full_like(vin, VDD_V), np.full_like(vin, VSS_V), vin], axis=1))
    residual = circuit.residual(sol.voltages)
    names = circuit.names
    i_vdd, i_vss, i_in = (residual[:, names.index(node)] for node in ("VDD", "VSS", "IN"))
    i_gnd = residual[:, names.index("GND")]
    if load_ohm is not None:
        i_gnd = i_gnd + sol.v("OUT") / load_ohm  # the load is not the cell's
    return CellCurve(vin, sol.v("OUT"), i_vdd, i_vss, i_in, i_gnd)
