"""Fits of negative-weight probes (:mod:`labctl.families.cmna.characterisation.negative_probe`).

Each row's output at the switched levels is predicted from the line of its
MON readings (pilot and calibration levels) against its channel's code. Per
column, weighted least squares over the switched levels:
``MON_j = c + alpha X_j - sum_s beta_s (|code_s|/3) Y_s``. ``alpha`` is one
more sample of j's unit-weight response (through the K positive rows, like a
chain's); ``beta_s`` over 3/7 of j's unit response is a-/a+ of s through one
synapse. Levels where the column is (nearly) off are left out, then the fit is
redone. Columns fed by a row no line predicts (a stuck latch bit in the chains
below feeds it from a second channel) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.families.cmna.characterisation.chains import (
    ALIVE_FRACTION,
    MAX_RATIO_SAMPLE_REL_STD,
    MON_NOISE_FLOOR_A,
    PLAUSIBLE_RATIO,
    RatioEquations,
    UnitSample,
    line_or_none,
)
from labctl.families.cmna.characterisation.configurations import NEGATIVE_CODE, UNIT_CODE
from labctl.calibration.fit import Estimate, relative_sigma
from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.die_parameters import NOMINAL_W_LSB


@dataclass
class ProbeColumn:
    """One column's fit in a probe: its unit response and the negative rows' coefficients."""

    layer: int
    neuron: int
    unit: UnitSample
    rows: np.ndarray
    beta: np.ndarray
    beta_std: np.ndarray


def probe_columns(idx, config_id: int, params: dict, held: list[np.ndarray], chip: ChipDescription) -> list[ProbeColumn]:
    """Fit every column of a probe that has positive and negative rows."""
    matrix = int(params["matrix"])
    all_codes = np.asarray(params["channel_codes"], np.float64)
    channel_codes = all_codes[:, params["row_channels"]]
    lv_c, cols = idx.table(config_id, matrix + 1, chip.layer_sizes[matrix + 1])
    rows = np.zeros((len(lv_c), chip.layer_sizes[matrix]))
    read = np.zeros(rows.shape[1], bool)
    private, silent = _private_rows(held[:matrix], np.asarray(params["row_channels"]), all_codes.max(axis=0) > 0)
    for s in np.flatnonzero(private):
        levels, drive, current = idx.get(config_id, matrix, s)
        code = np.where(levels < 0, drive, channel_codes[np.maximum(levels, 0), s])
        line = line_or_none(code, current, relative_sigma(current, MON_NOISE_FLOOR_A))
        if line is not None:
            switched = channel_codes[lv_c, s]
            rows[:, s] = np.where(switched > 0, line.slope * switched + line.intercept, 0.0)
            read[s] = True
    h = held[matrix]
    pos = np.where(read[:, None] & (h > 0), h, 0).astype(np.float64) / UNIT_CODE
    neg = np.where(read[:, None] & (h < 0), -h, 0).astype(np.float64) / NEGATIVE_CODE
    unknown = np.any((h != 0) & ~(read | silent)[:, None], axis=0)  # a column fed by a row nobody predicts
    x = rows @ pos
    out = []
    for j in np.flatnonzero((pos.sum(axis=0) > 0) & (neg.sum(axis=0) > 0) & ~unknown):
        s_rows = np.flatnonzero(neg[:, j])
        y = cols[:, j]
        design = np.column_stack([np.ones(len(y)), x[:, j], -rows[:, s_rows] * neg[s_rows, j]])
        keep = np.isfinite(y)
        fit = None
        for _ in range(2):
            fit = _weighted_lstsq(design[keep], y[keep], relative_sigma(y[keep], MON_NOISE_FLOOR_A))
            if fit is None:
                break
            keep = np.isfinite(y) & (y > ALIVE_FRACTION * fit[0][1] * x[:, j])
        if fit is None or not fit[0][1] > 0:
            continue
        coef, cov = fit
        std = np.sqrt(np.clip(np.diag(cov), 0, None))
        out.append(ProbeColumn(matrix + 1, int(j), UnitSample(coef[1], std[1] / coef[1], float(pos[:, j].sum())),
                               s_rows, coef[2:], std[2:]))
    return out


def probe_equations(columns: list[ProbeColumn], layer_abs: list[Estimate], n_rows: int,
                    into: RatioEquations) -> None:
    """One a-/a+ equation per (column, switched negative row)."""
    for col in columns:
        unit = layer_abs[col.layer].value[col.neuron] * UNIT_CODE * NOMINAL_W_LSB
        if not np.isfinite(unit):
            continue
        scale = UNIT_CODE / (NEGATIVE_CODE * unit)
        for s, beta, beta_std in zip(col.rows, col.beta, col.beta_std):
            b, std = beta * scale, beta_std * scale
            if PLAUSIBLE_RATIO[0] <= b <= PLAUSIBLE_RATIO[1] and std / b <= MAX_RATIO_SAMPLE_REL_STD:
                weights = np.zeros(n_rows)
                weights[s] = 1.0
                into.weights.append(weights)
                into.values.append(float(b))
                into.stds.append(float(std))


def _private_rows(below: list[np.ndarray], row_channels: np.ndarray,
                  driven: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predictable, silent) rows of the probed layer. Predictable: the only driven input channel
    upstream is the row's own (a stuck latch bit in a chain below can feed a row from another
    channel too, and then no line predicts it). Silent: no driven channel upstream at all."""
    if not below:
        return driven[row_channels], ~driven[row_channels]
    reach = (driven[:, None] & np.eye(len(driven), dtype=bool)).astype(np.int64)
    for h in below:
        reach = ((reach @ (h != 0).astype(np.int64)) > 0).astype(np.int64)
    own = reach[row_channels, np.arange(len(row_channels))] > 0
    count = reach.sum(axis=0)
    return own & (count == 1), count == 0


def _weighted_lstsq(a: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Coefficients and covariance (scaled by the residual scatter), or None when not determined."""
    dof = len(y) - a.shape[1]
    varies = np.ptp(a[:, 1:], axis=0) > 0 if len(y) else np.zeros(a.shape[1] - 1, bool)
    if dof < 2 or not varies.all():
        return None
    aw, yw = a / sigma[:, None], y / sigma
    norm = np.linalg.norm(aw, axis=0)  # columns in A and a column of ones: scale before solving
    scaled = aw / norm
    if np.linalg.matrix_rank(scaled) < a.shape[1]:
        return None  # two switched rows moved together over the levels kept: not separable
    coef, *_ = np.linalg.lstsq(scaled, yw, rcond=None)
    r = yw - scaled @ coef
    cov = np.linalg.inv(scaled.T @ scaled) * max(float(r @ r) / dof, 1e-24) / np.outer(norm, norm)
    coef = coef / norm
    return coef, cov
