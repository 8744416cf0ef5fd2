"""From recorded readings to per-neuron gains, by two methods that check each other.

Direct method (MON): layer-0 gains from the EXT_IN sweep (absolute up to the
die-wide MON gain), bias generator gain and offset from the bias sweep, and for
every deeper neuron the ratio of its MON reading to its sources' (as the
latches held them) across the drive levels of each chain configuration, which
is a_j * 7 w_lsb * (mean synapse gain); averaging over sources averages the
synapse mismatch (seed 004, section 3.6; :mod:`labctl.families.cmna.characterisation.chains`).
Negative twins and negative-weight probes give a-/a+ of each source soma in one
joint fit per layer (:mod:`labctl.families.cmna.characterisation.probe_fit`). The output layer's
C2F gain and dark rate come from the C2F rate against the MON reading of the
same soma; the linear-range runs give each soma's onset of compression
(:mod:`labctl.families.cmna.characterisation.linear_range`). The supply run's
readings give the supply-current model, fitted on the final gains
(:mod:`labctl.families.cmna.characterisation.supply_fit`).

Network method (C2F only, the paper's procedure): the slope of each output's
rate against the common input code is the product of the gains along its path;
a joint log-domain least-squares fit over all chain configurations separates the
nodes up to one scale per layer (fit.fit_path_products).

Both are normalised per layer (mean a+ = 1) and combined by inverse variance;
neurons whose methods disagree beyond their errors, or whose fit is poor, are
flagged. Works only from the file's records, so a run can be re-analysed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

from labctl.families.cmna.characterisation.chains import (
    MON_NOISE_FLOOR_A,
    RatioEquations,
    UnitSample,
    layer_tables,
    line_or_none,
    ratio_equations,
    solve_ratios,
    unit_samples,
)
from labctl.families.cmna.characterisation.configurations import UNIT_CODE, ChainConfig, config_from_params
from labctl.families.cmna.characterisation.flags import NeuronFlags
from labctl.calibration.fit import (
    Estimate,
    LineFit,
    fit_path_products,
    log_mean,
    normalise_mean_one,
    relative_sigma,
)
from labctl.families.cmna.characterisation.linear_range import LINEAR_RANGE_KIND, layer0_onsets, layer_onsets, max_inputs
from labctl.families.cmna.characterisation.plans import held_codes
from labctl.families.cmna.characterisation.probe_fit import ProbeColumn, probe_columns, probe_equations
from labctl.families.cmna.characterisation.probing import driven_channels
from labctl.families.cmna.characterisation.supply_fit import recorded_supply_model, supply_summary
from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.die_parameters import NOMINAL_W_LSB, DieParameters, LayerGains
from labctl.families.cmna.options import CHARACTERISATION_METHODS as METHODS
from labctl.families.cmna.storage import RawTables

POOR_FIT_RELATIVE_STD = 0.03
"""A gain known worse than 3 % (1 sigma) is flagged as a poor fit."""
DISAGREEMENT_SIGMAS = 3.0


@dataclass
class RecordedConfig:
    config_id: int
    kind: str
    params: dict
    held: list[np.ndarray]
    plan: ChainConfig | None = None
    corrupted: list[np.ndarray] = field(default_factory=list)


@dataclass
class AnalysisResult:
    params: DieParameters
    methods: dict[str, DieParameters]
    flags: list[NeuronFlags]
    """Per layer, the neurons whose gains are doubtful."""
    summary: dict


def _configs(chip: ChipDescription, raw: RawTables) -> dict[int, RecordedConfig]:
    """The configurations whose run finished (an interrupted one is left out, resume redoes it)."""
    done = raw.finished_configs()
    out = {}
    for row, flat in zip(raw.configs, raw.config_codes):
        if int(row["config"]) not in done:
            continue
        params = json.loads(row["params"])
        held = held_codes(chip, flat)
        kind = row["kind"].decode() if isinstance(row["kind"], bytes) else str(row["kind"])
        rc = RecordedConfig(int(row["config"]), kind, params, held)
        if kind.startswith("chain"):
            rc.plan = config_from_params(chip, kind, params)
            rc.corrupted = corrupted_columns(rc.plan, held)
        out[rc.config_id] = rc
    return out


def corrupted_columns(plan: ChainConfig, held: list[np.ndarray]) -> list[np.ndarray]:
    """Per matrix, the columns whose latches differ from the plan on a row that carries signal.

    Only the driven input channels carry signal into matrix 0; every neuron of a
    deeper layer has a source in a chain, so any difference there counts.
    """
    out = []
    for m, (h, p) in enumerate(zip(held, plan.codes)):
        wrong = h != p
        if m == 0:
            silent = np.ones(h.shape[0], bool)
            silent[driven_channels(plan)] = False
            wrong[silent] = False
        out.append(np.any(wrong, axis=0))
    return out


class _MonIndex:
    """MON readings by (config, layer, neuron): arrays ordered by level.

    A chain's pilot readings (level -1, a low code inside the linear range) are
    data like any other level.
    """

    def __init__(self, mon: np.ndarray) -> None:
        self._by: dict[tuple[int, int, int], list[tuple[int, float, float]]] = defaultdict(list)
        self.times: dict[int, list[float]] = defaultdict(list)
        self._neurons: dict[tuple[int, int], set[int]] = defaultdict(set)
        for r in mon:
            self._neurons[(int(r["config"]), int(r["layer"]))].add(int(r["neuron"]))
            self._by[(int(r["config"]), int(r["layer"]), int(r["neuron"]))].append(
                (int(r["level"]), float(r["drive"]), float(r["current_a"])))
            self.times[int(r["config"])].append(float(r["time_s"]))

    def time_of(self, config: int) -> float:
        t = self.times.get(config)
        return float(np.mean(t)) if t else float("nan")

    def table(self, config: int, layer: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        """(levels, MON (levels, size)) of one layer in one configuration; NaN where not read."""
        neurons = self._neurons.get((config, layer), set())
        levels = sorted({lv for n in neurons for lv, _, _ in self._by[(config, layer, n)]})
        out = np.full((len(levels), size), np.nan)
        where = {lv: i for i, lv in enumerate(levels)}
        for n in neurons:
            for lv, _, current in self._by[(config, layer, n)]:
                out[where[lv], n] = current
        return np.array(levels, dtype=int), out

    def get(self, config: int, layer: int, neuron: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = sorted(self._by.get((config, layer, neuron), []))
        if not rows:
            empty = np.zeros(0)
            return empty.astype(int), empty, empty
        a = np.array(rows)
        return a[:, 0].astype(int), a[:, 1], a[:, 2]


RATE_NOISE_FLOOR_HZ = 100.0


def _safe_fit(x: np.ndarray, y: np.ndarray, floor: float | None = None) -> LineFit | None:
    """A line fit, or None with too few points; ``floor`` switches on relative-noise weights."""
    return line_or_none(x, y, None if floor is None else relative_sigma(y, floor))


# -- direct (MON) method ------------------------------------------------------

@dataclass
class MonResult:
    layer_abs: list[Estimate]
    ratio: list[Estimate]
    bias_gain: Estimate
    bias_offset_a: Estimate
    c2f_gain: Estimate
    synapse_spread: float
    onset: list[Estimate]
    """Compression onset per soma (A) of each layer, NaN where not measured."""
    max_input: list[np.ndarray]


def _last_of_kind(configs: dict[int, RecordedConfig], kind: str) -> int:
    ids = [c.config_id for c in configs.values() if c.kind == kind]
    return max(ids) if ids else -1


class DriftTrace(NamedTuple):
    """What the reference runs saw, one entry per run."""

    times: np.ndarray
    """Bench time (s)."""
    factor: np.ndarray
    """Gain relative to the first reference run."""
    temps: np.ndarray
    """Die temperature (degC) from STATUS beside the run."""
    factor_std: np.ndarray
    """Standard error of each run's gain level (the reading noise, estimated from the runs themselves)."""


def drift_trace(raw: RawTables, configs: dict[int, RecordedConfig], idx: "_MonIndex") -> DriftTrace:
    """Gain of the reference channels over the run, from each reading's MON / EXT_IN ratio.

    Readings are noisy in proportion to their size, so the mean ratio is the
    best gain of a channel; the small offset (bias offset, leakage) is the same
    in every run and cancels in the factor. The ratios of one channel within a
    run scatter by the reading noise alone, which sets each run's error.
    """
    times, gains, temps, spread = [], [], [], []
    for c in sorted((c for c in configs.values() if c.kind == "reference"), key=lambda c: c.config_id):
        per_channel = []
        for ch in c.params.get("channels", []):
            _, drive, cur = idx.get(c.config_id, 0, ch)
            ratio = cur[drive > 0] / drive[drive > 0]
            if len(ratio) >= 2:
                per_channel.append(ratio.mean())
                spread += list((ratio / ratio.mean() - 1) ** 2 * len(ratio) / (len(ratio) - 1))
        c2f = [r for r in raw.c2f if int(r["config"]) == c.config_id]
        if per_channel:
            times.append(idx.time_of(c.config_id))
            gains.append(np.array(per_channel))
            temps.append(float(c2f[0]["temperature_c"]) if c2f else np.nan)
    if not times:
        return DriftTrace(*(np.zeros(0),) * 4)
    reading = float(np.sqrt(np.mean(spread)))  # relative noise of one ratio
    factor = np.array([np.mean(g / gains[0]) for g in gains])
    readings = np.array([g.size * 2 for g in gains])  # two ratios per channel (the 0 A point gives none)
    return DriftTrace(np.array(times), factor, np.array(temps), reading / np.sqrt(readings))


def _ext_slopes(chip: ChipDescription, idx: "_MonIndex", configs: dict[int, RecordedConfig]) -> tuple[np.ndarray, np.ndarray]:
    """Layer-0 gains (MON per A of EXT_IN) and their errors from the EXT_IN sweep."""
    ext_id = _last_of_kind(configs, "ext_sweep")
    slope = np.full(chip.n_inputs, np.nan)
    std = np.full(chip.n_inputs, np.nan)
    for ch in range(chip.n_inputs):
        levels, drive, cur = idx.get(ext_id, 0, ch)
        keep = drive > 0  # at 0 A a negative bias offset leaves the soma off (rectified)
        f = _safe_fit(drive[keep], cur[keep], MON_NOISE_FLOOR_A)
        if f:
            slope[ch], std[ch] = f.slope, f.slope_std
    return slope, std


def ext_gains(chip: ChipDescription, raw: RawTables) -> np.ndarray:
    """Layer-0 gains from a file's EXT_IN sweep (the linear-range run plans its currents with them)."""
    return _ext_slopes(chip, _MonIndex(raw.mon), _configs(chip, raw))[0]


def recorded_drift(chip: ChipDescription, raw: RawTables) -> DriftTrace:
    """:func:`drift_trace` of a file's raw tables (for readers such as ``labctl report``)."""
    return drift_trace(raw, _configs(chip, raw), _MonIndex(raw.mon))


def measured_onsets(chip: ChipDescription, raw: RawTables) -> list[Estimate]:
    """Compression onsets per layer from a file's linear-range runs (NaN before them)."""
    return _onsets(chip, _MonIndex(raw.mon), _configs(chip, raw))


def analyse_mon(chip: ChipDescription, raw: RawTables, configs: dict[int, RecordedConfig]) -> MonResult:
    idx = _MonIndex(raw.mon)
    ext_slope, ext_std = _ext_slopes(chip, idx, configs)
    bias_id = _last_of_kind(configs, "bias_sweep")
    n0 = chip.n_inputs
    # bias generator: MON against DAC code, divided by the layer-0 gain
    gain = np.full(n0, np.nan)
    gain_std = np.full(n0, np.nan)
    offset = np.full(n0, np.nan)
    offset_std = np.full(n0, np.nan)
    for ch in range(n0):
        levels, drive, cur = idx.get(bias_id, 0, ch)
        keep = drive > 0
        f = _safe_fit(drive[keep], cur[keep], MON_NOISE_FLOOR_A)
        if f and np.isfinite(ext_slope[ch]):
            gain[ch] = f.slope / (ext_slope[ch] * chip.dac_lsb_a)
            gain_std[ch] = abs(gain[ch]) * np.hypot(f.relative_slope_std, ext_std[ch] / ext_slope[ch])
            offset[ch] = f.intercept / ext_slope[ch]
            offset_std[ch] = f.intercept_std / ext_slope[ch]

    # deeper layers: each neuron's MON reading against its held column sum, per chain configuration
    per_config = {c.config_id: unit_samples(idx, c.config_id, c.held, chip)
                  for c in configs.values() if c.kind == "chain"}
    probes = {c.config_id: probe_columns(idx, c.config_id, c.params, c.held, chip)
              for c in configs.values() if c.kind == "negative_probe"}
    samples: dict[tuple[int, int], list[UnitSample]] = defaultdict(list)
    for found in per_config.values():
        for key, sample in found.items():
            samples[key].append(sample)
    for columns in probes.values():  # a probe's positive rows sample the unit response too
        for col in columns:
            if _agrees(col.unit, samples.get((col.layer, col.neuron), [])):
                samples[(col.layer, col.neuron)].append(col.unit)
    layer_abs = [Estimate(ext_slope.copy(), ext_std.copy())]
    for l in range(1, chip.n_layers):
        n = chip.layer_sizes[l]
        got = [samples.get((l, j), []) for j in range(n)]
        rows_per_sample = np.mean([s.rows for g in got for s in g]) if any(got) else 1.0
        est = log_mean([[s.slope for s in g] for g in got], n, rel_errors=[[s.rel_std for s in g] for g in got],
                       population=int(max(1, chip.layer_sizes[l - 1] / rows_per_sample)))
        unit = UNIT_CODE * NOMINAL_W_LSB
        layer_abs.append(Estimate(est.value / unit, est.std / unit))

    # synapse spread: the scatter of one neuron's samples over its sources, less the reading noise
    # (a sample averaging k synapses scatters sqrt(k) times less than one synapse)
    scatter, noise = [], []
    for group in samples.values():
        if len(group) > 1:
            k = np.mean([s.rows for s in group])
            scatter.append(np.var(np.log([s.slope for s in group]), ddof=1) * k)
            noise.append(np.mean(np.square([s.rel_std for s in group])) * k)
    unit_spread = float(np.sqrt(max(np.mean(scatter) - np.mean(noise), 0.0))) if scatter else float("nan")
    # a code-7 synapse averages its three bits with weights 1, 2, 4: spread sqrt(21)/7 of one bit's
    bit_spread = unit_spread / (np.sqrt(21) / 7)

    ratio = _negative_ratios(chip, idx, configs, per_config, probes, layer_abs)
    c2f_gain = _c2f_from_mon(chip, raw, idx, configs)
    gain_runs = np.array([c.config_id for c in configs.values() if c.kind != LINEAR_RANGE_KIND])
    return MonResult(layer_abs, ratio, Estimate(gain, gain_std), Estimate(offset, offset_std),
                     c2f_gain, bit_spread, _onsets(chip, idx, configs),
                     max_inputs(raw.mon, gain_runs, [e.value for e in layer_abs]))


def _onsets(chip: ChipDescription, idx: "_MonIndex", configs: dict[int, RecordedConfig]) -> list[Estimate]:
    """Compression onset per soma of every layer: layer 0 from its EXT_IN runs, deeper layers from
    their runs fed through synapses (the last of each)."""
    out = [layer0_onsets(chip.n_inputs, _knee_readings(chip, idx, configs))]
    for l in range(1, chip.n_layers):
        knee_id = _last_knee(configs, l)
        if knee_id < 0:
            nan = np.full(chip.layer_sizes[l], np.nan)
            out.append(Estimate(nan, nan.copy()))
            continue
        feeders, read, somas = layer_tables(idx, knee_id, chip, l - 1)
        out.append(layer_onsets(configs[knee_id].held[l - 1], np.where(read, feeders, np.nan), somas))
    return out


def _last_knee(configs: dict[int, RecordedConfig], layer: int) -> int:
    """The last finished linear-range run of ``layer``; -1: none."""
    ids = [c.config_id for c in configs.values()
           if c.kind == LINEAR_RANGE_KIND and int(c.params.get("layer", 0)) == layer]
    return max(ids) if ids else -1


def _knee_readings(chip: ChipDescription, idx: "_MonIndex",
                   configs: dict[int, RecordedConfig]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per input channel probed beyond the linear range: EXT_IN current and MON of both EXT_IN runs."""
    ext_id, knee_id = _last_of_kind(configs, "ext_sweep"), _last_knee(configs, 0)
    out = {}
    for ch in configs[knee_id].params["channels"] if knee_id in configs else []:
        _, x0, y0 = idx.get(ext_id, 0, ch)
        _, x1, y1 = idx.get(knee_id, 0, ch)
        keep = x0 > 0
        out[int(ch)] = (np.concatenate([x0[keep], x1]), np.concatenate([y0[keep], y1]))
    return out


PROBE_UNIT_TOLERANCE = 0.15
"""A probe's unit response further than this from the chains' median is a failed column fit."""


def _agrees(sample: UnitSample, chain_samples: list[UnitSample]) -> bool:
    """A probe column fits many coefficients from few levels: use its unit response only where
    it is precise and agrees with the chains' (two positive rows scatter a few per cent, not 15)."""
    if not chain_samples or not sample.rel_std < POOR_FIT_RELATIVE_STD:
        return False
    median = float(np.median([s.slope for s in chain_samples]))
    return abs(sample.slope / median - 1) < PROBE_UNIT_TOLERANCE


def _negative_ratios(chip, idx, configs, per_config, probes: dict[int, list[ProbeColumn]],
                     layer_abs) -> list[Estimate]:
    """a-/a+ per soma from chain_negative configurations and their twins (seed 004, section 3.3) and
    from negative-weight probes, in one joint fit per layer (:mod:`labctl.families.cmna.characterisation.chains`)."""
    twins = {tuple(c.params["shifts"]): c for c in configs.values() if c.kind == "chain"}
    equations = [RatioEquations() for _ in range(chip.n_matrices)]
    for c in configs.values():
        twin = twins.get(tuple(c.params["shifts"])) if c.kind == "chain_negative" else None
        if twin is not None:
            ratio_equations(idx, c.config_id, c.held, chip, per_config[twin.config_id], layer_abs, equations)
        elif c.kind == "negative_probe":
            m = int(c.params["matrix"])
            probe_equations(probes[c.config_id], layer_abs, chip.layer_sizes[m], equations[m])
    out = [solve_ratios(eq, n) for eq, n in zip(equations, chip.layer_sizes)]
    return out + [Estimate(np.full(chip.n_outputs, np.nan), np.full(chip.n_outputs, np.nan))]


def _c2f_from_mon(chip, raw, idx, configs) -> Estimate:
    """C2F gain (Hz per A of MON reading) from the rate against the MON reading of the same soma."""
    last = chip.n_layers - 1
    xs: dict[int, list[float]] = defaultdict(list)
    ys: dict[int, list[float]] = defaultdict(list)
    for r in raw.c2f:
        c = configs.get(int(r["config"]))
        if c is None or not c.kind.startswith("chain"):
            continue
        for k in range(chip.n_outputs):
            levels, _, mon = idx.get(c.config_id, last, k)
            hit = np.flatnonzero(levels == r["level"])
            if len(hit):
                xs[k].append(mon[hit[0]])
                ys[k].append(r["counts"][k] / r["gate_s"])
    gain = np.full(chip.n_outputs, np.nan)
    gain_std = np.full(chip.n_outputs, np.nan)
    for k in range(chip.n_outputs):
        f = _safe_fit(np.array(xs[k]), np.array(ys[k]), RATE_NOISE_FLOOR_HZ)
        if f:
            gain[k], gain_std[k] = f.slope, f.slope_std
    return Estimate(gain, gain_std)


def _dark_rates(chip, raw) -> Estimate:
    """Rate of each C2F with its output soma off: the dark rate plus the soma's leakage."""
    dark_id = _last_of_kind(_configs(chip, raw), "dark")
    rows = [r for r in raw.c2f if int(r["config"]) == dark_id]
    if not rows:
        return Estimate(np.full(chip.n_outputs, np.nan), np.full(chip.n_outputs, np.nan))
    counts = np.array([r["counts"] for r in rows], np.float64)
    gate = np.array([r["gate_s"] for r in rows])[:, None]
    total_gate = gate.sum()
    rate = counts.sum(axis=0) / total_gate
    return Estimate(rate, np.sqrt(np.maximum(counts.sum(axis=0), 1.0)) / total_gate)


# -- network method -------------------------------------------------------------

def analyse_network(chip: ChipDescription, raw: RawTables, configs: dict[int, RecordedConfig]) -> list[Estimate]:
    """Relative path gains per node (layer 0 includes the bias gain, the last layer the C2F gain)."""
    paths, log_slopes = [], []
    by_config: dict[int, list] = defaultdict(list)
    for r in raw.c2f:
        by_config[int(r["config"])].append(r)
    for c in configs.values():
        if c.kind != "chain" or c.config_id not in by_config or not c.plan.single_paths:
            continue
        rows = by_config[c.config_id]
        code = np.array([r["drive"] for r in rows])
        rates = np.array([r["counts"] / r["gate_s"] for r in rows])
        for k, path in enumerate(c.plan.paths()):
            if (path < 0).any() or any(c.corrupted[m][path[m + 1]] for m in range(chip.n_matrices)):
                continue
            f = _safe_fit(code, rates[:, k], RATE_NOISE_FLOOR_HZ)
            if f and f.slope > 0:
                paths.append(path)
                log_slopes.append(np.log(f.slope))
    if not paths:
        return [Estimate(np.full(n, np.nan), np.full(n, np.nan)) for n in chip.layer_sizes]
    est = fit_path_products(np.array(paths), np.array(log_slopes), chip.layer_sizes)
    offsets = np.concatenate([[0], np.cumsum(chip.layer_sizes)])
    return [Estimate(est.value[offsets[l]:offsets[l + 1]], est.std[offsets[l]:offsets[l + 1]])
            for l in range(chip.n_layers)]


# -- putting it together ----------------------------------------------------------

def _combine(a: Estimate, b: Estimate) -> Estimate:
    """Inverse-variance mean where both are known, else whichever is."""
    va, vb = a.std ** 2, b.std ** 2
    both = np.isfinite(a.value) & np.isfinite(b.value) & (va > 0) & (vb > 0)
    value = np.where(np.isfinite(a.value), a.value, b.value)
    std = np.where(np.isfinite(a.value), a.std, b.std)
    w = np.where(both, 1 / np.where(both, va, 1) + 1 / np.where(both, vb, 1), 1)
    value = np.where(both, (a.value / np.where(both, va, 1) + b.value / np.where(both, vb, 1)) / w, value)
    std = np.where(both, 1 / np.sqrt(w), std)
    return Estimate(value, std)


def analyse(chip: ChipDescription, raw: RawTables, method: str = "both") -> AnalysisResult:
    """Per-neuron gains of the die from its recorded readings, by ``method`` ("mon", "network" or "both"
    combined), with the flags of doubtful neurons and a summary of the precision reached."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}")
    configs = _configs(chip, raw)
    mon = analyse_mon(chip, raw, configs) if method in ("mon", "both") else None
    net = analyse_network(chip, raw, configs) if method in ("network", "both") else None
    die_wide = _DieWide.measured(chip, raw, mon)
    methods = _method_parameters(chip, die_wide, mon, net)
    if method == "both":
        final, flags = _combined(chip, die_wide, methods["mon"], methods["network"])
    else:
        final = methods[method]
        flags = [NeuronFlags(poor_fit=~(lay.a_plus_std / lay.a_plus <= POOR_FIT_RELATIVE_STD)) for lay in final.layers]
    final, unmeasured = fill_unmeasured(final)
    flags = [replace(f, unmeasured=u) for f, u in zip(flags, unmeasured)]
    final = with_linear_range(final, mon)
    final = replace(final, supply=recorded_supply_model(final, raw))  # needs the gains: fitted after them
    trace = drift_trace(raw, configs, _MonIndex(raw.mon)) if method != "network" else DriftTrace(*(np.zeros(0),) * 4)
    summary = {
        "method": method,
        "configurations": len(configs),
        "mon_readings": int(len(raw.mon)),
        "c2f_gates": int(len(raw.c2f)),
        "synapse_spread_per_bit": final.synapse_spread,
        "layers": [layer_summary(lay, f) for lay, f in zip(final.layers, flags)],
        "drift": drift_summary(trace),
        "linear_range": linear_range_summary(final),
        "supply": supply_summary(final.supply),
    }
    return AnalysisResult(final, methods, flags, summary)


@dataclass(frozen=True)
class _DieWide:
    """What every method's parameters share beside the neuron gains: the bias generators, the C2F
    converters and the synapse spread. Only the direct method measures the bias and C2F gains and the
    synapse spread (the network method sees the gains folded into its path products), so without it they
    stay nominal (the spread unknown); the dark rates come from their own recorded configuration, so every
    method has them where it was recorded."""

    chip: ChipDescription
    bias_gain: np.ndarray
    bias_offset_a: np.ndarray
    c2f_gain_hz_per_a: np.ndarray
    c2f_dark_hz: np.ndarray
    synapse_spread: float

    @classmethod
    def measured(cls, chip: ChipDescription, raw: RawTables, mon: MonResult | None) -> _DieWide:
        nominal = DieParameters.nominal(chip)
        dark = _dark_rates(chip, raw)
        return cls(chip,
                   mon.bias_gain.value if mon else nominal.bias_gain,
                   mon.bias_offset_a.value if mon else nominal.bias_offset_a,
                   mon.c2f_gain.value if mon else nominal.c2f_gain_hz_per_a,
                   np.where(np.isfinite(dark.value), dark.value, nominal.c2f_dark_hz),
                   mon.synapse_spread if mon else float("nan"))

    def parameters(self, layers: list[LayerGains], source: str) -> DieParameters:
        """A die's parameters from one method's layer gains (``source`` is recorded in the notes)."""
        return DieParameters(self.chip, layers, self.bias_gain, self.bias_offset_a, self.c2f_gain_hz_per_a,
                             self.c2f_dark_hz, synapse_spread=self.synapse_spread, notes={"method": source})


def _normalised_layers(chip: ChipDescription, abs_est: list[Estimate],
                       ratio: list[Estimate] | None) -> list[LayerGains]:
    """Layer gains normalised to mean a+ = 1, the factor kept as the layer's scale: each method knows the
    gains of a layer only up to one factor. a- follows from the measured a-/a+ ratio where there is one
    (never on the output layer, which drives no signed synapses), else it is unknown (NaN)."""
    out = []
    for l, est in enumerate(abs_est):
        norm, scale = normalise_mean_one(est)
        if ratio is not None and l < chip.n_layers - 1:
            r = ratio[l]
            a_minus = norm.value * r.value
            a_minus_std = np.abs(a_minus) * np.hypot(norm.std / norm.value, r.std / r.value)
        else:
            a_minus = np.full_like(norm.value, np.nan)
            a_minus_std = np.full_like(norm.value, np.nan)
        out.append(LayerGains(norm.value, norm.std, a_minus, a_minus_std, scale))
    return out


def _method_parameters(chip: ChipDescription, die_wide: _DieWide, mon: MonResult | None,
                       net: list[Estimate] | None) -> dict[str, DieParameters]:
    """Each method's own parameters, so that they can be compared and kept in the file. The network
    method's a-/a+ is the direct method's (the C2F paths see only positive weights)."""
    methods: dict[str, DieParameters] = {}
    if mon:
        methods["mon"] = die_wide.parameters(_normalised_layers(chip, mon.layer_abs, mon.ratio), "mon")
    if net:
        # the network sees products: take the bias gain out of layer 0 and the C2F gain out of the
        # last layer where the direct method measured them; otherwise they stay folded in
        net = list(net)
        if mon:
            net[0] = _divide(net[0], mon.bias_gain)
            net[-1] = _divide(net[-1], mon.c2f_gain)
        ratio = mon.ratio if mon else None
        methods["network"] = die_wide.parameters(_normalised_layers(chip, net, ratio), "network")
    return methods


def _combined(chip: ChipDescription, die_wide: _DieWide, mon: DieParameters,
              network: DieParameters) -> tuple[DieParameters, list[NeuronFlags]]:
    """Both methods' a+ combined by inverse variance, and the flags: neurons whose methods disagree beyond
    their errors, and neurons whose combined gain is still a poor fit. The absolute scale and a-/a+ come
    from the direct method (the network sees neither)."""
    combined_layers, flags = [], []
    for l in range(chip.n_layers):
        a, b = mon.layers[l], network.layers[l]
        ea, eb = Estimate(a.a_plus, a.a_plus_std), Estimate(b.a_plus, b.a_plus_std)
        comb, _ = normalise_mean_one(_combine(ea, eb))
        ratio = np.where(np.isfinite(a.a_plus), a.a_minus / a.a_plus, np.nan)
        a_minus = comb.value * ratio
        a_minus_std = np.abs(a_minus) * np.hypot(comb.std / comb.value, _rel(a.a_minus_std, a.a_minus))
        combined_layers.append(LayerGains(comb.value, comb.std, a_minus, a_minus_std, a.scale))
        diff = np.abs(a.a_plus - b.a_plus)
        flags.append(NeuronFlags(methods_disagree=diff > DISAGREEMENT_SIGMAS * np.hypot(a.a_plus_std, b.a_plus_std),
                                 poor_fit=~(comb.std / comb.value <= POOR_FIT_RELATIVE_STD)))
    return die_wide.parameters(combined_layers, "both"), flags


DRIFT_FLAG_PER_MIN = 5e-4
"""Drift beyond the contract's 0.05 % per minute of all gains is flagged ..."""
DRIFT_SIGNIFICANCE = 3.0
"""... when the references see it beyond this many standard errors of the fitted rate (a short run
cannot tell a slow drift from its references' noise, and says so instead of crying wolf)."""


def layer_summary(lay: LayerGains, flags: NeuronFlags) -> dict:
    """Achieved precision of one layer: rms relative error of a+ and of a-/a+."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_rel = np.hypot(lay.a_minus_std / lay.a_minus, lay.a_plus_std / lay.a_plus)
    return {
        "rms_rel_std_a_plus": float(np.sqrt(np.nanmean((lay.a_plus_std / lay.a_plus) ** 2))),
        "rms_rel_std_ratio": float(np.sqrt(np.nanmean(ratio_rel ** 2))) if np.isfinite(ratio_rel).any() else None,
        "flagged": flags.count(),
    }


def drift_summary(trace: DriftTrace) -> dict:
    """Gain drift seen by the reference runs: trace, rate per minute with its error, and whether it
    exceeds the contract."""
    times = trace.times
    out: dict = {"times_s": (times - times[0]).tolist() if len(times) else [], "factor": trace.factor.tolist(),
                 "factor_std": trace.factor_std.tolist(), "temperature_c": trace.temps.tolist()}
    if len(times) >= 2 and np.ptp(times) > 0:
        rate, rate_std = _weighted_slope((times - times[0]) / 60.0, trace.factor, trace.factor_std)
        out |= {"rate_per_min": rate, "rate_std_per_min": rate_std,
                "flagged": bool(abs(rate) > DRIFT_FLAG_PER_MIN and abs(rate) > DRIFT_SIGNIFICANCE * rate_std)}
    return out


def _weighted_slope(x: np.ndarray, y: np.ndarray, std: np.ndarray) -> tuple[float, float]:
    """Slope of a weighted least-squares line and its standard error from the given errors alone (a
    few reference runs cannot estimate their own scatter, and a real drift need not be straight)."""
    (slope, _), cov = np.polyfit(x, y, 1, w=1.0 / np.maximum(std, 1e-12), cov="unscaled")
    return float(slope), float(np.sqrt(cov[0, 0]))


def with_linear_range(params: DieParameters, mon: MonResult | None) -> DieParameters:
    """Attach the compression onsets (NaN where not measured) and the largest inputs applied; all NaN
    without the direct method."""
    layers = []
    for l, lay in enumerate(params.layers):
        nan = np.full(len(lay.a_plus), np.nan)
        onset = mon.onset[l] if mon else Estimate(nan, nan)
        layers.append(replace(lay, compression_onset_a=onset.value, compression_onset_a_std=onset.std,
                              max_input_a=mon.max_input[l] if mon else nan))
    return replace(params, layers=layers)


def linear_range_summary(params: DieParameters) -> list[dict]:
    """Per layer: how many onsets were measured, their range, and the largest input applied."""
    out = []
    for lay in params.layers:
        onset = lay.compression_onset_a[np.isfinite(lay.compression_onset_a)]
        peak = lay.max_input_a[np.isfinite(lay.max_input_a)]
        out.append({"onsets_measured": int(len(onset)),
                    "onset_min_a": float(onset.min()) if len(onset) else None,
                    "onset_median_a": float(np.median(onset)) if len(onset) else None,
                    "max_input_a": float(peak.max()) if len(peak) else None})
    return out


def fill_unmeasured(params: DieParameters) -> tuple[DieParameters, list[np.ndarray]]:
    """Give neurons that no measurement reached (e.g. a stuck latch spoils every path into
    them) the layer's typical values, with the layer's spread as their error, so the
    trainer can use the file; they are flagged ``unmeasured``. Per-method groups keep NaN."""
    last = params.chip.n_layers - 1
    layers, masks = [], []
    for l, lay in enumerate(params.layers):
        missing = ~np.isfinite(lay.a_plus)
        spread = float(np.nanstd(lay.a_plus)) if (~missing).sum() > 1 else 0.25
        a_plus = np.where(missing, 1.0, lay.a_plus)
        a_plus_std = np.where(missing, spread, lay.a_plus_std)
        a_minus, a_minus_std = lay.a_minus, lay.a_minus_std
        if l < last:
            ratio = lay.a_minus / lay.a_plus
            typical = float(np.nanmedian(ratio)) if np.isfinite(ratio).any() else 1.0
            no_ratio = ~np.isfinite(ratio)
            a_minus = np.where(no_ratio | missing, a_plus * typical, lay.a_minus)
            a_minus_std = np.where(no_ratio | missing, a_plus * max(spread, 0.1), lay.a_minus_std)
            missing = missing | no_ratio
        layers.append(LayerGains(a_plus, a_plus_std, a_minus, a_minus_std, lay.scale))
        masks.append(missing)
    fill = lambda v, default: np.where(np.isfinite(v), v, default)
    filled = DieParameters(params.chip, layers, fill(params.bias_gain, 1.0), fill(params.bias_offset_a, 0.0),
                           fill(params.c2f_gain_hz_per_a, float(np.nanmedian(params.c2f_gain_hz_per_a))
                                if np.isfinite(params.c2f_gain_hz_per_a).any() else params.chip.c2f_gain_hz_per_a),
                           fill(params.c2f_dark_hz, 0.0), params.synapse_spread, dict(params.notes))
    return filled, masks


def _rel(std: np.ndarray, value: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(std / value)


def _divide(a: Estimate, b: Estimate) -> Estimate:
    value = a.value / b.value
    return Estimate(value, np.abs(value) * np.hypot(_rel(a.std, a.value), _rel(b.std, b.value)))
