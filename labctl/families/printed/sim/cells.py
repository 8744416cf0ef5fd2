"""Transistor-level ACT and NEG cells of the simulated PNC-1 process kit, and the crossbar node.

Contract 1.7 leaves the schematics to the process kit; these are the
reference kit's. Each cell is a netlist (:mod:`.circuit`) of its designable
components (contract 1.4, 1.5) plus fixed kit resistors, so the etas the
bench measures come out of EGT physics, never out of a tanh.

Why the kit has fixed resistors besides the designable ones: with n-EGTs
only, resistors that pull up, and rails of +-2 V, an inverter whose
transistor is off carries no current and its output sits at the pull-up
rail. Contract 1.4/1.5 guarantee 10 uA to 1.5 mA on *each* rail and 4.4
keeps outputs within +-1.8 V, for every printable design; with the
designable loads up to 0.5 Mohm (NEG) that is impossible without a path
that always conducts. The kit resistors are that path; they are printed
like any resistor (their R_s is the run's, their eps the sample's).

ACT (ptanh), non-inverting, two inverter stages::

    VDD -R1- A -T1(gate IN)- GND        stage 1: gain, the transition (eta3, eta4)
    VDD -R2- OUT -T2(gate A)- GND       stage 2: output levels (eta1, eta2), low source resistance
    OUT -RK- VSS                        kit: caps the high level below VDD, draws VSS current

NEG, inverting, a three-resistor input divider into one degenerated inverter::

    IN -R3- G,  G -R4- VSS,  G -R5- S        resistive input (about R3 + R4||R5); sets eta3 and the gain
    VDD -RL- OUT -RK- VSS                    kit load pair: the high level and the rail floor
    OUT -R2- D -T(gate G)- S -R1- VSS        pull-down; R1 degenerates, R2 limits the low level
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from labctl.families.printed.sim.circuit import Netlist

ACT_KIT_R_OHM = 100e3
"""ACT output-to-VSS kit resistor (RH, W 100 um, L 200 um at nominal R_s)."""
NEG_KIT_LOAD_R_OHM = 60e3
"""NEG load from VDD (RH, W 250 um, L 200 um)."""
NEG_KIT_PULLDOWN_R_OHM = 240e3
"""NEG output-to-VSS kit resistor (RH, W 50 um, L 160 um)."""
GATE_LEAK_S = 2.5e-10
"""Gate-to-channel leakage conductance of a healthy EGT: 0.4 nA at 1.5 V (contract 1.9: < 1 nA)."""


@dataclass(frozen=True)
class ActComponents:
    """Printed values of one ACT: resistances in ohm, EGT dimensions in um (contract 1.4)."""

    r1_ohm: float
    r2_ohm: float
    w1_um: float
    l1_um: float
    w2_um: float
    l2_um: float
    rk_ohm: float = ACT_KIT_R_OHM


@dataclass(frozen=True)
class NegComponents:
    """Printed values of one NEG: resistances in ohm, EGT dimensions in um (contract 1.5)."""

    r1_ohm: float
    r2_ohm: float
    r3_ohm: float
    r4_ohm: float
    r5_ohm: float
    w_um: float
    l_um: float
    rl_ohm: float = NEG_KIT_LOAD_R_OHM
    rk_ohm: float = NEG_KIT_PULLDOWN_R_OHM


@dataclass(frozen=True)
class CellPorts:
    """Which circuit nodes a cell's terminals join, and its name prefix for internal nodes."""

    name: str
    inp: str
    out: str
    vdd: str = "VDD"
    vss: str = "VSS"


@dataclass(frozen=True)
class EgtShift:
    """Per-transistor threshold shift (V) and gate leakage (S): healthy, stressed or damaged."""

    dv_t: float = 0.0
    leak_s: float = GATE_LEAK_S


HEALTHY = EgtShift()


def _egt(net: Netlist, gate: str, drain: str, source: str, beta: float, v_t: float, shift: EgtShift,
         name: str) -> None:
    """One EGT with its gate leakage, split equally to drain and source."""
    net.egt(gate, drain, source, beta, v_t + shift.dv_t, name)
    net.resistor(gate, drain, 2.0 / shift.leak_s, f"{name}.leak_d")
    net.resistor(gate, source, 2.0 / shift.leak_s, f"{name}.leak_s")


def act_netlist(parts: ActComponents, ports: CellPorts, mu_c: float, v_t: float,
                shifts: tuple[EgtShift, EgtShift] = (HEALTHY, HEALTHY)) -> Netlist:
    """The ACT's netlist (module docstring), internal node ``<name>.A``."""
    net, a = Netlist(), f"{ports.name}.A"
    net.resistor(ports.vdd, a, parts.r1_ohm, f"{ports.name}.R1")
    _egt(net, ports.inp, a, "GND", mu_c * parts.w1_um / parts.l1_um, v_t, shifts[0], f"{ports.name}.T1")
    net.resistor(ports.vdd, ports.out, parts.r2_ohm, f"{ports.name}.R2")
    _egt(net, a, ports.out, "GND", mu_c * parts.w2_um / parts.l2_um, v_t, shifts[1], f"{ports.name}.T2")
    net.resistor(ports.out, ports.vss, parts.rk_ohm, f"{ports.name}.RK")
    return net


def neg_netlist(parts: NegComponents, ports: CellPorts, mu_c: float, v_t: float,
                shifts: tuple[EgtShift] = (HEALTHY,)) -> Netlist:
    """The NEG's netlist (module docstring), internal nodes ``<name>.G``, ``.D``, ``.S``."""
    net, p = Netlist(), ports.name
    g, d, s = f"{p}.G", f"{p}.D", f"{p}.S"
    net.resistor(ports.inp, g, parts.r3_ohm, f"{p}.R3")
    net.resistor(g, ports.vss, parts.r4_ohm, f"{p}.R4")
    net.resistor(g, s, parts.r5_ohm, f"{p}.R5")
    net.resistor(ports.vdd, ports.out, parts.rl_ohm, f"{p}.RL")
    net.resistor(ports.out, ports.vss, parts.rk_ohm, f"{p}.RK")
    net.resistor(ports.out, d, parts.r2_ohm, f"{p}.R2")
    _egt(net, g, d, s, mu_c * parts.w_um / parts.l_um, v_t, shifts[0], f"{p}.T")
    net.resistor(s, ports.vss, parts.r1_ohm, f"{p}.R1")
    return net


def crossbar_output(g: ArrayLike, v_in: ArrayLike, load_g: ArrayLike = 0.0,
                    load_v: ArrayLike = 0.0) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Column-node voltage and the current each row delivers into the node.

    ``g`` (S) and ``v_in`` (V) broadcast over their last axis (the rows: inputs,
    negated lines, bias at 1 V, GND at 0 V). KCL at the node,
    ``sum_r g_r (V_r - V_z) = load_g (V_z - load_v)``, gives
    ``V_z = (sum g V + load_g load_v) / (sum g + load_g)``. The ACT input is an
    EGT gate (contract 1.3), so a column feeding ACT has ``load_g = 0`` and
    ``V_z = sum g V / sum g``; the load terms are for gate leakage or probing.
    Returns ``(v_z, i_rows)``; ``sum(i_rows) = load current`` (zero unloaded).
    """
    g_arr = np.asarray(g, dtype=float)
    v_arr = np.asarray(v_in, dtype=float)
    if np.any(g_arr < 0):
        raise ValueError("conductances must be >= 0")
    lg = np.asarray(load_g, dtype=float)
    total = g_arr.sum(axis=-1) + lg
    if np.any(total <= 0):
        raise ValueError("a column node needs at least one conductance")
    v_z = ((g_arr * v_arr).sum(axis=-1) + lg * np.asarray(load_v, dtype=float)) / total
    i_rows = g_arr * (v_arr - v_z[..., None])
    return v_z, i_rows
