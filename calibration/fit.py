"""Pure fits for characterisation: straight lines with standard errors, log-domain
path products, per-layer normalisation.

Each returns parameters *with* standard errors, because a gain without its
uncertainty cannot be compared between methods or trusted by the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LineFit:
    """y = slope * x + intercept, least squares, with standard errors from the residuals."""

    slope: float
    intercept: float
    slope_std: float
    intercept_std: float
    rms_residual: float
    n: int

    @property
    def relative_slope_std(self) -> float:
        return abs(self.slope_std / self.slope) if self.slope else np.inf


def fit_line(x: np.ndarray, y: np.ndarray, sigma: np.ndarray | None = None) -> LineFit:
    """Least-squares line; weighted by 1/sigma^2 when the reading errors are known.

    Readings whose noise is relative (SMU readings, section 1: 0.2 to 1 % of
    reading) carry far more information about the intercept at low levels;
    weighting uses that. Standard errors always come from the residual scatter,
    so a wrong noise model changes the weights, not the honesty of the errors.
    Needs at least 3 points.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    n = len(x)
    if n < 3:
        raise ValueError(f"a line fit needs at least 3 points, got {n}")
    w = None if sigma is None else 1.0 / np.asarray(sigma, np.float64)
    (slope, intercept), cov = np.polyfit(x, y, 1, w=w, cov="unscaled")
    resid = (y - (slope * x + intercept)) * (1.0 if w is None else w)
    dof = max(n - 2, 1)
    s2 = float(resid @ resid) / dof
    # guard against a perfect fit (noise-free data): keep a tiny floor, never zero
    s2 = max(s2, 1e-24 if w is not None else (1e-12 * float(np.max(np.abs(y)) or 1.0)) ** 2)
    rms = float(np.sqrt(np.mean((y - (slope * x + intercept)) ** 2)))
    return LineFit(float(slope), float(intercept), float(np.sqrt(cov[0, 0] * s2)),
                   float(np.sqrt(cov[1, 1] * s2)), rms, n)


def relative_sigma(y: np.ndarray, floor: float) -> np.ndarray:
    """Noise model of a reading: proportional to the reading, with an absolute floor."""
    return np.abs(np.asarray(y, np.float64)) + floor


@dataclass(frozen=True)
class Estimate:
    """A per-neuron value and its standard error (NaN where not observed)."""

    value: np.ndarray
    std: np.ndarray


def log_mean(samples: list[list[float]], sizes: int, rel_errors: list[list[float]] | None = None,
             population: int | None = None) -> Estimate:
    """Geometric mean per neuron over repeated estimates through different sources.

    ``samples[i]`` holds every estimate of neuron i, each through another
    source synapse (seed 004, section 3.6: averaging over sources averages the
    synapse mismatch out). The error has two parts: the reading noise of the
    estimates (``rel_errors``, relative) and the sampling of the column: with
    K of the column's ``population`` synapses sampled, the scatter between
    sources contributes scatter/sqrt(K) * sqrt(1 - K/population) (finite
    population: when every source of the column was used, the column mean is
    known exactly and only reading noise is left). With one estimate and no
    reading error the error is unknown (NaN).
    """
    value = np.full(sizes, np.nan)
    std = np.full(sizes, np.nan)
    for i, s in enumerate(samples):
        s = np.asarray(s, np.float64)
        good = (s > 0) & np.isfinite(s)
        if not good.any():
            continue
        logs = np.log(s[good])
        k = len(logs)
        value[i] = np.exp(logs.mean())
        var = 0.0
        known = False
        if rel_errors is not None:
            e = np.asarray(rel_errors[i], np.float64)[good]
            var += float(np.sum(e ** 2)) / k ** 2
            known = True
        if k > 1:
            fpc = 1.0 if population is None else max(0.0, 1.0 - k / population)
            var += logs.var(ddof=1) / k * fpc
            known = True
        if known:
            std[i] = value[i] * np.sqrt(var)
    return Estimate(value, std)


def normalise_mean_one(est: Estimate) -> tuple[Estimate, float]:
    """Scale so the layer's finite values have mean 1 (paper section 3.3); return the scale."""
    finite = np.isfinite(est.value)
    if not finite.any():
        return est, float("nan")
    scale = float(np.mean(est.value[finite]))
    return Estimate(est.value / scale, est.std / scale), scale


def fit_path_products(paths: np.ndarray, log_slopes: np.ndarray, layer_sizes: tuple[int, ...]) -> Estimate:
    """Per-node gains from path products (the network method's joint fit).

    A path visits one node per layer; its measured slope is the product of the
    node gains (and synapse factors, which act as noise). In the log domain that
    is linear: log S_p = sum_l u[l, node_l(p)] + c. The gauge (a constant per
    layer, trading between layers) is fixed by centring each layer; only
    relative gains within a layer are observable (seed 004, section 1.2).

    paths: (P, L) node index per layer (-1 = not on the path); log_slopes: (P,).
    Returns per-node relative gains flattened layer by layer, with standard
    errors from the residual scatter; nodes the design cannot separate (too few
    paths through them) are NaN rather than a made-up value.
    """
    offsets = np.concatenate([[0], np.cumsum(layer_sizes)])
    n_nodes = int(offsets[-1])
    a = np.zeros((len(paths), n_nodes))
    for p, nodes in enumerate(paths):
        for l, node in enumerate(nodes):
            if node >= 0:
                a[p, offsets[l] + node] = 1.0
    seen = a.any(axis=0)
    # centring projector per layer (over observed nodes only)
    centre = np.eye(n_nodes)
    for l in range(len(layer_sizes)):
        idx = np.arange(offsets[l], offsets[l + 1])
        idx = idx[seen[idx]]
        if len(idx):
            centre[np.ix_(idx, idx)] -= 1.0 / len(idx)
    pinv = np.linalg.pinv(a[:, seen], rcond=1e-10)
    u_seen = pinv @ log_slopes
    resid = log_slopes - a[:, seen] @ u_seen
    rank = np.linalg.matrix_rank(a[:, seen])
    dof = max(len(log_slopes) - rank, 1)
    s2 = float(resid @ resid) / dof
    u = np.zeros(n_nodes)
    u[seen] = u_seen
    cov_full = np.zeros((n_nodes, n_nodes))
    cov_full[np.ix_(seen, seen)] = (pinv @ pinv.T) * s2
    u = centre @ u
    cov = centre @ cov_full @ centre.T
    # a node is identifiable when no direction of the design's null space (beyond the
    # per-layer gauge, which centring removes) moves its centred value
    _, _, vt = np.linalg.svd(a[:, seen], full_matrices=True)
    null_seen = vt[rank:].T
    if null_seen.size:
        null = np.zeros((n_nodes, null_seen.shape[1]))
        null[seen] = null_seen
        seen = seen & (np.linalg.norm(centre @ null, axis=1) < 1e-8)
    value = np.where(seen, np.exp(u), np.nan)
    std = np.where(seen, value * np.sqrt(np.clip(np.diag(cov), 0, None)), np.nan)
    return Estimate(value, std)
