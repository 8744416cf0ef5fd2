"""The bench operations of a characterisation: one resistor structure, one circuit structure (7, 8.1).

Each returns its raw rows (:mod:`.tables`) and hands them to ``record`` as
soon as they are read, so an interrupted run keeps every reading. A circuit
structure is powered on its own rail group for its sweep only
(:meth:`PrintedBench.powered`, 6.3); its output must move by at least 0.2 V
between the ends of the forward sweep or it does not answer (6.2).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from labctl.drivers.keysight_34980a import sense_channel, shunt_channel
from labctl.families.printed.bench import FAST_NPLC, SLOW_NPLC, PrintedBench, RailFault
from labctl.families.printed.characterisation.plan import SweepPlan, refinement_levels
from labctl.families.printed.characterisation.tables import MAX_NODES, POINT_DTYPE, PORT_DTYPE, RAIL_DTYPE, RESISTOR_DTYPE
from labctl.families.printed.layout import CellStructure, ResistorStructure, pad_number

REFINE_DIRECTION = 2
"""``direction`` of the transition-refinement points: upward like the forward sweep (+1), told apart."""
OUTPUT_ANSWERS_V = 0.2
"""A test structure's output answers if it moves by at least this between the ends of its sweep (6.2)."""

Record = Callable[[str, np.ndarray], None]
"""``record(table, rows)``: append rows to a raw table as they are measured."""


def measure_resistor_structure(bench: PrintedBench, chain: ResistorStructure, plan: SweepPlan,
                               record: Record) -> np.ndarray:
    """Drive ``chain`` at each level of the plan; shunt at NPLC 10, Kelvin and taps at NPLC 1, one scan (7)."""
    nodes = ([chain.kelvin_pad] if chain.kelvin_pad else []) + list(chain.taps)
    channels = [shunt_channel(pad_number(chain.drive_pad, "D"))] + [sense_channel(pad_number(p, "S")) for p in nodes]
    nplcs = [SLOW_NPLC] + [FAST_NPLC] * len(nodes)
    rows = np.zeros(len(plan.resistor_drive_v), RESISTOR_DTYPE)
    try:
        for i, level in enumerate(plan.resistor_drive_v):
            bench.set_pad(chain.drive_pad, level)
            readings = bench.read_volts(channels, nplcs, settle=True)
            v_nodes = np.full(MAX_NODES, np.nan)
            offset = 0 if chain.kelvin_pad else 1
            v_nodes[offset:offset + len(nodes)] = readings[1:]
            rows[i] = (time.time(), chain.id, level, bench.pad_voltage(chain.drive_pad, readings[0]),
                       bench.shunt_current(chain.drive_pad, readings[0]), v_nodes)
            record("resistors", rows[i:i + 1])
    finally:
        bench.set_pad(chain.drive_pad, 0.0)
    return rows


@dataclass(frozen=True)
class CellSweep:
    """One circuit structure's sweep: its rows, and why it was cut short (None when complete)."""

    rows: np.ndarray
    problem: str | None = None
    flag: str | None = None


def sweep_cell(bench: PrintedBench, cell: CellStructure, plan: SweepPlan, record: Record) -> CellSweep:
    """Power ``cell``'s rail group, sweep its input forward and back, read output, input and rails per point.

    A rail fault (6.2) or an output that does not answer skips the structure
    (it is flagged, not fatal: 6.2 on a test-structure sample).
    """
    try:
        with bench.powered(cell.rail_group) as rails:
            record("rails", _rail_row(cell, rails.i_dd_a, rails.i_ss_a, None))
            forward = _sweep(bench, cell, plan.forward_v, +1, record)
            moved = abs(forward["v_out"][-1] - forward["v_out"][0])
            if not moved >= OUTPUT_ANSWERS_V:
                return _short_swing(cell, forward, moved)
            backward = _sweep(bench, cell, plan.backward_v, -1, record)
            levels = refinement_levels(forward["v_set"], forward["v_out"], plan.refine_step_v)
            # from +1.5 V the backward sweep ended at -1.5 V: going up again is a forward approach
            refined = _sweep(bench, cell, levels, +REFINE_DIRECTION, record)
            _output_loading(bench, cell, (plan.forward_v[0], plan.forward_v[-1]), record)
    except RailFault as fault:
        record("rails", _rail_row(cell, np.nan, np.nan, str(fault)))
        return CellSweep(np.zeros(0, POINT_DTYPE), str(fault), "rail_fault")
    return CellSweep(np.concatenate([forward, backward, refined]))


def _short_swing(cell: CellStructure, forward: np.ndarray, moved: float) -> CellSweep:
    """An output that moved less than OUTPUT_ANSWERS_V: a contact fault for an ACT (every printable ACT swings
    more), an unmeasurable design for a NEG, whose transition may lie outside the window (6.2)."""
    swing = f"output {cell.output_pad} moved {moved * 1e3:.1f} mV over the sweep"
    if cell.kind == "NEG":
        return CellSweep(forward, f"{swing}: its transition lies outside the window, an unmeasurable design",
                         "transition_outside")
    return CellSweep(forward, f"{swing} (at least {OUTPUT_ANSWERS_V * 1e3:.0f} mV expected): does not answer",
                     "no_output")


def _sweep(bench: PrintedBench, cell: CellStructure, levels: tuple[float, ...], direction: int,
           record: Record) -> np.ndarray:
    """Per point (8.1): DAC, 10 ms, output and input shunt in one scan, both rail currents in one query."""
    channels = [sense_channel(pad_number(cell.output_pad, "S")), shunt_channel(pad_number(cell.input_pad, "D"))]
    rows = np.zeros(len(levels), POINT_DTYPE)
    for i, level in enumerate(levels):
        bench.set_pad(cell.input_pad, level)
        v_out, v_shunt = bench.read_volts(channels, FAST_NPLC, settle=True)
        rails = bench.rails()
        v_pad, i_in = bench.pad_voltage(cell.input_pad, v_shunt), bench.shunt_current(cell.input_pad, v_shunt)
        power = v_pad * i_in + rails.power_w
        rows[i] = (time.time(), cell.id, direction, level, v_pad, i_in, v_out, rails.vdd_v, rails.vss_v,
                   rails.i_dd_a, rails.i_ss_a, power)
        record("points", rows[i:i + 1])
    return rows


def _output_loading(bench: PrintedBench, cell: CellStructure, levels: tuple[float, ...], record: Record) -> None:
    """At each level: the output at > 10 Gohm, then at 10 Mohm (a known load, 5.2), then at > 10 Gohm again.

    Contract 1.3: cell-driven rows have a source resistance that the crossbar loads; the only load the
    test-structure layout offers is the DMM's own 10 Mohm, so ``r_out = 10 Mohm (V_hiz - V_10M) / V_10M``
    (analysis). The sweep ends are the output's two levels, whose source resistances differ (an inverter
    on or off); NPLC 10 because the difference is a few mV. The two unloaded readings bracket any drift.
    """
    out, shunt = sense_channel(pad_number(cell.output_pad, "S")), shunt_channel(pad_number(cell.input_pad, "D"))
    for level in levels:
        bench.set_pad(cell.input_pad, level)
        before, v_shunt = bench.read_volts([out, shunt], SLOW_NPLC, settle=True)
        loaded = bench.read_volts([out], SLOW_NPLC, high_impedance=False)[0]
        after = bench.read_volts([out], SLOW_NPLC)[0]
        record("ports", np.array([(time.time(), cell.id, level, bench.pad_voltage(cell.input_pad, v_shunt),
                                   (before + after) / 2, loaded)], PORT_DTYPE))


def _rail_row(cell: CellStructure, i_dd: float, i_ss: float, problem: str | None) -> np.ndarray:
    return np.array([(time.time(), cell.id, cell.rail_group, i_dd, i_ss, problem is None,
                      (problem or "")[:120])], RAIL_DTYPE)
