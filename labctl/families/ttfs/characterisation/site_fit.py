"""Every site's current at the characterisation write from its spike time (contract 7, step 5).

Each row alone switches on at t = d_in (entry layer m, the bias row through
its bias time) and drives every column of the matrix through one site; the
neuron's anchors (C, d, Q from step 4) turn the mean spike time into the
site's verify-point current ``I = C Q / (t + 0.5 ns - d_in - d)``. The
current includes this write's eps (1.7), which does not persist: these
currents go into the file's raw and fit groups, not into the die's record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SiteCurrents:
    """(rows x columns) verify-point currents (A) and standard errors; NaN where the column did not fire."""

    current_a: np.ndarray
    se_a: np.ndarray


def site_currents(tdc_mean_ns: np.ndarray, tdc_se_ns: np.ndarray, capacitance_f: np.ndarray,
                  capacitance_se: np.ndarray, delay_ns: np.ndarray, delay_se: np.ndarray, charge_v: np.ndarray,
                  charge_rel_se: np.ndarray, lam_site_sd_rel_q: float, *, input_delay_ns: float) -> SiteCurrents:
    """Currents of every site of a matrix (rows x columns) from the mean TDC codes; per-column anchors.

    ``lam_site_sd_rel_q``: Q's relative spread from one site's lambda (the model uses the die mean).
    """
    travel = np.asarray(tdc_mean_ns, float) + 0.5 - input_delay_ns - delay_ns
    current = capacitance_f * charge_v * 1e9 / travel
    rel = np.sqrt((capacitance_se / capacitance_f) ** 2 + charge_rel_se**2 + lam_site_sd_rel_q**2
                  + (tdc_se_ns**2 + delay_se**2) / travel**2)
    return SiteCurrents(current, np.abs(current) * rel)
