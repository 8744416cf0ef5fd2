"""Where a pattern's charge goes: the synaptic and restoring charges of contract 1.11.

Per pattern, excitatory branches move ``q_E`` from the membranes into
EREV_EXC, inhibitory branches move ``q_I`` from EREV_INH into them, the
dischargers restore every membrane from VDD (``max(q_E,i - q_I,i, 0)`` per
neuron: a membrane left above V_REST is discharged to GND and costs VDD
nothing), and every row line switching on and every TDC capture draws a small
digital charge from VDD (:func:`pattern_charges`). A held row (HOLD_ROW)
carries its sites' currents in DC, the clamped membranes' net current restored
from VDD (:func:`held_row_currents`). The bench's pads (:mod:`.pads`) turn
these into the average rail currents an SMU sees while patterns run (3.2: the
decoupling capacitors carry the microsecond pulses).

The branch currents are integrated on a fixed 20 ns grid along each neuron's
membrane from release to its spike edge (its column is gated then, 1.3) or
the window's end, with the die's own model (:func:`.neuron.slope`); the spike
times come from :func:`.die.run_patterns` without noise. Rows and ends count
by the fraction of a step they cover, and 20 ns is well under the microsecond
time constants of the membranes (charges within 0.3 % of a 1 ns grid).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.families.ttfs.sim.die import code_times_ns, layer_drive, run_patterns
from labctl.families.ttfs.sim.mismatch import Die
from labctl.families.ttfs.sim.neuron import RowSums, slope
from labctl.families.ttfs.sim.parts import OperatingPoint
from labctl.families.ttfs.sim.synapses import SynapseState, saturation_knee

GRID_NS = 20.0
DIGITAL_CHARGE_C = 16e-15
"""VDD charge of one row line switching on or one TDC capture (the simulator's choice; contract 8.3
attributes about 0.3 pC per Iris pattern to the digital side)."""


@dataclass(frozen=True)
class PatternCharges:
    """Charges (C) per pattern: sunk into EREV_EXC, sourced by EREV_INH, drawn from VDD; and digital events."""

    q_exc: np.ndarray
    q_inh: np.ndarray
    q_restore: np.ndarray
    events: np.ndarray

    @property
    def q_vdd(self) -> np.ndarray:
        """All VDD charge of a pattern beyond the idle draw: restoring plus digital."""
        return self.q_restore + DIGITAL_CHARGE_C * self.events


def pattern_charges(die: Die, state: SynapseState, op: OperatingPoint, codes, *, entry: int = 0,
                    bias_codes=None, idle: bool = False) -> PatternCharges:
    """The charges of each pattern of a batch, as APPLY_PATTERNS would run it (noiseless)."""
    codes = np.atleast_2d(np.asarray(codes))
    n_pat = codes.shape[0]
    zeros = np.zeros(n_pat)
    if idle:
        return PatternCharges(zeros, zeros.copy(), zeros.copy(), zeros.copy())
    part = die.part
    bias = np.zeros(part.n_matrices, np.int64) if bias_codes is None else np.asarray(bias_codes)
    result = run_patterns(die, state, op, codes, entry=entry, bias_codes=bias)
    q_exc, q_inh, q_restore, events = zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy()
    lines = code_times_ns(codes, die.matrices[entry].row_delay_ns[:-1])
    for layer in range(entry + 1, len(part.layers)):
        m = layer - 1
        bias_on = code_times_ns(np.full((n_pat, 1), bias[m]), die.matrices[m].row_delay_ns[-1:])
        row_on = np.concatenate([lines, bias_on], axis=1)
        events += (row_on < op.window_ns).sum(axis=1)
        edges = result.edge_ns[layer]
        exc, inh = _layer_charges(die, state, op, layer, row_on, np.minimum(edges, op.window_ns))
        q_exc += exc.sum(axis=1)
        q_inh += inh.sum(axis=1)
        q_restore += np.maximum(exc - inh, 0.0).sum(axis=1)
        lines = edges
    events += np.isfinite(lines).sum(axis=1)  # the output layer's TDC captures
    return PatternCharges(q_exc, q_inh, q_restore, events)


def held_row_currents(die: Die, state: SynapseState, op: OperatingPoint, matrix: int,
                      row: int) -> tuple[float, float, float]:
    """DC currents (A) of a held row (HOLD_ROW, 2.2): the neurons of layer m+1 clamped at V_REST, the row's
    sites at their verify-point currents; (VDD restoring the clamp, sunk by EREV_EXC, sourced by EREV_INH)."""
    drive = layer_drive(die, state, op, matrix + 1)
    xe, xi = die.v_rest - drive.e_exc, drive.e_inh - die.v_rest
    i_e = saturation_knee(xe, drive.v_k) * (drive.a_exc[row] + drive.lam_exc[row] * xe) + drive.i_zero[row]
    i_i = saturation_knee(xi, drive.v_k) * (drive.a_inh[row] + drive.lam_inh[row] * xi)
    return float(np.maximum(i_e - i_i, 0.0).sum()), float(i_e.sum()), float(i_i.sum())


def _layer_charges(die: Die, state: SynapseState, op: OperatingPoint, layer: int, row_on: np.ndarray,
                   end_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Excitatory and inhibitory charge (C) of each (pattern, neuron) of ``layer``, grid-integrated.

    The five row sums of 1.6 (the rows' drives side by side) are averaged exactly over each step: rows on
    before it count whole, a row switching on inside it by the fraction it covers, and a neuron by the
    fraction before its end; so the grid follows only the membrane, and a step adds just the rows that
    switch on in it (RCS-L's 785 rows cost no product per step).
    """
    drive = layer_drive(die, state, op, layer)
    neurons = die.neurons[layer - 1]
    n_pat, n = row_on.shape[0], neurons.offset.size
    stacked = np.concatenate([drive.a_exc, drive.lam_exc, drive.a_inh, drive.lam_inh, drive.i_zero], axis=1)
    full = np.zeros((n_pat, stacked.shape[1]))
    v = np.broadcast_to(die.v_rest - neurons.pedestal, (n_pat, n)).astype(float)
    q_e, q_i = np.zeros((n_pat, n)), np.zeros((n_pat, n))
    sums = RowSums((n_pat, n))
    for t in np.arange(0.0, op.window_ns, GRID_NS):
        pats, rows = np.nonzero((row_on >= t) & (row_on < t + GRID_NS))
        switching = stacked[rows]
        average = full.copy()
        np.add.at(average, pats, switching * ((t + GRID_NS - row_on[pats, rows]) / GRID_NS)[:, None])
        np.add.at(full, pats, switching)
        sums.s0e, sums.s1e, sums.s0i, sums.s1i, sums.i0 = np.split(average, 5, axis=1)
        live = np.clip((end_ns - t) / GRID_NS, 0.0, 1.0)
        xe, xi = v - drive.e_exc, drive.e_inh - v
        i_e = saturation_knee(xe, drive.v_k) * (sums.s0e + sums.s1e * xe)
        i_i = saturation_knee(xi, drive.v_k) * (sums.s0i + sums.s1i * xi)
        q_e += live * i_e * GRID_NS * 1e-9
        q_i += live * i_i * GRID_NS * 1e-9
        v = v + live * slope(drive, sums, v) * GRID_NS
    return q_e, q_i
