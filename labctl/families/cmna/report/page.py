"""The report as files: one self-contained HTML page and one overview PNG.

The HTML embeds every figure as base64 PNG so it can be mailed or archived
alone; the PNG stacks the same figures for a quick look or a lab notebook.
Sections whose data the file lacks say so instead of disappearing, so a
reader can tell "not measured" from "fine".
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from matplotlib.figure import Figure

from labctl.families.cmna.characterisation.analysis import DRIFT_FLAG_PER_MIN, DRIFT_SIGNIFICANCE
from labctl.families.cmna.report import figures
from labctl.files import atomic_write_bytes, atomic_write_text
from labctl.families.cmna.report.contents import (
    ReportData,
    bench_time_s,
    configuration_counts,
    layer_rows,
    linear_range_rows,
    load,
    reference_drift,
    worst_neurons,
)
from labctl.report_page import Section, page, table, to_png

MAX_WIDTH_PX = 1040
"""The page's width: about the figures' (``figures.WIDTH_IN`` at ``figures.DPI``)."""


@dataclass
class Report:
    html_path: Path
    png_path: Path
    missing: list[str] = field(default_factory=list)
    """What the file lacked (empty for a complete characterisation)."""

    @property
    def paths(self) -> tuple[Path, Path]:
        """The files written (what ``labctl report`` names)."""
        return self.html_path, self.png_path


def write_report(path: str | Path, out_dir: str | Path | None = None) -> Report:
    """Write ``<stem>-report.html`` and ``<stem>-report.png`` next to ``path`` (or into ``out_dir``)."""
    path = Path(path)
    data = load(path)
    sections = _sections(data)
    folder = Path(out_dir) if out_dir is not None else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    report = Report(folder / f"{path.stem}-report.html", folder / f"{path.stem}-report.png", data.missing)
    atomic_write_bytes(report.png_path, figures.stack_pngs([s.png for s in sections if s.png]))
    title = f"Characterisation report: {data.chip.serial}"
    atomic_write_text(report.html_path, page(title, sections, MAX_WIDTH_PX, subtitle=str(data.path)), encoding="utf-8")
    return report


def _sections(data: ReportData) -> list[Section]:
    out = [Section("Summary", _summary(data))]
    if data.fits is not None:
        out.append(_figure_section("Gain histograms", figures.gains, data,
                                   "a+ and a-/a+ of every neuron a measurement reached; neurons flagged "
                                   "unmeasured (filled with typical values for training) are left out."))
        out.append(_figure_section("Fit residuals", figures.residuals, data,
                                   "Left: per neuron, how far the two methods' a+ differ in units of their "
                                   "combined standard error. Right: the fits' relative standard errors."))
        out.append(Section("Worst neurons", _worst_table(data)))
    if data.has_linear_range:
        section = _figure_section("Linear range", figures.linear_range, data,
                                  "Every operating point should stay below its soma's compression onset.")
        section.body += _linear_range_table(data)
        out.append(section)
    else:
        out.append(Section("Linear range", "<p class='note'>not measured: the file has no compression "
                                           "onset or largest applied input per soma.</p>"))
    out.append(_figure_section("Drift", figures.drift, data, _drift_text(data)))
    if data.raw is not None:
        out.append(_figure_section("Raw readings", figures.raw_readings, data,
                                   "Every recorded reading, coloured by the kind of configuration it belongs to."))
    out.append(_power_section(data))
    return out


def _figure_section(title: str, make: Callable[[ReportData], Figure], data: ReportData, text: str) -> Section:
    return Section(title, f"<p class='note'>{html.escape(text)}</p>", to_png(make(data), figures.DPI))


def _pct(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.2%}"


def _summary(data: ReportData) -> str:
    chip = data.chip
    facts = [["die serial", chip.serial], ["part", f"{chip.part} ({'-'.join(map(str, chip.layer_sizes))})"],
             ["firmware", ".".join(map(str, chip.firmware))], ["date", data.created],
             ["method", str(data.parameters.get("method", "unknown"))]]
    if data.raw is not None:
        recorded, finished, kinds = configuration_counts(data.raw)
        by_kind = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        facts += [["configurations", f"{finished} finished of {recorded} recorded ({by_kind})"],
                  ["readings", f"{len(data.raw.mon)} MON, {len(data.raw.c2f)} C2F gates"],
                  ["bench time", f"{bench_time_s(data.raw):.1f} s"]]
    if data.fits is not None and data.fits.synapse_spread == data.fits.synapse_spread:
        facts.append(["synapse spread per bit", _pct(data.fits.synapse_spread)])
    parts = [table(None, facts, left=2)]
    parts += [f"<p class='missing'>{html.escape(m)}</p>" for m in data.missing]
    if data.fits is not None:
        rows = [[str(r.layer), str(r.neurons), _pct(r.rms_rel_std_a_plus), _pct(r.rms_rel_std_ratio),
                 str(r.flagged), ", ".join(f"{k} {n}" for k, n in r.by_flag.items() if n) or "-"]
                for r in layer_rows(data)]
        parts.append(table(["layer", "neurons", "rms rel. std a+", "rms rel. std a-/a+", "flagged neurons",
                             "flags"], rows, left=0))
    return "".join(parts)


def _worst_table(data: ReportData) -> str:
    worst = worst_neurons(data)
    rows = [[str(r.layer), str(r.neuron), f"{r.a_plus:.4f}", _pct(r.a_plus_rel_std),
             "-" if r.ratio != r.ratio else f"{r.ratio:.4f}", _pct(r.ratio_rel_std),
             "-" if r.method_z != r.method_z else f"{r.method_z:+.1f}", ", ".join(r.flags) or "-",
             ", ".join(r.listed_for)] for r in worst.rows]
    note = ("<p class='note'>Flagged neurons, then the worst few of the measured ones by each criterion. "
            "MON vs network: (a+ MON - a+ network) / sigma.</p>")
    more = f"<p class='note'>... and {worst.flagged_not_shown} more flagged neurons.</p>" \
        if worst.flagged_not_shown else ""
    return note + table(["layer", "neuron", "a+", "rel. std a+", "a-/a+", "rel. std a-/a+",
                          "MON vs network (sigma)", "flags", "listed for"], rows, left=0) + more


def _linear_range_table(data: ReportData) -> str:
    nano = lambda a: "-" if a != a else f"{a * 1e9:.0f}"
    rows = [[str(r.layer), "not measured" if r.onset_measured is None else f"{r.onset_measured} of {r.somas}",
             nano(r.lowest_onset_a), nano(r.largest_input_a), "-" if r.beyond_onset is None else str(r.beyond_onset)]
            for r in linear_range_rows(data)]
    return table(["layer", "somas with onset", "lowest onset (nA)", "largest input applied (nA)",
                   "somas driven to their onset"], rows, left=0)


def _power_section(data: ReportData) -> Section:
    """The on-chip power of the evaluations found next to the file (issue 14's figures, with the assumed rate)."""
    if not data.power:
        return Section("Power on chip", "<p class='note'>not measured: no evaluation record of this die with power "
                                        "figures next to this file (labctl evaluate --out-dir into this folder, or a "
                                        "recipe's evaluate step, writes one).</p>")
    rows = []
    for p in data.power:
        r = p.figures
        rows.append([p.weights, str(r["n_patterns"]), _micro(r, "supply_power_w"), _micro(r, "dynamic_power_w"),
                     _micro(r, "network_power_w"), _micro(r, "predicted_supply_power_w"),
                     _micro(r, "predicted_network_power_w"), f"{r['presentation_rate_hz'] / 1e3:g}",
                     f"{r['energy_per_inference_j'] * 1e12:.4g}",
                     f"{r['ops_per_inference']} ({r['nonzero_ops_per_inference']})", f"{r['ops_per_joule']:.3g}",
                     r["input_currents_from"]])
    text = ("Supply power: VDD x the supply current, mean over the test patterns, each held while the supply SMU "
            "read; dynamic: less the draw with every input at code 0; network: less VDD x the input currents "
            "themselves (the part the weights control). ± one standard error of the readings. Energy per inference "
            "is the supply power over the presentation rate, an assumption stated per row; ops are the network's "
            "synapses (non-zero codes in brackets).")
    powers = table(["weights", "patterns", "supply (uW)", "dynamic (uW)", "network (uW)", "predicted supply (uW)",
                    "predicted network (uW)", "rate (kHz, assumed)", "energy per inference (pJ)", "ops (non-zero)",
                    "ops per J", "input currents from"], rows)
    png = to_png(figures.power(data), figures.DPI) if any(p.supply_w is not None for p in data.power) else None
    return Section("Power on chip", f"<p class='note'>{html.escape(text)}</p>" + powers, png)


def _micro(record: dict, key: str) -> str:
    """A power in uW, with its standard error where the record has one; "-" where it has none."""
    if key not in record:
        return "-"
    se = record.get(f"{key}_se")
    return f"{record[key] * 1e6:.4g}" + ("" if se is None else f" ± {se * 1e6:.2g}")


def _drift_text(data: ReportData) -> str:
    trace, summary = reference_drift(data)
    if "rate_per_min" not in summary:
        return f"{len(trace.times)} reference run(s): too few for a drift rate. Temperature: STATUS at every C2F gate."
    verdict = (f"FLAGGED: faster than {DRIFT_FLAG_PER_MIN:.2%} per minute, beyond {DRIFT_SIGNIFICANCE:.0f} "
               "standard errors" if summary["flagged"] else
               f"not flagged: slower than {DRIFT_FLAG_PER_MIN:.2%} per minute, or within "
               f"{DRIFT_SIGNIFICANCE:.0f} standard errors of the references' noise")
    return (f"{len(trace.times)} reference runs; gain drift {summary['rate_per_min']:+.3%} "
            f"± {summary['rate_std_per_min']:.3%} per minute ({verdict}). Temperature: STATUS at every C2F gate.")
