"""The vendor's branch-current law (contract 1.6) as characterisation needs it: shape factors and charge integrals.

A site's current at membrane voltage V is its verify-point current times a
shape factor ``F(V)`` normalised to 1 at V_REST (the verify point, 1.6):

    F_N(V) = k(V - E+) (1 + lambda_N (V - E+)) / [k(V_REST - E+) (1 + lambda_N (V_REST - E+))]
    F_P(V) = k(E- - V) (1 + lambda_P (E- - V)) / [k(E- - V_REST) (1 + lambda_P (E- - V_REST))]

with ``k(x) = 1 - exp(-x / V_K)``. A neuron driven by one excitatory source
of verify current I from V0 reaches V_th after ``C Q / I`` with the charge
integral ``Q = integral from V_th to V0 of dV / F_N(V)`` (contract 7, step 4):
every timing fit divides by it, so it lives here once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_GL_X, _GL_W = np.polynomial.legendre.leggauss(16)


def knee(x, v_k: float):
    """``1 - exp(-x / V_K)``, the weak-inversion saturation knee (1.6); bounded far below 0."""
    x = np.asarray(x, dtype=float)
    return -np.expm1(-np.maximum(x, -40.0 * v_k) / v_k)


def branch_shape(x, lam, v_k: float):
    """``(1 + lambda x) k(x)``: a branch's current over its A at drain-source voltage ``x`` (1.6)."""
    return (1.0 + np.asarray(lam) * np.asarray(x)) * knee(x, v_k)


def excitatory_factor(v, lam, e_exc: float, v_k: float, v_rest: float):
    """``F_N(V)``: the excitatory current at membrane ``v`` over its verify-point value (rails as at the write)."""
    return branch_shape(np.asarray(v) - e_exc, lam, v_k) / branch_shape(v_rest - e_exc, lam, v_k)


def inhibitory_factor(v, lam, e_inh: float, v_k: float, v_rest: float):
    """``F_P(V)``: the inhibitory current at membrane ``v`` over its verify-point value."""
    return branch_shape(e_inh - np.asarray(v), lam, v_k) / branch_shape(e_inh - v_rest, lam, v_k)


def charge_integral(v_start, v_th, lam, e_exc: float, v_k: float, v_rest: float):
    """``Q = integral from v_th to v_start of dV / F_N(V)`` (V), by 16-point Gauss-Legendre; broadcasts.

    A single excitatory source of verify current I takes ``C Q / I`` to pull a
    membrane from ``v_start`` down to ``v_th`` (contract 7, step 4).
    """
    v_start, v_th = np.asarray(v_start, dtype=float), np.asarray(v_th, dtype=float)
    half = 0.5 * (v_start - v_th)
    mid = 0.5 * (v_start + v_th)
    total = 0.0
    for x, w in zip(_GL_X, _GL_W):
        total = total + w / excitatory_factor(mid + half * x, lam, e_exc, v_k, v_rest)
    return half * total


@dataclass(frozen=True)
class ExcitatoryShape:
    """The excitatory branch's shape as measured (lambda_N, E+, V_K, V_REST), with standard errors.

    ``lam_site_sd`` is the relative spread of lambda per site: one site's lambda
    differs from the die mean by that much, which a single-source timing fit
    cannot tell from its neuron's capacitance.
    """

    lam: float
    e_exc: float
    v_k: float
    v_rest: float
    lam_se: float = 0.0
    lam_site_sd: float = 0.0
    e_exc_se: float = 0.0
    v_k_se: float = 0.0

    def factor(self, v):
        return excitatory_factor(v, self.lam, self.e_exc, self.v_k, self.v_rest)

    def charge(self, v_start, v_th, *, lam: float | None = None, e_exc: float | None = None,
               v_k: float | None = None):
        """:func:`charge_integral` at this shape (any constant overridden, for error propagation)."""
        return charge_integral(v_start, v_th, self.lam if lam is None else lam,
                               self.e_exc if e_exc is None else e_exc, self.v_k if v_k is None else v_k, self.v_rest)

    def charge_relative_se(self, v_start: float, v_th: float, *, sites: int = 0) -> float:
        """Relative standard error of Q from the shape's own errors and, when a drive runs through ``sites``
        sites, from their lambdas' spread about the die mean (averaged over the sites)."""
        q = float(self.charge(v_start, v_th))
        lam_sd = np.hypot(self.lam_se, self.lam * self.lam_site_sd / np.sqrt(sites) if sites else 0.0)
        terms = []
        for name, sd in (("lam", lam_sd), ("e_exc", self.e_exc_se), ("v_k", self.v_k_se)):
            if sd > 0:
                base = getattr(self, name)
                shifted = float(self.charge(v_start, v_th, **{name: base + sd}))
                terms.append((shifted - q) / q)
        return float(np.sqrt(np.sum(np.square(terms)))) if terms else 0.0
