"""HDF5 files: characterisation (raw readings, fits, provenance) and weights.

Layout (docs/architecture.md has the full table). Every float is float64 with
SI units in a ``units`` attribute. Raw readings are appended as they are
measured and flushed at once, into extendable datasets that exist from the
start, so the file can be read while it is written (SWMR) and an interrupted
run loses nothing. Fits are written after the raw phase, outside SWMR.

A characterisation run writes ``die.partial.h5`` and only its last step makes
``die.h5`` (:mod:`labctl.files`: partial files, atomic writes, ``--force``);
weights are written to a temporary name and moved into place.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import h5py
import numpy as np

from labctl import __version__, files
from labctl.families.cmna.characterisation.flags import NeuronFlags
from labctl.families.cmna.chip import FAMILY_NAME, ChipDescription
from labctl.families.cmna.die_parameters import DieParameters, LayerGains, SupplyModel
from labctl.errors import DataFileError
from labctl.families.cmna.weights import InputEncoding, TrainingProvenance, WeightSet

MON_DTYPE = np.dtype([
    ("time_s", "f8"), ("config", "i4"), ("level", "i4"), ("layer", "i2"), ("neuron", "i4"),
    ("drive", "f8"), ("ext_in_a", "f8"), ("current_a", "f8"),
])
"""One MON reading: which configuration and drive level, which neuron, what it sank."""


class MonReading(NamedTuple):
    """One MON reading as it is taken, a row of ``/raw/mon`` (the fields of :data:`MON_DTYPE`, in order)."""

    time_s: float
    config: int
    level: int
    layer: int
    neuron: int
    drive: float
    ext_in_a: float
    current_a: float


if MonReading._fields != MON_DTYPE.names:
    raise AssertionError("MonReading must name the fields of MON_DTYPE in order")

CONFIG_DTYPE = np.dtype([
    ("time_s", "f8"), ("config", "i4"), ("kind", "S24"), ("params", h5py.string_dtype()),
])


DONE_DTYPE = np.dtype([("config", "i4"), ("job", h5py.string_dtype())])
"""A finished run: its configuration id and its job key (JSON)."""


RAW_TABLES = ("mon", "c2f", "configs", "config_codes")
"""The raw tables every characterisation file has; ``done`` is optional (files before resume existed lack it)."""


@dataclass(frozen=True, eq=False)
class RawTables:
    """The raw tables of a characterisation file (``/raw``), each as written (structured arrays)."""

    mon: np.ndarray
    """Every MON reading (:data:`MON_DTYPE`)."""
    c2f: np.ndarray
    """Every C2F gate (:func:`c2f_dtype`)."""
    configs: np.ndarray
    """Every configuration (:data:`CONFIG_DTYPE`), in the order of ``config_codes``."""
    config_codes: np.ndarray
    """The latch nibbles read back per configuration: one row of all matrices, flattened row-major."""
    done: np.ndarray | None = None
    """The finished runs (:data:`DONE_DTYPE`); None in files written before resume existed."""
    supply: SupplyTables | None = None
    """The supply-current states (``/raw/supply_*``); None in files written before issue 14."""

    def finished_configs(self) -> set[int]:
        """Ids of the configurations whose run finished (every recorded one when the file has no ``done``)."""
        table = self.configs if self.done is None else self.done
        return set(table["config"].tolist())

    @classmethod
    def read(cls, group: h5py.Group, path: str | Path) -> "RawTables":
        """The tables of an open ``/raw`` group; DataFileError (one line) naming the tables it lacks."""
        absent = [name for name in RAW_TABLES if name not in group]
        if absent:
            raise DataFileError(f"{path}: /raw lacks {', '.join(absent)}")
        return cls(**{name: group[name][()] for name in RAW_TABLES},
                   done=group["done"][()] if "done" in group else None,
                   supply=SupplyTables.read(group) if SUPPLY_TABLES[0] in group else None)


# -- supply current (issue 14): /raw/supply_* and /calibration/supply ---------------------------------

SUPPLY_TABLES = ("supply_configurations", "supply_readings")
"""The raw tables of the states whose supply current characterisation read, to fit the supply model
(tables in ``/raw`` like every raw record; files written before issue 14 lack them)."""
SUPPLY_GROUP = "supply"
"""``/calibration/supply``: the fitted supply model (attributes)."""


def supply_configuration_dtype(n_synapses: int) -> np.dtype:
    """One weight configuration of the supply run: its latch nibbles as read back (all matrices,
    row-major, as ``/raw/config_codes``) and VDD while it was held. One row, so a kill cannot part them."""
    return np.dtype([("time_s", "f8"), ("config", "i4"), ("state", "i4"), ("vdd_v", "f8"),
                     ("nibbles", "u1", (n_synapses,))])


def supply_reading_dtype(n_inputs: int) -> np.dtype:
    """One input pattern of a configuration: its DAC codes and the mean of a few supply readings."""
    return np.dtype([("time_s", "f8"), ("config", "i4"), ("state", "i4"), ("pattern", "i4"),
                     ("dac_codes", "u2", (n_inputs,)), ("current_a", "f8"), ("current_std_a", "f8"),
                     ("readings", "i4")])


class SupplyTables(NamedTuple):
    """``/raw/supply_*``: every configuration (:func:`supply_configuration_dtype`) and pattern
    (:func:`supply_reading_dtype`); ``state`` numbers the run's weight configurations."""

    configurations: np.ndarray
    readings: np.ndarray

    @classmethod
    def read(cls, raw: h5py.Group) -> "SupplyTables":
        return cls(*(raw[name][()] for name in SUPPLY_TABLES))

    def of_configs(self, configs: set[int]) -> "SupplyTables":
        """Only the rows of the given configuration ids (the finished runs)."""
        return SupplyTables(*(table[np.isin(table["config"], sorted(configs))] for table in self))


def _create_supply_tables(raw: h5py.Group, chip: ChipDescription) -> None:
    """The extendable ``/raw/supply_*`` datasets (before SWMR starts: it creates nothing)."""
    configurations, readings = SUPPLY_TABLES
    n_syn = sum(a * b for a, b in zip(chip.layer_sizes[:-1], chip.layer_sizes[1:]))
    raw.create_dataset(configurations, shape=(0,), maxshape=(None,), dtype=supply_configuration_dtype(n_syn),
                       chunks=(1,), compression="gzip")
    raw.create_dataset(readings, shape=(0,), maxshape=(None,), dtype=supply_reading_dtype(chip.n_inputs),
                       chunks=(64,))
    raw[configurations].attrs["units"] = "time_s: s of bench time, vdd_v: V, nibbles: latch codes as read back"
    raw[readings].attrs["units"] = ("time_s: s of bench time, dac_codes: DAC codes, current_a: A (mean of "
                                    "`readings` supply readings), current_std_a: A (its standard error)")


_SUPPLY_FIELDS = ("quiescent_a", "soma", "drive", "synapse", "vdd_v", "held_out_rms", "held_out_max")
_SUPPLY_COUNTS = ("n_fitted", "n_held_out")


def _write_supply(g: h5py.Group, model: SupplyModel) -> None:
    s = g.create_group(SUPPLY_GROUP)
    for name in _SUPPLY_FIELDS:
        s.attrs[name] = float(getattr(model, name))
    for name in _SUPPLY_COUNTS:
        s.attrs[name] = int(getattr(model, name))
    s.attrs["std"] = np.asarray(model.std, np.float64)
    s.attrs["units"] = ("quiescent_a: A; soma, drive, synapse: A of supply current per A of branch current; "
                        "vdd_v: V; held_out_rms, held_out_max: relative residuals on states not fitted")


def _read_supply(g: h5py.Group) -> SupplyModel | None:
    """The fitted supply model; None in files written before it existed."""
    if SUPPLY_GROUP not in g:
        return None
    a = g[SUPPLY_GROUP].attrs
    return SupplyModel(**{name: float(a[name]) for name in _SUPPLY_FIELDS},
                       **{name: int(a[name]) for name in _SUPPLY_COUNTS},
                       std=tuple(float(v) for v in a["std"]))

# -- end of the supply-current section ---------------------------------------------------------------


def c2f_dtype(n_outputs: int) -> np.dtype:
    return np.dtype([
        ("time_s", "f8"), ("config", "i4"), ("level", "i4"), ("drive", "f8"),
        ("gate_s", "f8"), ("temperature_c", "f8"), ("counts", "u4", (n_outputs,)),
    ])


def _open(path: str | Path, mode: str = "r", **kwargs) -> h5py.File:
    p = Path(path)
    if mode == "r" and not p.exists():
        raise DataFileError(f"{p}: no such file")
    try:
        return h5py.File(p, mode, **kwargs)
    except OSError as exc:
        if mode == "r" and files.left_open_for_write(exc):
            return _open_left_for_write(p, **kwargs)
        raise DataFileError(f"{p}: not a readable HDF5 file ({exc})") from None


def _open_left_for_write(p: Path, **kwargs) -> h5py.File:
    """Read a file whose superblock says it is open for write: a partial file whose writer was killed
    gets its stale flag cleared (labctl's own file, nobody writing it); otherwise it is read as SWMR."""
    try:
        if files.is_partial(p) and not files.being_written(p):
            files.clear_stale_write_flag(p)
            return h5py.File(p, "r", **kwargs)
        return h5py.File(p, "r", swmr=True, **{k: v for k, v in kwargs.items() if k != "swmr"})
    except OSError as exc:
        raise DataFileError(f"{p}: left open for write and not readable ({exc})") from None


def describe(path: str | Path) -> str | None:
    """What an existing labctl file holds, for a message ("a complete characterisation", "weights", ...)."""
    try:
        with _open(path) as f:
            kind = str(f.attrs.get("kind", ""))
            if kind == "characterisation":
                return "a complete characterisation" if "calibration" in f else "a characterisation without fits"
            return {"weights": "weights", "session": "a session record"}.get(kind, f"a {kind} file" if kind else None)
    except DataFileError:
        return None


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_chip(group: h5py.Group, chip: ChipDescription) -> None:
    for key, value in chip.as_attrs().items():
        group.attrs[key] = value


def read_chip(path: str | Path) -> ChipDescription:
    with _open(path) as f:
        return _read_chip(f, path)


def _read_chip(f: h5py.File, path: str | Path) -> ChipDescription:
    if "die" not in f:
        raise DataFileError(f"{path}: has no /die group (not a labctl file?)")
    try:
        return ChipDescription.from_attrs(dict(f["die"].attrs))
    except (KeyError, ValueError, TypeError) as exc:
        raise DataFileError(f"{path}: /die is incomplete ({exc})") from None


class CharacterisationFile:
    """Writer for one characterisation run; raw data go in as they are measured."""

    def __init__(self, f: h5py.File, path: Path) -> None:
        self._f = f
        self.path = path

    @classmethod
    def create(cls, path: str | Path, chip: ChipDescription, bench_text: str,
               parameters: dict[str, Any], swmr: bool = True) -> "CharacterisationFile":
        p = Path(path)
        f = _open(p, "w", libver="latest")
        _write_chip(f.create_group("die"), chip)
        f.attrs["labctl_version"] = __version__
        f.attrs["family"] = FAMILY_NAME
        f.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        f.attrs["kind"] = "characterisation"
        f.attrs["parameters"] = json.dumps(parameters, sort_keys=True)
        f.create_dataset("bench_file", data=bench_text)
        raw = f.create_group("raw")
        raw.create_dataset("mon", shape=(0,), maxshape=(None,), dtype=MON_DTYPE, chunks=(1024,))
        raw.create_dataset("c2f", shape=(0,), maxshape=(None,), dtype=c2f_dtype(chip.n_outputs), chunks=(256,))
        raw.create_dataset("configs", shape=(0,), maxshape=(None,), dtype=CONFIG_DTYPE, chunks=(64,))
        n_syn = sum(a * b for a, b in zip(chip.layer_sizes[:-1], chip.layer_sizes[1:]))
        raw.create_dataset("config_codes", shape=(0, n_syn), maxshape=(None, n_syn), dtype="u1",
                           chunks=(1, n_syn), compression="gzip")
        raw["mon"].attrs["units"] = "time_s: s of bench time (bridge uptime), drive: DAC code or A, ext_in_a: A, current_a: A"
        raw["c2f"].attrs["units"] = "time_s: s of bench time (bridge uptime), gate_s: s, temperature_c: degC, counts: events"
        raw["config_codes"].attrs["layout"] = "latch nibbles of matrix 0, 1, ... flattened row-major"
        raw.create_dataset("done", shape=(0,), maxshape=(None,), dtype=DONE_DTYPE, chunks=(64,))
        raw["done"].attrs["meaning"] = "configuration ids whose run finished (resume skips them)"
        _create_supply_tables(raw, chip)
        if swmr:
            f.swmr_mode = True
        return cls(f, p)

    @classmethod
    def resume(cls, path: str | Path, chip: ChipDescription,
               lock: files.WriterLock | None = None) -> "CharacterisationFile":
        """Reopen an interrupted run to append more (refuses a file of another die).

        A partial file (``die.partial.h5``) whose writer was killed still says
        "open for write"; that stale flag is cleared first (``lock``: the caller
        holds the file's :class:`labctl.files.WriterLock`, so nobody else writes it). The
        tables are made consistent again: a configuration row whose latch codes
        the kill cut off is dropped (its readings stay; the run is not done).
        """
        p = Path(path)
        recorded = read_chip(p)  # an SWMR read: fine with the stale flag
        if recorded.serial != chip.serial:
            raise DataFileError(f"{p} was measured on die {recorded.serial!r}; the bench holds die {chip.serial!r}")
        if files.is_partial(p):
            files.clear_stale_write_flag(p, lock)
        f = _open(p, "r+", libver="latest")
        for name in ("calibration", "methods", "flags"):
            if name in f:  # fits of an earlier, partial analysis: redone at the end
                del f[name]
        configs, codes = f["raw/configs"], f["raw/config_codes"]
        n = min(configs.shape[0], codes.shape[0])
        configs.resize((n,))
        codes.resize((n,) + codes.shape[1:])
        if SUPPLY_TABLES[0] not in f["raw"]:  # a run started before issue 14 reads the supply too
            _create_supply_tables(f["raw"], chip)
        f.swmr_mode = True
        return cls(f, p)

    @property
    def parameters(self) -> dict[str, Any]:
        return json.loads(self._f.attrs["parameters"])

    def read_raw(self) -> RawTables:
        """The raw tables as written so far (the writer's own view, e.g. to decide when to stop)."""
        return RawTables.read(self._f["raw"], self.path)

    def mark_done(self, config: int, job: Any) -> None:
        """Record that a configuration's run finished; ``job`` identifies it for a resume."""
        self._append("done", np.array([(config, json.dumps(job))], DONE_DTYPE))

    def _append(self, name: str, rows: np.ndarray) -> None:
        ds = self._f["raw"][name]
        n = ds.shape[0]
        ds.resize((n + len(rows),) + ds.shape[1:])
        ds[n:] = rows
        ds.flush()

    def append_config(self, config: int, kind: str, params: dict[str, Any], nibbles: Iterable[np.ndarray]) -> None:
        row = np.array([(time.time(), config, kind.encode(), json.dumps(params))], CONFIG_DTYPE)
        self._append("configs", row)
        flat = np.concatenate([np.asarray(n, np.uint8).ravel() for n in nibbles])
        self._append("config_codes", flat[None, :])

    def append_mon(self, rows: np.ndarray) -> None:
        self._append("mon", np.asarray(rows, MON_DTYPE))

    def append_c2f(self, rows: np.ndarray) -> None:
        self._append("c2f", rows)

    def append_supply(self, configuration: np.ndarray, readings: np.ndarray) -> None:
        """One weight configuration of the supply run and its patterns' readings (``/raw/supply_*``)."""
        self._append(SUPPLY_TABLES[0], configuration)
        self._append(SUPPLY_TABLES[1], readings)

    def close(self) -> None:
        if self._f.id.valid:
            self._f.flush()
            self._f.close()


def read_raw(path: str | Path, swmr: bool = False) -> RawTables:
    """All raw tables; ``swmr=True`` reads a file that another process is still writing.

    While a run has not finished, its readings are in the partial file
    (``die.partial.h5`` for ``die.h5``): when ``path`` does not exist yet, that is read.
    """
    partial = files.partial_path(path)
    if not Path(path).exists() and partial.exists():
        path = partial
    with _open(path, "r", swmr=swmr) as f:
        if "raw" not in f:
            raise DataFileError(f"{path}: has no /raw group (not a characterisation file)")
        return RawTables.read(f["raw"], path)


def write_calibration(path: str | Path, params: DieParameters,
                      methods: dict[str, DieParameters] | None = None,
                      flags: list[NeuronFlags] | None = None,
                      summary: dict[str, Any] | None = None) -> None:
    """Write fits under /calibration (required layout of issue 4), per method under /methods, and the flags
    of each layer ``l`` under /flags/layer_{l}/{name} (the flags the analysis computed)."""
    with _open(path, "r+") as f:
        for name in ("calibration", "methods", "flags"):
            if name in f:
                del f[name]
        _write_params(f.create_group("calibration"), params)
        if summary:
            f["calibration"].attrs["summary"] = json.dumps(summary, sort_keys=True, default=float)
        if methods:
            g = f.create_group("methods")
            for name, p in methods.items():
                _write_params(g.create_group(name), p)
        if flags:
            g = f.create_group("flags")
            for l, layer_flags in enumerate(flags):
                for name, arr in layer_flags.present().items():
                    g.create_dataset(f"layer_{l}/{name}", data=arr)


def load_flags(path: str | Path) -> list[NeuronFlags]:
    """The flags of every layer of a characterisation file; none set where the file has no /flags (fits
    missing) and None for a flag the analysis did not compute (``methods_disagree`` of a one-method run)."""
    with _open(path) as f:
        chip = _read_chip(f, path)
        out = []
        for l in range(chip.n_layers):
            group = f.get(f"flags/layer_{l}")
            stored = {} if group is None else {name: group[name][()] for name in NeuronFlags.NAMES if name in group}
            out.append(NeuronFlags(**stored))
        return out


_LINEAR_RANGE = ("compression_onset_a", "compression_onset_a_std", "max_input_a")
"""Optional per-layer datasets of the linear range (issue 5)."""


def _dataset(group: h5py.Group, name: str, data, units: str) -> None:
    ds = group.create_dataset(name, data=np.asarray(data, dtype=np.float64))
    ds.attrs["units"] = units


def _write_params(g: h5py.Group, p: DieParameters) -> None:
    for l, layer in enumerate(p.layers):
        lg = g.create_group(f"layer_{l}")
        _dataset(lg, "a_plus", layer.a_plus, "1 (normalised: mean 1 per layer)")
        _dataset(lg, "a_plus_std", layer.a_plus_std, "1")
        _dataset(lg, "a_minus", layer.a_minus, "1 (same normalisation as a_plus)")
        _dataset(lg, "a_minus_std", layer.a_minus_std, "1")
        lg.attrs["scale"] = float(layer.scale)
        lg.attrs["scale_units"] = "1 (absolute gain = a_plus * scale)"
        for name in _LINEAR_RANGE:
            if getattr(layer, name) is not None:
                _dataset(lg, name, getattr(layer, name), "A (NaN: not measured)")
    _dataset(g, "bias_gain", p.bias_gain, "1")
    _dataset(g, "bias_offset_a", p.bias_offset_a, "A")
    _dataset(g, "c2f_gain_hz_per_a", p.c2f_gain_hz_per_a, "Hz/A")
    _dataset(g, "c2f_dark_hz", p.c2f_dark_hz, "Hz")
    g.attrs["synapse_spread"] = float(p.synapse_spread)
    g.attrs["notes"] = json.dumps(p.notes)
    if p.supply is not None:
        _write_supply(g, p.supply)


def load_die_parameters(path: str | Path, group: str = "calibration") -> DieParameters:
    """The fitted parameters of a characterisation file; DataFileError if absent or corrupt."""
    with _open(path) as f:
        chip = _read_chip(f, path)
        if group not in f:
            raise DataFileError(f"{path}: has no /{group} (characterisation incomplete or not a characterisation file)")
        g = f[group]
        try:
            layers = [
                LayerGains(
                    a_plus=g[f"layer_{l}/a_plus"][()], a_plus_std=g[f"layer_{l}/a_plus_std"][()],
                    a_minus=g[f"layer_{l}/a_minus"][()], a_minus_std=g[f"layer_{l}/a_minus_std"][()],
                    scale=float(g[f"layer_{l}"].attrs["scale"]),
                    **{name: g[f"layer_{l}/{name}"][()] for name in _LINEAR_RANGE if name in g[f"layer_{l}"]},
                )
                for l in range(chip.n_layers)
            ]
            params = DieParameters(
                chip=chip, layers=layers,
                bias_gain=g["bias_gain"][()], bias_offset_a=g["bias_offset_a"][()],
                c2f_gain_hz_per_a=g["c2f_gain_hz_per_a"][()], c2f_dark_hz=g["c2f_dark_hz"][()],
                synapse_spread=float(g.attrs.get("synapse_spread", np.nan)),
                notes=json.loads(g.attrs.get("notes", "{}")),
                supply=_read_supply(g),
            )
        except KeyError as exc:
            raise DataFileError(f"{path}: /{group} is incomplete (missing {exc})") from None
    for l, layer in enumerate(params.layers):
        if layer.a_plus.shape != (chip.layer_sizes[l],):
            raise DataFileError(f"{path}: layer_{l}/a_plus has {layer.a_plus.shape}, die has {chip.layer_sizes[l]} neurons")
    return params


def save_weights(path: str | Path, weights: WeightSet) -> None:
    """Write the weights file (under a temporary name, moved over ``path`` once complete)."""
    with files.atomic_output(path) as tmp, _open(tmp, "w") as f:
        f.attrs["kind"] = "weights"
        f.attrs["labctl_version"] = __version__
        f.attrs["family"] = FAMILY_NAME
        f.attrs["die_serial"] = weights.die_serial
        f.attrs["layer_sizes"] = list(weights.layer_sizes)
        f.attrs["calibration_sha256"] = weights.calibration_sha256
        f.attrs["dataset"] = weights.dataset
        f.attrs["software_accuracy"] = float(weights.software_accuracy)
        f.attrs["naive"] = bool(weights.naive)
        f.attrs["metadata"] = _provenance_attr(weights.provenance)
        f.attrs["predicted_supply_power_w"] = float(weights.predicted_supply_power_w)
        f.attrs["predicted_network_power_w"] = float(weights.predicted_network_power_w)
        for m, codes in enumerate(weights.codes):
            ds = f.create_dataset(f"weights/matrix_{m}/codes", data=np.asarray(codes, np.int8))
            ds.attrs["units"] = "signed magnitude code, -7..7 (rows: layer m, columns: layer m+1)"
        enc = f.create_group("encoding")
        e = weights.encoding
        enc.create_dataset("input_offset", data=np.asarray(e.input_offset, np.float64))
        enc.create_dataset("input_scale", data=np.asarray(e.input_scale, np.float64)).attrs["units"] = "DAC codes per feature unit"
        enc.create_dataset("input_channels", data=np.asarray(e.input_channels, np.int64))
        enc.create_dataset("constant_codes", data=np.asarray(e.constant_codes, np.int64))
        enc.create_dataset("class_outputs", data=np.asarray(e.class_outputs, np.int64))
        enc.attrs["max_code"] = int(e.max_code)


def load_weights(path: str | Path) -> WeightSet:
    with _open(path) as f:
        if f.attrs.get("kind") != "weights":
            raise DataFileError(f"{path}: not a labctl weights file (kind={f.attrs.get('kind')!r})")
        try:
            sizes = tuple(int(v) for v in f.attrs["layer_sizes"])
            codes = [f[f"weights/matrix_{m}/codes"][()].astype(np.int8) for m in range(len(sizes) - 1)]
            e = f["encoding"]
            encoding = InputEncoding(
                input_offset=e["input_offset"][()], input_scale=e["input_scale"][()],
                input_channels=e["input_channels"][()], constant_codes=e["constant_codes"][()],
                class_outputs=e["class_outputs"][()], max_code=int(e.attrs.get("max_code", 4095)),
            )
            return WeightSet(
                die_serial=str(f.attrs["die_serial"]), layer_sizes=sizes, codes=codes, encoding=encoding,
                dataset=str(f.attrs["dataset"]), software_accuracy=float(f.attrs["software_accuracy"]),
                calibration_sha256=str(f.attrs.get("calibration_sha256", "")), naive=bool(f.attrs.get("naive", False)),
                provenance=_provenance_of(f.attrs.get("metadata", "{}")),
                predicted_supply_power_w=float(f.attrs.get("predicted_supply_power_w", np.nan)),
                predicted_network_power_w=float(f.attrs.get("predicted_network_power_w", np.nan)),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise DataFileError(f"{path}: weights file is incomplete or inconsistent ({exc})") from None


_PROVENANCE_INTS = ("seed", "split_seed", "stuck_bits", "in_situ_rounds")
_PROVENANCE_BOOLS = ("fine_tuned", "distilled")
_PROVENANCE_FLOATS = ("power_weight", "power_budget_w", "power_reference_w")
_PROVENANCE_KEYS = tuple(f.name for f in fields(TrainingProvenance) if f.name != "other")


def _provenance_attr(provenance: TrainingProvenance) -> str:
    """The weights file's ``metadata`` attribute: a JSON object of strings, as labctl has always written
    it (integers in decimal, booleans "True"/"False", layer sizes "4,7,3"); unrecorded entries left out."""
    out: dict[str, str] = {}
    for name in _PROVENANCE_KEYS:
        value = getattr(provenance, name)
        if value is not None:
            out[name] = ",".join(str(n) for n in value) if name == "layer_sizes_used" else (
                repr(float(value)) if name in _PROVENANCE_FLOATS else str(value))
    return json.dumps(out | provenance.other)


def _provenance_of(text: str) -> TrainingProvenance:
    """:class:`TrainingProvenance` from a weights file's ``metadata`` attribute (any labctl version's)."""
    stored = json.loads(text)
    if not isinstance(stored, dict):
        raise ValueError("attribute metadata is not a JSON object")
    known = {name: _provenance_value(name, value) for name, value in stored.items() if name in _PROVENANCE_KEYS}
    return TrainingProvenance(**known, other={k: v for k, v in stored.items() if k not in _PROVENANCE_KEYS})


def _provenance_value(name: str, value: Any) -> Any:
    if name in _PROVENANCE_INTS:
        return int(value)
    if name in _PROVENANCE_FLOATS:
        return float(value)
    if name in _PROVENANCE_BOOLS:
        return value if isinstance(value, bool) else str(value) == "True"
    if name == "layer_sizes_used":
        parts = value.split(",") if isinstance(value, str) else value
        return tuple(int(n) for n in parts) if value not in ("", None) else None
    return None if value is None else str(value)
