"""Fit the supply-current model to the supply run's readings (issue 14, contract section 1).

The model (:class:`~labctl.families.cmna.die_parameters.SupplyModel`) is
``I = quiescent + soma * S + drive * D + synapse * Y``, with S, D, Y the soma,
driver and synapse branch currents of each state as the measured die's model
computes them (:func:`~labctl.families.cmna.training.power_model.state_branch_currents_a`,
from the fitted gains, the latches as read back and the DAC codes). The branch
currents are physical currents: no coefficient can be negative, so the fit is
a non-negative weighted least-squares fit.

A reading's noise is a share of the whole current (contract: 0.2 to 1 % of
reading), the same share for every state; a few readings per state cannot
estimate their own scatter, so the share is pooled over all states and each
state is weighted by its current. The last third of the configurations is never
fitted: the relative residuals of the prediction there say how well the model
predicts states it has not seen, which is what training asks of it.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from labctl.families.cmna.characterisation.plans import held_codes
from labctl.families.cmna.die_parameters import DieParameters, SupplyModel
from labctl.families.cmna.storage import RawTables, SupplyTables
from labctl.families.cmna.training.power_model import state_branch_currents_a

HELD_OUT_SHARE = 1.0 / 3.0
"""Share of the configurations (the last ones) kept out of the fit to test the prediction."""


def recorded_supply_model(params: DieParameters, raw: RawTables) -> SupplyModel | None:
    """The supply model fitted to a file's finished supply configurations; None where it has none (a file
    written before issue 14, a run by the network method, or one interrupted before the supply run)."""
    if raw.supply is None:
        return None
    supply = raw.supply.of_configs(raw.finished_configs())
    return fit_supply_model(params, supply) if len(supply.readings) else None


def supply_summary(model: SupplyModel | None) -> dict | None:
    """The supply model as the characterisation summary states it (None: not measured)."""
    if model is None:
        return None
    return {"quiescent_a": model.quiescent_a, "soma": model.soma, "drive": model.drive, "synapse": model.synapse,
            "std": list(model.std), "vdd_v": model.vdd_v, "held_out_rms": model.held_out_rms,
            "held_out_max": model.held_out_max, "n_fitted": model.n_fitted, "n_held_out": model.n_held_out}


def design_matrix(params: DieParameters, raw: SupplyTables) -> np.ndarray:
    """(readings, 4): 1 (the quiescent current) and the soma, drive and synapse branch currents of every
    recorded pattern, with the latches of its configuration as they were read back."""
    held = {int(row["config"]): held_codes(params.chip, row["nibbles"]) for row in raw.configurations}
    design = np.zeros((len(raw.readings), 4))
    design[:, 0] = 1.0
    for config, codes in held.items():
        rows = np.flatnonzero(raw.readings["config"] == config)
        design[rows, 1:] = state_branch_currents_a(params, codes, raw.readings["dac_codes"][rows])
    return design


def held_out_mask(raw: SupplyTables) -> np.ndarray:
    """Per reading: whether its configuration is one of the last third (never fitted)."""
    states = np.unique(raw.configurations["state"])
    n_held = int(len(states) * HELD_OUT_SHARE)
    held = states[len(states) - n_held:] if n_held else states[:0]
    return np.isin(raw.readings["state"], held)


def fit_supply_model(params: DieParameters, raw: SupplyTables) -> SupplyModel:
    """The supply model of the die with gains ``params``, fitted to the supply run's readings ``raw``."""
    design = design_matrix(params, raw)
    current = raw.readings["current_a"].astype(np.float64)
    sigma = _pooled_noise(raw) * current
    fitted = ~held_out_mask(raw)
    weighted = design[fitted] / sigma[fitted, None]
    # columns scaled to unit norm: the quiescent column (1) and the branch currents (~1e-6 A) differ by
    # orders of magnitude, and the soma and driver currents are nearly proportional (a+ + a- ~ 2)
    norm = np.linalg.norm(weighted, axis=0)
    norm = np.where(norm > 0, norm, 1.0)
    scaled, _ = nnls(weighted / norm, current[fitted] / sigma[fitted])
    coef = scaled / norm
    residual = design @ coef / current - 1
    std = _coefficient_std(weighted / norm, residual[fitted] * current[fitted] / sigma[fitted]) / norm
    held = residual[~fitted]
    return SupplyModel(
        quiescent_a=float(coef[0]), soma=float(coef[1]), drive=float(coef[2]), synapse=float(coef[3]),
        std=tuple(float(s) for s in std), vdd_v=float(np.mean(raw.configurations["vdd_v"])),
        held_out_rms=float(np.sqrt(np.mean(held ** 2))) if len(held) else float("nan"),
        held_out_max=float(np.max(np.abs(held))) if len(held) else float("nan"),
        n_fitted=int(fitted.sum()), n_held_out=int((~fitted).sum()))


def _pooled_noise(raw: SupplyTables) -> float:
    """Relative standard error of one state's mean current, pooled over the states (a floor of 0.01 %
    keeps a noiseless bench fittable)."""
    rel = raw.readings["current_std_a"] / raw.readings["current_a"]
    rel = rel[np.isfinite(rel)]
    return max(float(np.sqrt(np.mean(rel ** 2))) if len(rel) else 0.0, 1e-4)


def _coefficient_std(weighted: np.ndarray, normalised_residual: np.ndarray) -> np.ndarray:
    """1-sigma errors of the coefficients from the fit's covariance, scaled by the reduced chi-square
    when the scatter exceeds the readings' noise (the model's own error then counts). A coefficient at
    its bound gets the error the unconstrained fit would give it."""
    dof = max(len(normalised_residual) - weighted.shape[1], 1)
    chi2 = float(np.sum(normalised_residual ** 2)) / dof
    cov = np.linalg.pinv(weighted.T @ weighted) * max(chi2, 1.0)
    return np.sqrt(np.maximum(np.diag(cov), 0.0))
