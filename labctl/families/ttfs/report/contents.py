"""What a TTFS characterisation file says about its die, gathered once for the report and the GUI panels.

The figures, the HTML page and the panels only present; every number they
show is read or derived here, from the file alone, so a report can be made on
any machine long after the run. A run stopped before its fits
(``die.partial.h5``, :mod:`labctl.families.ttfs.storage`) still has the
readings of every step it finished: it yields a partial report, and
``missing`` says what is absent (the fits, the steps never reached).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from labctl import files
from labctl.errors import DataFileError
from labctl.families.ttfs.characterisation.branch import branch_shape
from labctl.families.ttfs.die_parameters import Polarity, TtfsDieParameters
from labctl.families.ttfs.report.evaluations import EvaluationRecord, records_beside
from labctl.families.ttfs.storage import FAMILY, KIND, PARAMETERS, read_parameters

POLARITIES = ((1, "excitatory"), (-1, "inhibitory"))
RAIL_NAMES = {1: "E+ (EREV_EXC)", -1: "E- (EREV_INH)"}
MONITOR_NAMES = ("VDD", "VTH", "EREV_EXC", "EREV_INH", "V_REST")
"""The fields of ``/raw/monitors`` (READ_MONITORS, in this order)."""


@dataclass(frozen=True)
class Quantity:
    """A per-neuron parameter of :class:`~labctl.families.ttfs.die_parameters.NeuronLayer` as it is shown."""

    name: str
    label: str
    scale: float
    unit: str


NEURON_QUANTITIES = (
    Quantity("capacitance_f", "capacitance C", 1e15, "fF"),
    Quantity("start_v", "start voltage V0", 1e3, "mV"),
    Quantity("threshold_v", "threshold V_th", 1e3, "mV"),
    Quantity("delay_ns", "delay d", 1.0, "ns"),
    Quantity("leak_a", "leakage current", 1e12, "pA"),
    Quantity("column_gain", "column gain g", 1.0, "1"),
)

STEPS: tuple[tuple[str, Callable[[h5py.File], bool]], ...] = (
    ("MON chain and V_REST (step 1)", lambda f: "raw/monitors" in f),
    ("leakage and coupling (step 8)", lambda f: any(n.startswith("step8_") for n in f.get("raw/traces", {}))),
    ("DC shape (step 2)", lambda f: "raw/dc_shape" in f),
    ("ladders (step 7)", lambda f: "raw/ladder" in f),
    ("reversal traces (step 3)", lambda f: any(n.startswith("step3_") for n in f.get("raw/traces", {}))),
    ("anchors of every neuron (step 4)", lambda f: "raw/anchors" in f),
    ("every site (step 5)", lambda f: "raw/sites" in f),
)
"""The run's steps in the order it takes them (:mod:`..characterisation.characterise`), each with how its
readings show in the file."""
FITS_MISSING = ("fits missing: the file has no fitted parameters (the run stopped before the analysis; the "
                "partial file keeps every finished step's readings, characterise the die again for the fits)")


@dataclass(frozen=True)
class Trace:
    """One membrane trace of ``/raw/traces`` (t from SYNC, V at the membrane)."""

    kind: str
    layer: int
    neuron: int
    t_s: np.ndarray
    v: np.ndarray


@dataclass
class TtfsReport:
    """A TTFS characterisation file as the report and the panels need it; ``params`` is None without fits."""

    path: Path
    part: str
    serial: str
    layer_sizes: tuple[int, ...]
    created: str
    labctl_version: str
    bench_s: float | None
    """Bench time of the run (written when it completes)."""
    params: TtfsDieParameters | None
    monitors: np.ndarray | None
    """READ_MONITORS at the start (V, fields ``MONITOR_NAMES``)."""
    dc_shape: np.ndarray | None
    """``/raw/dc_shape`` (tables.DC_DTYPE): every row held at every rail level."""
    ladder: np.ndarray | None
    """``/raw/ladder`` (tables.DC_DTYPE): each matrix's bias row held at every code."""
    row_lambda: dict[int, np.ndarray]
    """Per polarity, ``/fits/row_lambda/<name>``: each held row's lambda, its error and its current A."""
    reversal: list[Trace]
    """The step-3 traces (a membrane pulled onto E+ or E-)."""
    anchored: int
    """Neurons whose anchors (step 4) were read."""
    steps_done: list[str]
    evaluations: list[EvaluationRecord] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def neurons(self) -> int:
        return sum(self.layer_sizes[1:])

    @property
    def has_readings(self) -> bool:
        return bool(self.steps_done) or self.params is not None


def load(path: str | Path) -> TtfsReport:
    """Read ``path`` (its partial file while the complete one does not exist); one-line DataFileError if it is
    not a TTFS characterisation. Evaluation records in the same folder come with it (:func:`records_beside`)."""
    path = Path(path)
    if not path.exists() and files.partial_path(path).exists():
        path = files.partial_path(path)
    with files.open_hdf5(path, "a TTFS characterisation from `labctl characterise`") as f:
        a = f.attrs
        if a.get("family") != FAMILY or a.get("kind") != KIND:
            raise DataFileError(f"{path}: not a TTFS characterisation "
                                f"(family={a.get('family')!r}, kind={a.get('kind')!r})")
        fitted = bool(f.attrs.get("complete", False)) and PARAMETERS in f
        report = TtfsReport(
            path, str(a.get("part", "?")), str(a.get("serial", "?")),
            tuple(int(s) for s in a.get("layer_sizes", ())), str(a.get("created", "unknown")),
            str(a.get("labctl_version", "unknown")), float(a["bench_seconds"]) if "bench_seconds" in a else None,
            None, f["raw/monitors"][()] if "raw/monitors" in f else None, _table(f, "raw/dc_shape"),
            _table(f, "raw/ladder"),
            {p: f[f"fits/row_lambda/{name}"][()] for p, name in POLARITIES if f"fits/row_lambda/{name}" in f},
            _traces(f, "step3_"), len(f["raw/anchors"]) if "raw/anchors" in f else 0,
            [name for name, present in STEPS if present(f)])
    damaged = _parameters(report) if fitted else []
    report.missing = damaged + _missing(report)
    report.evaluations = records_beside(path.parent, report.serial)
    return report


def _parameters(report: TtfsReport) -> list[str]:
    """Read the fitted parameters of a complete file into ``report``; why not, when they cannot be read."""
    try:
        report.params = read_parameters(report.path)
    except DataFileError as exc:
        return [f"fits unusable: {exc}"]
    return []


def _table(f: h5py.File, name: str) -> np.ndarray | None:
    return f[name][()] if name in f else None


def _traces(f: h5py.File, prefix: str) -> list[Trace]:
    group = f.get("raw/traces", {})
    out = []
    for name in sorted(n for n in group if n.startswith(prefix)):
        ds = group[name]
        rows = ds[()]
        out.append(Trace(str(ds.attrs["kind"]), int(ds.attrs["layer"]), int(ds.attrs["neuron"]), rows["t_s"],
                         rows["v"]))
    return out


def _missing(report: TtfsReport) -> list[str]:
    missing = [] if report.params is not None else [FITS_MISSING]
    absent = [name for name, _ in STEPS if name not in report.steps_done]
    if absent:
        missing.append(f"steps not reached (no readings in the file): {', '.join(absent)}")
    if 0 < report.anchored < report.neurons:
        missing.append(f"anchors of {report.neurons - report.anchored} of {report.neurons} neurons not read "
                       "(the run stopped during step 4)")
    return missing


# -- derived numbers ------------------------------------------------------------


@dataclass(frozen=True)
class Spread:
    """One per-neuron quantity over one layer: the median, the spread between neurons, the median error."""

    layer: int
    quantity: Quantity
    neurons: int
    median: float
    sd: float
    median_se: float


def layer_spreads(params: TtfsDieParameters) -> list[Spread]:
    """Per layer and quantity the figures of the layer table (in the quantity's unit)."""
    out = []
    for index, layer in enumerate(params.layers, start=1):
        for q in NEURON_QUANTITIES:
            m = getattr(layer, q.name)
            value, se = np.asarray(m.value) * q.scale, np.asarray(m.se) * q.scale
            out.append(Spread(index, q, len(value), float(np.median(value)),
                              float(np.std(value, ddof=1)) if len(value) > 1 else float("nan"),
                              float(np.median(se))))
    return out


def capacitance_median_f(params: TtfsDieParameters) -> float:
    """The median capacitance over every neuron of the die (what characterise prints)."""
    return float(np.median(np.concatenate([np.asarray(layer.capacitance_f.value) for layer in params.layers])))


def delay_median_ns(params: TtfsDieParameters) -> float:
    return float(np.median(np.concatenate([np.asarray(layer.delay_ns.value) for layer in params.layers])))


def rows_of(table: np.ndarray, polarity: int) -> list[np.ndarray]:
    """A DC table's readings of one polarity, one array per held row (matrix, row), in the order the analysis
    fits them (and ``/fits/row_lambda`` lists them)."""
    mine = table[table["polarity"] == polarity]
    keys = sorted({(int(m), int(r)) for m, r in zip(mine["matrix"], mine["row"])})
    return [mine[(mine["matrix"] == m) & (mine["row"] == r)] for m, r in keys]


def drain_source_v(params: TtfsDieParameters, polarity: int, rail_pad_v: np.ndarray) -> np.ndarray:
    """The branch's drain-source voltage x at V_REST for a rail pad setting (1.6): ``V_REST - E+`` or
    ``E- - V_REST``, the rail being the pad plus its measured offset."""
    pol = polarity_of(params, polarity)
    rail = np.asarray(rail_pad_v, float) + (float(pol.reversal_v.value) - pol.pad_v)
    v_rest = float(params.v_rest_v.value)
    return v_rest - rail if polarity > 0 else rail - v_rest


def row_model_a(params: TtfsDieParameters, polarity: int, fit: np.void, rail_pad_v: np.ndarray) -> np.ndarray:
    """One held row's fitted current at rail pad settings: ``A (1 + lambda x) k(x)`` (step 2's law)."""
    x = drain_source_v(params, polarity, rail_pad_v)
    return float(fit["current_a"]) * branch_shape(x, float(fit["lam_per_v"]), float(params.v_k_v.value))


def ladder_model_a(params: TtfsDieParameters, polarity: int, matrix: int, magnitudes: np.ndarray) -> np.ndarray:
    """A bias row's current at each code magnitude: the ladder times the sum of its columns' gains (step 7)."""
    gains = float(np.sum(params.layers[matrix].column_gain.value))
    return polarity_of(params, polarity).magnitude_current(magnitudes) * gains


def polarity_of(params: TtfsDieParameters, polarity: int) -> Polarity:
    return params.excitatory if polarity > 0 else params.inhibitory
