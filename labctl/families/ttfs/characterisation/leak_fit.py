"""Leakage and coupling from long membrane traces (contract 7, step 8).

Under IDLE patterns no row switches on: after release a membrane moves only
by its net leakage, ``C dV/dt = -I_leak`` (1.5), a straight line over the
65 us window. With every row of its matrix switching on at one time (code
200, 2.00 us, all codes 0) the membrane steps up by ``kappa`` per row (1.5);
a line before and a line after, joined by a step at the switching time,
gives the step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.families.ttfs.characterisation.anchor_fit import SETTLE_S

SLOPE_FLOOR_REL = 0.01
"""A floor on the drift's relative error: on the simulated bench the fitted drift scatters about 1 % (0.1 pA)
around the truth beyond its noise, from an effect not identified; the error says so rather than hide it."""


@dataclass(frozen=True)
class LineTrace:
    slope_v_per_s: float
    slope_se: float


def fit_drift(t_s: np.ndarray, v: np.ndarray, t_end_s: float, segments: int = 8) -> LineTrace:
    """The membrane's straight drift between release and ``t_end_s``.

    An averaged trace's points are not independent (the buffer's pole, the scope's averaging), so the
    error is the larger of the residuals' and the scatter of the slopes of ``segments`` equal pieces
    (scaled to the whole span: a piece's slope error grows as its length to the power 1.5).
    """
    keep = (t_s >= SETTLE_S) & (t_s <= t_end_s - SETTLE_S)
    t, y = t_s[keep], v[keep]
    (slope, _), cov = np.polyfit(t, y, 1, cov=True)
    pieces = [np.polyfit(tp, yp, 1)[0] for tp, yp in zip(np.array_split(t, segments), np.array_split(y, segments))]
    scatter = float(np.std(pieces, ddof=1)) / segments**1.5
    return LineTrace(float(slope), max(float(np.sqrt(cov[0, 0])), scatter, SLOPE_FLOOR_REL * abs(float(slope))))


def leak_current(drift: LineTrace, capacitance_f: float, capacitance_se: float) -> tuple[float, float]:
    """I_leak (A, positive out of the membrane) = -C dV/dt, with its error."""
    leak = -capacitance_f * drift.slope_v_per_s
    se = np.hypot(capacitance_f * drift.slope_se, drift.slope_v_per_s * capacitance_se)
    return float(leak), float(se)


@dataclass(frozen=True)
class Step:
    step_v: float
    step_se: float


def fit_step(t_s: np.ndarray, v: np.ndarray, t_step_s: float, t_end_s: float) -> Step:
    """Height of the step at ``t_step_s``: lines before and after (own slopes), the step between them."""
    keep = (t_s >= SETTLE_S) & (t_s <= t_end_s - SETTLE_S) & (np.abs(t_s - t_step_s) >= SETTLE_S)
    t, y = t_s[keep], v[keep]
    after = (t > t_step_s).astype(float)
    dt = t - t_step_s
    design = np.stack([np.ones_like(t), dt * (1 - after), after, dt * after], axis=1)
    coef, _, _, _ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    cov = np.linalg.inv(design.T @ design) * float(resid @ resid) / max(len(y) - 4, 1)
    return Step(float(coef[2]), float(np.sqrt(cov[2, 2])))
