"""Step 3 of contract 7: membranes pulled onto each reversal potential (traces that never fire).

Excitatory: every bias row +15, EREV_EXC at 0.60 V and VTH at 0.40 V (below
the rail, so the membrane settles on E+ without firing). Inhibitory: every
bias row -15, EREV_INH at 1.50 V: the membrane rises onto E-. Bias-only
patterns, ``reversal_neurons`` neurons per layer, one trace each. The biases
return to their reference levels in a safe order however the step ends
(VTH before EREV_EXC when VTH was below it).
"""

from __future__ import annotations

import numpy as np

from labctl.families.ttfs.characterisation.leakage import Trace
from labctl.families.ttfs.characterisation.plan import CharacterisationPlan
from labctl.families.ttfs.patterns import NO_INPUT


def _write_bias_rows(bench, code: int) -> None:
    chip = bench.chip
    for m in range(chip.n_matrices):
        n_rows, n_cols = chip.matrix_shape(m)
        bench.link.write_synapses(m, np.full((1, n_cols), code, dtype=np.int64), first_row=n_rows - 1)


def _traces(bench, plan: CharacterisationPlan, kind: str) -> list[Trace]:
    chip = bench.chip
    bench.link.set_bias_times([0] * chip.n_matrices)
    out = []
    for layer in range(1, chip.n_layers):
        pattern = np.full(chip.layer_sizes[layer - 1], NO_INPUT, dtype=np.int64)
        for k in range(min(plan.reversal_neurons, chip.layer_sizes[layer])):
            scale_v, offset_v = plan.reversal_screen_v
            tr = bench.read_membrane(layer, k, pattern, entry=layer - 1, averages=plan.trace_averages,
                                     window_ns=plan.reversal_window_ns, scale_v=scale_v, offset_v=offset_v)
            out.append(Trace(layer, k, kind, np.asarray(tr.t_s), np.asarray(tr.v)))
    return out


def measure_reversal(bench, plan: CharacterisationPlan) -> tuple[list[Trace], dict[str, float]]:
    """The traces near E+ and E-, and the pad levels they were taken at."""
    vth, e_exc, e_inh = bench.bias_v("threshold"), bench.bias_v("rev_exc"), bench.bias_v("rev_inh")
    _write_bias_rows(bench, 15)
    try:
        bench.set_bias("rev_exc", plan.reversal_exc_v)
        bench.set_bias("threshold", plan.reversal_vth_v)
        traces = _traces(bench, plan, "e_exc")
    finally:
        bench.set_bias("threshold", vth)
        bench.set_bias("rev_exc", e_exc)
    _write_bias_rows(bench, -15)
    try:
        bench.set_bias("rev_inh", plan.reversal_inh_v)
        traces += _traces(bench, plan, "e_inh")
    finally:
        bench.set_bias("rev_inh", e_inh)
    return traces, {"e_exc": plan.reversal_exc_v, "e_inh": plan.reversal_inh_v, "vth": plan.reversal_vth_v}
