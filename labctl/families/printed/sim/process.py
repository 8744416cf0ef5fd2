"""A simulated PNC-1 print run (contract 1.2, 1.6): what every sample printed in it shares.

A run is drawn from its seed (process id ``sim-<seed>``): the sheet
resistance of each resistive layer (within +-10 % of nominal typically,
never beyond +-20 %, contract 1.2), the line-width bias, and the EGT
material (threshold +-50 mV and mobility-capacitance +-10 % run to run,
contract 1.6). Per-sample, per-component variation is :mod:`.variation`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.families.printed.sim.egt import EgtMaterial

RH_NOMINAL_OHM_SQ = 50e3
RL_NOMINAL_OHM_SQ = 25.0
SHEET_TYPICAL_SIGMA = 0.05
"""Run-to-run sigma of R_s: 95 % of runs inside +-10 % (contract 1.2, T)."""
SHEET_GUARANTEED = 0.20
"""R_s never leaves +-20 % of nominal (contract 1.2, G)."""
LINE_WIDTH_BIAS_MAX_UM = 3.0
THRESHOLD_RUN_SPREAD_V = 0.05
MOBILITY_RUN_SPREAD = 0.10

KIT_MATERIAL = EgtMaterial(v_t=0.20, mu_c=1.0e-4, n=1.5, lam=0.05)
"""The reference kit's nominal In2O3 EGT: V_T 0.2 V, mu C 100 uA/V^2, 90 mV/dec, lambda 0.05 /V."""


@dataclass(frozen=True)
class ProcessRun:
    """One print run: sheet resistances (ohm/sq), line-width bias (um) and EGT material."""

    process_id: str
    rh_ohm_sq: float
    rl_ohm_sq: float
    line_width_bias_um: float
    material: EgtMaterial

    def sheet_ohm_sq(self, layer: str) -> float:
        """R_s of ``layer`` ("RH" or "RL") in this run."""
        if layer not in ("RH", "RL"):
            raise ValueError(f"unknown resistive layer {layer!r}")
        return self.rh_ohm_sq if layer == "RH" else self.rl_ohm_sq

    def resistance_ohm(self, layer: str, w_um: float, l_um: float) -> float:
        """Resistance of a drawn W x L rectangle in this run, before per-component variation (1.2)."""
        return self.sheet_ohm_sq(layer) * l_um / (w_um + self.line_width_bias_um)


def _sheet(rng: np.random.Generator, nominal: float) -> float:
    deviation = float(np.clip(rng.normal(0.0, SHEET_TYPICAL_SIGMA), -SHEET_GUARANTEED, SHEET_GUARANTEED))
    return nominal * (1.0 + deviation)


def process_id(seed: int) -> str:
    """Simulated runs are named ``sim-<seed>`` (contract 3.3)."""
    return f"sim-{seed}"


def draw_run(seed: int) -> ProcessRun:
    """The print run ``sim-<seed>``: every quantity drawn from ``seed`` alone, so it repeats."""
    rng = np.random.default_rng([0x504E43, seed])
    rh, rl = _sheet(rng, RH_NOMINAL_OHM_SQ), _sheet(rng, RL_NOMINAL_OHM_SQ)
    bias = float(rng.uniform(-LINE_WIDTH_BIAS_MAX_UM, LINE_WIDTH_BIAS_MAX_UM))
    material = EgtMaterial(
        v_t=KIT_MATERIAL.v_t + float(rng.uniform(-THRESHOLD_RUN_SPREAD_V, THRESHOLD_RUN_SPREAD_V)),
        mu_c=KIT_MATERIAL.mu_c * (1.0 + float(rng.uniform(-MOBILITY_RUN_SPREAD, MOBILITY_RUN_SPREAD))),
        n=KIT_MATERIAL.n, lam=KIT_MATERIAL.lam)
    return ProcessRun(process_id(seed), rh, rl, bias, material)
