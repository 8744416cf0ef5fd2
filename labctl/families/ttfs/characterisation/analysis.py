"""From a run's readings to the die's parameters (contract 7's "gives" column), in dependency order.

1. the rails and V_K (step 3 traces; lambda from a first pass of step 2),
2. lambda per polarity (step 2 with the measured knee and rails),
3. kappa (step 8's coupling traces), then each neuron's anchors (step 4),
4. every site's current at the characterisation write (step 5), the leakage (step 8),
5. the ladders and the column gains (ladder rows and the anchors' held sites, or with bias-row anchors the
   step-5 currents, iterated to mean gain 1).

Every figure carries a standard error; the fits are pure functions of the
sibling ``*_fit`` modules, and this module only routes the readings to them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labctl.families.ttfs.characterisation.anchor_fit import AnchorFit, AnchorLevel, ChainErrors, fit_anchor
from labctl.families.ttfs.characterisation.anchors import NeuronAnchors
from labctl.families.ttfs.characterisation.branch import ExcitatoryShape, branch_shape
from labctl.families.ttfs.characterisation.ladder_fit import (
    ColumnGains,
    LadderFit,
    column_gains,
    fit_ladder,
    normalise_gains,
)
from labctl.families.ttfs.characterisation.leak_fit import fit_drift, fit_step, leak_current
from labctl.families.ttfs.characterisation.leakage import Trace
from labctl.families.ttfs.characterisation.plan import CharacterisationPlan
from labctl.families.ttfs.characterisation.shape_fit import LambdaFit, combine_rows, fit_rail_approach, fit_row_lambda
from labctl.families.ttfs.characterisation.site_fit import SiteCurrents, site_currents
from labctl.families.ttfs.die_parameters import Measured, NeuronLayer, Polarity, TtfsDieParameters
from labctl.families.ttfs.identify import DieDescription
from labctl.families.ttfs.membrane import ChainCalibration

THERMAL_VOLTAGE_V = 0.0257
"""V_K = kT/q at 25 degC (1.6, T): the first pass's knee, before step 3 measures it."""
GAIN_PASSES = 3


@dataclass(frozen=True)
class Readings:
    """Everything one run read (what the file's /raw holds), grouped by step."""

    chip: DieDescription
    pads: dict[str, float]
    """The reference operating point's setpoints (threshold, rev_exc, rev_inh) the run worked at."""
    chain: ChainCalibration
    v_rest_trace: np.ndarray
    dc_shape: np.ndarray
    ladder: np.ndarray
    reversal: list[Trace]
    reversal_levels: dict[str, float]
    anchors: list[NeuronAnchors]
    sites: np.ndarray
    leakage: list[Trace]


@dataclass(frozen=True)
class Analysis:
    params: TtfsDieParameters
    fits: dict[str, np.ndarray]
    """HDF5 path -> table, for /fits."""
    anchor_fits: list[AnchorFit]
    sites: list[SiteCurrents]
    lambdas: dict[int, LambdaFit]
    ladders: dict[int, LadderFit]


def _chain_errors(chain: ChainCalibration) -> ChainErrors:
    return ChainErrors(chain.offset_se / chain.gain, chain.gain_se / chain.gain)


def _lambda(dc: np.ndarray, chip: DieDescription, polarity: int, v_rest: float, v_k: float,
            e_offset: float) -> tuple[LambdaFit, float]:
    """Lambda of one polarity, and the readings' pooled relative noise: an SMU reading's noise is relative to
    what it reads (3.6), so a row's residual is scaled by its held and released readings together."""
    rows, sites, rel = [], [], []
    dc = dc[dc["polarity"] == polarity]
    for m in range(chip.n_matrices):
        for r in np.unique(dc["row"][dc["matrix"] == m]):
            sel = dc[(dc["matrix"] == m) & (dc["row"] == r)]
            rail = sel["rail_v"] + e_offset
            x = v_rest - rail if polarity > 0 else rail - v_rest
            fit = fit_row_lambda(x, sel["synaptic_a"], v_k)
            rows.append(fit)
            sites.append(chip.matrix_shape(m)[1])
            model = fit.current_a * branch_shape(x, fit.lam, v_k)
            rel.extend((sel["synaptic_a"] - model) / np.hypot(sel["held_a"], sel["released_a"]))
    dof = max(len(rel) - 2 * len(rows), 1)
    return combine_rows(rows, np.array(sites)), float(np.sqrt(np.sum(np.square(rel)) / dof))


def _rails(traces: list[Trace], levels: dict[str, float], lam: dict[int, float], chain: ChainCalibration,
           plan: CharacterisationPlan) -> tuple[dict[int, Measured], Measured]:
    """E+ and E- less their pads (per polarity), and V_K over every trace."""
    offsets, v_k, v_k_se = {}, [], []
    for polarity, kind in ((1, "e_exc"), (-1, "e_inh")):
        fits = [fit_rail_approach(tr.t_s - plan.probe_delay_s, tr.v, lam[polarity], plan.reversal_window_ns * 1e-9,
                                  towards_below=polarity > 0) for tr in traces if tr.kind == kind]
        rails = np.array([f.rail_v for f in fits])
        stat = max(float(np.std(rails, ddof=1) / np.sqrt(len(rails))) if len(rails) > 1 else 0.0,
                   float(np.sqrt(np.mean([f.rail_se**2 for f in fits])) / np.sqrt(len(fits))))
        level = levels[kind]
        offsets[polarity] = Measured(float(rails.mean() - level),
                                     float(np.hypot(stat, _chain_errors(chain).level_se(level))))
        v_k += [f.v_k for f in fits]
        v_k_se += [f.v_k_se for f in fits]
    w = 1.0 / np.square(v_k_se)
    mean = float(np.sum(w * np.array(v_k)) / w.sum())
    se = max(float(1.0 / np.sqrt(w.sum())), float(np.std(v_k, ddof=1) / np.sqrt(len(v_k))))
    return offsets, Measured(mean, se)


def _anchor_sites(anchor: NeuronAnchors, rel_noise: float) -> dict:
    """The anchors' held readings: per level the summed current, its error and the rows driving it, and every
    site's current.

    The rows of a level share one released reading, so its error enters the sum once per row. Bias-row anchors
    (one row a level) have no separate trace drive: it is the level the probed spike times were taken at.
    """
    dc = anchor.dc[anchor.dc["step"] == b"anchor"]
    levels = {}
    for code in np.unique(dc["code"]):
        sel = dc[dc["code"] == code]
        se = rel_noise * np.hypot(np.sqrt(np.sum(sel["held_a"] ** 2)), len(sel) * sel["released_a"][0])
        levels[int(code)] = (float(sel["synaptic_a"].sum()), float(se), len(sel))
    trace = anchor.dc[anchor.dc["step"] == b"trace"]
    trace_current = (float(trace[0]["synaptic_a"]) if len(trace)
                     else levels[int(anchor.tdc[anchor.tdc["probe"]][0]["code"])][0])
    return {"levels": levels, "site_current": dc["synaptic_a"], "site_code": np.abs(dc["code"]),
            "trace_current": trace_current}


def _probe_load(anchor: NeuronAnchors, fit: AnchorFit, input_delay_ns: float) -> tuple[float, float]:
    """The probe mux's load on the membrane (1.10): the trace drive's spike time with and without the probe."""
    tdc = anchor.tdc
    probed = tdc[tdc["probe"]][0]
    bare = tdc[~tdc["probe"] & (tdc["row"] == probed["row"]) & (tdc["code"] == probed["code"])][0]
    travel = bare["mean_ns"] + 0.5 - input_delay_ns - fit.delay_ns
    ratio = (probed["mean_ns"] - bare["mean_ns"]) / travel
    se = fit.capacitance_f * np.hypot(probed["se_ns"], bare["se_ns"]) / travel
    return float(fit.capacitance_f * ratio), float(se)


@dataclass(frozen=True)
class GainSites:
    """The site currents one layer's column gains come from: current (A), code magnitude and column per site;
    with timed sites (step 5) the relative error every site of a column shares (its anchors), and each site's
    relative spread from its own lambda (which the write residual's scatter must not count)."""

    current_a: np.ndarray
    magnitude: np.ndarray
    column: np.ndarray
    column_rel_se: np.ndarray | None = None
    site_lambda_rel: np.ndarray | None = None


def _held_sites(readings: Readings, held: list[dict]) -> list[GainSites]:
    """Per layer, the anchors' held sites (every row at the neuron's column, 3 codes)."""
    sites = []
    for lay in range(1, readings.chip.n_layers):
        mine = [(a, h) for a, h in zip(readings.anchors, held) if a.layer == lay]
        sites.append(GainSites(np.concatenate([h["site_current"] for _, h in mine]),
                               np.concatenate([h["site_code"] for _, h in mine]),
                               np.concatenate([np.full(len(h["site_code"]), a.neuron) for a, h in mine])))
    return sites


def _timed_sites(readings: Readings, plan: CharacterisationPlan, results: list[SiteCurrents],
                 by_layer: dict[int, list[tuple[NeuronAnchors, AnchorFit]]], shape: ExcitatoryShape) -> list[GainSites]:
    """Per layer, step 5's currents (every row at +10, contract 7's gains): a column's sites share its anchors'
    C and d, whose errors do not average over the rows; its C carries the anchor site's lambda (1.7), d the
    travel time's."""
    sites = []
    for m, result in enumerate(results):
        fs = [f for _, f in sorted(by_layer[m + 1], key=lambda af: af[0].neuron)]
        mean, _ = _site_table(readings.sites, m, readings.chip.matrix_shape(m))
        travel = np.nanmedian(mean, axis=0) + 0.5 - plan.input_delay_ns - np.array([f.delay_ns for f in fs])
        common = np.hypot([f.capacitance_se / f.capacitance_f for f in fs], np.array([f.delay_se for f in fs]) / travel)
        rows, columns = np.nonzero(np.isfinite(result.current_a))
        sites.append(GainSites(result.current_a[rows, columns], np.full(len(rows), plan.site_code), columns, common,
                               _site_lambda_share(shape, fs)[columns]))
    return sites


def _ladders_and_gains(readings: Readings, sites: list[GainSites]) -> tuple[dict[int, LadderFit], list[ColumnGains],
                                                                            float]:
    """Ladders and column gains, alternated until the gains (mean 1 over the die) and the ladders agree; the write
    residual's half width from the sites' scatter about them (sites off the ladder left out; with timed sites less
    their own lambdas' share)."""
    chip = readings.chip
    lad = readings.ladder
    layers = range(1, chip.n_layers)
    gains = [ColumnGains(np.ones(n), np.zeros(n), np.zeros(0, bool)) for n in chip.layer_sizes[1:]]
    for _ in range(GAIN_PASSES):
        ladders = {}
        for polarity in (1, -1):
            sel = lad[lad["polarity"] == polarity]
            sums = np.array([gains[m].gain.sum() for m in sel["matrix"]])
            ladders[polarity] = fit_ladder(np.abs(sel["code"]), sums, sel["synaptic_a"])
        raw = [column_gains(s.current_a, s.magnitude, s.column, chip.layer_sizes[lay], ladders[1])
               for lay, s in zip(layers, sites)]
        raw = [g if s.column_rel_se is None else ColumnGains(g.gain, np.hypot(g.se, g.gain * s.column_rel_se),
                                                             g.off_ladder)
               for g, s in zip(raw, sites)]
        gains, _ = normalise_gains(raw)
    ratios = np.concatenate([(s.current_a / (ladders[1].current(s.magnitude) * g.gain[s.column]) - 1.0)[~g.off_ladder]
                             for s, g in zip(sites, gains)])
    variance = float(np.var(ratios))
    if sites[0].site_lambda_rel is not None:
        own = np.concatenate([s.site_lambda_rel[~g.off_ladder] for s, g in zip(sites, gains)])
        variance = max(variance - float(np.mean(own**2)), 0.0)
    return ladders, gains, float(np.sqrt(3.0 * variance))


def _kappa(traces: list[Trace], plan: CharacterisationPlan) -> Measured:
    """Kappa per row from each coupling trace's step; the error is the larger of the steps' and their scatter."""
    t_step = (plan.kappa_code * 10.0 + plan.input_delay_ns) * 1e-9
    per_row, se_rows = [], []
    for tr in (t for t in traces if t.kind == "kappa"):
        step = fit_step(tr.t_s - plan.probe_delay_s, tr.v, t_step, plan.leak_window_ns * 1e-9)
        per_row.append(step.step_v / tr.rows_on)
        se_rows.append(step.step_se / tr.rows_on)
    spread = float(np.std(per_row, ddof=1) / np.sqrt(len(per_row))) if len(per_row) > 1 else 0.0
    return Measured(float(np.mean(per_row)), max(spread, float(np.sqrt(np.mean(np.square(se_rows)) / len(se_rows)))))


def _site_table(sites: np.ndarray, m: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    mean, se = np.full(shape, np.nan), np.full(shape, np.nan)
    sel = sites[sites["matrix"] == m]
    mean[sel["row"], sel["column"]] = sel["mean_ns"]
    se[sel["row"], sel["column"]] = sel["se_ns"]
    return mean, se


def _measured(values, ses) -> Measured:
    return Measured(np.asarray(values, float), np.asarray(ses, float))


def _site_lambda_share(shape: ExcitatoryShape, fs: list[AnchorFit]) -> np.ndarray:
    """Per column, Q's relative spread from one site's lambda about the die mean (the model takes the mean)."""
    return np.array([np.sqrt(max(shape.charge_relative_se(f.start_v, f.threshold_v, sites=1) ** 2
                                 - shape.charge_relative_se(f.start_v, f.threshold_v) ** 2, 0.0)) for f in fs])


def _sites(readings: Readings, plan: CharacterisationPlan, shape: ExcitatoryShape,
           by_layer: dict[int, list[tuple[NeuronAnchors, AnchorFit]]], fits: dict) -> list[SiteCurrents]:
    """Step 5: every site's current through its column's anchors (into ``fits``)."""
    results = []
    for m in range(readings.chip.n_matrices):
        fs = [f for _, f in sorted(by_layer[m + 1], key=lambda af: af[0].neuron)]
        mean, se = _site_table(readings.sites, m, readings.chip.matrix_shape(m))
        col = {name: np.array([getattr(f, name) for f in fs]) for name in
               ("capacitance_f", "capacitance_se", "delay_ns", "delay_se", "charge_v", "charge_rel_se")}
        result = site_currents(mean, se, col["capacitance_f"], col["capacitance_se"], col["delay_ns"],
                               col["delay_se"], col["charge_v"], col["charge_rel_se"], _site_lambda_share(shape, fs),
                               input_delay_ns=plan.input_delay_ns)
        results.append(result)
        fits[f"fits/site_current_a/matrix_{m}"] = result.current_a
        fits[f"fits/site_current_se_a/matrix_{m}"] = result.se_a
    return results


def _polarities(readings: Readings, ladders: dict[int, LadderFit], lambdas: dict[int, LambdaFit],
                offsets: dict[int, Measured], fits: dict) -> dict[str, Polarity]:
    polarities = {}
    for p, name, role in ((1, "excitatory", "rev_exc"), (-1, "inhibitory", "rev_inh")):
        lad, lam, pad = ladders[p], lambdas[p], readings.pads[role]
        polarities[name] = Polarity(Measured(lad.i_lsb_a, lad.i_lsb_se), _measured(lad.bit_weights, lad.bit_se),
                                    Measured(lam.mean, lam.se), lam.site_sd,
                                    Measured(pad + offsets[p].value, offsets[p].se), pad)
        fits[f"fits/row_lambda/{name}"] = np.array([(r.lam, r.lam_se, r.current_a) for r in lam.rows],
                                                   dtype=[("lam_per_v", "f8"), ("se", "f8"), ("current_a", "f8")])
    return polarities


def analyse(readings: Readings, plan: CharacterisationPlan) -> Analysis:
    """The die's parameters and the per-step fit tables from one run's readings (module docstring's order)."""
    chip, chain = readings.chip, readings.chain
    chain_err = _chain_errors(chain)
    vr = readings.v_rest_trace
    v_rest = Measured(float(vr.mean()), float(np.hypot(vr.std(ddof=1) / np.sqrt(len(vr) / 20),
                                                       chain_err.level_se(float(vr.mean())))))
    first = {p: _lambda(readings.dc_shape, chip, p, v_rest.value, THERMAL_VOLTAGE_V, 0.0)[0].mean for p in (1, -1)}
    offsets, v_k = _rails(readings.reversal, readings.reversal_levels, first, chain, plan)
    lambdas, noise = {}, {}
    for p in (1, -1):
        lambdas[p], noise[p] = _lambda(readings.dc_shape, chip, p, v_rest.value, v_k.value, offsets[p].value)
    anchor_noise = noise[1] * np.sqrt(plan.nplc / plan.anchor_nplc)
    held = [_anchor_sites(a, anchor_noise) for a in readings.anchors]
    kappa = _kappa(readings.leakage, plan)
    e_exc = readings.pads["rev_exc"] + offsets[1].value
    shape = ExcitatoryShape(lambdas[1].mean, e_exc, v_k.value, v_rest.value, lam_se=lambdas[1].se,
                            lam_site_sd=lambdas[1].site_sd, e_exc_se=offsets[1].se, v_k_se=v_k.se)
    anchor_fits = []
    for a, h in zip(readings.anchors, held):
        rows_on = h["levels"][plan.anchor_codes[0]][2]  # every row of the matrix, or the bias row alone
        probe_tdc = a.tdc[a.tdc["probe"]][0]["mean_ns"]
        levels = [AnchorLevel(cur, se, row["mean_ns"], row["se_ns"], rows_on * kappa.value)
                  for (cur, se, _), row in zip((h["levels"][c] for c in plan.anchor_codes),
                                               a.tdc[a.tdc["step"] == b"anchor"])]
        anchor_fits.append(fit_anchor(levels, a.trace_t_s - plan.probe_delay_s, a.trace_v, probe_tdc,
                                      h["trace_current"], shape, input_delay_ns=plan.input_delay_ns,
                                      input_delay_se_ns=plan.input_delay_se_ns, trace_time_se_s=plan.trace_time_se_s,
                                      sites=rows_on, trace_kick_v=kappa.value, chain=chain_err))
    loads = {(a.layer, a.neuron): _probe_load(a, f, plan.input_delay_ns) for a, f in zip(readings.anchors, anchor_fits)}
    by_layer = {lay: [(a, f) for a, f in zip(readings.anchors, anchor_fits) if a.layer == lay]
                for lay in range(1, chip.n_layers)}
    fits: dict[str, np.ndarray] = {}
    site_results = _sites(readings, plan, shape, by_layer, fits)
    gain_sites = (_held_sites(readings, held) if plan.anchor_rows == "all"
                  else _timed_sites(readings, plan, site_results, by_layer, shape))
    ladders, gains, half_width = _ladders_and_gains(readings, gain_sites)
    layers = []
    for lay in range(1, chip.n_layers):
        pairs = sorted(by_layer[lay], key=lambda af: af[0].neuron)
        fs = [f for _, f in pairs]
        leak_traces = {tr.neuron: tr for tr in readings.leakage if tr.kind == "leak" and tr.layer == lay}
        # the leak traces are read with the probe on the membrane: its load is part of the capacitance there
        leaks = [leak_current(fit_drift(leak_traces[a.neuron].t_s - plan.probe_delay_s, leak_traces[a.neuron].v,
                                        plan.leak_window_ns * 1e-9),
                              f.capacitance_f + loads[(a.layer, a.neuron)][0], f.capacitance_se)
                 for a, f in pairs]
        g = gains[lay - 1]
        layers.append(NeuronLayer(
            capacitance_f=_measured([f.capacitance_f for f in fs], [f.capacitance_se for f in fs]),
            start_v=_measured([f.start_v for f in fs], [f.start_se for f in fs]),
            threshold_v=_measured([f.threshold_v for f in fs], [f.threshold_se for f in fs]),
            delay_ns=_measured([f.delay_ns for f in fs], [f.delay_se for f in fs]),
            column_gain=_measured(g.gain, g.se),
            leak_a=_measured([x for x, _ in leaks], [s for _, s in leaks])))
        fits[f"fits/anchors/layer_{lay}"] = _anchor_table(fs)
    polarities = _polarities(readings, ladders, lambdas, offsets, fits)
    load = np.array([loads[(a.layer, a.neuron)][0] for a in readings.anchors])
    ratio = np.array([f.trace_capacitance_f / (f.capacitance_f + c) for f, c in zip(anchor_fits, load)])
    extras = {"mon_chain_gain": Measured(chain.gain, chain.gain_se),
              "mon_chain_offset_v": Measured(chain.offset_v, chain.offset_se),
              "probe_load_f": Measured(float(load.mean()), float(np.std(load, ddof=1) / np.sqrt(len(load)))),
              "trace_over_timing_capacitance": Measured(float(np.median(ratio)),
                                                        float(np.std(ratio, ddof=1) / np.sqrt(len(ratio)))),
              "off_ladder_sites": Measured(float(sum(int(g.off_ladder.sum()) for g in gains)), 0.0)}
    params = TtfsDieParameters(part=chip.part, serial=chip.serial, layer_sizes=tuple(chip.layer_sizes),
                               v_rest_v=v_rest, vth_pad_v=readings.pads["threshold"], v_k_v=v_k, kappa_v=kappa,
                               layers=tuple(layers), input_delay_ns=plan.input_delay_ns,
                               write_residual_half_width=half_width, extras=extras, **polarities)
    return Analysis(params, fits, anchor_fits, site_results, lambdas, ladders)


def _anchor_table(fs: list[AnchorFit]) -> np.ndarray:
    names = ("capacitance_f", "capacitance_se", "delay_ns", "delay_se", "start_v", "start_se", "threshold_v",
             "threshold_se", "trace_capacitance_f", "charge_v", "charge_rel_se", "chi2")
    table = np.zeros(len(fs), dtype=[(n, "f8") for n in names])
    for n in names:
        table[n] = [getattr(f, n) for f in fs]
    return table
