"""A recorded CMNA session's readings against the die's model (the reading half of ``labctl replay``).

The recorded bridge transactions and SMU readings are walked in time order,
keeping track of what the die was set to (latches as written or read back,
DAC codes, EXT_IN routing, MON selection). Every recorded MON reading, MEASURE
and RUN_BATCH answer is compared with what the family's model
(:class:`labctl.families.cmna.training.die_model.MomentModel`, the measured
die's mean with its first-order variance) predicts for that state, in units of
the expected difference: reading noise, C2F counting statistics, and the
model's own uncertainty (the fit error of the neuron's gain and the synapse
mismatch no per-neuron characterisation sees, contract section 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from labctl.drivers.bridge_protocol import Status
from labctl.families.cmna.protocol import (
    DISCONNECT,
    Opcode,
    parse_codes_request,
    parse_measure,
    parse_monitor_request,
    parse_run_batch,
    parse_u16,
    parse_weights_request,
)
from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.die_parameters import DieParameters
from labctl.families.cmna.latch_codes import nibbles_to_signed, unpack_rows
from labctl.families.cmna.storage import RawTables
from labctl.families.cmna.training.die_model import Moments, MomentModel
from labctl.families.cmna.training.variation import READING_NOISE_FRAC
from labctl.replay import Comparison
from labctl.session import RecordedSession

MON_FLOOR_A = 20e-12
"""Absolute floor of a MON comparison: the soma leakage the model knows only nominally (10 to 50 pA)."""
MATCH_LOOKAHEAD = 8
"""How far ahead in the characterisation file's rows a session reading's twin is looked for."""
KIND_LABELS = {"dark": "dark", "reference": "drift reference", "ext_sweep": "EXT_IN sweep",
               "bias_sweep": "bias sweep", "chain": "chains", "chain_negative": "negative chains"}


@dataclass
class _Group:
    unit_scale: float
    unit: str
    recorded: list[float] = field(default_factory=list)
    twin: list[float] = field(default_factory=list)
    sigma: list[float] = field(default_factory=list)
    where: list[str] = field(default_factory=list)

    def add(self, recorded: np.ndarray, twin: np.ndarray, sigma: np.ndarray, where: list[str]) -> None:
        self.recorded += list(np.ravel(recorded))
        self.twin += list(np.ravel(twin))
        self.sigma += list(np.ravel(sigma))
        self.where += where

    def summary(self, quantity: str) -> Comparison:
        return Comparison.of(quantity, self.unit, self.recorded, self.twin, self.sigma, self.where, self.unit_scale)


class _DieState:
    """What the transactions have set the die to, and the model's moments for it (cached per state)."""

    def __init__(self, model: MomentModel) -> None:
        chip = model.chip
        self.model = model
        self.codes = [np.zeros(chip.matrix_shape(m), np.int8) for m in range(chip.n_matrices)]
        self.version = 0
        """Counts latch changes: the synapse moments are recomputed only when it moves."""
        self.dac = np.zeros(chip.n_inputs, np.int64)
        self.ext_channel: int | None = None
        self.monitor: tuple[int, int] | None = None
        self._synapses: tuple[int, list] | None = None
        self._somas: tuple[tuple, Moments] | None = None

    def apply(self, op: int, request: bytes, response: Callable[[], bytes]) -> None:
        """Follow one answered request that changes the die's state (others are ignored)."""
        if op == Opcode.RESET:
            self.codes = [np.zeros_like(c) for c in self.codes]
            self.dac[:] = 0
            self.ext_channel, self.monitor, self.version = None, None, self.version + 1
        elif op in (Opcode.WRITE_WEIGHTS, Opcode.READ_WEIGHTS):
            m, first, count, packed = parse_weights_request(request)
            if op == Opcode.READ_WEIGHTS:
                packed = response()
            cols = self.model.chip.matrix_shape(m)[1]
            self.codes[m][first:first + count] = nibbles_to_signed(unpack_rows(packed, count, cols))
            self.version += 1
        elif op == Opcode.SET_INPUTS:
            first, count, values = parse_codes_request(request)
            self.dac[first:first + count] = values
        elif op == Opcode.ROUTE_EXT_IN:
            channel = parse_u16(request)
            self.ext_channel = None if channel == DISCONNECT else channel
        elif op == Opcode.SET_MONITOR:
            layer, neuron = parse_monitor_request(request)
            self.monitor = None if neuron is None else (layer, neuron)

    def somas(self, dac: np.ndarray | None = None, ext_a: float = 0.0, routed: bool = True) -> Moments:
        """The model's soma moments for the latches as they stand and ``dac`` (default: the DAC codes
        set), with ``ext_a`` into EXT_IN where it is routed (``routed=False``: for patterns of a batch)."""
        dac = self.dac if dac is None else dac
        ext_channel = self.ext_channel if routed else None
        key = (self.version, dac.tobytes(), dac.shape, ext_channel, ext_a)
        if self._somas is None or self._somas[0] != key:
            if self._synapses is None or self._synapses[0] != self.version:
                self._synapses = (self.version, self.model.synapses(self.codes))
            self._somas = (key, self.model.somas(self._synapses[1], dac, ext_channel, ext_a))
        return self._somas[1]


class _RowMatcher:
    """Finds the characterisation-file row that stored a session reading (rows are appended in reading
    order; the row must hold the identical value). None outside characterisation."""

    def __init__(self, raw: RawTables) -> None:
        self.raw = raw
        self.kinds = {int(row["config"]): _text(row["kind"]) for row in raw.configs}
        self._cursor = {"mon": 0, "c2f": 0}

    def find(self, table: str, same: Callable[[np.void], bool]) -> int | None:
        rows = getattr(self.raw, table)
        for k in range(self._cursor[table], min(self._cursor[table] + MATCH_LOOKAHEAD, len(rows))):
            if same(rows[k]):
                self._cursor[table] = k + 1
                return k
        return None

    def kind(self, table: str, k: int) -> str:
        return self.kinds.get(int(getattr(self.raw, table)["config"][k]), "?")

    def label(self, table: str, k: int) -> str:
        kind = self.kind(table, k)
        return KIND_LABELS.get(kind, kind)


class _Replay:
    """One walk over a session: the die state, the matched rows, and the groups of comparisons."""

    def __init__(self, session: RecordedSession, params: DieParameters, raw: RawTables,
                 windows: Mapping[int, tuple[float, float]], batch_names: Mapping[int, str]) -> None:
        self.session = session
        self.chip = ChipDescription.from_attrs(session.device_attrs)
        self.model = MomentModel(params)
        self.state = _DieState(self.model)
        self.rows = _RowMatcher(raw)
        self.windows = windows
        self.batch_names = batch_names
        self.groups: dict[str, _Group] = {}
        self.patterns_seen: dict[str, int] = {}

    def group(self, name: str, scale: float, unit: str) -> _Group:
        return self.groups.setdefault(name, _Group(scale, unit))

    def mon_reading(self, i: int) -> None:
        """A MON current the session recorded, against the selected neuron's predicted MON copy."""
        value = float(self.session.readings["value"][i])
        k = self.rows.find("mon", lambda r: r["current_a"] == value)
        if self.state.monitor is None or k is None:
            return  # only characterisation readings say what EXT_IN carried
        if self.rows.kind("mon", k) == "linear_range":
            return  # the model is linear; that run drives somas beyond their onset on purpose
        ext_a = float(self.rows.raw.mon["ext_in_a"][k]) if self.state.ext_channel is not None else 0.0
        layer, neuron = self.state.monitor
        predicted, model_sigma = self.model.mon_a(self.state.somas(ext_a=ext_a), layer, neuron)
        sigma = np.sqrt((READING_NOISE_FRAC * predicted) ** 2 + MON_FLOOR_A ** 2 + model_sigma ** 2)
        self.group(f"MON current, layer {layer}, {self.rows.label('mon', k)}", 1e9, "nA").add(
            value, predicted, sigma, [f"L{layer} n{neuron}"])

    def transaction(self, t: float, i: int) -> None:
        row = self.session.transactions[i]
        if row["status"] != Status.OK:
            return
        op, request = int(row["op"]), self.session.request(i)
        if op == Opcode.MEASURE:
            self.measure(i)
        elif op == Opcode.RUN_BATCH:
            self.run_batch(t, request, i)
        else:
            self.state.apply(op, request, lambda: self.session.response(i))

    def measure(self, i: int) -> None:
        """C2F counts of one gate against the predicted rates (EXT_IN taken as carrying nothing)."""
        measured = parse_measure(self.session.response(i), self.chip.n_outputs)
        k = self.rows.find("c2f", lambda r: np.array_equal(r["counts"], measured.counts))
        if k is None:
            return
        rates, rates_sigma = self.model.rates_hz(self.state.somas())
        expected = rates[0] * measured.actual_gate_s
        sigma = _count_sigma(expected, rates_sigma[0] * measured.actual_gate_s)
        self.group(f"C2F counts, {self.rows.label('c2f', k)}", 1.0, "counts").add(
            measured.counts, expected, sigma, [f"out {k}" for k in range(self.chip.n_outputs)])

    def run_batch(self, t: float, request: bytes, i: int) -> None:
        """Every pattern's C2F counts of a batch against the predicted rates."""
        chip = self.chip
        gate_ms, count, flat = parse_codes_request(request)
        patterns = flat.reshape(count, chip.n_inputs)
        counts = parse_run_batch(self.session.response(i), count, chip.n_outputs)
        rates, rates_sigma = self.model.rates_hz(self.state.somas(patterns, routed=False))
        expected = rates * gate_ms * 1e-3
        step = next((s for s, (a, b) in self.windows.items() if a <= t <= b), None)
        name = self.batch_names.get(step, "?") if step is not None else "?"
        first = self.patterns_seen.get(name, 0)  # test sample index: batches are split to fit the payload
        self.patterns_seen[name] = first + count
        self.group(f"RUN_BATCH counts, {name}", 1.0, "counts").add(
            counts, expected, _count_sigma(expected, rates_sigma * gate_ms * 1e-3),
            [f"sample {first + p} out {k}" for p in range(count) for k in range(chip.n_outputs)])

    def summaries(self) -> list[Comparison]:
        return [g.summary(name) for name, g in self.groups.items() if g.recorded]


def reading_comparisons(session: RecordedSession, params: DieParameters, raw: RawTables,
                        windows: Mapping[int, tuple[float, float]],
                        batch_names: Mapping[int, str]) -> list[Comparison]:
    """Every recorded MON reading, MEASURE and RUN_BATCH answer against the model, grouped by run.

    ``params`` is the measured die, ``raw`` the characterisation file's raw
    tables, ``windows`` the time window of each recipe step, ``batch_names``
    the weights each evaluation step (by index) classified with (RUN_BATCH
    answers are grouped by them).
    """
    replay = _Replay(session, params, raw, windows, batch_names)
    for t, is_reading, i in _events(session):
        if is_reading:
            replay.mon_reading(i)
        else:
            replay.transaction(t, i)
    return replay.summaries()


def _events(session: RecordedSession) -> list[tuple[float, int, int]]:
    """(time, 1 for a MON current reading or 0 for a transaction, index), in time order."""
    events = [(float(t), 0, i) for i, t in enumerate(session.transactions["time_s"])]
    monitor_readings = np.flatnonzero((session.readings["role"] == b"monitor")
                                      & (session.readings["quantity"] == b"current"))
    events += [(float(session.readings["time_s"][i]), 1, int(i)) for i in monitor_readings]
    events.sort()
    return events


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _count_sigma(expected: np.ndarray, model_sigma: np.ndarray) -> np.ndarray:
    """Counting statistics, reading noise and the model's own sigma of an expected C2F count."""
    expected = np.maximum(expected, 0.0)
    return np.sqrt(expected + (READING_NOISE_FRAC * expected) ** 2 + model_sigma ** 2 + 1.0)
