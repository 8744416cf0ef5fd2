"""The report's figures, one per topic, rendered to PNG by matplotlib's Agg canvas
(``labctl.report_page``).

Figures are built on ``matplotlib.figure.Figure`` with an explicit Agg canvas,
never through pyplot: no global backend is chosen, so a report can be written
from inside the Qt GUI or a test without disturbing either, and on a machine
without a display. Every axis names its quantity and unit.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from labctl.families.printed.characterisation.plan import SWEEP_LIMIT_V
from labctl.families.printed.report.contents import ETA_NAMES, ETA_UNITS, ProcessReport, Structure, map_agreement
from labctl.report_page import figure, with_se

WIDTH_IN = 12.0
DPI = 100
"""Resolution of the PNGs (``labctl.report_page.to_png``)."""
COLUMNS = 6
"""Sweep panels per row."""
TYPICAL_EPS_PCT = (5.0, 10.0)
"""The variation contract 1.6 calls typical, shaded on the eps figure for scale."""
SOURCE_NAMES = {"resistors": "resistor structures", "ACT": "ACT replicas", "NEG": "NEG replicas"}


def _figure(height_in: float, title: str) -> Figure:
    """A titled figure as wide as every other of this report."""
    return figure(WIDTH_IN, height_in, title)


def sweeps(report: ProcessReport, kind: str) -> Figure:
    """Every structure of ``kind``: its measured points (up, down, refinement) and its fitted tanh."""
    structures = report.of_kind(kind)
    rows = max(1, -(-len(structures) // COLUMNS))
    used = sum(s.fit is not None and s.fit.used for s in structures)
    fig = _figure(1.05 + 1.75 * rows, f"{kind} structures: measured transfer and fitted tanh "
                                      f"({used} of {len(structures)} in the process map; red title: flagged)")
    axes = fig.subplots(rows, COLUMNS, sharex=True, sharey=True, squeeze=False)
    for ax, structure in zip(axes.flat, structures):
        _sweep_panel(ax, structure)
    for ax in axes.flat[len(structures):]:
        ax.set_axis_off()
    for ax in axes[-1]:
        ax.set_xlabel("V_in at pad (V)")
    for ax in axes[:, 0]:
        ax.set_ylabel("V_out (V)")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=len(handles), fontsize=8)
    return fig


def _sweep_panel(ax: Axes, structure: Structure) -> None:
    sweep = structure.sweep
    for direction, marker, label in ((1, "o", "up"), (-1, "x", "down"), (2, ".", "refinement")):
        mine = sweep.direction == direction
        ax.plot(sweep.v_in_v[mine], sweep.v_out_v[mine], marker, ms=2.5, ls="none", label=label)
    fit = structure.fit
    if fit is not None:
        v = np.linspace(-SWEEP_LIMIT_V, SWEEP_LIMIT_V, 301)
        ax.plot(v, structure.model_v(v), "k-", lw=1, label="fitted tanh")
    detail = f"rms {fit.rms_v * 1e3:.1f} mV" if fit is not None else \
        ("not measured" if not structure.measured else "no fit")
    flagged = ", ".join(structure.flags)
    ax.set_title(f"{structure.id} ({structure.cell.design}): {detail}" + (f"\n{flagged}" if flagged else ""),
                 fontsize=7.5, color="tab:red" if structure.flags else "k")
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def resistors(report: ProcessReport) -> Figure:
    """Each resistor measured against the sheet-resistance model, and the relative residuals eps leaves."""
    table = report.resistors
    assert table is not None
    cal = report.calibration
    title = "Resistor structures: sheet-resistance model R = R_s L / (W + dW)"
    if cal is not None:
        title += (f"\nR_s RH {with_se(cal.rh_ohm_sq, cal.rh_ohm_sq_se, 1e-3)} kohm/sq, "
                  f"RL {with_se(cal.rl_ohm_sq, cal.rl_ohm_sq_se)} ohm/sq, dW {with_se(cal.dw_um, cal.dw_um_se)} um")
    fig = _figure(4.6, title)
    left, right = fig.subplots(1, 2)
    names = [f"{s.decode()}.{i}" for s, i in zip(table["structure"], table["index"])]
    for layer in np.unique(table["layer"]):
        mine = table["layer"] == layer
        left.errorbar(table["model_ohm"][mine], table["r_ohm"][mine], yerr=table["r_se_ohm"][mine], fmt="o", ms=4,
                      label=layer.decode())
        right.plot(np.flatnonzero(mine), 100 * table["rel_residual"][mine], "o", label=layer.decode())
    span = np.array([table["model_ohm"].min(), table["model_ohm"].max()])
    left.plot(span, span, color="0.5", lw=0.8, label="measured = model")
    left.set(xscale="log", yscale="log", xlabel="model resistance (ohm)", ylabel="measured resistance (ohm)")
    left.legend(fontsize=8)
    if report.eps is not None and np.isfinite(report.eps.eps):
        right.axhspan(-100 * report.eps.eps, 100 * report.eps.eps, color="tab:green", alpha=0.12,
                      label=f"± eps ({report.eps.eps:.1%})")
    right.axhline(0, color="0.5", lw=0.8)
    right.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    right.set(xlabel="resistor (structure.index)", ylabel="measured / model - 1 (%)")
    right.legend(fontsize=8)
    return fig


def variation(report: ProcessReport) -> Figure:
    """eps from every kind of data together and from each alone, with one standard error."""
    eps = report.eps
    assert eps is not None
    rows = [("all data (the run's eps)", eps.eps, eps.se)]
    rows += [(SOURCE_NAMES.get(name, name), value, se) for name, (value, se) in eps.by_source.items()]
    fig = _figure(1.2 + 0.45 * len(rows), f"Variation eps = {with_se(eps.eps, eps.se, 100)} % "
                                          "(every printed value times 1 + U(-eps, eps))")
    ax = fig.add_subplot()
    y = np.arange(len(rows))[::-1]
    ax.axvspan(*TYPICAL_EPS_PCT, color="0.88")
    ax.text(np.mean(TYPICAL_EPS_PCT), 1.0, "typical\n(contract 1.6)", ha="center", va="bottom", fontsize=7,
            color="0.35", transform=ax.get_xaxis_transform())
    ax.errorbar([100 * r[1] for r in rows], y, xerr=[100 * r[2] for r in rows], fmt="o", capsize=3)
    ax.set_yticks(y, [r[0] for r in rows])
    ax.set_xlabel("eps (%)")
    ax.set_xlim(left=0)
    return fig


def map_fit(report: ProcessReport) -> Figure:
    """Per cell kind and eta: each fitted structure's eta against the process map's value at its components
    (the report draws it only for a file with a calibration, which has both maps)."""
    fig = _figure(6.2, "Process maps: measured etas against the map at each structure's printed components")
    axes = fig.subplots(2, len(ETA_NAMES), squeeze=False)
    for row, kind in zip(axes, ("ACT", "NEG")):
        agreement = map_agreement(report, kind)
        assert agreement is not None
        for j, (ax, name, unit) in enumerate(zip(row, ETA_NAMES, ETA_UNITS)):
            measured, mapped = agreement.measured[:, j], agreement.mapped[:, j]
            ax.plot(mapped, measured, "o", ms=4)
            span = [min(mapped.min(), measured.min()), max(mapped.max(), measured.max())]
            ax.plot(span, span, color="0.5", lw=0.8)
            ax.set_title(f"{kind} {name}: leave-one-out rms\n{agreement.loo_rms[j]:.3g} {unit}", fontsize=9)
            ax.set_xlabel(f"map {name} ({unit})")
            ax.set_ylabel(f"measured {name} ({unit})")
    return fig
