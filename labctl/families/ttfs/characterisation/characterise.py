"""``labctl characterise`` for an RC-Spike die: run the plan of contract 7, fit, write the file.

Order (dependencies first): the MON chain and V_REST (step 1); leakage and
coupling with every code 0 (step 8, first here because kappa enters the
anchors); the DC shape per polarity (step 2); the ladders (step 7, on DC);
the traces near each rail (step 3); the per-neuron anchors (step 4); every
site (step 5). The plan is the die's part's
(:meth:`CharacterisationPlan.for_part`, from IDENTIFY) unless one is given;
steps 4 and 5 run at its window when it sets one. Each step's readings go into the partial file as the step
ends (:mod:`labctl.families.ttfs.storage`), so an interrupted run keeps them;
the die is left holding 0 everywhere (contract 7's step-8 codes). The bench
powers down on every exit (:func:`open_ttfs_bench`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labctl import files
from labctl.families.ttfs.bench import open_ttfs_bench
from labctl.families.ttfs.characterisation.analysis import Analysis, Readings, analyse
from labctl.families.ttfs.characterisation.anchors import measure_neuron
from labctl.families.ttfs.characterisation.dc_shape import measure_dc_shape, write_every_row
from labctl.families.ttfs.characterisation.ladder import measure_ladder
from labctl.families.ttfs.characterisation.leakage import Trace, measure_leakage
from labctl.families.ttfs.characterisation.plan import CharacterisationPlan
from labctl.families.ttfs.characterisation.reversal import measure_reversal
from labctl.families.ttfs.characterisation.sites import measure_sites
from labctl.families.ttfs.characterisation.tables import UNITS, trace_rows
from labctl.families.ttfs.die_parameters import TtfsDieParameters
from labctl.families.ttfs.storage import CharacterisationWriter


@dataclass(frozen=True)
class TtfsCharacterisation:
    """What one characterisation produced."""

    path: Path
    params: TtfsDieParameters
    summary_lines: tuple[str, ...]
    summary: dict[str, Any]
    bench_seconds: float


def _traces(prefix: str, traces: list[Trace]) -> tuple[dict, dict]:
    data, attrs = {}, {}
    for tr in traces:
        path = f"raw/traces/{prefix}_{tr.kind}_l{tr.layer}_n{tr.neuron}"
        data[path] = trace_rows(tr.t_s, tr.v)
        attrs[path] = {"layer": tr.layer, "neuron": tr.neuron, "kind": tr.kind, "rows_on": tr.rows_on,
                       "units": UNITS["traces"]}
    return data, attrs


def _bench_seconds(bench, started: float) -> float:
    value = getattr(bench, "bench_seconds", None)
    return float(value) if value is not None else time.monotonic() - started


def _measure(bench, plan: CharacterisationPlan, writer: CharacterisationWriter, report) -> Readings:
    chip = bench.chip
    pads = {role: bench.bias_v(role) for role in ("threshold", "rev_exc", "rev_inh")}
    report("MON chain", 0, 1)
    chain = bench.calibrate_probe_chain()
    v_rest = bench.read_membrane(0, 3, None)
    monitors = bench.link.read_monitors()
    writer.add({"raw/v_rest_reference": trace_rows(v_rest.t_s, v_rest.v),
                "raw/monitors": np.array([monitors.vdd, monitors.vth, monitors.erev_exc, monitors.erev_inh,
                                          monitors.v_rest])},
               {"raw/monitors": {"fields": "VDD, VTH, EREV_EXC, EREV_INH, V_REST (V, READ_MONITORS)"}})
    report("MON chain", 1, 1)
    leakage = measure_leakage(bench, plan, report)
    writer.add(*_traces("step8", leakage))
    dc = np.concatenate([measure_dc_shape(bench, plan, p, report) for p in (1, -1)])
    writer.add({"raw/dc_shape": dc}, {"raw/dc_shape": {"units": UNITS["dc"]}})
    ladder = np.concatenate([measure_ladder(bench, plan, p, report) for p in (1, -1)])
    writer.add({"raw/ladder": ladder}, {"raw/ladder": {"units": UNITS["dc"]}})
    report("reversal", 0, 1)
    reversal, levels = measure_reversal(bench, plan)
    writer.add(*_traces("step3", reversal))
    report("reversal", 1, 1)
    neurons = [(layer, k) for layer in range(1, chip.n_layers) for k in range(chip.layer_sizes[layer])]
    write_every_row(bench, 0)
    timing = bench.link.timing
    if plan.window_ns is not None:
        bench.link.set_timing(plan.window_ns, timing.gap_us)
    try:
        anchors = []
        for i, (layer, k) in enumerate(neurons):
            report("anchors", i, len(neurons))
            a = measure_neuron(bench, plan, layer, k)
            anchors.append(a)
            writer.add({f"raw/anchors/l{layer}_n{k}/dc": a.dc, f"raw/anchors/l{layer}_n{k}/tdc": a.tdc,
                        f"raw/anchors/l{layer}_n{k}/trace": trace_rows(a.trace_t_s, a.trace_v)})
        report("anchors", len(neurons), len(neurons))
        sites = measure_sites(bench, plan, report)
    finally:
        if plan.window_ns is not None:
            bench.link.set_timing(timing.window_ns, timing.gap_us)
    writer.add({"raw/sites": sites}, {"raw/sites": {"units": UNITS["tdc"]}})
    write_every_row(bench, 0)
    return Readings(chip, pads, chain, np.asarray(v_rest.v), dc, ladder, reversal, levels, anchors, sites, leakage)


def _summary(analysis: Analysis, bench_seconds: float) -> tuple[dict[str, Any], tuple[str, ...]]:
    p = analysis.params
    exc, inh = p.excitatory, p.inhibitory
    caps = np.concatenate([np.asarray(layer.capacitance_f.value) for layer in p.layers])
    delays = np.concatenate([np.asarray(layer.delay_ns.value) for layer in p.layers])
    summary = {"bench_seconds": bench_seconds, "v_rest_v": p.v_rest_v.value, "v_k_v": p.v_k_v.value,
               "kappa_v": p.kappa_v.value, "i_lsb_exc_a": exc.i_lsb_a.value, "i_lsb_inh_a": inh.i_lsb_a.value,
               "lambda_n_per_v": exc.lam_per_v.value, "lambda_p_per_v": inh.lam_per_v.value,
               "e_exc_v": exc.reversal_v.value, "e_inh_v": inh.reversal_v.value,
               "capacitance_median_f": float(np.median(caps)), "delay_median_ns": float(np.median(delays)),
               "write_residual_half_width": p.write_residual_half_width}
    lines = (f"die {p.serial} ({p.part}): {len(caps)} neurons characterised in {bench_seconds:.1f} s of bench time",
             f"V_REST {p.v_rest_v.value * 1e3:.1f} mV, V_K {p.v_k_v.value * 1e3:.1f} +- {p.v_k_v.se * 1e3:.1f} mV, "
             f"kappa {p.kappa_v.value * 1e3:.3f} mV per row",
             f"I_LSB exc {exc.i_lsb_a.value * 1e9:.3f} +- {exc.i_lsb_a.se * 1e9:.3f} nA, inh "
             f"{inh.i_lsb_a.value * 1e9:.3f} +- {inh.i_lsb_a.se * 1e9:.3f} nA",
             f"lambda_N {exc.lam_per_v.value:.3f} +- {exc.lam_per_v.se:.3f} /V (sites {exc.lam_site_sd:.1%}), "
             f"lambda_P {inh.lam_per_v.value:.3f} +- {inh.lam_per_v.se:.3f} /V (sites {inh.lam_site_sd:.1%})",
             f"E+ {exc.reversal_v.value * 1e3:.1f} mV, E- {inh.reversal_v.value * 1e3:.1f} mV; "
             f"C median {np.median(caps) * 1e15:.2f} fF, d median {np.median(delays):.2f} ns")
    off_ladder = int(p.extras["off_ladder_sites"].value)
    summary["off_ladder_sites"] = off_ladder
    if off_ladder:
        lines += (f"{off_ladder} held site(s) far off their column's current (a cell that did not take its code?): "
                  "left out of the column gains",)
    return summary, lines


def characterise_die(bench_file: Path, out: Path, *, progress=None, announce=None, force: bool = False,
                     plan: CharacterisationPlan | None = None, **bench_options) -> TtfsCharacterisation:
    """Characterise the die on ``bench_file`` into ``out`` (module docstring).

    An existing ``out`` is refused unless ``force``; with ``force`` it stays
    usable until the new file replaces it. A partial file left by an
    interrupted run is likewise kept unless ``force`` (there is no resume yet). ``plan``: the die's part's
    unless given. ``bench_options`` go to the bench (:func:`open_ttfs_bench`).
    """
    out = Path(out)
    files.refuse_existing(out, force=force, what="a characterisation")
    files.refuse_existing(files.partial_path(out), force=force, what="the readings of an interrupted run")
    report = progress or (lambda stage, done, total: None)
    started = time.monotonic()
    writer: CharacterisationWriter | None = None
    try:
        with open_ttfs_bench(Path(bench_file), progress=progress, announce=announce, **bench_options) as bench:
            chip = bench.chip
            plan = plan or CharacterisationPlan.for_part(chip.part)
            writer = CharacterisationWriter.create(out, {"part": chip.part, "serial": chip.serial,
                                                         "layer_sizes": list(chip.layer_sizes),
                                                         "plan": plan.as_dict()}, bench.config.text)
            if announce:
                announce(f"characterising {chip.serial} ({chip.part}): {sum(chip.layer_sizes[1:])} neurons")
            readings = _measure(bench, plan, writer, report)
            seconds = _bench_seconds(bench, started)
        report("fit", 0, 1)
        analysis = analyse(readings, plan)
        writer.add(analysis.fits)
        summary, lines = _summary(analysis, seconds)
        path = writer.finish(analysis.params, {"bench_seconds": seconds, "summary": summary})
        report("fit", 1, 1)
    except BaseException:
        if writer is not None:
            writer.abandon()
        raise
    return TtfsCharacterisation(path, analysis.params, (*lines, f"wrote {path}"), summary, seconds)
