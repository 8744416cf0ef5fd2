"""What a printed process characterisation file says, gathered once for the report and the GUI panel.

The figures, the HTML page and the GUI panel only present; every number they
show is read or derived here, from the file alone (it stores its layout file),
so a report can be made on any machine long after the run. A run stopped
before its fits (``process.partial.h5``, :mod:`..characterisation.storage`)
still has every sweep it measured: it yields a partial report, and
``missing`` says what is absent. The same reader serves the GUI's live view
of a file still being written (``swmr=True``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from labctl import files
from labctl.errors import DataFileError
from labctl.families.printed.characterisation.analysis import MIN_STRUCTURES, printed_components
from labctl.families.printed.characterisation.resistor_fit import SheetFit
from labctl.families.printed.characterisation.storage import FAMILY, KIND
from labctl.families.printed.characterisation.transfer_fit import SIGN, tanh_form
from labctl.families.printed.layout import CellStructure, Layout, parse_layout_text
from labctl.families.printed.printable import CELL_KINDS
from labctl.families.printed.process_calibration import GROUP, ProcessCalibration

ETA_NAMES = ("eta1", "eta2", "eta3", "eta4")
ETA_UNITS = ("V", "V", "V", "1/V")
FITS_MISSING = ("fits missing: the file has no /fits (the run stopped before the analysis; the partial file keeps "
                "every sweep, characterise the sample again for the fits)")
CALIBRATION_MISSING = (f"calibration missing: fewer than {MIN_STRUCTURES} usable structures of a kind, so no process "
                       "maps (training cannot use this file)")


@dataclass(frozen=True)
class Sweep:
    """One structure's points as measured: pad voltage and output (V); direction +1 up, -1 down, +2 the
    transition refinement."""

    v_in_v: np.ndarray
    v_out_v: np.ndarray
    direction: np.ndarray


@dataclass(frozen=True)
class Fit:
    """One structure's row of ``/fits/ACT`` or ``/fits/NEG`` (etas in V, V, V, 1/V)."""

    eta: np.ndarray
    eta_se: np.ndarray
    rms_v: float
    hysteresis_v: float
    n_points: int
    used: bool
    """Whether the process map was fitted with it."""


@dataclass(frozen=True)
class Structure:
    """An ACT or NEG test structure: its sweep, its fit (None when the file has none for it), its flags."""

    cell: CellStructure
    sweep: Sweep
    fit: Fit | None
    flags: tuple[str, ...]
    measured: bool
    """Whether the run finished it (``/raw/done``); False for those an interrupted run never reached."""

    @property
    def id(self) -> str:
        return self.cell.id

    @property
    def kind(self) -> str:
        return self.cell.kind

    def model_v(self, v_in_v: np.ndarray) -> np.ndarray:
        """The fitted transfer at ``v_in_v``: ``+-(eta1 + eta2 tanh((V - eta3) eta4))`` (+ ACT, - NEG)."""
        assert self.fit is not None
        return SIGN[self.kind] * tanh_form(np.asarray(v_in_v, float), self.fit.eta)


@dataclass(frozen=True)
class Eps:
    """The run's variation with its standard error, and the estimate from each kind of data alone."""

    eps: float
    se: float
    by_source: dict[str, tuple[float, float]]


@dataclass
class ProcessReport:
    """A process characterisation file as the report and the GUI need it."""

    path: Path
    process: str
    sample: str
    created: str
    bench_s: float | None
    layout: Layout
    structures: tuple[Structure, ...]
    resistors: np.ndarray | None
    """``/fits/resistors`` (tables.RESISTOR_FIT_DTYPE), None without fits."""
    calibration: ProcessCalibration | None
    eps: Eps | None
    missing: list[str] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[Structure]:
        return [s for s in self.structures if s.kind == kind]

    @property
    def flagged(self) -> list[Structure]:
        return [s for s in self.structures if s.flags]

    @property
    def has_readings(self) -> bool:
        return any(len(s.sweep.v_in_v) for s in self.structures) or self.resistors is not None


def load(path: str | Path, swmr: bool = False) -> ProcessReport:
    """Read ``path`` (its partial file while it does not exist yet); one-line DataFileError if it is not a
    printed process characterisation. ``swmr``: the file may still be being written."""
    path = Path(path)
    with _open(path, swmr) as f:
        if f.attrs.get("family") != FAMILY or f.attrs.get("kind") != KIND or "layout_file" not in f:
            raise DataFileError(f"{f.filename}: not a printed process characterisation "
                                f"(family={f.attrs.get('family')!r}, kind={f.attrs.get('kind')!r})")
        layout = parse_layout_text(f["layout_file"].asstr()[()])
        points = f["raw/points"][()] if "raw/points" in f else np.zeros(0, [("structure", "S8")])
        done = {row["structure"].decode(): row["status"].decode() for row in f["raw/done"][()]} \
            if "raw/done" in f else {}
        fits = {kind: f[f"fits/{kind}"][()] for kind in CELL_KINDS if f"fits/{kind}" in f}
        resistors = f["fits/resistors"][()] if "fits/resistors" in f else None
        calibration, damaged = _calibration(f)
        eps = _eps(f.attrs)
        report = ProcessReport(Path(f.filename), str(f.attrs.get("process", layout.process)),
                               str(f.attrs.get("sample", "")), str(f.attrs.get("created", "unknown")),
                               float(f.attrs["bench_seconds"]) if "bench_seconds" in f.attrs else None, layout,
                               tuple(_structure(c, points, done, fits) for c in layout.cells), resistors,
                               calibration, eps)
        report.missing = damaged + _missing(report, has_fits=bool(fits), has_calibration=GROUP in f)
    return report


def _open(path: Path, swmr: bool) -> h5py.File:
    """The file read-only; a file whose writer is live (or was killed in SWMR mode) is read as SWMR."""
    if not path.exists() and files.partial_path(path).exists():
        path = files.partial_path(path)
    if not path.exists():
        raise DataFileError(f"{path}: no such file (a process calibration from `labctl characterise`)")
    try:
        return h5py.File(path, "r", swmr=swmr)
    except OSError as exc:
        if not swmr and files.left_open_for_write(exc):
            return _open(path, swmr=True)
        raise DataFileError(f"{path}: not a readable HDF5 file ({' '.join(str(exc).split())})") from None


def _structure(cell: CellStructure, points: np.ndarray, done: dict[str, str],
               fits: dict[str, np.ndarray]) -> Structure:
    mine = points[points["structure"] == cell.id.encode()]
    sweep = Sweep(mine["v_pad"], mine["v_out"], mine["direction"]) if len(mine) else \
        Sweep(np.zeros(0), np.zeros(0), np.zeros(0, int))
    rows = fits.get(cell.kind, np.zeros(0, [("id", "S8")]))
    row = rows[rows["id"] == cell.id.encode()]
    status = done.get(cell.id)
    if not len(row):  # no fits: the bench's own verdict is all there is
        flags = (status,) if status not in (None, "measured") else ()
        return Structure(cell, sweep, None, flags, status is not None)
    row = row[0]
    flags = tuple(flag for flag in row["flags"].decode().split(",") if flag)
    fit = Fit(row["eta"], row["eta_se"], float(row["rms_v"]), float(row["hysteresis_v"]), int(row["n_points"]),
              bool(row["used"])) if np.all(np.isfinite(row["eta"])) else None
    return Structure(cell, sweep, fit, flags, status is not None)


def _calibration(f: h5py.File) -> tuple[ProcessCalibration | None, list[str]]:
    """The calibration, or None with why a damaged one cannot be read (the rest of the file still reports)."""
    if GROUP not in f:
        return None, []
    try:
        return ProcessCalibration.from_group(f[GROUP], f.filename), []
    except DataFileError as exc:
        return None, [f"calibration unusable: {exc}"]


def _eps(attrs) -> Eps | None:
    """eps, its se and the per-source estimates the run stored on the root (None before the analysis)."""
    if "eps" not in attrs:
        return None
    by_source = json.loads(attrs.get("eps_by_source", "{}"))
    return Eps(float(attrs["eps"]), float(attrs.get("eps_se", np.nan)),
               {name: (float(value[0]), float(value[1])) for name, value in by_source.items()})


def _missing(report: ProcessReport, has_fits: bool, has_calibration: bool) -> list[str]:
    missing = [] if has_fits else [FITS_MISSING]
    if has_fits and not has_calibration:
        missing.append(CALIBRATION_MISSING)
    unreached = [s.id for s in report.structures if not s.measured]
    if unreached:
        missing.append(f"{len(unreached)} of {len(report.structures)} structures not measured (the run stopped "
                       f"before them): {', '.join(unreached)}")
    return missing


# -- derived numbers ------------------------------------------------------------


@dataclass(frozen=True)
class MapAgreement:
    """A cell map against the structures it was fitted with: measured and mapped etas, (n, 4) each."""

    ids: tuple[str, ...]
    measured: np.ndarray
    mapped: np.ndarray
    loo_rms: np.ndarray
    """Per eta, the map's leave-one-out rms error: what it misses on a design it was not fitted with."""


def map_agreement(report: ProcessReport, kind: str) -> MapAgreement | None:
    """The map of ``kind`` evaluated at each structure it was fitted with (None without a calibration, which
    exists only with at least MIN_STRUCTURES of them).

    The map takes the components as they were expected to print with the
    measured inks (:func:`..characterisation.analysis.printed_components`), so
    they are rebuilt from the layout and the calibration's sheet resistances.
    """
    if report.calibration is None:
        return None
    cal = report.calibration
    sheet = SheetFit(cal.rh_ohm_sq, cal.rh_ohm_sq_se, cal.rl_ohm_sq, cal.rl_ohm_sq_se, cal.dw_um, cal.dw_um_se,
                     np.zeros(0), np.zeros(0), 0)  # only the inks and dW are needed here
    used = [s for s in report.of_kind(kind) if s.fit is not None and s.fit.used]
    cell_map = cal.cell_map(kind)
    components = [printed_components(s.cell, sheet) for s in used]
    mapped = cell_map.predict({name: np.array([c[name] for c in components]) for name in cell_map.components})
    return MapAgreement(tuple(s.id for s in used), np.array([s.fit.eta for s in used]),
                        np.column_stack([mapped[name] for name in ETA_NAMES]),
                        np.array([cell_map.loo_rms[name] for name in ETA_NAMES]))
