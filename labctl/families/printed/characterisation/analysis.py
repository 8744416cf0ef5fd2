"""From the raw tables to the process: per-structure fits, sheet resistances, cell maps and eps.

Pure functions of what the file holds (plus the layout), so a run can be
re-analysed from its file alone. The cell maps take the components as they
were expected to print: each resistor at the *measured* sheet resistance and
line-width bias, ``R_s L / (W + dW)`` (what a print job's ``R_ohm`` states
when its geometries were computed with this calibration's inks, 3.1), the
EGTs at their drawn W and L.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from labctl.families.printed.characterisation.ports import Estimate, input_line, output_resistances
from labctl.families.printed.characterisation.resistor_fit import (
    MeasuredResistor,
    SheetFit,
    chain_resistances,
    fit_sheet_resistance,
    ladder_resistances,
)
from labctl.families.printed.characterisation.tables import RESISTOR_FIT_DTYPE, cell_fit_dtype
from labctl.families.printed.characterisation.transfer_fit import TransferFit, fit_power, fit_transfer, hysteresis
from labctl.families.printed.characterisation.variation import (
    EpsEstimate,
    SpreadTerm,
    estimate_eps,
    excess_spread,
    replica_term,
    resistor_term,
)
from labctl.families.printed.layout import CellStructure, Layout
from labctl.families.printed.process_map import PORT_TARGETS_OF, TARGETS, CellMap, fit_cell_map

MIN_STRUCTURES = 3
"""Fewer usable structures of a kind than this leave no cell map (and no calibration)."""
RESISTOR_MEASUREMENT_REL_SE = 1e-3
REPLICA_STRUCTURE = "H2"


@dataclass(frozen=True)
class CellResult:
    """One circuit structure after fitting; ``fit`` is None when it was skipped before any usable sweep."""

    cell: CellStructure
    fit: TransferFit | None
    p: np.ndarray
    p_se: np.ndarray
    power_rms_w: float
    flags: tuple[str, ...]
    ports: Mapping[str, Estimate] = field(default_factory=dict)
    """The measured port targets (PORT_TARGETS_OF the kind; module ``ports``), (value, se), NaN if not."""

    @property
    def used(self) -> bool:
        return self.fit is not None and self.fit.usable and not set(self.flags) & {"no_output", "rail_fault",
                                                                                    "no_input"}


@dataclass(frozen=True)
class ProcessAnalysis:
    cells: tuple[CellResult, ...]
    resistors: tuple[MeasuredResistor, ...]
    sheet: SheetFit
    eps: EpsEstimate
    maps: dict[str, CellMap]


def fit_cell(cell: CellStructure, points: np.ndarray, skipped: str | None, ports: np.ndarray | None = None,
             bleed_ohm: float = np.inf) -> CellResult:
    """The etas, power curve and ports of one structure (``skipped``: its flag when the bench cut it short;
    ``ports``: its ``/raw/ports`` rows; ``bleed_ohm``: its input pad's bleed, printed, module ``ports``)."""
    nan3 = np.full(3, np.nan)
    if skipped in ("rail_fault", "no_input", "no_output") or points.size == 0:
        return CellResult(cell, None, nan3, nan3, np.nan, (skipped or "no_output",))
    fit = fit_transfer(cell.kind, points["v_pad"], points["v_out"], hysteresis(points))
    flags = tuple(dict.fromkeys(((skipped,) if skipped else ()) + fit.flags))
    if not fit.usable:
        return CellResult(cell, fit, nan3, nan3, np.nan, flags)
    p, p_se, rms = fit_power(points["v_pad"], points["power_w"], fit.eta[2], fit.eta[3])
    measured = output_resistances(ports if ports is not None else np.zeros(0), cell.kind)
    if cell.kind == "NEG":
        measured.update(input_line(points[points["direction"] == 1], bleed_ohm))
    return CellResult(cell, fit, p, p_se, rms, flags, measured)


def printed_components(cell: CellStructure, sheet: SheetFit) -> dict[str, float]:
    """The cell's components as expected to print with the measured inks (module docstring)."""
    values = cell.drawn_components()
    for name, resistor in cell.resistors.items():
        r_s = sheet.rh_ohm_sq if resistor.layer == "RH" else sheet.rl_ohm_sq
        values[name] = r_s * resistor.l_um / (resistor.w_um + sheet.dw_um)
    return values


def _targets(results: list[CellResult]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per target (TARGETS, then the kind's port targets where any structure measured them): values and se."""
    values = {t: np.array([[*r.fit.eta, *r.p][i] for r in results]) for i, t in enumerate(TARGETS)}
    ses = {t: np.array([[*r.fit.eta_se, *r.p_se][i] for r in results]) for i, t in enumerate(TARGETS)}
    for t in PORT_TARGETS_OF[results[0].cell.kind]:
        pairs = np.array([r.ports.get(t, (np.nan, np.nan)) for r in results], dtype=float)
        if np.any(np.isfinite(pairs[:, 0])):
            values[t], ses[t] = pairs[:, 0], pairs[:, 1]
    return values, ses


def fit_maps(results: tuple[CellResult, ...], sheet: SheetFit) -> dict[str, CellMap]:
    """One CellMap per kind from its usable structures (replicas are rows like any other)."""
    maps = {}
    for kind in ("ACT", "NEG"):
        used = [r for r in results if r.cell.kind == kind and r.used and np.all(np.isfinite(r.p))]
        if len(used) < MIN_STRUCTURES:
            continue
        components = [printed_components(r.cell, sheet) for r in used]
        names = list(components[0])
        targets, ses = _targets(used)
        maps[kind] = fit_cell_map(kind, {n: np.array([c[n] for c in components]) for n in names}, targets, ses)
    return maps


def replica_jacobian(cell_map: CellMap, components: Mapping[str, float]) -> np.ndarray:
    """d(eta1, eta2, eta3, log eta4) / d log c of the map at one design: (4, k)."""
    c = torch.tensor([components[n] for n in cell_map.components], dtype=torch.float64)

    def targets(log_c: torch.Tensor) -> torch.Tensor:
        y = cell_map.etas_and_power(torch.exp(log_c))[:4]
        return torch.cat([y[:3], torch.log(y[3:4])])

    return torch.autograd.functional.jacobian(targets, torch.log(c)).numpy()


def replica_terms(results: tuple[CellResult, ...], maps: dict[str, CellMap], sheet: SheetFit) -> list[SpreadTerm]:
    """One spread term per replica design (ACT-REF, ACT-B, NEG-REF, NEG-B) with at least two usable replicas."""
    designs: dict[tuple[str, str], list[CellResult]] = {}
    for r in results:
        if r.cell.design != "spread" and r.used and r.cell.kind in maps:
            designs.setdefault((r.cell.kind, r.cell.design), []).append(r)
    terms = []
    for (kind, design), group in designs.items():
        if len(group) < 2:
            continue
        eta = np.array([r.fit.eta for r in group])
        se = np.array([r.fit.eta_se for r in group])
        y = np.column_stack([eta[:, :3], np.log(eta[:, 3])])
        y_se = np.column_stack([se[:, :3], se[:, 3] / eta[:, 3]])
        jac = replica_jacobian(maps[kind], printed_components(group[0].cell, sheet))
        terms.append(replica_term(f"{kind}/{design}", y, y_se, jac))
    return terms


def analyse(layout: Layout, raw: Mapping[str, np.ndarray], id_resistances: tuple[float, ...] | None,
            skipped: Mapping[str, str]) -> ProcessAnalysis:
    """Every fit of one run (module docstring); ``skipped``: structure id -> flag for the ones cut short."""
    resistors: list[MeasuredResistor] = []
    for chain in layout.resistor_structures:
        rows = raw["resistors"][raw["resistors"]["structure"] == chain.id.encode()]
        if chain.kind == "ID" and id_resistances is not None:
            resistors += ladder_resistances(id_resistances, chain)
        elif rows.size >= 2:
            resistors += chain_resistances(chain, rows)
    sheet = fit_sheet_resistance(resistors, {"RH": layout.rh_ohm_sq, "RL": layout.rl_ohm_sq})
    points, ports = raw["points"], raw.get("ports", np.zeros(0, [("structure", "S8")]))
    bleed = layout.bleed
    bleed_ohm = sheet.rh_ohm_sq * bleed.l_um / (bleed.w_um + sheet.dw_um)
    cells = tuple(fit_cell(cell, points[points["structure"] == cell.id.encode()], skipped.get(cell.id),
                           ports[ports["structure"] == cell.id.encode()], bleed_ohm) for cell in layout.cells)
    maps = fit_maps(cells, sheet)
    terms = [resistor_term("resistors", sheet.rel_residual, sheet.dof, RESISTOR_MEASUREMENT_REL_SE)]
    terms += replica_terms(cells, maps, sheet)
    eps = estimate_eps(terms)
    spread = excess_spread(terms, eps.eps) if np.isfinite(eps.eps) else {}
    maps = {kind: replace(m, excess_sd=tuple(float(v) for v in spread[kind])) if kind in spread else m
            for kind, m in maps.items()}
    return ProcessAnalysis(cells, tuple(resistors), sheet, eps, maps)


def fit_tables(analysis: ProcessAnalysis) -> dict[str, np.ndarray]:
    """``/fits/ACT``, ``/fits/NEG`` and ``/fits/resistors`` as structured arrays (:mod:`.tables`)."""
    tables = {}
    for kind in ("ACT", "NEG"):
        results = [r for r in analysis.cells if r.cell.kind == kind]
        table = np.zeros(len(results), cell_fit_dtype(kind))
        for row, r in zip(table, results):
            row["id"], row["design"], row["group"] = r.cell.id, r.cell.design, r.cell.rail_group
            for name, value in r.cell.drawn_components().items():
                row[f"drawn_{name}"] = value
            fit = r.fit
            row["eta"] = fit.eta if fit else np.nan
            row["eta_se"] = fit.eta_se if fit else np.nan
            row["p"], row["p_se"], row["power_rms_w"] = r.p, r.p_se, r.power_rms_w
            row["rms_v"] = fit.rms_v if fit else np.nan
            row["hysteresis_v"] = fit.hysteresis_v if fit else np.nan
            row["n_points"] = fit.n_points if fit else 0
            row["flags"], row["used"] = ",".join(r.flags), r.used
        tables[kind] = table
    sheet = analysis.sheet
    table = np.zeros(len(analysis.resistors), RESISTOR_FIT_DTYPE)
    for i, m in enumerate(analysis.resistors):
        table[i] = (m.structure, m.index, m.drawn.layer, m.drawn.w_um, m.drawn.l_um, m.drawn.r_ohm, m.r_ohm,
                    m.r_se_ohm, sheet.model_ohm[i], sheet.rel_residual[i], m.structure == REPLICA_STRUCTURE)
    tables["resistors"] = table
    return tables
