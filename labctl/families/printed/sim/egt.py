"""Compact model of the printed n-type electrolyte-gated transistor (EGT) of process PNC-1.

The simulator needs its own transistor physics (contract 1.7: the compact
model belongs to the process kit and is not published), so that the cells'
transfer curves are *measured* to be tanh-like rather than defined so. The
model is a gate-referenced EKV-style charge interpolation, the form used for
printed In2O3 EGTs:

    i(v) = ln(1 + exp(v / (2 n phi_t)))^2
    I_D  = 2 n beta phi_t^2 [i(V_GS - V_T) - i(V_GD - V_T)] * clm(V_DS)
    beta = mu_C * W / L,   clm = 1 + lambda (sqrt(V_DS^2 + v_s^2) - v_s)

- below threshold ``ln(1+e^x) ~ e^x`` gives exponential conduction with a
  subthreshold swing of ``n phi_t ln 10`` per decade;
- above threshold ``ln(1+e^x) ~ x`` gives the square law
  ``beta/(2n) (V_GS - V_T)^2`` in saturation and the triode parabola below;
- swapping source and drain swaps the two ``i`` terms and keeps ``clm``, so
  ``I_D(S, D) = -I_D(D, S)``: the device is symmetric, as a printed EGT is;
- every term is smooth (``sqrt(V_DS^2 + v_s^2)`` replaces ``|V_DS|``), so the
  current has continuous derivatives of every order, which a Newton solve and
  a later gradient-based fit both need.

Material parameters are per print run (contract 1.6: threshold, mobility and
electrolyte capacitance belong to the run); W and L are per device and carry
the printing variation. :class:`EgtDevice` also has hooks for per-device
threshold and mobility offsets (zero by default: contract 1.6 adds no other
spread; the hooks are for non-idealities such as bias stress).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

BOLTZMANN_OVER_Q = 8.617333262e-5  # V/K


@dataclass(frozen=True)
class EgtMaterial:
    """Per-run EGT material: what every transistor printed in one run shares.

    ``mu_c`` is the mobility times the electrolyte's double-layer capacitance
    (A/V^2): EGTs have a huge gate capacitance (uF/cm^2) and a modest mobility,
    hence mA at 1 V from W/L ~ 10. ``v_t`` is the threshold (V), ``n`` the
    subthreshold slope factor (swing ``n phi_t ln 10``, about 90 mV/dec for 1.5),
    ``lam`` the channel-length modulation (1/V) and ``v_smooth`` the voltage
    below which ``|V_DS|`` is rounded in it.
    """

    v_t: float = 0.30
    mu_c: float = 4.0e-6
    n: float = 1.5
    lam: float = 0.05
    temperature_k: float = 300.0
    v_smooth: float = 0.01

    @property
    def phi_t(self) -> float:
        """Thermal voltage kT/q in V."""
        return BOLTZMANN_OVER_Q * self.temperature_k


@dataclass(frozen=True)
class EgtDevice:
    """One printed transistor: drawn-and-printed geometry plus per-device hooks.

    ``w_um`` and ``l_um`` are the printed channel width and length (um).
    ``dv_t`` (V) and ``mu_factor`` shift this device away from the run's
    material; they default to none, as contract 1.6 states no such spread.
    """

    w_um: float
    l_um: float
    dv_t: float = 0.0
    mu_factor: float = 1.0

    def beta(self, material: EgtMaterial) -> float:
        """Transconductance parameter mu_C W/L (A/V^2) of this device."""
        return material.mu_c * self.mu_factor * self.w_um / self.l_um


def channel_current(beta: ArrayLike, v_t: ArrayLike, material: EgtMaterial, v_g: ArrayLike, v_d: ArrayLike,
                    v_s: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64],
                                             NDArray[np.float64]]:
    """Drain current (A) and its partials by ``v_g, v_d, v_s`` (S) for arrays of devices.

    ``beta`` (A/V^2) and ``v_t`` (V, threshold including any per-device shift)
    broadcast against the terminal voltages, so a whole circuit's transistors
    over a batch of operating points are one call (the circuit solver's inner
    loop). Partials are analytic and sum to zero: only voltage differences matter.
    """
    vg, vd, vs = (np.asarray(v, dtype=float) for v in (v_g, v_d, v_s))
    b, vt = np.asarray(beta, dtype=float), np.asarray(v_t, dtype=float)
    scale = 2.0 * material.n * material.phi_t
    prefactor = 2.0 * material.n * b * material.phi_t ** 2
    xf, xr = (vg - vs - vt) / scale, (vg - vd - vt) / scale
    lf, lr = np.logaddexp(0.0, xf), np.logaddexp(0.0, xr)
    f, r = lf * lf, lr * lr
    df = 2.0 * lf / (1.0 + np.exp(-xf)) / scale
    dr = 2.0 * lr / (1.0 + np.exp(-xr)) / scale
    vds = vd - vs
    root = np.sqrt(vds * vds + material.v_smooth ** 2)
    clm = 1.0 + material.lam * (root - material.v_smooth)
    dclm = material.lam * vds / root
    current = prefactor * (f - r) * clm
    d_g = prefactor * (df - dr) * clm
    d_d = prefactor * (dr * clm + (f - r) * dclm)
    return current, d_g, d_d, -(d_g + d_d)


def drain_current(device: EgtDevice, material: EgtMaterial, v_g: ArrayLike, v_d: ArrayLike,
                  v_s: ArrayLike) -> NDArray[np.float64]:
    """Current into the drain terminal (A) at terminal voltages ``v_g, v_d, v_s`` (V).

    Positive when it flows drain to source through the channel. Broadcasts.
    """
    return channel_current(device.beta(material), material.v_t + device.dv_t, material, v_g, v_d, v_s)[0]


def drain_current_partials(device: EgtDevice, material: EgtMaterial, v_g: ArrayLike, v_d: ArrayLike,
                           v_s: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Partial derivatives of :func:`drain_current` by ``v_g``, ``v_d``, ``v_s`` (S).

    Analytic, so that Newton steps and small-signal gains need no finite
    differences. They sum to zero: only voltage differences matter.
    """
    _, d_g, d_d, d_s = channel_current(device.beta(material), material.v_t + device.dv_t, material, v_g, v_d, v_s)
    return d_g, d_d, d_s
