"""Step 8 of contract 7: leakage of every neuron and the coupling step (long traces, every code 0).

Every matrix is written 0. Each neuron's membrane is read under IDLE
patterns over the longest window (65 us, 64 averages): it drifts only by its
leakage (1.5). On ``kappa_neurons`` neurons per layer every row of their
matrix switches on at ``kappa_code`` (2.00 us; the lines through entry
layer m, the bias row through its bias time) and the membrane steps up by
kappa per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.families.ttfs.characterisation.dc_shape import write_every_row
from labctl.families.ttfs.characterisation.plan import CharacterisationPlan


@dataclass(frozen=True)
class Trace:
    layer: int
    neuron: int
    kind: str
    """``leak`` (IDLE) or ``kappa`` (every row of the matrix switching on at the kappa code)."""
    t_s: np.ndarray
    v: np.ndarray
    rows_on: int = 0


def measure_leakage(bench, plan: CharacterisationPlan, progress=None) -> list[Trace]:
    chip = bench.chip
    write_every_row(bench, 0)
    traces = []
    neurons = [(layer, k) for layer in range(1, chip.n_layers) for k in range(chip.layer_sizes[layer])]
    window = dict(averages=plan.leak_averages, window_ns=plan.leak_window_ns)
    for i, (layer, k) in enumerate(neurons):
        if progress:
            progress("leakage", i, len(neurons))
        tr = bench.read_membrane(layer, k, None, entry=layer - 1, **window)
        traces.append(Trace(layer, k, "leak", np.asarray(tr.t_s), np.asarray(tr.v)))
    bench.link.set_bias_times([plan.kappa_code] * chip.n_matrices)
    try:
        for layer in range(1, chip.n_layers):
            m = layer - 1
            pattern = np.full(chip.layer_sizes[m], plan.kappa_code, dtype=np.int64)
            for k in range(min(plan.kappa_neurons, chip.layer_sizes[layer])):
                tr = bench.read_membrane(layer, k, pattern, entry=m, **window)
                traces.append(Trace(layer, k, "kappa", np.asarray(tr.t_s), np.asarray(tr.v),
                                    chip.matrix_shape(m)[0]))
    finally:
        bench.link.set_bias_times([0] * chip.n_matrices)
    if progress:
        progress("leakage", len(neurons), len(neurons))
    return traces
