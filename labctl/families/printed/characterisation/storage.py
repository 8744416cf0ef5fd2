"""The process characterisation file (HDF5): raw readings as measured, per-structure fits, the calibration.

Layout::

    /                 attrs family="printed", kind="process-calibration", process, sample, layout,
                            created, labctl_version, bench_seconds, host_wait_seconds, plan
    /bench_file       the bench file's text;   /layout_file  the layout file's text
    /raw/points       every sweep point        (tables.POINT_DTYPE)
    /raw/resistors    every resistor drive     (tables.RESISTOR_DTYPE)
    /raw/rails        every rail check         (tables.RAIL_DTYPE)
    /raw/contact      the D-pad proof          (tables.CONTACT_DTYPE)
    /raw/done         finished structures      (tables.DONE_DTYPE)
    /raw/ports        output at > 10 Gohm and 10 Mohm at the sweep ends (tables.PORT_DTYPE)
    /raw/identification  attrs: code, digits, current_a, resistances_ohm; shunt_offsets_v (24,)
    /fits/ACT, /fits/NEG, /fits/resistors      (tables.cell_fit_dtype, RESISTOR_FIT_DTYPE)
    /calibration      ProcessCalibration.write (process_calibration)

The run writes ``<out>.partial.h5`` (:mod:`labctl.files`), raw tables
created up front and appended and flushed row by row under SWMR, so an
interrupted run keeps every reading and the file can be watched while it
grows; fits and the calibration are written after SWMR ends, and only then
does the file take its final name (a complete file is never replaced by a
partial one).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from labctl import __version__, files
from labctl.families.printed.characterisation.tables import (
    CONTACT_DTYPE,
    DONE_DTYPE,
    POINT_DTYPE,
    PORT_DTYPE,
    RAIL_DTYPE,
    RESISTOR_DTYPE,
)
from labctl.families.printed.process_calibration import ProcessCalibration

FAMILY = "printed"
KIND = "process-calibration"
RAW_TABLES = {"points": POINT_DTYPE, "resistors": RESISTOR_DTYPE, "rails": RAIL_DTYPE, "contact": CONTACT_DTYPE,
              "done": DONE_DTYPE, "ports": PORT_DTYPE}
UNITS = {"points": "time_s: s (host clock), v_*: V, i_*_a: A (positive out of the source), power_w: W",
         "resistors": "time_s: s, v_set/v_pad/v_nodes: V (v_nodes: Kelvin tap or NaN, then taps), i_a: A",
         "rails": "i_*_a: A", "ports": "v_*: V (v_out_hiz at > 10 Gohm, v_out_10m at 10 Mohm)", "contact": "current_a: A at +0.100 V"}


class ProcessFile:
    """Writer of one characterisation run (module docstring); raw rows go in as they are measured."""

    def __init__(self, f: h5py.File, partial: Path, out: Path, lock: files.WriterLock) -> None:
        self._f = f
        self.partial = partial
        self.out = out
        self._lock = lock
        self._identification: dict[str, Any] = {}

    @classmethod
    def create(cls, out: Path, attrs: dict[str, Any], texts: dict[str, str]) -> "ProcessFile":
        """Start ``out.partial.h5`` (replacing an abandoned partial file) with every raw table, then SWMR."""
        partial = files.partial_path(out)
        lock = files.WriterLock(partial).acquire()
        try:
            f = h5py.File(partial, "w", libver="latest")
            f.attrs.update({"family": FAMILY, "kind": KIND, "labctl_version": __version__,
                            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **attrs})
            for name, text in texts.items():
                f.create_dataset(name, data=text)
            raw = f.create_group("raw")
            for name, dtype in RAW_TABLES.items():
                ds = raw.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(64,))
                if name in UNITS:
                    ds.attrs["units"] = UNITS[name]
            raw.create_group("identification")
            raw.create_dataset("shunt_offsets_v", shape=(24,), dtype="f8", fillvalue=np.nan)
            f.swmr_mode = True
        except BaseException:
            lock.release()
            raise
        return cls(f, partial, out, lock)

    def append(self, table: str, rows: np.ndarray) -> None:
        """Append rows to ``/raw/<table>`` and flush them, so a reader (or a crash) sees them at once."""
        ds = self._f["raw"][table]
        n = ds.shape[0]
        ds.resize((n + len(rows),))
        ds[n:] = np.asarray(rows, ds.dtype)
        ds.flush()

    def record_identification(self, attrs: dict[str, Any], offsets_v: list[float]) -> None:
        """The ID reading (attributes written before SWMR cannot grow, so values go into existing objects)."""
        self._f["raw/shunt_offsets_v"][:] = np.asarray(offsets_v, float)
        self._f["raw/shunt_offsets_v"].flush()
        self._identification = dict(attrs)

    def raw(self) -> dict[str, np.ndarray]:
        """The raw tables as written so far."""
        return {name: self._f["raw"][name][()] for name in RAW_TABLES}

    def finish(self, fits: dict[str, np.ndarray], calibration: ProcessCalibration | None,
               attrs: dict[str, Any]) -> Path:
        """Leave SWMR, write fits, calibration and the final attributes, close, and take the final name."""
        self._f.close()
        with h5py.File(self.partial, "r+", libver="latest") as f:
            ident = f["raw/identification"]
            for key, value in self._identification.items():
                ident.attrs[key] = value
            group = f.require_group("fits")
            for name, table in fits.items():
                if name in group:
                    del group[name]
                group.create_dataset(name, data=table)
            if calibration is not None:
                calibration.write(f)
            for key, value in attrs.items():
                f.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value
        files.promote(self.partial, self.out)
        self._lock.release()
        return self.out

    def abandon(self) -> None:
        """An interrupted run: close the partial file (it keeps every reading) and release its lock."""
        if self._f.id.valid:
            self._f.close()
        self._lock.release()
