"""One circuit structure's transfer and power curves (printed-bench.md 1.4, 1.5, 1.8).

ACT: ``V_out = eta1 + eta2 tanh((V_in - eta3) eta4)``; NEG: the negative of
that form. Fitted by ``scipy.optimize.least_squares`` against the measured
pad voltage (4.3: the input the sample saw), with the standard errors from
the Jacobian, ``cov = s^2 (J^T J)^-1``, ``s^2 = RSS / (n - 4)``: the residual
is mostly the form's misfit (<= 20 mV rms, 1.9), so the se say how well the
form pins each eta, which is what the cell map's weights need.

Power: ``P(V) = p1 + p2 tanh((V - eta3) eta4) + p3 V^2`` (the cell's supply
plus input power, 1.8), linear in p once eta3 and eta4 are fixed, so an
ordinary least-squares fit with its covariance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from labctl.families.printed.characterisation.plan import SWEEP_LIMIT_V

SIGN = {"ACT": 1.0, "NEG": -1.0}
"""NEG's transfer is the negative of the tanh form (1.5)."""
ETA4_BOUNDS = (0.05, 1000.0)
HIGH_RESIDUAL_V = 0.020
"""1.9 (T): the tanh forms fit within 20 mV rms; more is suspicious."""
HIGH_HYSTERESIS_V = 0.005
"""1.9 (T): up and down sweeps agree within 5 mV."""


def tanh_form(v: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """``eta1 + eta2 tanh((v - eta3) eta4)``."""
    return eta[0] + eta[1] * np.tanh((v - eta[2]) * eta[3])


@dataclass(frozen=True)
class TransferFit:
    """A structure's etas with standard errors, rms residual (V) and hysteresis (V), and flags."""

    eta: np.ndarray
    eta_se: np.ndarray
    rms_v: float
    hysteresis_v: float
    n_points: int
    flags: tuple[str, ...]

    @property
    def usable(self) -> bool:
        return not {"fit_failed", "transition_outside"} & set(self.flags)


def _best_on_grid(v: np.ndarray, y: np.ndarray, eta3s: np.ndarray, eta4s: np.ndarray,
                  best: tuple[float, np.ndarray]) -> tuple[float, np.ndarray]:
    """The (eta3, eta4) grid point whose closed-form (eta1, eta2) fit leaves the least squares (eta2 > 0)."""
    e3, e4 = (a.ravel() for a in np.meshgrid(eta3s, eta4s))
    t = np.tanh((v[None, :] - e3[:, None]) * e4[:, None])
    tc = t - t.mean(axis=1, keepdims=True)
    yc = y - y.mean()
    stt = np.sum(tc * tc, axis=1)
    slope = np.where(stt > 0, tc @ yc / np.where(stt > 0, stt, 1.0), 0.0)
    rss = float(yc @ yc) - slope ** 2 * stt
    rss = np.where(slope > 0, rss, np.inf)
    i = int(np.argmin(rss))
    if rss[i] < best[0]:
        intercept = y.mean() - slope[i] * t[i].mean()
        best = (float(rss[i]), np.array([intercept, slope[i], e3[i], e4[i]]))
    return best


def start_values(v: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Start etas by variable projection on a grid: for each (eta3, eta4) the form is linear in eta1, eta2,
    so each grid point costs one small least-squares solve; the best one starts the fit.

    A steep cell (eta4 up to ~100 /V) has only a few points in its transition,
    and the fit's gradient vanishes on a step: a start read off the curve, or
    a coarse grid, lands in the wrong valley. So a coarse grid over the window
    is refined around its best point (eta3 to 2.5 mV).
    """
    eta4s = np.geomspace(0.5, 300.0, 40)
    best = _best_on_grid(v, y, np.linspace(-1.6, 1.6, 65), eta4s, (np.inf, np.array([0.0, 1.0, 0.0, 1.0])))
    centre = best[1][2]
    best = _best_on_grid(v, y, np.linspace(centre - 0.1, centre + 0.1, 81), np.geomspace(0.5, 300.0, 80), best)
    return best[1]


def fit_transfer(kind: str, v_in: np.ndarray, v_out: np.ndarray, hysteresis_v: float = 0.0) -> TransferFit:
    """The etas of one structure from its (forward and backward) points."""
    sign = SIGN[kind]
    v, y = np.asarray(v_in, float), sign * np.asarray(v_out, float)
    keep = np.isfinite(v) & np.isfinite(y)
    v, y = v[keep], y[keep]
    flags = ["high_hysteresis"] if hysteresis_v > HIGH_HYSTERESIS_V else []
    if v.size < 6:
        return TransferFit(np.full(4, np.nan), np.full(4, np.nan), np.nan, hysteresis_v, int(v.size),
                           ("fit_failed", *flags))
    x0 = start_values(v, y)
    lower = [-5.0, 1e-3, -5.0, ETA4_BOUNDS[0]]
    upper = [5.0, 5.0, 5.0, ETA4_BOUNDS[1]]
    x0 = np.clip(x0, np.array(lower) + 1e-9, np.array(upper) - 1e-9)
    result = least_squares(lambda eta: tanh_form(v, eta) - y, x0, bounds=(lower, upper), x_scale="jac")
    dof = max(v.size - 4, 1)
    rss = float(np.sum(result.fun ** 2))
    try:
        cov = np.linalg.inv(result.jac.T @ result.jac) * rss / dof
        se = np.sqrt(np.clip(np.diag(cov), 0, None))
    except np.linalg.LinAlgError:
        se = np.full(4, np.inf)
    rms = float(np.sqrt(rss / v.size))
    if not result.success or not np.all(np.isfinite(se)):
        flags.append("fit_failed")
    if not -SWEEP_LIMIT_V <= result.x[2] <= SWEEP_LIMIT_V:
        flags.append("transition_outside")
    if rms > HIGH_RESIDUAL_V:
        flags.append("high_residual")
    return TransferFit(result.x, se, rms, hysteresis_v, int(v.size), tuple(flags))


def hysteresis(points: np.ndarray) -> float:
    """Largest |down - up| of the output at the levels both sweeps visit (1.9; every backward level of the
    reference plan is also a forward one). NaN when no level is shared."""
    forward, backward = points[points["direction"] == 1], points[points["direction"] < 0]
    up = {round(float(v), 6): float(y) for v, y in zip(forward["v_set"], forward["v_out"])}
    diffs = [abs(float(y) - up[round(float(v), 6)]) for v, y in zip(backward["v_set"], backward["v_out"])
             if round(float(v), 6) in up]
    return max(diffs) if diffs else np.nan


def fit_power(v_in: np.ndarray, power_w: np.ndarray, eta3: float, eta4: float) -> tuple[np.ndarray, np.ndarray, float]:
    """p1..p3 of ``P = p1 + p2 tanh((V - eta3) eta4) + p3 V^2``, their se and the rms residual (W)."""
    v, p = np.asarray(v_in, float), np.asarray(power_w, float)
    keep = np.isfinite(v) & np.isfinite(p)
    v, p = v[keep], p[keep]
    x = np.column_stack([np.ones_like(v), np.tanh((v - eta3) * eta4), v ** 2])
    coef, *_ = np.linalg.lstsq(x, p, rcond=None)
    resid = p - x @ coef
    dof = max(v.size - 3, 1)
    cov = np.linalg.pinv(x.T @ x) * float(resid @ resid) / dof
    return coef, np.sqrt(np.clip(np.diag(cov), 0, None)), float(np.sqrt(np.mean(resid ** 2)))
