"""The report as files: one self-contained HTML page, and each of its figures as a PNG beside it.

The HTML embeds every figure as base64 PNG so it can be mailed or archived
alone; the PNG files are the same figures for a lab notebook. Sections whose
data the file lacks say so instead of disappearing, so a reader can tell
"not measured" from "fine".
"""

from __future__ import annotations

import html
from pathlib import Path


from labctl.errors import DataFileError
from labctl.families.printed.report import figures
from labctl.families.printed.report.contents import ETA_NAMES, ETA_UNITS, ProcessReport, Structure, load
from labctl.families.printed.report.words import reason
from labctl.report_page import with_se
from labctl.report_page import Report, Section, absent, figure_section, table, write_report_files

MAX_WIDTH_PX = 1240
"""The page's width: about the figures' (``figures.WIDTH_IN`` at ``figures.DPI``)."""
MAP_TARGET_NOTE = ("Each target is linear in the log-components (process_map); in-sample and leave-one-out rms "
                   "residual in the target's unit; the leave-one-out error is what the map misses on a design it "
                   "was not fitted with.")


def write_report(path: str | Path, out_dir: str | Path | None = None) -> Report:
    """Write ``<stem>-report.html`` and its figures ``<stem>-report-<topic>.png`` next to ``path`` (or into
    ``out_dir``); a file with neither sweeps nor fits is refused in one line."""
    path = Path(path)
    data = load(path)
    if not data.has_readings:
        raise DataFileError(f"{data.path}: no sweeps and no fits: nothing to report")
    folder = Path(out_dir) if out_dir is not None else data.path.parent
    title = f"Process characterisation report: {data.process} ({data.sample})"
    return write_report_files(_sections(data), folder, data.path.stem, title, MAX_WIDTH_PX,
                              missing=data.missing)


def _sections(data: ProcessReport) -> list[Section]:
    out = [Section("Summary", _summary(data))]
    for kind in ("ACT", "NEG"):
        if data.of_kind(kind):
            text = f"Each {kind} structure swept up and down over its input pad; the line is its fitted tanh form."
            out.append(figure_section(f"{kind} sweeps", f"sweeps-{kind}", figures.sweeps(data, kind), text,
                                      figures.DPI))
    fits = [s for s in data.structures if s.fit is not None]
    out.append(Section("Eta fits", _eta_table(fits) if fits else absent("no structure has fitted etas")))
    out.append(_resistor_section(data))
    out.append(_variation_section(data))
    out.append(_map_section(data))
    out.append(Section("Flagged structures", _flag_table(data.flagged) if data.flagged else
                       "<p class='note'>none: every structure measured was fitted without a flag.</p>"))
    return out


def _summary(data: ProcessReport) -> str:
    measured = sum(s.measured for s in data.structures)
    used = sum(s.fit is not None and s.fit.used for s in data.structures)
    facts = [["process", data.process], ["sample", data.sample], ["layout", data.layout.layout],
             ["date", data.created], ["file", str(data.path)],
             ["structures", f"{measured} of {len(data.structures)} measured, {used} fitted into the process "
                            f"maps, {len(data.flagged)} flagged"]]
    if data.bench_s is not None:
        facts.append(["bench time", f"{data.bench_s:.1f} s"])
    if data.eps is not None:
        facts.append(["eps", with_se(data.eps.eps, data.eps.se)])
    cal = data.calibration
    if cal is not None:
        facts += [["sheet resistance RH", f"{with_se(cal.rh_ohm_sq, cal.rh_ohm_sq_se)} ohm/sq"],
                  ["sheet resistance RL", f"{with_se(cal.rl_ohm_sq, cal.rl_ohm_sq_se)} ohm/sq"],
                  ["line-width bias dW", f"{with_se(cal.dw_um, cal.dw_um_se)} um"]]
    missing = "".join(f"<p class='missing'>{html.escape(m)}</p>" for m in data.missing)
    return table([], facts, left=2) + missing


def _eta_table(structures: list[Structure]) -> str:
    rows = [[s.id, s.kind, s.cell.design, *(with_se(s.fit.eta[i], s.fit.eta_se[i]) for i in range(4)),
             f"{s.fit.rms_v * 1e3:.1f}", f"{s.fit.hysteresis_v * 1e3:.1f}", str(s.fit.n_points),
             "yes" if s.fit.used else "no", ", ".join(s.flags) or "-"] for s in structures]
    note = ("<p class='note'>V_out = ±(eta1 + eta2 tanh((V_in - eta3) eta4)), + for ACT, - for NEG; ± one standard "
            "error of the fit. rms: the form's residual; hysteresis: largest up/down difference.</p>")
    header = ["structure", "kind", "design", *(f"{n} ({u})" for n, u in zip(ETA_NAMES, ETA_UNITS)), "rms (mV)",
              "hysteresis (mV)", "points", "in map", "flags"]
    return note + table(header, rows, left=3)


def _resistor_section(data: ProcessReport) -> Section:
    if data.resistors is None:
        return Section("Resistor structures", absent("the file has no resistor fits"))
    text = ("Left: every resistor against the model fitted to all of them (one sheet resistance per ink, one "
            "line-width bias); right: what the model leaves, which is the printing variation plus measurement.")
    return figure_section("Resistor structures", "resistors", figures.resistors(data), text, figures.DPI)


def _variation_section(data: ProcessReport) -> Section:
    if data.eps is None:
        return Section("Variation eps", absent("the file has no eps (the run stopped before the analysis)"))
    rows = [[figures.SOURCE_NAMES.get(name, name), with_se(value, se, 100)]
            for name, (value, se) in data.eps.by_source.items()]
    text = ("eps maximises the likelihood of the resistors' residuals and the cell replicas' spread together; "
            "each kind of data alone is a cross-check.")
    section = figure_section("Variation eps", "eps", figures.variation(data), text, figures.DPI)
    section.body += table(["from", "eps (%)"], [["all data", with_se(data.eps.eps, data.eps.se, 100)], *rows])
    return section


def _map_section(data: ProcessReport) -> Section:
    if data.calibration is None:
        return Section("Process maps", absent("the file has no calibration"))
    rows = []
    for kind in ("ACT", "NEG"):
        cell_map = data.calibration.cell_map(kind)
        for target, fit in cell_map.fits.items():
            rows.append([kind, target, f"{fit.residual_rms:.3g}", f"{fit.loo_rms:.3g}", "yes" if fit.log else "no",
                         f"{fit.ridge:g}", str(cell_map.n_structures)])
    section = figure_section("Process maps", "maps", figures.map_fit(data), MAP_TARGET_NOTE, figures.DPI)
    section.body += table(["map", "target", "in-sample rms", "leave-one-out rms", "fitted in log", "ridge",
                            "structures"], rows, left=2)
    return section


def _flag_table(structures: list[Structure]) -> str:
    rows = [[s.id, s.kind, s.cell.design, ", ".join(s.flags), reason(s.flags),
             "yes" if s.fit is not None and s.fit.used else "no"] for s in structures]
    return table(["structure", "kind", "design", "flags", "why", "in map"], rows, left=5)
