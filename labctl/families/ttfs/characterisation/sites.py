"""Step 5 of contract 7: every row written +10, each row alone at t = 0, the spike time of every column.

Row j < n_m of matrix m switches on through entry layer m (line j at code 0,
every other line and every bias row at 255: injection for m >= 1); the bias
row through its bias time (0) with every line at 255. ``site_repeats``
patterns each; the readout is layer m + 1.
"""

from __future__ import annotations

import numpy as np

from labctl.families.ttfs.characterisation.dc_shape import write_every_row
from labctl.families.ttfs.characterisation.plan import CharacterisationPlan
from labctl.families.ttfs.characterisation.tables import TDC_DTYPE, tdc_summary
from labctl.families.ttfs.patterns import NO_INPUT


def measure_sites(bench, plan: CharacterisationPlan, progress=None) -> np.ndarray:
    """TDC_DTYPE rows: for every (matrix, row, column) the mean spike time under that row alone."""
    chip = bench.chip
    link = bench.link
    write_every_row(bench, plan.site_code)
    rows = []
    total = sum(chip.matrix_shape(m)[0] for m in range(chip.n_matrices))
    done = 0
    for m in range(chip.n_matrices):
        n_lines = chip.layer_sizes[m]
        for r in range(n_lines + 1):
            if progress:
                progress("sites", done, total)
            times = [NO_INPUT] * chip.n_matrices
            patterns = np.full((plan.site_repeats, n_lines), NO_INPUT, dtype=np.int64)
            if r < n_lines:
                patterns[:, r] = 0
            else:
                times[m] = 0
            link.set_bias_times(times)
            codes = link.apply_patterns(patterns, entry=m, readout=m + 1)
            mean, se, fired = tdc_summary(codes)
            for k in range(codes.shape[1]):
                rows.append((b"site", m, r, k, plan.site_code, False, mean[k], se[k], fired[k], len(codes)))
            done += 1
    link.set_bias_times([0] * chip.n_matrices)
    if progress:
        progress("sites", total, total)
    return np.array(rows, TDC_DTYPE)
