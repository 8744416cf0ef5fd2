"""Linear range: where each soma starts to compress, and how far characterisation drove it.

The contract promises linear somas up to "about 300 nA" of input and
compressive above. Characterisation plans every operating point below a
target well inside that, and checks the promise on the die itself. The
linear-range run of layer 0 (:meth:`Prober.linear_range`) drives each input
soma through EXT_IN beyond 300 nA; a soft-knee model fitted per soma to those
readings together with its EXT_IN sweep gives the onset of compression:

    MON = c + s * (x - e^2 / (q + e)),   e = max(0, x - x0)

linear up to the onset ``x0`` with a continuous slope there, and compressive
above with a free softness ``q`` (a generic saturating knee; ``q`` is not
assumed from any particular circuit).

A deeper soma can only be fed through synapses. Its linear-range run
(:func:`layer_knee`, :meth:`Prober.layer_linear_range`, opt-in on a large die)
feeds every soma of the layer from the same few somas of the layer below at +7,
those from a few of theirs and so on down to a few input channels, and steps
the common input code until the layer's median soma input is well beyond the
contract's onset, while the feeding somas stay in their own linear range. The
input of a probed soma at each level is not assumed but read: it is the sum of
its feeders' MON readings times their held codes times ``w_lsb``
(:func:`layer_onsets`). That scale carries the die-wide MON gain and the
column's mean synapse gain, so a deeper onset is good to a few per cent, on the
same scale as ``max_input`` (below), which is what the two are compared on.
Until its run, a layer's onsets are NaN and the other layers' onsets bound its
operating points (:func:`labctl.families.cmna.ratings.soma_input_limit_a`).

``max_input`` is the largest soma input any gain-measuring operating point
applied, per neuron: its largest MON reading over its measured gain (MON per A
of soma input; for deeper layers that gain includes the column's mean synapse
gain, so the estimate is good to a few per cent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from labctl.families.cmna.characterisation.configurations import UNIT_CODE, zero_codes
from labctl.calibration.fit import Estimate, fit_line, relative_sigma
from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.die_parameters import NOMINAL_W_LSB

LINEAR_RANGE_KIND = "linear_range"
MAX_ONSET_STD_A = 40e-9
"""An onset known worse than this is not a measurement."""
KNEE_FEEDERS = 12
"""Somas of the layer below that feed a deeper layer's linear-range run (all of a smaller layer):
enough that each stays far inside its own linear range while the probed somas pass theirs."""
KNEE_RELAYS = 2
"""Somas per layer further down that relay the drive to the feeders: gain 2 x 7/12 per layer, so
the input codes stay well above the bias offsets however deep the probed layer."""
LAYER_KNEE_TOP_A = 540e-9
"""Soma input the median soma of a deeper layer's linear-range run reaches: 1.8 x the contract's onset."""
LAYER_KNEE_LEVELS = 12
"""Drive levels of a deeper layer's linear-range run, evenly from 20 % to 100 % of its top code."""
LAYER_ONSET_SCALE_REL_STD = 0.025
"""Relative error of a deeper layer's input scale: the die-wide MON gain (2 %, contract section 1)
and the mean gain of the ``KNEE_FEEDERS`` code-7 synapses into the column (per-bit spread up to 8 %,
sqrt(21) / 7 of it for a code-7 synapse, over sqrt(12)), added to each onset's fit error."""
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
    if low.sum() < 3:  # no linear part to start from
        return float("nan"), float("nan")
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


@dataclass
class LayerKnee:
    """A deeper layer's linear-range run: signed codes per matrix (the shape chain runs use)."""

    layer: int
    codes: list[np.ndarray]


def layer_knee(chip: ChipDescription, layer: int) -> LayerKnee:
    """Every soma of ``layer`` fed at +7 by the same ``KNEE_FEEDERS`` somas of the layer below, each of
    those by the same ``KNEE_RELAYS`` of the layer below it, and so on down to the input channels;
    everything else zero."""
    codes = zero_codes(chip)
    feeders = [np.unique(np.linspace(0, n - 1, min(KNEE_FEEDERS if m == layer - 1 else KNEE_RELAYS, n))
                         .round().astype(int)) for m, n in enumerate(chip.layer_sizes[:layer])]
    for m in range(layer):
        targets = feeders[m + 1] if m + 1 < layer else np.arange(chip.layer_sizes[layer])
        codes[m][np.ix_(feeders[m], targets)] = UNIT_CODE
    return LayerKnee(layer, codes)


def layer_onsets(held_in: np.ndarray, feeder_mon: np.ndarray, soma_mon: np.ndarray) -> Estimate:
    """Onset per soma of a deeper layer from its linear-range run; NaN where none was seen.

    ``held_in`` are the signed codes the latches of the matrix into the layer
    held; ``feeder_mon`` (levels, rows) and ``soma_mon`` (levels, columns) the
    MON readings of its rows and columns per level, NaN where not read. A soma
    input is ``w_lsb * sum(code * feeder MON)`` at each level; a level where a
    connected feeder was not read gives no point, and a column with a negative
    connection (a stuck sign bit: its feeder's negative gain is unknown here)
    no onset.
    """
    cols = held_in.shape[1]
    value, std = np.full(cols, np.nan), np.full(cols, np.nan)
    connected = np.any(held_in != 0, axis=1)
    x = NOMINAL_W_LSB * feeder_mon[:, connected] @ held_in[connected].astype(np.float64)
    for j in np.flatnonzero(~np.any(held_in[connected] < 0, axis=0)):
        ok = np.isfinite(x[:, j]) & np.isfinite(soma_mon[:, j]) & (x[:, j] > 0)
        value[j], std[j] = fit_knee(x[ok, j], soma_mon[ok, j])
    return Estimate(value, np.hypot(std, LAYER_ONSET_SCALE_REL_STD * value))


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
