"""Channel-length modulation from held rows against the rail (contract 7, step 2) and the knee near a rail (step 3).

Step 2: a held row carries each site's current at the membrane clamped to
V_REST (HOLD_ROW, 2.2); moving the rail after the write changes the
drain-source voltage ``x`` (``V_REST - E+`` or ``E- - V_REST``) and with it the
row's current as ``A (1 + lambda x) k(x)`` summed over the row's sites (1.6).
With V_K known the law is linear in (A, A lambda) over the regressors
``k(x)`` and ``x k(x)``: one small least-squares per row gives the row's
current-weighted lambda. Rows sample the sites: the die mean is the
site-weighted mean of the rows, and the scatter of the rows beyond their
own errors gives the site spread (1.6: 5 % typical).

Step 3: a membrane pulled towards a rail by one held drive follows
``dV/dt = -K (1 + lambda x) k(x)`` with ``x`` its distance from the rail; the
trace's slope against its level near the rail gives the rail (where the
slope vanishes) and V_K (the knee's width).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import curve_fit
from scipy.signal import savgol_filter

from labctl.families.ttfs.characterisation.branch import branch_shape, knee


@dataclass(frozen=True)
class RowLambda:
    lam: float
    lam_se: float
    current_a: float
    """The fitted A (the row's summed current at x -> 0 on the line)."""


def fit_row_lambda(x_v: np.ndarray, current_a: np.ndarray, v_k: float) -> RowLambda:
    """One held row's lambda from its current at several drain-source voltages ``x_v`` (>= 3 levels)."""
    x_v, current_a = np.asarray(x_v, float), np.asarray(current_a, float)
    k = knee(x_v, v_k)
    design = np.stack([k, x_v * k], axis=1)
    coef, _, _, _ = np.linalg.lstsq(design, current_a, rcond=None)
    resid = current_a - design @ coef
    dof = max(len(x_v) - 2, 1)
    s2 = max(float(resid @ resid) / dof, (1e-6 * float(np.abs(current_a).max())) ** 2)
    cov = np.linalg.inv(design.T @ design) * s2
    a, b = coef
    lam = b / a
    lam_se = abs(lam) * np.sqrt(cov[0, 0] / a**2 + cov[1, 1] / b**2 - 2 * cov[0, 1] / (a * b))
    return RowLambda(float(lam), float(lam_se), float(a))


@dataclass(frozen=True)
class LambdaFit:
    """Die mean of lambda (1/V), its standard error, and the relative spread per site."""

    mean: float
    se: float
    site_sd: float
    rows: tuple[RowLambda, ...]


def combine_rows(rows: list[RowLambda], sites_per_row: np.ndarray) -> LambdaFit:
    """The die mean (site-weighted over rows) and the site spread from the rows' excess scatter.

    A row of n sites averages n site lambdas: its scatter about the die mean is
    ``sigma_site^2 / n`` plus its own reading error, which gives sigma_site by
    moments; the mean's error is then the sampling of the sites plus the readings.
    """
    n = np.asarray(sites_per_row, float)
    lam = np.array([r.lam for r in rows])
    se = np.array([r.lam_se for r in rows])
    mean = float(np.sum(n * lam) / n.sum())
    terms = n * ((lam - mean) ** 2 - se**2)
    excess = float(np.mean(terms)) * len(rows) / max(len(rows) - 1, 1)
    sigma_site = float(np.sqrt(max(excess, 0.0)))
    # a spread the rows' own errors hide is not zero: the mean's error takes the moment estimate plus its error
    excess_upper = max(excess, 0.0) + float(np.std(terms, ddof=1) / np.sqrt(len(rows)))
    mean_se = float(np.sqrt(excess_upper / n.sum() + np.sum(n**2 * se**2) / n.sum() ** 2))
    return LambdaFit(mean, mean_se, sigma_site / mean, tuple(rows))


@dataclass(frozen=True)
class RailApproach:
    """The rail a membrane approached and the knee width, from one trace (step 3)."""

    rail_v: float
    rail_se: float
    v_k: float
    v_k_se: float


def fit_rail_approach(t_s: np.ndarray, v: np.ndarray, lam: float, t_end_s: float, *, towards_below: bool,
                      window: int = 15, span_v: float = 0.15, settled_fraction: float = 0.3) -> RailApproach:
    """The rail from where the trace settles; V_K from ``dV/dt = -+K (1 + lambda x) k(x)`` near it.

    ``towards_below``: the membrane falls onto the rail (excitation, E+); else it rises (inhibition, E-).
    Points from ``t_end_s`` on (the window's end clamps every membrane, 1.3) are dropped.
    The last ``settled_fraction`` of the trace is the plateau (its scatter, the buffer's noise, gives the
    rail's error); the smoothed slope against the distance from the rail within ``span_v`` gives V_K.
    """
    inside = t_s < t_end_s - 50e-9
    t_s, v = t_s[inside], v[inside]
    dt = float(np.median(np.diff(t_s)))
    plateau = v[-max(int(len(v) * settled_fraction), 10):]
    rail = float(np.mean(plateau))
    rail_se = float(np.std(plateau, ddof=1) / np.sqrt(len(plateau) / window))
    sign = 1.0 if towards_below else -1.0
    smooth = savgol_filter(v, window, 3)
    slope_per_us = savgol_filter(v, window, 3, deriv=1, delta=dt * 1e6)
    x = sign * (smooth - rail)
    keep = (t_s > 0.0) & (x > 0.1 * span_v / 3) & (x < span_v)
    xx, ss = x[keep], -sign * slope_per_us[keep]

    def model(x_v, v_k, rate):
        return rate * branch_shape(x_v, lam, abs(v_k))

    far = xx > 0.6 * span_v
    rate0 = float(np.median(ss[far] / (1.0 + lam * xx[far]))) if far.any() else float(ss.max())
    params, cov = curve_fit(model, xx, ss, p0=(0.026, rate0), maxfev=20000)
    # neighbouring slopes share the smoothing window: the points carry about 1/window of their count
    v_k_se = float(np.sqrt(cov[0, 0] * window))
    return RailApproach(rail, rail_se, float(abs(params[0])), v_k_se)
