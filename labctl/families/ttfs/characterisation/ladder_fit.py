"""The ladders' bit weights and I_LSB, and the column gains (contract 1.7; contract 7, steps 4 and 7).

A site's verify-point current is ``I_LSB w(|c|) g_i (1 + eps)`` with
``w(m)`` the ladder's bit weights summed over the bits of m (1.7). Only
products are observable: I_LSB times the mean column gain, and the bit
weights times I_LSB. The record's convention: the column gains have mean 1
over every neuron of the die, and ``I_LSB = (u_0 + u_1 + u_2 + u_3) / 15``
(code 15 carries exactly 15 I_LSB), so ``w_k = u_k / I_LSB``; the model
only ever uses the products, which are what the bench fixes.

The ladder comes from held rows (each matrix's bias row written at one
code on every column, for every code 1..15): the row's current is
``G_m w(c) I_LSB`` with ``G_m`` the sum of the column gains (times the
columns' mean eps, averaged over the row). One linear least-squares over
the codes of both matrices gives the four ``u_k``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BITS = 4
FULL_SCALE = (1 << BITS) - 1
OFF_LADDER_SIGMAS = 6.0
"""A site whose current sits this many robust standard deviations off its column's is not a gain: a cell that
did not take its code (1.9's stuck cells) or a broken site. The write residual (1.7) spreads sites by about
1.5 %, so a cell held at 4 of 10 steps is some 40 of them off."""


def bit_matrix(magnitudes: np.ndarray) -> np.ndarray:
    """(n, 4) 0/1: the bits of each magnitude."""
    m = np.asarray(magnitudes, dtype=np.int64)
    return ((m[:, None] >> np.arange(BITS)) & 1).astype(float)


@dataclass(frozen=True)
class LadderFit:
    """One polarity's ladder: I_LSB (A), the bit weights (steps), their errors, the fit's relative rms."""

    i_lsb_a: float
    i_lsb_se: float
    bit_weights: np.ndarray
    bit_se: np.ndarray
    rel_rms: float

    def current(self, magnitudes) -> np.ndarray:
        """The ladder's current (A) of each magnitude, at column gain 1."""
        return self.i_lsb_a * bit_matrix(np.atleast_1d(magnitudes)) @ self.bit_weights


def fit_ladder(magnitudes: np.ndarray, gain_sums: np.ndarray, current_a: np.ndarray) -> LadderFit:
    """Fit ``current = gain_sum x sum_k bit_k(m) u_k`` (relative errors, from the residuals)."""
    current_a = np.asarray(current_a, float)
    design = bit_matrix(magnitudes) * np.asarray(gain_sums, float)[:, None]
    w = 1.0 / np.abs(current_a)
    u, _, _, _ = np.linalg.lstsq(design * w[:, None], np.ones_like(current_a), rcond=None)
    rel = (design @ u - current_a) * w
    dof = max(len(current_a) - BITS, 1)
    s2 = max(float(rel @ rel) / dof, 1e-12)
    cov_u = np.linalg.inv((design * w[:, None]).T @ (design * w[:, None])) * s2
    i_lsb = u.sum() / FULL_SCALE
    # w_k = u_k / I_LSB: Jacobian of (I_LSB, w) in u
    jac_i = np.full(BITS, 1.0 / FULL_SCALE)
    jac_w = np.eye(BITS) / i_lsb - np.outer(u, jac_i) / i_lsb**2
    return LadderFit(float(i_lsb), float(np.sqrt(jac_i @ cov_u @ jac_i)), u / i_lsb,
                     np.sqrt(np.diag(jac_w @ cov_u @ jac_w.T)), float(np.sqrt(s2)))


@dataclass(frozen=True)
class ColumnGains:
    """Per-neuron column gains of one layer, normalised with the die's other layers (mean 1 over the die)."""

    gain: np.ndarray
    se: np.ndarray
    off_ladder: np.ndarray
    """Per site read, whether it was left out as off the ladder (OFF_LADDER_SIGMAS)."""


def off_ladder_sites(ratio: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Sites whose current over the ladder's lies far from their column's median: robust (median absolute
    deviation over the layer), so one stuck cell neither hides itself nor drags its column's gain."""
    median = np.zeros(len(ratio))
    for k in np.unique(columns):
        median[columns == k] = np.median(ratio[columns == k])
    resid = ratio - median
    scale = 1.4826 * np.median(np.abs(resid))
    return np.abs(resid) > OFF_LADDER_SIGMAS * max(scale, 1e-12)


def column_gains(site_current_a: np.ndarray, magnitudes: np.ndarray, columns: np.ndarray, n_columns: int,
                 ladder: LadderFit) -> ColumnGains:
    """Each column's gain: the mean of its sites' current over the ladder's, its error from their scatter.

    The scatter is the write residual eps (1.7, drawn alike for every site) and the readings, so it is
    pooled over the layer: a column's own dozen sites estimate it too loosely. Sites off the ladder
    (:func:`off_ladder_sites`) are left out.
    """
    ratio = np.asarray(site_current_a, float) / ladder.current(np.asarray(magnitudes))
    columns = np.asarray(columns)
    off = off_ladder_sites(ratio, columns)
    kept, kept_columns = ratio[~off], columns[~off]
    gain = np.array([kept[kept_columns == k].mean() for k in range(n_columns)])
    counts = np.array([(kept_columns == k).sum() for k in range(n_columns)])
    resid = kept - gain[kept_columns]
    pooled = np.sqrt(np.sum(resid**2) / max(len(kept) - n_columns, 1))
    return ColumnGains(gain, pooled / np.sqrt(counts), off)


def normalise_gains(layers: list[ColumnGains]) -> tuple[list[ColumnGains], float]:
    """Scale every layer's gains to mean 1 over the die; returns the scaled layers and the factor applied."""
    factor = 1.0 / float(np.concatenate([g.gain for g in layers]).mean())
    return [ColumnGains(g.gain * factor, g.se * factor, g.off_ladder) for g in layers], factor
