"""The TTFS report as files: one self-contained HTML page, and each of its figures as a PNG beside it.

``write_report`` is the family's reporter (``TtfsFamily.reporter``, what
``labctl report`` calls). The HTML embeds every figure as base64 PNG so it can
be mailed or archived alone; the PNG files are the same figures for a lab
notebook. Sections whose data the file lacks say so instead of disappearing,
so a reader can tell "not measured" from "fine".
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

from labctl.errors import DataFileError
from labctl.families.ttfs.die_parameters import Measured, TtfsDieParameters
from labctl.families.ttfs.report import figures
from labctl.families.ttfs.report.contents import (
    MONITOR_NAMES,
    NEURON_QUANTITIES,
    POLARITIES,
    RAIL_NAMES,
    STEPS,
    TtfsReport,
    capacitance_median_f,
    delay_median_ns,
    layer_spreads,
    load,
    polarity_of,
)
from labctl.families.ttfs.report.evaluations import EvaluationRecord
from labctl.families.ttfs.report.words import measured
from labctl.report_page import with_se
from labctl.report_page import Report, Section, absent, figure_section, table, write_report_files

MAX_WIDTH_PX = 1240
"""The page's width: about the figures' (``figures.WIDTH_IN`` at ``figures.DPI``)."""
EXTRA_UNITS = {"_v": (1e3, "mV"), "_f": (1e15, "fF"), "_a": (1e9, "nA")}
"""How a further fitted figure (``TtfsDieParameters.extras``) is shown, by the unit its name ends in."""


def write_report(path: str | Path, out_dir: str | Path | None = None) -> Report:
    """Write ``<stem>-report.html`` and its figures ``<stem>-report-<topic>.png`` next to ``path`` (or into
    ``out_dir``), with the evaluations found beside ``path``; a file with no readings and no fits is refused in
    one line."""
    data = load(path)
    if not data.has_readings:
        raise DataFileError(f"{data.path}: no readings and no fits: nothing to report")
    folder = Path(out_dir) if out_dir is not None else data.path.parent
    title = f"TTFS characterisation report: {data.serial} ({data.part})"
    return write_report_files(_sections(data), folder, data.path.stem, title, MAX_WIDTH_PX,
                              missing=data.missing, subtitle=str(data.path))


def _sections(data: TtfsReport) -> list[Section]:
    out = [Section("Summary", _summary(data))]
    params = data.params
    if params is not None:
        section = figure_section("Neurons", "neurons", figures.neurons(data),
                                 "Each neuron's fit from its anchors (step 4): capacitance, start voltage "
                                 "V0 = V_REST - pedestal, threshold at the characterisation's VTH, delay from "
                                 "threshold crossing to the TDC, leakage (step 8, + out of the membrane) and "
                                 "the column's verify gain (mean 1 over the die).", figures.DPI)
        section.body += _neuron_table(params)
        out.append(section)
    else:
        out.append(Section("Neurons", absent("the file has no fitted parameters")))
    if data.ladder is not None:
        ladder = figure_section("Synapse ladders", "ladder", figures.ladder(data),
                                "Each matrix's bias row written at every code on every column and held (step 7); "
                                "the ladder's four bit weights come from one least-squares over both matrices.",
                                figures.DPI)
        if params is not None:
            ladder.body += _ladder_table(params)
        out.append(ladder)
    else:
        out.append(Section("Synapse ladders", absent("the run stopped before step 7 (ladders)")))
    if data.dc_shape is not None:
        shape = figure_section("DC shape and channel-length modulation", "dc-shape", figures.dc_shape(data),
                               "Every row written ±15 and held while its rail moves (step 2): its current follows "
                               "A (1 + lambda x) k(x), x the drain-source voltage at V_REST, k(x) = "
                               "1 - exp(-x / V_K). Per site: the row's current over its columns.", figures.DPI)
        if params is not None:
            shape.body += _shape_table(params)
        out.append(shape)
    else:
        out.append(Section("DC shape and channel-length modulation",
                           absent("the run stopped before step 2 (DC shape)")))
    if data.reversal:
        out.append(figure_section("Reversal potentials", "reversal", figures.reversal(data),
                                  "A membrane pulled onto each rail by one held drive (step 3): where it settles "
                                  "is the reversal potential, how it bends into it the knee V_K.", figures.DPI))
    else:
        out.append(Section("Reversal potentials", absent("the run stopped before step 3 (reversal traces)")))
    out += _evaluation_sections(data)
    return out


def _summary(data: TtfsReport) -> str:
    facts = [["die serial", data.serial], ["part", f"{data.part} ({'-'.join(map(str, data.layer_sizes))})"],
             ["date", data.created], ["labctl", data.labctl_version], ["file", str(data.path)],
             ["steps measured", f"{len(data.steps_done)} of {len(STEPS)}: {', '.join(data.steps_done) or 'none'}"]]
    if data.bench_s is not None:
        facts.append(["bench time", f"{data.bench_s:.1f} s"])
    if data.monitors is not None:
        facts.append(["monitors (READ_MONITORS)",
                      ", ".join(f"{n} {v:.4f} V" for n, v in zip(MONITOR_NAMES, data.monitors))])
    if data.params is not None:
        facts += _parameter_facts(data.params)
    missing = "".join(f"<p class='missing'>{html.escape(m)}</p>" for m in data.missing)
    layers = ""
    if data.params is not None:
        rows = [[str(s.layer), f"{s.quantity.label} ({s.quantity.unit})", str(s.neurons), f"{s.median:.4g}",
                 f"{s.sd:.3g}", f"{s.median_se:.2g}"] for s in layer_spreads(data.params)]
        layers = ("<p class='note'>Per layer: the median over its neurons, their spread (standard deviation "
                  "between neurons) and the median standard error of one neuron's fit.</p>"
                  + table(["layer", "quantity", "neurons", "median", "spread (sd)", "median error"], rows, left=2))
    return table([], facts, left=2) + missing + layers


def _parameter_facts(p: TtfsDieParameters) -> list[list[str]]:
    """The die-wide fitted figures, each with its standard error."""
    facts = [["V_REST", measured(p.v_rest_v, 1e3, "mV")], ["VTH pad (reference point)", f"{p.vth_pad_v:.4f} V"],
             ["V_K (knee)", measured(p.v_k_v, 1e3, "mV")], ["kappa (coupling per row)", measured(p.kappa_v, 1e6, "uV")]]
    for polarity, name in POLARITIES:
        pol = polarity_of(p, polarity)
        facts += [[f"I_LSB {name}", measured(pol.i_lsb_a, 1e9, "nA")],
                  [f"{figures.LAMBDA_NAMES[polarity]}", f"{measured(pol.lam_per_v, 1.0, '/V')} "
                                                        f"(site spread {pol.lam_site_sd:.1%})"],
                  [RAIL_NAMES[polarity], f"{measured(pol.reversal_v, 1e3, 'mV')} at pad {pol.pad_v:.3f} V"]]
    facts += [["C median", f"{capacitance_median_f(p) * 1e15:.4g} fF"], ["d median", f"{delay_median_ns(p):.4g} ns"],
              ["write residual half-width", f"±{p.write_residual_half_width:.2%}"],
              ["input delay d_in (assumed)", f"{p.input_delay_ns:g} ns"]]
    facts += [[name.replace("_", " "), _extra(name, m)] for name, m in p.extras.items()]
    return facts


def _extra(name: str, m: Measured) -> str:
    for suffix, (scale, unit) in EXTRA_UNITS.items():
        if name.endswith(suffix):
            return measured(m, scale, unit)
    return measured(m)


def _neuron_table(p: TtfsDieParameters) -> str:
    rows = []
    for index, layer in enumerate(p.layers, start=1):
        for k in range(len(np.asarray(layer.capacitance_f.value))):
            rows.append([str(index), str(k)] + [
                with_se(np.asarray(getattr(layer, q.name).value)[k], np.asarray(getattr(layer, q.name).se)[k], q.scale)
                for q in NEURON_QUANTITIES])
    header = ["layer", "neuron", *(f"{q.label} ({q.unit})" for q in NEURON_QUANTITIES)]
    return "<p class='note'>Every neuron, ± one standard error.</p>" + table(header, rows, left=0)


def _ladder_table(p: TtfsDieParameters) -> str:
    rows = []
    for polarity, name in POLARITIES:
        pol = polarity_of(p, polarity)
        value, se = np.asarray(pol.bit_weights.value), np.asarray(pol.bit_weights.se)
        rows.append([name, measured(pol.i_lsb_a, 1e9)] + [with_se(v, s) for v, s in zip(value, se)])
    return ("<p class='note'>Bit k weighs w_k steps of I_LSB (nominal 2^k); I_LSB is code 15's current over 15. "
            "± one standard error.</p>"
            + table(["polarity", "I_LSB (nA)", "w_0 (1)", "w_1 (2)", "w_2 (4)", "w_3 (8)"], rows))


def _shape_table(p: TtfsDieParameters) -> str:
    rows = [[name, measured(polarity_of(p, polarity).lam_per_v), f"{polarity_of(p, polarity).lam_site_sd:.1%}",
             measured(polarity_of(p, polarity).reversal_v, 1e3)] for polarity, name in POLARITIES]
    return (table(["polarity", "lambda (1/V)", "site spread", "reversal potential (mV)"], rows)
            + f"<p class='note'>V_K {html.escape(measured(p.v_k_v, 1e3, 'mV'))} (step 3).</p>")


def _evaluation_sections(data: TtfsReport) -> list[Section]:
    """The on-chip evaluations found beside the file: a table of every one, then each one's figure."""
    if not data.evaluations:
        return [Section("On-chip evaluation", absent("no evaluation_*.json of this die next to the file "
                                                      "(a recipe's evaluate step, or labctl evaluate --out-dir "
                                                      "into this folder, writes one)"))]
    rows = [_evaluation_row(r) for r in data.evaluations]
    overview = table(["weights", "on chip", "software model", "test patterns", "no output fired", "ties",
                    "energy per inference (pJ)", "dynamic power (nW)"], rows)
    out = [Section("On-chip evaluation", overview)]
    for record in data.evaluations:
        text = ("Left: true class against the first output to spike (the last column: no output fired). Right: "
                + ("the winning output's first-spike time for each true class's patterns, right and wrong winners "
                   "stacked." if record.spikes.by == "true class" else
                   "each output's first-spike times over the patterns it fired on (the record holds no "
                   "per-pattern labels, so the winners cannot be picked out)."))
        out.append(figure_section(f"On-chip evaluation: {record.name}", f"evaluation-{record.name}",
                                  figures.evaluation(record), text, figures.DPI))
    return out


def _evaluation_row(r: EvaluationRecord) -> list[str]:
    pct = lambda v: "-" if v is None else f"{v:.1%}"
    energy = "-" if r.energy_per_inference_j is None else with_se(r.energy_per_inference_j,
                                                                   r.energy_se_j or float("nan"), 1e12)
    dynamic = "-" if r.dynamic_power_w is None else f"{r.dynamic_power_w * 1e9:.4g}"
    return [r.name, pct(r.accuracy), pct(r.software_accuracy), str(r.n_samples), pct(r.no_spike_fraction),
            "-" if r.ties is None else str(r.ties), energy, dynamic]
