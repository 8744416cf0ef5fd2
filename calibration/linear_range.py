"""Linear range: where each soma starts to compress, and how far characterisation drove it.

The contract promises linear somas up to "about 300 nA" of input and
compressive above. Characterisation plans every operating point below a
target well inside that, and checks the promise on the die itself: the
linear-range run (:meth:`Prober.linear_range`) drives each layer-0 soma
through EXT_IN beyond 300 nA, and a soft-knee model fitted per soma to those
readings together with its EXT_IN sweep gives the onset of compression:

    MON = c + s * (x - e^2 / (q + e)),   e = max(0, x - x0)

linear up to the onset ``x0`` with a continuous slope there, and compressive
above with a free softness ``q`` (a generic saturating knee; ``q`` is not
assumed from any particular circuit). Deeper somas are fed only through
synapses, whose mismatch and the layer below's own compression would confound
the knee, so their onset is not measured (NaN); the layer-0 onsets bound every
operating point instead (:func:`operating_limit_a`).

``max_input`` is the largest soma input any gain-measuring operating point
applied, per neuron: its largest MON reading over its measured gain (MON per A
of soma input; for deeper layers that gain includes the column's mean synapse
gain, so the estimate is good to a few per cent).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import least_squares

from labctl.calibration.fit import Estimate, fit_line, relative_sigma

LINEAR_RANGE_KIND = "linear_range"
ONSET_MARGIN = 0.8
"""Operating points stay below this share of the lowest measured onset."""
MAX_ONSET_STD_A = 40e-9
"""An onset known worse than this is not a measurement."""
_NA = 1e-9


def knee_model(p: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The soft-knee response (x, p in nA: intercept, slope, onset, softness)."""
    c, s, x0, q = p
    e = np.maximum(x - x0, 0.0)
    return c + s * (x - e * e / (q + e))


def fit_knee(x_a: np.ndarray, y_a: np.ndarray, noise_floor_a: float = 1e-12) -> tuple[float, float]:
    """Onset of compression (A) and its standard error; NaN, NaN when the data show no knee.

    Starts from a grid over the onset (softness tied to it), then fits all
    four parameters; the error comes from the Jacobian scaled by the residual
    scatter. A knee at or beyond the last points, or known worse than
    ``MAX_ONSET_STD_A``, is no measurement.
    """
    x, y = np.asarray(x_a) / _NA, np.asarray(y_a) / _NA
    sigma = relative_sigma(y, noise_floor_a / _NA)
    if len(x) < 6 or np.ptp(x) <= 0:
        return float("nan"), float("nan")
    low = x <= 0.5 * x.max()
    line = fit_line(x[low], y[low], sigma[low])
    residual = lambda p: (knee_model(p, x) - y) / sigma
    grid = np.linspace(0.3 * x.max(), x.max(), 40)
    starts = [np.array([line.intercept, line.slope, x0, x0]) for x0 in grid]
    p0 = min(starts, key=lambda p: float(np.sum(residual(p) ** 2)))
    top = x.max()
    result = least_squares(residual, p0, bounds=([-np.inf, 0.0, 0.2 * top, 0.02 * top], [np.inf, np.inf, 2 * top, 20 * top]))
    dof = len(x) - 4
    if not result.success or dof < 1:
        return float("nan"), float("nan")
    jac = result.jac
    s2 = max(float(np.sum(result.fun ** 2)) / dof, 1e-12)
    try:
        cov = np.linalg.inv(jac.T @ jac) * s2
    except np.linalg.LinAlgError:
        return float("nan"), float("nan")
    onset, onset_std = result.x[2] * _NA, float(np.sqrt(max(cov[2, 2], 0.0))) * _NA
    beyond = np.sum(x > result.x[2] + 0.05 * top)
    if beyond < 2 or not onset_std < MAX_ONSET_STD_A:
        return float("nan"), float("nan")
    return float(onset), onset_std


def layer0_onsets(n_inputs: int, readings: dict[int, tuple[np.ndarray, np.ndarray]]) -> Estimate:
    """Onset per input channel from its EXT_IN readings (current, MON) of both runs; NaN where none."""
    value, std = np.full(n_inputs, np.nan), np.full(n_inputs, np.nan)
    for ch, (x, y) in readings.items():
        value[ch], std[ch] = fit_knee(x, y)
    return Estimate(value, std)


def max_inputs(mon: np.ndarray, gain_configs: np.ndarray, layer_gains: list[np.ndarray]) -> list[np.ndarray]:
    """Largest soma input (A) per neuron over the MON readings of ``gain_configs``; NaN if never read."""
    use = mon[np.isin(mon["config"], gain_configs)]
    out = []
    for l, gain in enumerate(layer_gains):
        peak = np.full(len(gain), -np.inf)
        sel = use[use["layer"] == l]
        np.maximum.at(peak, sel["neuron"].astype(int), sel["current_a"])
        out.append(np.where(np.isfinite(peak), peak / gain, np.nan))
    return out


def operating_limit_a(onsets: Estimate, target_a: float) -> float:
    """The soma input operating points may reach: the target, or less when a soma compresses early."""
    measured = onsets.value[np.isfinite(onsets.value)]
    return float(min(target_a, ONSET_MARGIN * measured.min())) if len(measured) else target_a
