"""What a characterisation file says about its die, gathered once for the report.

Figures and the HTML page only present; every number they show is derived
here, from the file alone, so a report can be made on any machine long after
the run. A file whose run was interrupted before the fits (no /calibration)
still has raw readings and reference runs: it yields a partial report, and
``missing`` says what is absent. Only a file with neither raw readings nor fits
is refused.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from labctl.families.cmna.characterisation.analysis import DriftTrace, drift_summary, layer_summary, recorded_drift
from labctl.calibration.fit import Estimate
from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.die_parameters import DieParameters, LayerGains
from labctl.errors import DataFileError
from labctl.families.cmna.characterisation.flags import NeuronFlags
from labctl.families.cmna.storage import RAW_TABLES, RawTables, load_die_parameters, load_flags, read_chip, read_raw

METHOD_NAMES = ("mon", "network")
FITS_MISSING = ("fits missing: the file has no /calibration (run interrupted before the analysis? "
                "`labctl characterise --resume` finishes it)")


@dataclass
class ReportData:
    """A characterisation file as the report needs it; ``fits`` is None for raw data only."""

    path: Path
    chip: ChipDescription
    created: str
    parameters: dict
    raw: RawTables | None
    fits: DieParameters | None
    methods: dict[str, DieParameters]
    flags: list[NeuronFlags]
    """Per layer, the flags stored under /flags (none set when the file has no fits)."""
    onset: list[Estimate | None]
    """Per layer, the compression onset per soma (A) where the file has it."""
    max_input_a: list[np.ndarray | None]
    """Per layer, the largest soma input applied per soma (A) where the file has it."""
    missing: list[str] = field(default_factory=list)
    power: list[PowerRecord] = field(default_factory=list)
    """On-chip power measurements of this die found next to the file (a run folder's evaluations)."""

    @property
    def has_linear_range(self) -> bool:
        return any(o is not None for o in self.onset) or any(m is not None for m in self.max_input_a)


def load(path: str | Path) -> ReportData:
    """Read ``path``; DataFileError (one line) if it is no characterisation or holds nothing to show."""
    path = Path(path)
    chip = read_chip(path)  # refuses missing, non-HDF5 and non-labctl files
    sizes = chip.layer_sizes
    with h5py.File(path, "r") as f:
        created = str(f.attrs.get("created", "unknown"))
        parameters = json.loads(f.attrs.get("parameters", "{}"))
        present = {name for name in ("raw", "calibration", *(f"methods/{m}" for m in METHOD_NAMES)) if name in f}
        raw_absent = [name for name in RAW_TABLES if f"raw/{name}" not in f]  # ``done`` is optional
        onset = [_layer_estimate(f, l, sizes[l], "compression_onset_a") for l in range(chip.n_layers)]
        max_input = [_layer_array(f, l, sizes[l], "max_input_a") for l in range(chip.n_layers)]
    flags = load_flags(path)
    missing = [] if "calibration" in present else [FITS_MISSING]
    raw = read_raw(path) if not raw_absent else None
    if raw_absent:
        missing.append(f"raw readings missing: /raw lacks {', '.join(sorted(raw_absent))}")
    fits = _fits(path, "calibration", missing) if "calibration" in present else None
    if fits is None and (raw is None or not len(raw.mon) + len(raw.c2f)):
        raise DataFileError(f"{path}: no readings and no fits: nothing to report")
    # a single-method run has only its own group (and /calibration is that method)
    methods = {m: _fits(path, f"methods/{m}", missing) for m in METHOD_NAMES if f"methods/{m}" in present}
    return ReportData(path, chip, created, parameters, raw, fits,
                      {m: p for m, p in methods.items() if p is not None}, flags, onset, max_input, missing,
                      power_records(path.parent, chip.serial))


@dataclass(frozen=True)
class PowerRecord:
    """One evaluation's power figures (``evaluation_<name>.json``), per-pattern readings (``power_<name>.csv``)."""

    weights: str
    figures: dict
    """The evaluation record: issue 14's power figures with their ``_se``, the presentation rate, the ops."""
    supply_w: np.ndarray | None
    """VDD x each pattern's supply reading (None without the CSV)."""
    predicted_supply_w: np.ndarray | None
    """The supply model's prediction per pattern (None where the calibration had no supply model)."""


def power_records(folder: Path, serial: str) -> list[PowerRecord]:
    """The power measurements of die ``serial`` in ``folder``: ``labctl evaluate --out-dir`` and recipe runs
    write them next to the characterisation. Records of other dies, without power, or unreadable are left out
    (the report is about the characterisation; these are its sequel when present)."""
    out = []
    for path in sorted(folder.glob("evaluation_*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or record.get("die_serial") != serial or "supply_power_w" not in record:
            continue
        name = path.stem.removeprefix("evaluation_")
        table = _power_table(folder / f"power_{name}.csv")
        names = (table.dtype.names or ()) if table is not None else ()
        column = lambda key: table[key] if key in names else None
        out.append(PowerRecord(name, record, column("supply_power_w"), column("predicted_supply_power_w")))
    return out


def _power_table(path: Path) -> np.ndarray | None:
    """The per-pattern CSV as a structured array, None when absent or unreadable."""
    try:
        return np.atleast_1d(np.genfromtxt(path, delimiter=",", names=True))
    except (OSError, ValueError):
        return None


def _fits(path: Path, group: str, missing: list[str]) -> DieParameters | None:
    """The fits under ``group``, or None with the reason added to ``missing`` (a damaged group)."""
    try:
        return load_die_parameters(path, group)
    except DataFileError as exc:
        missing.append(f"fits unusable: {exc}")
        return None


def _layer_array(f: h5py.File, layer: int, size: int, name: str) -> np.ndarray | None:
    """A per-soma dataset of /calibration/layer_{l} (a scalar is spread over the layer), or None."""
    key = f"calibration/layer_{layer}/{name}"
    if key not in f:
        return None
    return np.broadcast_to(np.asarray(f[key][()], np.float64), (size,)).copy()


def _layer_estimate(f: h5py.File, layer: int, size: int, name: str) -> Estimate | None:
    value = _layer_array(f, layer, size, name)
    if value is None:
        return None
    std = _layer_array(f, layer, size, f"{name}_std")
    return Estimate(value, std if std is not None else np.full_like(value, np.nan))


# -- derived numbers ------------------------------------------------------------

def ratio_rel_std(lay: LayerGains) -> np.ndarray:
    """Relative 1-sigma error of a-/a+ per neuron (NaN where a- is not measured), as layer_summary has it."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.hypot(lay.a_minus_std / lay.a_minus, lay.a_plus_std / lay.a_plus)


def a_plus_rel_std(lay: LayerGains) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(lay.a_plus_std / lay.a_plus)


@dataclass
class LayerRow:
    layer: int
    neurons: int
    rms_rel_std_a_plus: float
    rms_rel_std_ratio: float | None
    flagged: int
    """Neurons with at least one flag (a neuron counts once)."""
    by_flag: dict[str, int]


def layer_rows(data: ReportData) -> list[LayerRow]:
    """The per-layer precision table: the same rms figures characterise reports and stops on."""
    rows = []
    assert data.fits is not None
    for l, lay in enumerate(data.fits.layers):
        flags = data.flags[l]
        s = layer_summary(lay, flags)
        rows.append(LayerRow(l, len(lay.a_plus), s["rms_rel_std_a_plus"], s["rms_rel_std_ratio"],
                             int(flags.any(len(lay.a_plus)).sum()),
                             {k: int(v.sum()) for k, v in flags.present().items()}))
    return rows


@dataclass
class LinearRangeRow:
    layer: int
    somas: int
    onset_measured: int | None
    """Somas with a finite onset; None where the file has no onset for the layer."""
    lowest_onset_a: float
    largest_input_a: float
    beyond_onset: int | None
    """Somas whose largest input reached their onset (should be 0); None without both datasets."""


def linear_range_rows(data: ReportData) -> list[LinearRangeRow]:
    """Per layer: how much of the linear range characterisation used, and whether it left it."""
    rows = []
    for l, (onset, applied) in enumerate(zip(data.onset, data.max_input_a)):
        finite = None if onset is None else np.isfinite(onset.value)
        lowest = float(np.min(onset.value[finite])) if finite is not None and finite.any() else float("nan")
        largest = float(np.nanmax(applied)) if applied is not None and np.isfinite(applied).any() else float("nan")
        beyond = None if onset is None or applied is None else int(np.sum(applied[finite] >= onset.value[finite]))
        rows.append(LinearRangeRow(l, data.chip.layer_sizes[l], None if finite is None else int(finite.sum()),
                                   lowest, largest, beyond))
    return rows


def method_z(data: ReportData, layer: int) -> np.ndarray | None:
    """Per neuron, (mon - network) / combined sigma of a+: the residual between the two methods.

    Both are normalised to layer mean 1, so this is free of the per-layer scale
    that the network method cannot see. NaN where either method missed the neuron.
    """
    if not all(name in data.methods for name in METHOD_NAMES):
        return None
    a, b = (data.methods[name].layers[layer] for name in METHOD_NAMES)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (a.a_plus - b.a_plus) / np.hypot(a.a_plus_std, b.a_plus_std)


@dataclass
class NeuronRow:
    layer: int
    neuron: int
    a_plus: float
    a_plus_rel_std: float
    ratio: float
    ratio_rel_std: float
    method_z: float
    flags: list[str]
    listed_for: list[str] = field(default_factory=list)


WORST_CRITERIA: dict[str, Callable[[NeuronRow], float]] = {
    "largest rel. std a+": lambda r: r.a_plus_rel_std,
    "largest rel. std a-/a+": lambda r: r.ratio_rel_std,
    "methods furthest apart": lambda r: abs(r.method_z),
}


@dataclass
class WorstNeurons:
    rows: list[NeuronRow]
    flagged_not_shown: int


def worst_neurons(data: ReportData, per_criterion: int = 5, max_flagged: int = 10) -> WorstNeurons:
    """The neurons to look at first: the flagged ones, then the worst few by each criterion.

    Each criterion gets its own places so that, say, many unmeasured neurons
    cannot hide the one whose methods disagree. Neurons no measurement reached
    carry filled-in values and take part only as flagged.
    """
    assert data.fits is not None
    rows = [row for l in range(data.chip.n_layers) for row in _neuron_rows(data, l)]
    flagged = sorted((r for r in rows if r.flags), key=lambda r: len(r.flags), reverse=True)
    picked = flagged[:max_flagged]
    for r in picked:
        r.listed_for.append("flagged")
    measured = [r for r in rows if "unmeasured" not in r.flags]
    for name, value in WORST_CRITERIA.items():
        finite = [r for r in measured if np.isfinite(value(r))]
        for r in sorted(finite, key=value, reverse=True)[:per_criterion]:
            if not r.listed_for:
                picked.append(r)
            r.listed_for.append(name)
    return WorstNeurons(picked, len(flagged) - min(len(flagged), max_flagged))


def _neuron_rows(data: ReportData, layer: int) -> list[NeuronRow]:
    assert data.fits is not None
    lay = data.fits.layers[layer]
    flags = data.flags[layer]
    z = method_z(data, layer)
    rel, ratio_rel = a_plus_rel_std(lay), ratio_rel_std(lay)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = lay.a_minus / lay.a_plus
    return [NeuronRow(layer, j, float(lay.a_plus[j]), float(rel[j]), float(ratio[j]), float(ratio_rel[j]),
                      float(z[j]) if z is not None else float("nan"), flags.names_at(j))
            for j in range(len(lay.a_plus))]


def reference_drift(data: ReportData) -> tuple[DriftTrace, dict]:
    """Reference runs (bench time, gain factor vs the first and its error, temperature) and their summary."""
    if data.raw is None:
        trace = DriftTrace(*(np.zeros(0),) * 4)
    else:
        trace = recorded_drift(data.chip, data.raw)
    return trace, drift_summary(trace)


def bench_time_s(raw: RawTables) -> float:
    """Bench time the readings span, first to last.

    Times are bridge uptime, which starts again when a resumed run opens a new
    bench session: readings are taken in configuration order, and the jumps
    back at a restart are left out instead of subtracting a whole session.
    """
    config = np.concatenate([raw.mon["config"], raw.c2f["config"]])
    t = np.concatenate([raw.mon["time_s"], raw.c2f["time_s"]])
    if len(t) < 2:
        return 0.0
    step = np.diff(t[np.lexsort((t, config))])
    return float(step[step > 0].sum())


def time_origin(raw: RawTables | None) -> float:
    """The first reading's time: plots count from it, as bench clocks differ in origin."""
    times = [] if raw is None else [table["time_s"] for table in (raw.mon, raw.c2f) if len(table)]
    return float(min(t.min() for t in times)) if times else 0.0


def configuration_counts(raw: RawTables) -> tuple[int, int, Counter]:
    """(recorded, finished, finished per kind): an interrupted run has one recorded but unfinished."""
    kind_of = config_kinds(raw)
    done = raw.finished_configs()
    kinds = Counter(kind for config, kind in kind_of.items() if config in done)
    return len(kind_of), sum(kinds.values()), kinds


def config_kinds(raw: RawTables) -> dict[int, str]:
    """Configuration id -> kind (dark, reference, ext_sweep, bias_sweep, chain, chain_negative)."""
    return {int(r["config"]): r["kind"].decode() if isinstance(r["kind"], bytes) else str(r["kind"])
            for r in raw.configs}
