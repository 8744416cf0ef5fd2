"""CellMap: the measured map from a cell's component values to its transfer and power (contract 1.4, 1.5, 2.3).

The authors learn a small network from 10,000 SPICE-simulated component sets
(seed 000); labctl measures ~14 ACT and ~13 NEG designs on a PNC-TS sample
instead, which identifies only a few coefficients per target. The form is
therefore linear in the logarithms of the components, per target:

    y_t = b_t0 + sum_j b_tj z_j,   z_j = (log c_j - mid_j) / half_j

with ``mid``/``half`` the centre and half-width of the printable range in log
space (contract 1.4/1.5, so coefficients are comparable between runs and a
design inside the ranges has |z| <= 1). ``eta4`` (> 0, spanning 5 to 105 /V)
and ``p1`` (the cell's mean power, > 0) are fitted in log. Each target is a
weighted ridge least-squares fit (weights 1/se^2 of the structure fits); the
ridge strength is chosen by weighted leave-one-out error (closed form via the
hat matrix), so 13 points can carry 8 coefficients without over-fitting, and
the leave-one-out residuals are reported as the map's held-out error.

Targets: ``V_out = +-(eta1 + eta2 tanh((V - eta3) eta4))`` (+ for ACT, - for
NEG) and the cell's supply + input power ``P(V) = p1 + p2 tanh((V - eta3)
eta4) + p3 V^2`` in W (contract 1.8).

Port targets (optional, PORT_TARGETS; contract 1.3 "rows driven by cell
outputs have a source resistance", 1.5 "the input is resistive"): the
Thevenin output resistance ``r_out_ohm`` around the operating point (both
kinds) and, for NEG only, its input line ``I_in = i_in0_a + V / r_in_ohm``
(the ACT input is an EGT gate). ``i_in0_a`` is needed besides ``r_in_ohm``
because a NEG input is not a resistor to GND: in the reference kit it ends
near VSS, so it already draws ~2 V / r_in at 0 V. A calibration that lacks a
port target has not measured it; ``has_target`` says so and ``ports``
returns the neutral value (0 ohm output, no input current: the unloaded
model of the authors). r_out, r_in and a positive i_in0 are fitted in log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch
from numpy.typing import NDArray

from labctl.errors import DataFileError
from labctl.families.printed.measured_region import MeasuredRegion, log_range
from labctl.families.printed.printable import ACT_COMPONENTS, CELL_COMPONENTS, NEG_COMPONENTS

__all__ = ["ACT_COMPONENTS", "NEG_COMPONENTS", "TARGETS", "PORT_TARGETS", "PORT_TARGETS_OF", "EXCESS_TARGETS",
           "CellMap", "fit_cell_map", "component_matrix"]

TARGETS: tuple[str, ...] = ("eta1", "eta2", "eta3", "eta4", "p1", "p2", "p3")
TARGET_UNITS: Mapping[str, str] = {"eta1": "V", "eta2": "V", "eta3": "V", "eta4": "1/V",
                                   "p1": "W", "p2": "W", "p3": "W/V^2"}
PORT_TARGETS: tuple[str, ...] = ("r_out_ohm", "r_in_ohm", "i_in0_a", "r_out_low_ohm")
"""Optional port targets, in the order ``CellMap.ports`` returns them (module docstring)."""
PORT_TARGETS_OF: Mapping[str, tuple[str, ...]] = {"ACT": ("r_out_ohm", "r_out_low_ohm"), "NEG": PORT_TARGETS}
"""Which port targets a kind has: the ACT input is an EGT gate (contract 1.3), so it has no input line."""
PORT_UNITS: Mapping[str, str] = {"r_out_ohm": "ohm", "r_in_ohm": "ohm", "i_in0_a": "A", "r_out_low_ohm": "ohm"}
NEUTRAL_PORTS: tuple[float, ...] = (0.0, float("inf"), 0.0, 0.0)
"""Port values when not measured: an ideal output and an input that draws nothing (the unloaded model).
An unmeasured ``r_out_low_ohm`` with a measured ``r_out_ohm`` takes its value (one resistance for both
output levels)."""
MIN_PORT_STRUCTURES = 2
"""A port target measured on fewer structures than this counts as not measured."""
EXCESS_TARGETS: tuple[str, ...] = ("eta1", "eta2", "eta3", "log eta4")
"""What a map's ``excess_sd`` spreads (V, V, V, and eta4 relative)."""
LOG_TARGETS = ("eta4", "p1", "r_out_ohm", "r_in_ohm", "i_in0_a", "r_out_low_ohm")
"""Targets fitted in log when every measurement is positive (they are by construction of the cells)."""
RIDGE_GRID = (0.0, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0)
"""Candidate ridge strengths (relative to unit-mean weights); the leave-one-out error picks one."""
MAX_LEVERAGE = 0.98
"""A candidate under which some structure's leverage exceeds this is not scored: that structure alone
sets its fit, so its left-out error (residual / (1 - h)) is undefined."""


def component_matrix(kind: str, components) -> NDArray[np.float64]:
    """(n, k) component values in ``CELL_COMPONENTS[kind]`` order from a Mapping, a structured array
    or an (n, k) array (columns already in that order)."""
    names = CELL_COMPONENTS[kind]
    if isinstance(components, Mapping):
        missing = [n for n in names if n not in components]
        if missing:
            raise ValueError(f"{kind} components lack {', '.join(missing)}")
        return np.column_stack([np.atleast_1d(np.asarray(components[n], dtype=float)) for n in names])
    arr = np.asarray(components)
    if arr.dtype.names:
        return np.column_stack([np.asarray(arr[n], dtype=float) for n in names])
    arr = np.atleast_2d(arr.astype(float))
    if arr.shape[-1] != len(names):
        raise ValueError(f"{kind} components need {len(names)} columns ({', '.join(names)}), got {arr.shape[-1]}")
    return arr


def map_features(kind: str, comps: NDArray) -> NDArray:
    """The map's regressors of (n, k) components: 1 and the normalised logs."""
    mid, half = log_range(kind)
    return np.column_stack([np.ones(len(comps)), (np.log(comps) - mid) / half])


@dataclass(frozen=True)
class TargetFit:
    """One target's fit: coefficients on [1, z], their covariance, ridge strength and errors."""

    coef: NDArray[np.float64]
    cov: NDArray[np.float64]
    ridge: float
    log: bool
    residual_rms: float
    loo_rms: float
    loo_rms_fitted: float = float("nan")
    """The held-out rms where the fit is made (log of the target when ``log``); NaN in older files."""


def _ridge_solve(x: NDArray, y: NDArray, w: NDArray, lam: float) -> tuple[NDArray, NDArray, NDArray]:
    """Weighted ridge (intercept not penalised): coefficients, A^-1 and the hat-matrix diagonal."""
    penalty = lam * np.eye(x.shape[1])
    penalty[0, 0] = 0.0
    a_inv = np.linalg.pinv(x.T @ (w[:, None] * x) + penalty)
    coef = a_inv @ (x.T @ (w * y))
    hat = np.einsum("ij,jk,ik->i", x, a_inv, x) * w
    return coef, a_inv, hat


def _best_ridge(x: NDArray, y: NDArray, w: NDArray) -> tuple:
    """(weighted LOO score, ridge, coef, A^-1, hat, LOO residuals) of the best ridge strength."""
    best = None
    for lam in RIDGE_GRID:
        coef, a_inv, hat = _ridge_solve(x, y, w, lam)
        if hat.max() > MAX_LEVERAGE and lam != RIDGE_GRID[-1]:
            continue  # a structure that alone sets its fit: its left-out error is undefined (1 - h ~ 0)
        loo = (y - x @ coef) / np.clip(1.0 - hat, 1e-6, None)
        score = float(np.sum(w * loo**2))
        if best is None or score < best[0] - 1e-12:
            best = (score, lam, coef, a_inv, hat, loo)
    return best


def _fit_target(x: NDArray, y: NDArray, se: NDArray, log: bool) -> TargetFit:
    """Weighted ridge fit of one target; ridge strength by weighted leave-one-out error."""
    if log:
        se, y_fit = se / y, np.log(y)
    else:
        y_fit = y
    good_se = se[np.isfinite(se) & (se > 0)]
    floor = np.median(good_se) if good_se.size else 1.0
    se = np.where(np.isfinite(se) & (se > 0), se, floor)
    w = 1.0 / se**2
    w_n = w / w.mean()
    _, lam, coef, a_inv, hat, loo = _best_ridge(x, y_fit, w_n)
    resid = y_fit - x @ coef
    dof = max(len(y) - float(hat.sum()), 1.0)
    scale = max(1.0, float(np.sum(w * resid**2)) / dof)  # measured scatter beyond the stated se widens the cov
    a_inv_w = a_inv / w.mean()  # back to the un-normalised weights
    cov = scale * a_inv_w @ (x.T @ (w[:, None] * x)) @ a_inv_w
    if log:
        resid_nat, loo_nat = y - np.exp(y_fit - resid), y - np.exp(y_fit - loo)
    else:
        resid_nat, loo_nat = resid, loo
    return TargetFit(coef, cov, lam, log, float(np.sqrt(np.mean(resid_nat**2))), float(np.sqrt(np.mean(loo_nat**2))),
                     float(np.sqrt(np.mean(loo**2))))


def fit_cell_map(kind: str, components, targets: Mapping[str, np.ndarray],
                 target_se: Mapping[str, np.ndarray]) -> "CellMap":
    """Fit the map of ``kind`` ("ACT" or "NEG") from measured structures (one row each; replicas are rows).

    ``components``: a Mapping name -> values, a structured array or an (n, k) array in component order;
    ``targets``/``target_se``: every name of TARGETS -> (n,) values and standard errors from the
    structures' sweep fits, plus any of the kind's PORT_TARGETS_OF that were measured (optional: absent,
    all-NaN or on fewer than MIN_PORT_STRUCTURES structures means not measured; NaN rows are left out).
    Needs at least as many structures as coefficients (k + 1) to be well posed; the ridge keeps fewer
    from failing but the leave-one-out error then says how little it knows.
    """
    if kind not in CELL_COMPONENTS:
        raise ValueError(f"cell kind {kind!r}: expected ACT or NEG")
    comps = component_matrix(kind, components)
    if np.any(~np.isfinite(comps)) or np.any(comps <= 0):
        raise ValueError(f"{kind} components must be finite and positive")
    x = map_features(kind, comps)
    fits = {}
    for t in TARGETS:
        y, se = _target_values(t, targets, target_se, len(comps))
        fits[t] = _fit_target(x, y, se, log=t in LOG_TARGETS and bool(np.all(y > 0)))
    fits.update(_port_fits(kind, x, targets, target_se))
    return CellMap(kind=kind, fits=fits, n_structures=len(comps), region=MeasuredRegion.of_structures(kind, comps))


def _target_values(t: str, targets: Mapping, target_se: Mapping, n: int) -> tuple[NDArray, NDArray]:
    """One target's (values, se) as float arrays of ``n`` structures; ValueError naming it otherwise."""
    if t not in target_se:
        raise ValueError(f"target {t}: values given without standard errors")
    y = np.asarray(targets[t], dtype=float)
    se = np.asarray(target_se[t], dtype=float)
    if y.shape != (n,) or se.shape != y.shape:
        raise ValueError(f"target {t}: expected {n} values and standard errors")
    return y, se


def _port_fits(kind: str, x: NDArray, targets: Mapping, target_se: Mapping) -> dict[str, TargetFit]:
    """Fits of the measured port targets (module docstring); the structures lacking one are left out."""
    fits = {}
    for t in PORT_TARGETS:
        if t not in targets:
            continue
        y, se = _target_values(t, targets, target_se, len(x))
        rows = np.isfinite(y)
        if t not in PORT_TARGETS_OF[kind]:
            if rows.any():
                raise ValueError(f"{kind} has no {t}: its input is an EGT gate (contract 1.3)")
            continue
        if rows.sum() < MIN_PORT_STRUCTURES:
            continue
        if t != "i_in0_a" and (np.any(y[rows] < 0) or (t == "r_in_ohm" and np.any(y[rows] == 0))):
            raise ValueError(f"target {t}: a resistance must be positive (an output's may be 0: ideal)")
        fits[t] = _fit_target(x[rows], y[rows], se[rows], log=bool(np.all(y[rows] > 0)))
    return fits


@dataclass(frozen=True)
class CellMap:
    """The fitted map of one cell kind; numpy ``predict`` and a differentiable torch forward share it."""

    kind: str
    fits: Mapping[str, TargetFit]
    n_structures: int
    region: MeasuredRegion | None = None
    """Where the fitted structures lie (measured_region): the map is trusted inside it; None if not recorded."""
    excess_sd: tuple[float, ...] | None = None
    """SD of a printed cell's (eta1, eta2, eta3, log eta4) beyond the run's eps on its designable components
    (parts of the kit the designer does not choose also spread; characterisation.variation); None: not
    measured (older files), no excess."""

    @property
    def cell_spread_sd(self) -> tuple[float, ...] | None:
        """What the model adds to each printed cell's (EXCESS_TARGETS) besides eps on its components: per
        target the larger of the excess spread and the map's held-out error. A design is printed where
        no structure was (the map's error there is unknown but real: NEG eta3 0.45 V held out on sim-7),
        and both are sample-to-sample draws to the model. (The held-out error also holds the replicas'
        own spread, so this errs on the wide side.) None for older files that store neither."""
        held_out = [self.fits[t].loo_rms_fitted for t in TARGETS[:len(EXCESS_TARGETS)]]  # log eta4: fitted in log
        if self.excess_sd is None and not np.any(np.isfinite(held_out)):
            return None
        excess = self.excess_sd or (0.0,) * len(EXCESS_TARGETS)
        return tuple(float(max(e, h if np.isfinite(h) else 0.0)) for e, h in zip(excess, held_out))
    _torch_cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def components(self) -> tuple[str, ...]:
        return CELL_COMPONENTS[self.kind]

    @property
    def residual_rms(self) -> dict[str, float]:
        """In-sample rms residual per target, in the target's unit (TARGET_UNITS, PORT_UNITS)."""
        return {t: f.residual_rms for t, f in self.fits.items()}

    @property
    def loo_rms(self) -> dict[str, float]:
        """Held-out (leave-one-out) rms residual per target: the map's error on an unseen design."""
        return {t: f.loo_rms for t, f in self.fits.items()}

    def _features(self, comps: NDArray) -> NDArray:
        return map_features(self.kind, comps)

    def predict(self, components) -> dict[str, NDArray[np.float64]]:
        """Target values for designs given as a Mapping name -> values (or an array; see component_matrix)."""
        x = self._features(component_matrix(self.kind, components))
        out = {}
        for t, f in self.fits.items():
            y = x @ f.coef
            out[t] = np.exp(y) if f.log else y
        return out

    def lowest_power_structure(self) -> NDArray[np.float64] | None:
        """Components of the fitted structure whose predicted mean power (p1) is lowest; None without a region.

        Power-aware training starts cells there (training): the measured region is a union of
        neighbourhoods, so a cell trained near one structure cannot walk to another that draws less."""
        if self.region is None:
            return None
        structures = self.region.structures()
        return structures[int(np.argmin(self.predict(structures)["p1"]))]

    def predict_se(self, components) -> dict[str, NDArray[np.float64]]:
        """Standard error of each prediction (coefficient covariance; delta method for log targets)."""
        x = self._features(component_matrix(self.kind, components))
        pred = self.predict(components)
        out = {}
        for t, f in self.fits.items():
            se = np.sqrt(np.einsum("ij,jk,ik->i", x, f.cov, x))
            out[t] = se * pred[t] if f.log else se
        return out

    def has_target(self, name: str) -> bool:
        """Whether the calibration measured ``name``: always for TARGETS, for PORT_TARGETS when fitted."""
        return name in self.fits

    @property
    def targets(self) -> tuple[str, ...]:
        """The fitted targets: TARGETS, then the measured port targets in PORT_TARGETS order."""
        return TARGETS + tuple(t for t in PORT_TARGETS if t in self.fits)

    def _torch_params(self, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """(mid, half, coef, log, measured, neutral) over TARGETS + PORT_TARGETS; unmeasured ports coef 0."""
        if dtype not in self._torch_cache:
            mid, half = log_range(self.kind)
            zero = np.zeros(len(self.components) + 1)
            fits = dict(self.fits)
            if "r_out_low_ohm" not in fits and "r_out_ohm" in fits:
                fits["r_out_low_ohm"] = fits["r_out_ohm"]   # one resistance for both levels (NEUTRAL_PORTS)
            names = TARGETS + PORT_TARGETS
            coef = np.stack([fits[t].coef if t in fits else zero for t in names])
            log = np.array([t in fits and fits[t].log for t in names])
            measured = np.array([t in fits for t in names])
            neutral = np.concatenate([np.zeros(len(TARGETS)), NEUTRAL_PORTS])
            self._torch_cache[dtype] = tuple(torch.as_tensor(a, dtype=dtype) for a in (mid, half, coef)) + (
                torch.as_tensor(log), torch.as_tensor(measured), torch.as_tensor(neutral, dtype=dtype))
        return self._torch_cache[dtype]

    def _evaluate(self, components: torch.Tensor, rows: slice) -> torch.Tensor:
        """The linear-in-log form for the targets ``rows`` of TARGETS + PORT_TARGETS; neutral if unmeasured."""
        mid, half, coef, log, measured, neutral = self._torch_params(components.dtype)
        coef, log, measured, neutral = coef[rows], log[rows], measured[rows], neutral[rows]
        z = (torch.log(components) - mid) / half
        y = coef[:, 0] + z @ coef[:, 1:].T
        y = torch.where(log, torch.exp(torch.where(log, y, torch.zeros_like(y))), y)  # no exp of a linear
        return torch.where(measured, y, neutral)      # target in ohm: its inf would make the gradient NaN

    def etas_and_power(self, components: torch.Tensor) -> torch.Tensor:
        """Differentiable map: components (..., k) in component order -> (..., 7) in TARGETS order."""
        return self._evaluate(components, slice(0, len(TARGETS)))

    def ports(self, components: torch.Tensor) -> torch.Tensor:
        """Differentiable port values (..., 3) in PORT_TARGETS order: r_out (ohm), r_in (ohm), i_in0 (A).

        A target the calibration lacks gives NEUTRAL_PORTS (0 ohm, inf ohm, 0 A), as does r_in/i_in0 of
        an ACT (a gate input): the unloaded model, so an older calibration predicts what it did before.
        """
        return self._evaluate(components, slice(len(TARGETS), None))

    def targets_and_ports(self, components: torch.Tensor) -> torch.Tensor:
        """``etas_and_power`` and ``ports`` in one evaluation: (..., 10), TARGETS then PORT_TARGETS."""
        return self._evaluate(components, slice(None))

    def write(self, group) -> None:
        """Store the map in an h5py group (attrs: kind, components, targets; one dataset per quantity).

        ``targets`` lists TARGETS then the measured port targets; an older reader that expects
        exactly TARGETS refuses a map with ports instead of misreading it.
        """
        names = self.targets
        group.attrs["kind"] = self.kind
        group.attrs["components"] = list(self.components)
        group.attrs["targets"] = list(names)
        group.attrs["target_units"] = [{**TARGET_UNITS, **PORT_UNITS}[t] for t in names]
        group.attrs["form"] = "y = b0 + sum_j b_j (log c_j - mid_j)/half_j over the printable ranges; " \
                              "exp(y) where fitted_in_log"
        group.attrs["n_structures"] = self.n_structures
        group["coef"] = np.stack([self.fits[t].coef for t in names])
        group["coef_cov"] = np.stack([self.fits[t].cov for t in names])
        group["ridge"] = np.array([self.fits[t].ridge for t in names])
        group["fitted_in_log"] = np.array([self.fits[t].log for t in names])
        group["residual_rms"] = np.array([self.fits[t].residual_rms for t in names])
        group["loo_rms"] = np.array([self.fits[t].loo_rms for t in names])
        group["loo_rms_fitted"] = np.array([self.fits[t].loo_rms_fitted for t in names])
        if self.region is not None:
            self.region.write(group)
        if self.excess_sd is not None:
            group.attrs["excess_sd"] = np.asarray(self.excess_sd, float)
            group.attrs["excess_sd_of"] = list(EXCESS_TARGETS)

    @classmethod
    def read(cls, group) -> "CellMap":
        """The map stored by ``write`` (with or without port targets); DataFileError naming the group if
        it is not one."""
        try:
            kind = str(group.attrs["kind"])
            names = tuple(str(t) for t in group.attrs["targets"])
            if kind not in CELL_COMPONENTS or names[:len(TARGETS)] != TARGETS or \
                    not set(names[len(TARGETS):]) <= set(PORT_TARGETS_OF[kind]):
                raise KeyError("targets")
            arrays = {k: group[k][()] for k in ("coef", "coef_cov", "ridge", "fitted_in_log", "residual_rms",
                                                 "loo_rms")}
            fitted = group["loo_rms_fitted"][()] if "loo_rms_fitted" in group else np.full(len(names), np.nan)
            n = int(group.attrs["n_structures"])
            region = MeasuredRegion.read(group, kind)
            excess = tuple(float(v) for v in group.attrs["excess_sd"]) if "excess_sd" in group.attrs else None
        except KeyError as exc:
            raise DataFileError(f"{group.file.filename}:{group.name}: not a printed cell map (lacks {exc})") from None
        fits = {t: TargetFit(arrays["coef"][i], arrays["coef_cov"][i], float(arrays["ridge"][i]),
                             bool(arrays["fitted_in_log"][i]), float(arrays["residual_rms"][i]),
                             float(arrays["loo_rms"][i]), float(fitted[i])) for i, t in enumerate(names)}
        return cls(kind=kind, fits=fits, n_structures=n, region=region, excess_sd=excess)
