"""The ladders on DC (contract 7, step 7, simplified): each matrix's bias row at every code, held.

For each code 1..15 and each polarity, every matrix's bias row is written
with that code on every column and held; the rail's current is the row's
sum over its columns (each column's gain times the ladder's current, times
that write's eps averaged over the columns). Contract 7 times every code on
every site; the held sum needs 2 x 15 x (n_matrices) row writes and as many
readings, and what the model keeps of the ladder is its bit weights.
"""

from __future__ import annotations

import numpy as np

from labctl.families.ttfs.characterisation.held import RAIL_ROLE, read_held_row
from labctl.families.ttfs.characterisation.plan import CharacterisationPlan
from labctl.families.ttfs.characterisation.tables import DC_DTYPE


def measure_ladder(bench, plan: CharacterisationPlan, polarity: int, progress=None) -> np.ndarray:
    """DC_DTYPE rows: each bias row's held current at every code of ``polarity``."""
    chip = bench.chip
    rail_v = bench.bias_v(RAIL_ROLE[polarity])
    rows = []
    name = f"ladder {'+' if polarity > 0 else '-'}"
    for i, magnitude in enumerate(plan.ladder_codes):
        if progress:
            progress(name, i, len(plan.ladder_codes))
        code = polarity * magnitude
        for m in range(chip.n_matrices):
            n_rows, n_cols = chip.matrix_shape(m)
            bench.link.write_synapses(m, np.full((1, n_cols), code, dtype=np.int64), first_row=n_rows - 1)
        for m in range(chip.n_matrices):
            bias_row = chip.matrix_shape(m)[0] - 1
            reading = read_held_row(bench, m, bias_row, polarity, nplc=plan.nplc)
            rows.append((b"ladder", polarity, m, bias_row, -1, code, rail_v, reading.held_a, reading.released_a,
                         reading.synaptic_a))
    if progress:
        progress(name, len(plan.ladder_codes), len(plan.ladder_codes))
    return np.array(rows, DC_DTYPE)
