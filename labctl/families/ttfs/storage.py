"""The TTFS characterisation file (HDF5): raw readings as measured, fits, the die's parameters, provenance.

Layout::

    /                    attrs family="ttfs", kind="characterisation", part, serial, layer_sizes, labctl_version,
                               created, plan (JSON), bench_seconds, complete (True once finished)
    /bench_file          the bench file's text
    /raw/dc              every held-row reading           (characterisation.tables.DC_DTYPE)
    /raw/tdc             every batch of spike times, summed (TDC_DTYPE)
    /raw/traces/<name>   every membrane trace              (TRACE_DTYPE; attrs layer, neuron, kind, ...)
    /fits/...            per-step fits (site currents I_ij of the characterisation write, per-row lambda, ...)
    /parameters          the TtfsDieParameters (contract 1.6, 1.7): each fitted value beside ``<name>_se``;
                         a polarity's per-site lambdas, when known, in ``<polarity>/site_lam_per_v/matrix_<m>``

The run writes ``<out>.partial.h5`` (:mod:`labctl.files`) and adds each
step's readings as the step ends, so an interrupted run keeps what it read;
fits and parameters are written last, and only then does the file take its
final name: a complete file is never replaced by a partial one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

from labctl import __version__, files
from labctl.errors import DataFileError
from labctl.families.ttfs.die_parameters import Measured, NeuronLayer, Polarity, TtfsDieParameters

FAMILY = "ttfs"
KIND = "characterisation"
PARAMETERS = "parameters"
_LAYER_FIELDS = ("capacitance_f", "start_v", "threshold_v", "delay_ns", "column_gain", "leak_a")
_POLARITY_FIELDS = ("i_lsb_a", "bit_weights", "lam_per_v", "reversal_v")


def _write_measured(group: h5py.Group, name: str, m: Measured) -> None:
    group.create_dataset(name, data=np.asarray(m.value, float))
    group.create_dataset(f"{name}_se", data=np.asarray(m.se, float))


def _read_measured(group: h5py.Group, name: str) -> Measured:
    value, se = group[name][()], group[f"{name}_se"][()]
    return Measured(float(value), float(se)) if np.ndim(value) == 0 else Measured(np.asarray(value), np.asarray(se))


def write_parameters(target: h5py.Group, p: TtfsDieParameters) -> None:
    """``/parameters`` (replaced if present) from the record."""
    if PARAMETERS in target:
        del target[PARAMETERS]
    g = target.create_group(PARAMETERS)
    g.attrs.update({"part": p.part, "serial": p.serial, "layer_sizes": list(p.layer_sizes),
                    "vth_pad_v": p.vth_pad_v, "input_delay_ns": p.input_delay_ns, "window_ns": p.window_ns,
                    "write_residual_half_width": p.write_residual_half_width})
    for name in ("v_rest_v", "v_k_v", "kappa_v"):
        _write_measured(g, name, getattr(p, name))
    for pol_name in ("excitatory", "inhibitory"):
        pol: Polarity = getattr(p, pol_name)
        pg = g.create_group(pol_name)
        pg.attrs.update({"lam_site_sd": pol.lam_site_sd, "pad_v": pol.pad_v})
        for name in _POLARITY_FIELDS:
            _write_measured(pg, name, getattr(pol, name))
        if pol.site_lam_per_v is not None:
            sg = pg.create_group("site_lam_per_v")
            for m, site in enumerate(pol.site_lam_per_v):
                _write_measured(sg, f"matrix_{m}", site)
    for index, layer in enumerate(p.layers, start=1):
        lg = g.create_group(f"layer_{index}")
        for name in _LAYER_FIELDS:
            _write_measured(lg, name, getattr(layer, name))
    eg = g.create_group("extras")
    for name, m in p.extras.items():
        _write_measured(eg, name, m)


def _read_parameters(g: h5py.Group) -> TtfsDieParameters:
    a = g.attrs
    polarities = {}
    for pol_name in ("excitatory", "inhibitory"):
        pg = g[pol_name]
        sites = None
        if "site_lam_per_v" in pg:
            sg = pg["site_lam_per_v"]
            sites = tuple(_read_measured(sg, f"matrix_{m}") for m in range(len(sg) // 2))
        polarities[pol_name] = Polarity(**{n: _read_measured(pg, n) for n in _POLARITY_FIELDS},
                                        lam_site_sd=float(pg.attrs["lam_site_sd"]), pad_v=float(pg.attrs["pad_v"]),
                                        site_lam_per_v=sites)
    sizes = tuple(int(s) for s in a["layer_sizes"])
    layers = tuple(NeuronLayer(**{n: _read_measured(g[f"layer_{i}"], n) for n in _LAYER_FIELDS})
                   for i in range(1, len(sizes)))
    extras = {name: _read_measured(g["extras"], name) for name in g["extras"] if not name.endswith("_se")}
    return TtfsDieParameters(part=str(a["part"]), serial=str(a["serial"]), layer_sizes=sizes,
                             v_rest_v=_read_measured(g, "v_rest_v"), vth_pad_v=float(a["vth_pad_v"]),
                             v_k_v=_read_measured(g, "v_k_v"), kappa_v=_read_measured(g, "kappa_v"),
                             layers=layers, input_delay_ns=float(a["input_delay_ns"]),
                             window_ns=float(a["window_ns"]),
                             write_residual_half_width=float(a["write_residual_half_width"]), extras=extras,
                             **polarities)


def read_parameters(path: str | Path) -> TtfsDieParameters:
    """The die's parameters in a complete TTFS characterisation file; one-line DataFileError otherwise."""
    p = Path(path)
    if files.is_partial(p):
        raise DataFileError(f"{p}: a partial characterisation (interrupted or still running), not a result")
    with files.open_hdf5(p, "a TTFS characterisation from `labctl characterise`") as fh:
        family = fh.attrs.get("family", "cmna")
        if family != FAMILY:
            raise DataFileError(f"{p}: a {family} file, not a TTFS characterisation")
        if not fh.attrs.get("complete", False) or PARAMETERS not in fh:
            raise DataFileError(f"{p}: an incomplete TTFS characterisation (no fitted parameters)")
        try:
            return _read_parameters(fh[PARAMETERS])
        except (KeyError, ValueError, TypeError) as exc:
            raise DataFileError(f"{p}: malformed /{PARAMETERS} ({exc})") from None


def _put(f: h5py.File, path: str, data: Any, attrs: Mapping[str, Any] | None = None) -> None:
    if path in f:
        del f[path]
    ds = f.create_dataset(path, data=data)
    ds.attrs.update(dict(attrs or {}))


class CharacterisationWriter:
    """One run's partial file: readings step by step, then fits and parameters, then the final name."""

    def __init__(self, out: Path, partial: Path, lock: files.WriterLock) -> None:
        self.out, self.partial, self._lock = out, partial, lock

    @classmethod
    def create(cls, out: str | Path, attrs: Mapping[str, Any], bench_text: str) -> "CharacterisationWriter":
        """Start ``out.partial.h5`` (replacing an abandoned one) with the run's identity."""
        out = Path(out)
        partial = files.partial_path(out)
        lock = files.WriterLock(partial).acquire()
        try:
            with h5py.File(partial, "w", libver="latest") as f:
                f.attrs.update({"family": FAMILY, "kind": KIND, "labctl_version": __version__, "complete": False,
                                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
                f.attrs.update({k: json.dumps(v) if isinstance(v, dict) else v for k, v in attrs.items()})
                f.create_dataset("bench_file", data=bench_text)
        except BaseException:
            lock.release()
            raise
        return cls(out, partial, lock)

    def add(self, datasets: Mapping[str, np.ndarray], attrs: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        """Write datasets by HDF5 path (``raw/dc``, ``raw/traces/x``, ``fits/...``); the file is closed after."""
        attrs = attrs or {}
        with h5py.File(self.partial, "r+", libver="latest") as f:
            for path, data in datasets.items():
                _put(f, path, data, attrs.get(path))

    def finish(self, params: TtfsDieParameters, provenance: Mapping[str, Any]) -> Path:
        """Write the parameters and provenance, mark the file complete and give it its final name."""
        with h5py.File(self.partial, "r+", libver="latest") as f:
            write_parameters(f, params)
            f.attrs.update({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in provenance.items()})
            f.attrs["complete"] = True
        files.promote(self.partial, self.out)
        self._lock.release()
        return self.out

    def abandon(self) -> None:
        """An interrupted run: the partial file keeps every step written so far."""
        self._lock.release()


def write_characterisation(path: str | Path, params: TtfsDieParameters, raw: Mapping[str, np.ndarray],
                           provenance: Mapping[str, Any], bench_text: str = "") -> Path:
    """Write a complete file in one go (``raw``: HDF5 path -> array), through the partial file."""
    writer = CharacterisationWriter.create(path, {"part": params.part, "serial": params.serial,
                                                  "layer_sizes": list(params.layer_sizes)}, bench_text)
    try:
        writer.add(raw)
        return writer.finish(params, provenance)
    except BaseException:
        writer.abandon()
        raise
