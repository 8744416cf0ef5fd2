"""Deeper layers from chain configurations, modelled on the codes the latches held.

A neuron j of layer m+1 in a chain configuration sums its column:
``MON_j = a_j * (1/12) * sum_i code_ij * g_ij * MON_i`` (sources read on MON,
negative codes through a-). The analysis builds that sum from the codes the
latches *held* (read back when the configuration was written), not from the
plan, so a stuck latch bit is modelled instead of spoiling the column: a bit
stuck at 0 shortens a source's code, a bit stuck at 1 adds a connection from a
row that is driven and read anyway. Rows without MON readings carry no signal
(undriven input channels). Only a stuck sign bit on a positive connection
(the column then mixes a- into its positive response) leaves a column out.

Positive configurations give ``a_j * mean g`` over the K rows feeding j (one
sample of the column's unit synapse gain per row). A negative twin adds N rows
at -3; with every input at a common code their responses cannot be told apart
within one configuration, so each column gives one equation on the weighted
mean of a-/a+ over its negative rows, and a joint weighted least-squares fit
over all twins separates the rows (:func:`solve_ratios`), with the synapse
mismatch of the negative connections as a fitted error term so that the
standard errors stay honest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from labctl.families.cmna.characterisation.configurations import NEGATIVE_CODE, UNIT_CODE
from labctl.calibration.fit import Estimate, LineFit, fit_line, relative_sigma
from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.die_parameters import NOMINAL_W_LSB

MON_NOISE_FLOOR_A = 1e-12
PLAUSIBLE_RATIO = (0.4, 2.5)
"""a-/a+ outside this is a failed fit, not a soma (the contract's spread is 5 to 15 %)."""
MAX_RATIO_SAMPLE_REL_STD = 0.2
"""A negative-weight equation whose own fit is worse than 20 % carries no information."""
OUTLIER_SIGMAS = 4.0
"""An a-/a+ equation this far from the joint fit is left out of it."""
ALIVE_FRACTION = 0.15
"""Below this share of its positive-only response a column is (nearly) off and tells nothing."""


@dataclass
class UnitSample:
    """One configuration's estimate of ``a_j * mean g`` (the column's unit-weight response)."""

    slope: float
    rel_std: float
    rows: float
    """Synapses it averages (sum of held positive codes / 7)."""


@dataclass
class RatioEquations:
    """Per layer: ``b = sum_s w_s rho_s`` for every usable (negative configuration, column)."""

    weights: list[np.ndarray] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    stds: list[float] = field(default_factory=list)


def line_or_none(x: np.ndarray, y: np.ndarray, sigma: np.ndarray | None) -> LineFit | None:
    """A line fit, or None with too few points or no spread in x."""
    if len(x) < 3 or np.ptp(x) <= 0:
        return None
    return fit_line(x, y, sigma)


def layer_tables(idx, config_id: int, chip: ChipDescription, m: int):
    """MON of layers m and m+1 at the levels both were read: (rows (L, n_m) zero where unread, read
    mask per row, columns (L, n_m+1) NaN where unread)."""
    lv_r, rows = idx.table(config_id, m, chip.layer_sizes[m])
    lv_c, cols = idx.table(config_id, m + 1, chip.layer_sizes[m + 1])
    common, ir, ic = np.intersect1d(lv_r, lv_c, return_indices=True)
    rows, cols = rows[ir], cols[ic]
    read = np.all(np.isfinite(rows), axis=0) if len(common) else np.zeros(rows.shape[1], bool)
    return np.where(read, np.nan_to_num(rows), 0.0), read, cols


def unit_samples(idx, config_id: int, held: list[np.ndarray], chip: ChipDescription) -> dict[tuple[int, int], UnitSample]:
    """Per (layer, neuron) of a positive chain configuration: slope of MON_j against its held column sum."""
    out = {}
    for m, h in enumerate(held):
        rows, read, cols = layer_tables(idx, config_id, chip, m)
        pos = np.where(read[:, None] & (h > 0), h, 0).astype(np.float64) / UNIT_CODE
        mixed = np.any(read[:, None] & (h < 0), axis=0)
        x = rows @ pos
        for j in np.flatnonzero((pos.sum(axis=0) > 0) & ~mixed):
            y = cols[:, j]
            ok = np.isfinite(y)
            f = line_or_none(x[ok, j], y[ok], relative_sigma(y[ok], MON_NOISE_FLOOR_A))
            if f and f.slope > 0:
                out[(m + 1, int(j))] = UnitSample(f.slope, f.relative_slope_std, float(pos[:, j].sum()))
    return out


def ratio_equations(idx, config_id: int, held: list[np.ndarray], chip: ChipDescription,
                    twin: dict[tuple[int, int], UnitSample], layer_abs: list[Estimate],
                    into: list[RatioEquations]) -> None:
    """Add one equation per column of a negative configuration to ``into`` (one entry per matrix).

    ``D = rho_j X_j - MON_j`` (the shortfall against the positive-only response
    predicted by the twin's slope rho_j) equals ``a_j (3/12) sum_s g_sj
    (a-/a+)_s MON_s``: its slope against ``S = sum_s (|code|/3) MON_s``, over
    3/7 of j's unit response, is the S-weighted mean of a-/a+ over the rows s.
    """
    for m, h in enumerate(held):
        rows, read, cols = layer_tables(idx, config_id, chip, m)
        pos = np.where(read[:, None] & (h > 0), h, 0).astype(np.float64) / UNIT_CODE
        neg = np.where(read[:, None] & (h < 0), -h, 0).astype(np.float64) / NEGATIVE_CODE
        x, s = rows @ pos, rows @ neg
        for j in np.flatnonzero((pos.sum(axis=0) > 0) & (neg.sum(axis=0) > 0)):
            sample = twin.get((m + 1, int(j)))
            unit = layer_abs[m + 1].value[j] * UNIT_CODE * NOMINAL_W_LSB
            if sample is None or not np.isfinite(unit):
                continue
            y = cols[:, j]
            predicted = sample.slope * x[:, j]
            alive = np.isfinite(y) & (y > ALIVE_FRACTION * predicted)
            d = predicted - y
            sigma = relative_sigma(y, MON_NOISE_FLOOR_A) + relative_sigma(predicted, MON_NOISE_FLOOR_A)
            f = line_or_none(s[alive, j], d[alive], sigma[alive]) if alive.sum() >= 3 else None
            if f is None or f.relative_slope_std > MAX_RATIO_SAMPLE_REL_STD:
                continue
            b = f.slope * UNIT_CODE / (NEGATIVE_CODE * unit)
            if not PLAUSIBLE_RATIO[0] <= b <= PLAUSIBLE_RATIO[1]:
                continue
            share = rows[alive].sum(axis=0) * neg[:, j] / s[alive, j].sum()
            into[m].weights.append(share)
            into[m].values.append(b)
            into[m].stds.append(f.slope_std * UNIT_CODE / (NEGATIVE_CODE * unit))


def solve_ratios(eq: RatioEquations, n: int, iterations: int = 6) -> Estimate:
    """a-/a+ per row from the equations of one layer by weighted least squares.

    An equation's error is its fit's standard error plus the mismatch of the
    negative synapses it averages, ``tau * b * sqrt(sum w^2)`` (both relative, taken at the fitted
    ``b`` rather than the measured one, which would weight low values up and bias the fit); ``tau`` is found
    from the residuals (method of moments), so the covariance describes the
    real scatter. Rows no equation constrains (or that the design cannot
    separate) are NaN.
    """
    value, std = np.full(n, np.nan), np.full(n, np.nan)
    if not eq.values:
        return Estimate(value, std)
    a = np.array(eq.weights)
    b, s_meas = np.array(eq.values), np.array(eq.stds)
    seen = np.flatnonzero(a.any(axis=0))
    a = a[:, seen]
    ssq = (a ** 2).sum(axis=1)
    tau2 = 0.05 ** 2
    keep = np.ones(len(b), bool)
    # errors scale with the value; taken from the measured b they would favour low b (a bias),
    # so they are scaled to the fit's prediction, starting from the median
    pred = np.full(len(b), np.median(b))
    for it in range(iterations):
        s_fit = s_meas * pred / b
        var = s_fit ** 2 + tau2 * pred ** 2 * ssq
        w = keep / var
        normal = a.T @ (w[:, None] * a)
        cov = np.linalg.pinv(normal, rcond=1e-10, hermitian=True)
        x = cov @ (a.T @ (w * b))
        pred = np.clip(a @ x, 0.5 * b.min(), None)
        r = b - pred
        dof = int(keep.sum()) - len(seen)
        if dof <= 0:
            break
        tau2 = max(0.0, (float(r[keep] @ r[keep]) * keep.sum() / dof - float(s_fit[keep] @ s_fit[keep]))
                   / float((pred[keep] ** 2 * ssq[keep]).sum()))
        if it >= 1:  # a gross outlier (a column spoilt in a way the model does not know) would drag its rows
            keep = np.abs(r) / np.sqrt(var) < OUTLIER_SIGMAS
    var = np.diag(cov)
    # a row is separable when the design leaves none of its value to the null space
    ok = np.abs(np.diag(cov @ normal) - 1.0) < 1e-6
    value[seen[ok]] = x[ok]
    std[seen[ok]] = np.sqrt(np.clip(var[ok], 0, None))
    return Estimate(value, std)
