"""Per-neuron anchors (contract 7, step 4): V0 and V_th from a membrane trace, C and d from spike times.

A neuron driven by one excitatory site of verify current I (its bias row,
code c at its column only; I read in DC under HOLD_ROW) fires after

    t(c) + 0.5 ns = d_in + d + C Q / I(c),    Q = integral from V_th to V0 of dV / F_N(V)   (1.6, 1.8)

(the TDC code k means the edge rose in [k, k+1) ns). With V0 and V_th from the
trace and the shape F_N from step 2, a weighted straight line of the mean
spike time against ``Q / I`` over the anchor codes gives C (slope) and
``d_in + d`` (intercept). The crossing time on the trace is ``t - d``, so V_th
and d are solved together (a few passes). The trace's descent is fitted
with ``a + b exp(-r t)``, the exact solution while F_N is linear in V (the knee
is 1 within 1e-6 between threshold and rest, 1.6), and read at t = 0 (V0)
and at the crossing (V_th). Its slope at t = 0 gives a second C
(``I F_N(V0) / |dV/dt|``), a check of the model reported beside the first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit

from labctl.families.ttfs.characterisation.branch import ExcitatoryShape

SETTLE_S = 150e-9
"""Trace points kept away from release (the buffer's 15 MHz pole, the first row's coupling step) and from
the crossing (averaged jitter rounds the corner)."""


@dataclass(frozen=True)
class ChainErrors:
    """What the MON chain's calibration leaves on a membrane voltage (3.4 step 5)."""

    offset_se_v: float = 0.0
    gain_rel_se: float = 0.0

    def level_se(self, v: float) -> float:
        return float(np.hypot(self.offset_se_v, v * self.gain_rel_se))


@dataclass(frozen=True)
class DescentFit:
    """``V(t) = a + b exp(-r t)`` over the trace's descent (t in us) and its covariance."""

    params: np.ndarray
    cov: np.ndarray
    rms_v: float

    def value(self, t_s: float) -> tuple[float, float]:
        """V at ``t_s`` and its standard error from the fit."""
        a, b, r = self.params
        t = t_s * 1e6
        e = np.exp(-r * t)
        jac = np.array([1.0, e, -b * t * e])
        return float(a + b * e), float(np.sqrt(max(jac @ self.cov @ jac, 0.0)))

    def slope(self, t_s: float) -> float:
        """dV/dt at ``t_s`` in V/s."""
        a, b, r = self.params
        return float(-b * r * np.exp(-r * t_s * 1e6) * 1e6)


def fit_descent(t_s: np.ndarray, v: np.ndarray, t_end_s: float) -> DescentFit:
    """Fit the descent between ``SETTLE_S`` after release and ``SETTLE_S`` before ``t_end_s``."""
    keep = (t_s >= SETTLE_S) & (t_s <= t_end_s - SETTLE_S)
    if keep.sum() < 10:
        raise ValueError(f"only {int(keep.sum())} trace points between release and the crossing")
    t, y = t_s[keep] * 1e6, v[keep]
    c2, c1, c0 = np.polyfit(t, y, 2)
    r0 = -2.0 * c2 / c1 if c1 != 0 and -2.0 * c2 / c1 > 1e-4 else 1e-2
    p0 = (c0 + c1 / r0, -c1 / r0, r0)
    params, cov = curve_fit(lambda x, a, b, r: a + b * np.exp(-r * x), t, y, p0=p0, maxfev=5000)
    rms = float(np.sqrt(np.mean((y - (params[0] + params[1] * np.exp(-params[2] * t))) ** 2)))
    return DescentFit(np.asarray(params), np.asarray(cov), rms)


@dataclass(frozen=True)
class AnchorFit:
    """One neuron's anchors with standard errors (SI units; delays in ns)."""

    capacitance_f: float
    capacitance_se: float
    delay_ns: float
    delay_se: float
    start_v: float
    start_se: float
    threshold_v: float
    threshold_se: float
    trace_capacitance_f: float
    """The second C, from the trace's slope at release (a check, not used further)."""
    charge_v: float
    """Q of the neuron (V), for the site currents of step 5."""
    charge_rel_se: float
    """Q's relative error from the shape alone (the mean lambda, E+, V_K; no single site's lambda)."""
    chi2: float
    """Of the line through the anchor codes (1 degree of freedom with three codes): the model's check."""


def _line(x: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted line y = s x + d: (s, d), their covariance (from the reading errors), chi^2."""
    w = 1.0 / sigma**2
    design = np.stack([x, np.ones_like(x)], axis=1)
    cov = np.linalg.inv(design.T @ (design * w[:, None]))
    coef = cov @ design.T @ (w * y)
    chi2 = float(np.sum(w * (y - design @ coef) ** 2))
    return coef, cov, chi2


@dataclass(frozen=True)
class AnchorLevel:
    """One anchor drive of a neuron: its held DC current and mean spike time (probe disconnected)."""

    current_a: float
    current_se_a: float
    tdc_mean_ns: float
    tdc_se_ns: float
    kick_v: float = 0.0
    """The coupling step of the rows that switch on at release (kappa x rows, 1.5): it lifts the start."""


def fit_anchor(levels: list[AnchorLevel], trace_t_s: np.ndarray, trace_v: np.ndarray, trace_tdc_ns: float,
               trace_current_a: float, shape: ExcitatoryShape, *, input_delay_ns: float, input_delay_se_ns: float,
               trace_time_se_s: float, sites: int, trace_kick_v: float = 0.0, chain: ChainErrors = ChainErrors(),
               passes: int = 4) -> AnchorFit:
    """C, d, V0 and V_th of one neuron from its anchor levels and one trace (module docstring).

    ``trace_tdc_ns``: the mean TDC code under the trace's drive *with the probe selected* (its mux adds
    0.5 fF, 1.10, so the trace crosses later than the unprobed levels); ``trace_current_a`` that drive's
    held current (for the trace's own C); ``trace_kick_v`` the coupling step of its row, taken off V0;
    ``sites``: how many sites every level drives through (their lambdas average in C's error).
    """
    current = np.array([lv.current_a for lv in levels])
    current_se = np.array([lv.current_se_a for lv in levels])
    tdc_se = np.array([lv.tdc_se_ns for lv in levels])
    kick = np.array([lv.kick_v for lv in levels])
    y = np.array([lv.tdc_mean_ns for lv in levels]) + 0.5 - input_delay_ns
    delay, cap = 6.0, None
    for _ in range(passes):
        t_cross_s = (trace_tdc_ns + 0.5 - delay) * 1e-9
        descent = fit_descent(trace_t_s, trace_v, t_cross_s)
        v0, v0_fit_se = descent.value(0.0)
        v0 -= trace_kick_v
        vth, vth_fit_se = descent.value(t_cross_s)
        q = np.asarray(shape.charge(v0 + kick, vth), float)
        x = 1e9 * q / current
        x_se = x * current_se / current
        sigma = np.sqrt(tdc_se**2 + (0.0 if cap is None else cap * x_se) ** 2)
        (cap, delay), cov, chi2 = _line(x, y, sigma)
    scale = max(1.0, chi2 / max(len(x) - 2, 1))
    q0 = float(shape.charge(v0, vth))
    swing_se = np.hypot(np.hypot(v0_fit_se, vth_fit_se), (v0 - vth) * chain.gain_rel_se)
    dq_dv = abs(float(shape.charge(v0 + swing_se, vth)) - q0) / q0
    q_rel_shape = shape.charge_relative_se(v0, vth)
    q_rel_site = shape.charge_relative_se(v0, vth, sites=sites)
    cap_se = float(np.hypot(np.sqrt(cov[0, 0] * scale), cap * np.hypot(q_rel_site, dq_dv)))
    delay_se = float(np.hypot(np.sqrt(cov[1, 1] * scale), input_delay_se_ns))
    slope_v0, slope_th = descent.slope(0.0), descent.slope(t_cross_s)
    start_se = float(np.sqrt(v0_fit_se**2 + chain.level_se(v0) ** 2 + (slope_v0 * trace_time_se_s) ** 2))
    threshold_se = float(np.sqrt(vth_fit_se**2 + chain.level_se(vth) ** 2
                                 + (slope_th * np.hypot(trace_time_se_s, delay_se * 1e-9)) ** 2))
    trace_cap = float(trace_current_a * shape.factor(v0) / abs(slope_v0))
    return AnchorFit(float(cap), cap_se, float(delay), delay_se, float(v0), start_se, float(vth), threshold_se,
                     trace_cap, q0, float(np.hypot(q_rel_shape, dq_dv)), float(chi2))
