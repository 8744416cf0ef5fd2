"""Step 4 of contract 7: per-neuron anchors (held currents, spike times, one membrane trace).

For neuron k of layer l (matrix m = l - 1):

- the trace drive: its matrix's bias row written ``trace_code`` at column k
  only; the held current (for the trace's own C), the spike times with the
  probe selected and without it (the mux's load, 0.5 fF typical, 1.10,
  delays the crossing the trace shows; the pair measures it) and one
  averaged trace, bias-only patterns;
- the anchor levels: every row of the matrix written c at column k (c = 6,
  10, 15), each row held in turn (the column's sites, one by one) and every
  row switched on at t = 0 (entry layer m, all lines at code 0, the bias row
  at bias time 0), ``anchor_repeats`` patterns. Every level drives the
  neuron through the same sites, so their lambdas, which a timing fit
  cannot tell from C, are common to all three and leave d untouched;
  and the fastest level (every row at +15: 150 nA on RCS-S layer 1) puts the
  line's intercept, d, within a few hundred ns of a measured point.
  (Contract 7 anchors on the bias row alone; its 2 to 5 us spike times
  leave d to an extrapolation longer than the current readings allow.)

Other columns hold 0 throughout, so only neuron k fires.

With ``plan.anchor_rows == "bias"`` (large parts, :data:`.plan.PART_PLANS`)
the anchor levels are contract 7's: the bias row alone, code c at column k,
held (with its own released reading) and ``anchor_repeats`` bias-only
patterns per code; the trace drive is the level at ``trace_code`` (probed
and unprobed spike times, one trace). Only the bias row is written. d is
then the line's extrapolation from 7 us (RCS-L layer 1 at +15) to 0, and
its error says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.families.ttfs.characterisation.held import read_held_row
from labctl.families.ttfs.characterisation.plan import CharacterisationPlan
from labctl.families.ttfs.characterisation.tables import DC_DTYPE, TDC_DTYPE, tdc_summary
from labctl.families.ttfs.patterns import NO_INPUT


@dataclass(frozen=True)
class NeuronAnchors:
    """What step 4 read for one neuron."""

    layer: int
    neuron: int
    dc: np.ndarray
    tdc: np.ndarray
    trace_t_s: np.ndarray
    trace_v: np.ndarray


def _write_column(bench, m: int, k: int, codes_by_row: dict[int, int]) -> None:
    shape = bench.chip.matrix_shape(m)
    codes = np.zeros(shape, dtype=np.int64)
    for r, c in codes_by_row.items():
        codes[r, k] = c
    bench.link.write_synapses(m, codes)


def _spike_times(link, patterns: np.ndarray, m: int, layer: int, k: int, *, step: bytes, row: int, code: int,
                 probed: bool) -> tuple:
    """One TDC_DTYPE row: ``patterns`` into matrix m, neuron k's mean spike time (its probe selected when
    ``probed``: the mux's load shows in the pair)."""
    if probed:
        link.select_probe(layer, k)
    try:
        codes = link.apply_patterns(patterns, entry=m, readout=layer)[:, k:k + 1]
    finally:
        if probed:
            link.select_probe(layer, None)
    mean, se, fired = tdc_summary(codes)
    return (step, m, row, k, code, probed, mean[0], se[0], fired[0], len(codes))


def _bias_row_anchors(bench, plan: CharacterisationPlan, layer: int, k: int) -> NeuronAnchors:
    """Contract 7's step 4 (module docstring): the bias row alone at column k, each code held and timed."""
    chip = bench.chip
    link = bench.link
    m = layer - 1
    n_rows, n_cols = chip.matrix_shape(m)
    bias_row = n_rows - 1
    rail_v = bench.bias_v("rev_exc")
    link.set_bias_times([0] * chip.n_matrices)
    bias_only = np.full((plan.anchor_repeats, chip.layer_sizes[m]), NO_INPUT, dtype=np.int64)
    dc, tdc, trace = [], [], None
    row = np.zeros((1, n_cols), dtype=np.int64)
    for c in plan.anchor_codes:
        row[0, k] = c
        link.write_synapses(m, row, first_row=bias_row)
        reading = read_held_row(bench, m, bias_row, 1, nplc=plan.anchor_nplc)
        dc.append((b"anchor", 1, m, bias_row, k, c, rail_v, reading.held_a, reading.released_a, reading.synaptic_a))
        if c == plan.trace_code:
            tdc.append(_spike_times(link, bias_only, m, layer, k, step=b"trace", row=bias_row, code=c, probed=True))
            trace = bench.read_membrane(layer, k, bias_only[0], entry=m, averages=plan.trace_averages)
        tdc.append(_spike_times(link, bias_only, m, layer, k, step=b"anchor", row=bias_row, code=c, probed=False))
    row[0, k] = 0
    link.write_synapses(m, row, first_row=bias_row)
    return NeuronAnchors(layer, k, np.array(dc, DC_DTYPE), np.array(tdc, TDC_DTYPE), np.asarray(trace.t_s),
                         np.asarray(trace.v))


def measure_neuron(bench, plan: CharacterisationPlan, layer: int, k: int) -> NeuronAnchors:
    """Step 4 for neuron ``k`` of ``layer``: every row at its column, or the bias row alone (module docstring)."""
    if plan.anchor_rows == "bias":
        return _bias_row_anchors(bench, plan, layer, k)
    chip = bench.chip
    m = layer - 1
    n_rows = chip.matrix_shape(m)[0]
    bias_row = n_rows - 1
    link = bench.link
    rail_v = bench.bias_v("rev_exc")
    bias_times = [0] * chip.n_matrices
    link.set_bias_times(bias_times)
    bias_only = np.full((plan.anchor_repeats, chip.layer_sizes[m]), NO_INPUT, dtype=np.int64)
    every_row = np.zeros_like(bias_only)
    dc, tdc = [], []

    _write_column(bench, m, k, {bias_row: plan.trace_code})
    reading = read_held_row(bench, m, bias_row, 1, nplc=plan.anchor_nplc)
    dc.append((b"trace", 1, m, bias_row, k, plan.trace_code, rail_v, reading.held_a, reading.released_a,
               reading.synaptic_a))
    for probed in (True, False):
        tdc.append(_spike_times(link, bias_only, m, layer, k, step=b"trace", row=bias_row, code=plan.trace_code,
                                probed=probed))
    trace = bench.read_membrane(layer, k, bias_only[0], entry=m, averages=plan.trace_averages)

    for c in plan.anchor_codes:
        _write_column(bench, m, k, {r: c for r in range(n_rows)})
        released = bench.measure_current("rev_exc", nplc=plan.anchor_nplc)
        for r in range(n_rows):
            reading = read_held_row(bench, m, r, 1, nplc=plan.anchor_nplc, released_a=released)
            dc.append((b"anchor", 1, m, r, k, c, rail_v, reading.held_a, released, reading.synaptic_a))
        tdc.append(_spike_times(link, every_row, m, layer, k, step=b"anchor", row=-1, code=c, probed=False))
    _write_column(bench, m, k, {})
    return NeuronAnchors(layer, k, np.array(dc, DC_DTYPE), np.array(tdc, TDC_DTYPE), np.asarray(trace.t_s),
                         np.asarray(trace.v))
