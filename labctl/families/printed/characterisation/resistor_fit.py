"""Resistances of the resistor structures, the sheet resistances and the line-width bias (1.2, 2.3).

Each resistor of a chain is the slope of the voltage across it against the
chain current over the five drive levels (7), with an intercept that takes
the DMM offsets: ``R = d(V_upper - V_lower) / dI``. The upper node of the
first resistor is the Kelvin tap where there is one (L), else the computed
pad voltage (4.3, 2.4); the lower node of the last is GND.

Every measured resistor (H1, H2, L, R22, R23 and the three ID resistors read
at identification) then fits one model of the printer (1.2):
``R = R_s(layer) L / (W + dW)`` with one line-width bias dW for both inks
(one printer), on relative residuals ``R / model - 1`` (unbiased for the
uniform per-component variation of 1.6). The residual scatter is what eps
leaves, so the parameter se scale with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from labctl.families.printed.layout import Resistor, ResistorStructure

LAYERS = ("RH", "RL")


@dataclass(frozen=True)
class MeasuredResistor:
    """One resistor as measured, with its drawn geometry."""

    structure: str
    index: int
    drawn: Resistor
    r_ohm: float
    r_se_ohm: float


def chain_resistances(chain: ResistorStructure, rows: np.ndarray) -> list[MeasuredResistor]:
    """Every resistor of ``chain`` from its raw rows (:data:`.tables.RESISTOR_DTYPE`)."""
    current = rows["i_a"]
    if chain.kelvin_pad:
        upper = [rows["v_nodes"][:, 0]] + [rows["v_nodes"][:, 1 + i] for i in range(len(chain.taps))]
    else:
        upper = [rows["v_pad"]] + [rows["v_nodes"][:, 1 + i] for i in range(len(chain.taps))]
    lower = upper[1:] + [np.zeros_like(current)]
    measured = []
    for index, (resistor, top, bottom) in enumerate(zip(chain.resistors, upper, lower)):
        r, se = _slope(current, top - bottom)
        measured.append(MeasuredResistor(chain.id, index, resistor, r, se))
    return measured


def _slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of y on x with an intercept, and its standard error."""
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 2 or np.ptp(x) == 0:
        return np.nan, np.nan
    design = np.column_stack([x, np.ones_like(x)])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    dof = max(x.size - 2, 1)
    cov = np.linalg.pinv(design.T @ design) * float(resid @ resid) / dof
    return float(coef[0]), float(np.sqrt(max(cov[0, 0], 0.0)))


def ladder_resistances(resistances_ohm: Sequence[float], ladder: ResistorStructure) -> list[MeasuredResistor]:
    """The ID ladder's three resistors as identification read them (6.1); se: the 0.1 % shunt accuracy (4.3)."""
    return [MeasuredResistor(ladder.id, i, drawn, float(r), 1e-3 * float(r))
            for i, (drawn, r) in enumerate(zip(ladder.resistors, resistances_ohm))]


@dataclass(frozen=True)
class SheetFit:
    """R_s per layer (ohm/sq) and the line-width bias (um), with se; the model value of each resistor."""

    rh_ohm_sq: float
    rh_se: float
    rl_ohm_sq: float
    rl_se: float
    dw_um: float
    dw_se: float
    model_ohm: np.ndarray
    rel_residual: np.ndarray
    dof: int


def _model(params: np.ndarray, layer_index: np.ndarray, l_um: np.ndarray, w_um: np.ndarray) -> np.ndarray:
    sheets = np.exp(params[:2])[layer_index]
    return sheets * l_um / (w_um + params[2])


def fit_sheet_resistance(resistors: Sequence[MeasuredResistor], nominal: dict[str, float]) -> SheetFit:
    """R_s of RH and RL and one dW, from every measured resistor (module docstring)."""
    good = [r for r in resistors if np.isfinite(r.r_ohm) and r.r_ohm > 0]
    layer = np.array([LAYERS.index(r.drawn.layer) for r in good])
    l_um = np.array([r.drawn.l_um for r in good])
    w_um = np.array([r.drawn.w_um for r in good])
    r_ohm = np.array([r.r_ohm for r in good])
    x0 = np.array([np.log(nominal["RH"]), np.log(nominal["RL"]), 0.0])
    present = [LAYERS[i] in {r.drawn.layer for r in good} for i in range(2)]
    result = least_squares(lambda p: r_ohm / _model(p, layer, l_um, w_um) - 1.0, x0,
                           bounds=([-np.inf, -np.inf, -0.5 * w_um.min()], [np.inf, np.inf, 0.5 * w_um.min()]))
    dof = max(len(good) - 3, 1)
    s2 = float(np.sum(result.fun ** 2)) / dof
    cov = np.linalg.pinv(result.jac.T @ result.jac) * s2
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    sheets = np.exp(result.x[:2])
    model_all = np.array([_model(result.x, np.array([LAYERS.index(r.drawn.layer)]), np.array([r.drawn.l_um]),
                                 np.array([r.drawn.w_um]))[0] for r in resistors])
    rel = np.array([r.r_ohm for r in resistors]) / model_all - 1.0
    rh, rl = (float(sheets[i]) if present[i] else np.nan for i in range(2))
    return SheetFit(rh, rh * float(se[0]), rl, rl * float(se[1]), float(result.x[2]), float(se[2]),
                    model_all, rel, dof)
