"""Step 2 of contract 7: every row held in turn while its rail moves (the DC shape of each polarity).

Every row of every matrix is written +15 (then -15) at the reference
operating point, so every site of the die takes part; each row is held at
each rail level (EREV_EXC 0.00 to 0.70 V, EREV_INH 1.40 to 1.80 V) and its
rail current read against one released reading per level. The rail goes back
to its reference level however the step ends. With ``plan.shape_rows`` set
(large parts) only that many rows per matrix, evenly spread and the bias row
among them, are written and held.
"""

from __future__ import annotations

import numpy as np

from labctl.families.ttfs.characterisation.held import RAIL_ROLE, read_held_row
from labctl.families.ttfs.characterisation.plan import CharacterisationPlan
from labctl.families.ttfs.characterisation.tables import DC_DTYPE


def write_every_row(bench, code: int) -> None:
    """Every row of every matrix at ``code`` (mode 0: rows already holding it are not rewritten)."""
    chip = bench.chip
    for m in range(chip.n_matrices):
        bench.link.write_synapses(m, np.full(chip.matrix_shape(m), code, dtype=np.int64))


def shape_rows(n_rows: int, count: int | None) -> np.ndarray:
    """The rows step 2 holds in a matrix of ``n_rows``: every row, or ``count`` evenly spread (0 and the bias row
    among them)."""
    if count is None or count >= n_rows:
        return np.arange(n_rows)
    return np.unique(np.linspace(0, n_rows - 1, count).round().astype(np.int64))


def _write_rows(bench, plan: CharacterisationPlan, code: int) -> dict[int, np.ndarray]:
    """Write the rows step 2 holds (every row in one request per matrix, or the chosen rows one by one)."""
    chip = bench.chip
    rows = {m: shape_rows(chip.matrix_shape(m)[0], plan.shape_rows) for m in range(chip.n_matrices)}
    if plan.shape_rows is None:
        write_every_row(bench, code)
        return rows
    for m, chosen in rows.items():
        for r in chosen:
            bench.link.write_synapses(m, np.full((1, chip.matrix_shape(m)[1]), code, dtype=np.int64),
                                      first_row=int(r))
    return rows


def measure_dc_shape(bench, plan: CharacterisationPlan, polarity: int, progress=None) -> np.ndarray:
    """DC_DTYPE rows: each held row's synaptic current at each rail level of ``polarity`` (+1 E+, -1 E-)."""
    chip = bench.chip
    held_rows = _write_rows(bench, plan, 15 * polarity)
    role = RAIL_ROLE[polarity]
    levels = plan.exc_levels_v if polarity > 0 else plan.inh_levels_v
    reference = bench.bias_v(role)
    rows = []
    try:
        for i, level in enumerate(levels):
            if progress:
                progress(f"DC shape {'E+' if polarity > 0 else 'E-'}", i, len(levels))
            bench.set_bias(role, level)
            released = bench.measure_current(role, nplc=plan.nplc)
            for m in range(chip.n_matrices):
                for r in map(int, held_rows[m]):
                    reading = read_held_row(bench, m, r, polarity, nplc=plan.nplc, released_a=released)
                    rows.append((b"shape", polarity, m, r, -1, 15 * polarity, level, reading.held_a, released,
                                 reading.synaptic_a))
    finally:
        bench.set_bias(role, reference)
    if progress:
        progress(f"DC shape {'E+' if polarity > 0 else 'E-'}", len(levels), len(levels))
    return np.array(rows, DC_DTYPE)
