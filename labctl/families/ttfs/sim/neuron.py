"""The membrane ODE of one layer, all neurons and patterns at once (contract 1.3, 1.5, 1.6).

For neuron i, until it fires (1.6, with the voltage-dependent row capacitance of 1.5):

    C_i(V) dV/dt = - k(V - E+) [S0E + S1E (V - E+)] + k(E- - V) [S0I + S1I (E- - V)] - I0 - I_leak,i
    C_i(V) = C_fixed,i + C_row,i (1 + alpha (V - V_REST)),   k(x) = 1 - exp(-x / V_K)

where S0E = sum of A_ij and S1E = sum of A_ij lambda_N,ij over the excitatory
sites whose row is on (inhibitory likewise), I0 the code-0 sites' currents:
summing the per-site law of 1.6 exactly. Every row switching on adds
``kappa`` to V (1.5). Between two row events the equation is autonomous; it
is stepped with an exponential Rosenbrock-Euler step (exact for a drive
linear in V, stable near the reversal potentials) of at most ``max_step_ns``,
and a threshold crossing inside a step is timed by Gauss-Legendre quadrature
of ``dt = dV / (dV/dt)`` over the crossed part of the step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_GL_X, _GL_W = np.polynomial.legendre.leggauss(6)


@dataclass(frozen=True)
class LayerDrive:
    """One layer's circuit at the operating point: per-row site arrays (rows x n) and per-neuron arrays (n)."""

    a_exc: np.ndarray  # A_ij of the excitatory branches (0 where not excitatory)
    lam_exc: np.ndarray  # A_ij lambda_N,ij
    a_inh: np.ndarray
    lam_inh: np.ndarray
    i_zero: np.ndarray  # code-0 sites' current with the row on (0 elsewhere)
    c_fixed: np.ndarray  # F
    c_row: np.ndarray  # F at V_REST
    cap_coeff: float  # 1/V
    v_rest: float
    e_exc: float  # the physical reversal potentials (pad + die offset)
    e_inh: float
    v_k: float
    leak: np.ndarray  # A out of the membrane, at the die temperature
    kappa: float  # V per row switching on


class RowSums:
    """The summed drive of the rows that are on, per pattern and neuron."""

    def __init__(self, shape):
        self.s0e, self.s1e, self.s0i, self.s1i, self.i0 = (np.zeros(shape) for _ in range(5))

    def add_rows(self, drive: LayerDrive, rows: np.ndarray, valid: np.ndarray) -> None:
        w = valid[:, None]
        self.s0e += drive.a_exc[rows] * w
        self.s1e += drive.lam_exc[rows] * w
        self.s0i += drive.a_inh[rows] * w
        self.s1i += drive.lam_inh[rows] * w
        self.i0 += drive.i_zero[rows] * w


def slope(drive: LayerDrive, sums: RowSums, v: np.ndarray, with_derivative: bool = False):
    """dV/dt in V/ns (and its derivative in V, 1/ns) of the membrane ODE above."""
    xe, xi = v - drive.e_exc, drive.e_inh - v
    ee = np.exp(-np.maximum(xe, -40 * drive.v_k) / drive.v_k)
    ei = np.exp(-np.maximum(xi, -40 * drive.v_k) / drive.v_k)
    line_e, line_i = sums.s0e + sums.s1e * xe, sums.s0i + sums.s1i * xi
    current = -(1.0 - ee) * line_e + (1.0 - ei) * line_i - sums.i0 - drive.leak
    cap = drive.c_fixed + drive.c_row * (1.0 + drive.cap_coeff * (v - drive.v_rest))
    f = 1e-9 * current / cap
    if not with_derivative:
        return f
    d_current = -(ee / drive.v_k) * line_e - (1.0 - ee) * sums.s1e - (ei / drive.v_k) * line_i - (1.0 - ei) * sums.s1i
    return f, 1e-9 * (d_current - current * drive.c_row * drive.cap_coeff / cap) / cap


def _crossing_time(drive, sums, v_from, v_th, rows, cols):
    """Time (ns) from ``v_from`` down to ``v_th`` under the constant drive of the selected entries (quadrature)."""
    sub = RowSums(v_from.shape)
    for name in ("s0e", "s1e", "s0i", "s1i", "i0"):
        setattr(sub, name, getattr(sums, name)[rows, cols])
    sub_drive = _select(drive, cols)
    half = 0.5 * (v_from - v_th)
    total = np.zeros_like(v_from)
    ok = np.ones(v_from.shape, dtype=bool)
    for x, w in zip(_GL_X, _GL_W):
        f = slope(sub_drive, sub, v_th + half * (1.0 + x))
        ok &= f < 0
        total += w * half / -np.where(f < 0, f, -1.0)
    return np.where(ok, total, np.inf)


def _select(drive: LayerDrive, cols: np.ndarray) -> LayerDrive:
    return LayerDrive(drive.a_exc, drive.lam_exc, drive.a_inh, drive.lam_inh, drive.i_zero, drive.c_fixed[cols],
                      drive.c_row[cols], drive.cap_coeff, drive.v_rest, drive.e_exc, drive.e_inh, drive.v_k,
                      drive.leak[cols], drive.kappa)


@dataclass
class Trajectory:
    """Recorded (t ns, V, dV/dt) of one pattern's neuron, for the probe path; jumps appear as repeated times."""

    layer: int
    pattern: int
    neuron: int
    t: list
    v: list
    f: list


def integrate_layer(drive: LayerDrive, row_on_ns: np.ndarray, v0: np.ndarray, v_th: np.ndarray, window_ns: float,
                    max_step_ns: float = 40.0, record: Trajectory | None = None) -> np.ndarray:
    """Threshold-crossing times (ns, inf: none before the window's end) of every neuron for every pattern.

    ``row_on_ns`` (patterns x rows): when each row switches on (inf: never);
    ``v0`` and ``v_th`` (patterns x neurons): start level and threshold.
    """
    n_pat, n = v0.shape
    order = np.argsort(row_on_ns, axis=1, kind="stable")
    t_sorted = np.take_along_axis(row_on_ns, order, axis=1)
    n_events = int((t_sorted < window_ns).sum(axis=1).max(initial=0))
    cross = np.where(v0 <= v_th, 0.0, np.inf)
    v, sums, t = v0.astype(float).copy(), RowSums((n_pat, n)), np.zeros(n_pat)
    _record(record, t, v, drive, sums)
    for e in range(n_events + 1):
        # a pattern whose events are over waits at its last one; the last pass takes every pattern to W
        t_next = np.where(t_sorted[:, e] < window_ns, t_sorted[:, e], t) if e < n_events else np.full(n_pat, window_ns)
        _advance(drive, sums, v, v_th, cross, t, t_next, max_step_ns, record)
        t = t_next
        if e < n_events:
            valid = t_sorted[:, e] < window_ns
            sums.add_rows(drive, order[:, e], valid)
            v += drive.kappa * valid[:, None]
            _record(record, t, v, drive, sums)
    return cross


def _advance(drive, sums, v, v_th, cross, t0, t1, max_step_ns, record) -> None:
    span = t1 - t0
    longest = float(span.max(initial=0.0))
    if longest <= 0.0:
        return
    n_sub = int(np.ceil(longest / max_step_ns))
    h = (span / n_sub)[:, None]
    for k in range(n_sub):
        live = np.isinf(cross)
        if not live.any() and record is None:
            return
        f, jac = slope(drive, sums, v, with_derivative=True)
        jh = jac * h
        phi = np.where(np.abs(jh) < 1e-9, h, np.expm1(jh) / np.where(jac == 0, 1.0, jac))
        v_new = v + f * phi
        hit = live & (v_new <= v_th)
        if hit.any():
            rows, cols = np.nonzero(hit)
            dt = _crossing_time(drive, sums, v[rows, cols], v_th[rows, cols], rows, cols)
            cross[rows, cols] = t0[rows] + k * h[rows, 0] + np.minimum(dt, h[rows, 0])
        v[...] = np.where(live, v_new, v)
        if record is not None:
            _record(record, t0 + (k + 1) * h[:, 0], v, drive, sums)


def _record(record: Trajectory | None, t, v, drive, sums) -> None:
    if record is None:
        return
    p, i = record.pattern, record.neuron
    record.t.append(float(t[p]))
    record.v.append(float(v[p, i]))
    record.f.append(float(slope(drive, sums, v)[p, i]))
