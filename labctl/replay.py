"""Replay a recorded session offline against the die's digital twin (issue 7).

``labctl replay RUN_FOLDER`` takes the ``session.h5`` of a run and, without a
bench:

1. re-trains every weight set of the recipe from the recorded
   characterisation with the recorded parameters, and checks that the codes
   are the recorded ones (training is deterministic for a seed);
2. programs and evaluates them on the twin (:mod:`labctl.families.cmna.sim.twin`: a
   simulated die built from the recorded characterisation, answering with the
   recorded serial), and compares the on-chip accuracy and every test
   sample's decision with the recorded ones;
3. walks the recorded bridge transactions and SMU readings in time order,
   keeping track of what the die was set to (latches as read back, DAC codes,
   EXT_IN routing, MON selection), and compares every recorded MON reading,
   MEASURE and RUN_BATCH answer with what the measured model predicts for that
   state: the table says where the chip and its twin differ, in units of the
   expected difference (reading noise, C2F counting statistics, and the
   model's own uncertainty: the fit error of the neuron's gain and the synapse
   mismatch that no per-neuron characterisation sees, contract section 1).
"""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from labctl.families.cmna.die_parameters import NOMINAL_W_LSB, DieParameters
from labctl.drivers.bridge_protocol import (
    DISCONNECT,
    Opcode,
    Status,
    parse_codes_request,
    parse_measure,
    parse_monitor_request,
    parse_run_batch,
    parse_u16,
    parse_weights_request,
)
from labctl.families.cmna.storage import load_die_parameters, load_weights, read_raw
from labctl.families.cmna.latch_codes import nibbles_to_signed, unpack_rows
from labctl.recipes import EvaluateStep, Stopped, parse_recipe
from labctl.session import RecordedSession, extract, load_session
from labctl.families.cmna.sim.twin import NOMINAL_LEAK_A, NOMINAL_SYNAPSE_SPREAD, absolute_gains, twin_bench
from labctl.families.cmna.workflow import program_and_evaluate, run_training

Progress = Callable[[str, int, int], None]

READING_NOISE_FRAC = 0.01
"""Relative noise of one reading: the contract's worst case (0.2 to 1 %, section 1)."""
MON_FLOOR_A = 20e-12
"""Absolute floor of a MON comparison: the soma leakage the model knows only nominally (10 to 50 pA)."""
MATCH_LOOKAHEAD = 8
"""How far ahead in the characterisation file's rows a session reading's twin is looked for."""
KIND_LABELS = {"dark": "dark", "reference": "drift reference", "ext_sweep": "EXT_IN sweep",
               "bias_sweep": "bias sweep", "chain": "chains", "chain_negative": "negative chains"}


@dataclass
class WeightsCheck:
    name: str
    same_codes: bool
    differing_codes: int
    total_codes: int


@dataclass
class AccuracyCheck:
    name: str
    n_samples: int
    recorded: float | None
    twin: float
    agreement: float | None
    """Fraction of test samples the twin classified as the chip did."""
    recorded_stuck_bits: int | None
    twin_stuck_bits: int


@dataclass
class Comparison:
    """One group of recorded readings against the twin's predictions."""

    quantity: str
    unit: str
    n: int
    recorded: float
    twin: float
    rms_relative: float
    rms_sigma: float
    worst_sigma: float
    worst_at: str


@dataclass
class ReplayReport:
    session: Path
    serial: str
    recipe: str
    weights: list[WeightsCheck] = field(default_factory=list)
    accuracy: list[AccuracyCheck] = field(default_factory=list)
    readings: list[Comparison] = field(default_factory=list)

    @property
    def reproduced(self) -> bool:
        return all(w.same_codes for w in self.weights)


def replay_session(path: str | Path, *, work_dir: str | Path | None = None, progress: Progress | None = None,
                   stop_event: threading.Event | None = None) -> ReplayReport:
    """Replay a session (run folder or ``session.h5``) against the twin; nothing touches a bench."""
    session = load_session(path)
    loaded = parse_recipe(session.recipe_text, source=session.path)
    report = ReplayReport(session.path, session.chip.serial, loaded.name)

    def tick(stage: str, done: int, total: int) -> None:
        if stop_event is not None and stop_event.is_set():
            raise Stopped("replay stopped by the user")
        if progress:
            progress(stage, done, total)

    with tempfile.TemporaryDirectory(prefix="labctl-replay-") as tmp:
        work = Path(work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        die = extract(session.path, "characterisation", work / "die.h5")
        params = load_die_parameters(die)
        recorded = {name: load_weights(extract(session.path, f"weights/{name}", work / f"recorded_{name}.h5"))
                    for name in session.weights_names}
        for name, step in loaded.recipe.train_steps().items():
            if name not in recorded:
                continue  # the recorded run stopped before this training
            weights, _ = run_training(
                die, step.dataset, work / f"weights_{name}.h5", naive=step.naive,
                hidden=tuple(step.hidden) if step.hidden else None, epochs=step.epochs, seed=step.seed,
                progress=lambda e, n, loss, acc, name=name: tick(f"re-training {name}", e, n))
            differing = sum(int(np.sum(a != b)) for a, b in zip(weights.codes, recorded[name].codes))
            report.weights.append(WeightsCheck(name, differing == 0, differing,
                                               sum(c.size for c in weights.codes)))
        windows = _step_windows(session)
        evaluations = [(i, s) for i, s in enumerate(loaded.recipe.steps)
                       if isinstance(s, EvaluateStep) and s.weights in recorded]
        with twin_bench(die, stuck_bits=_recorded_stuck_bits(session)) as sim:
            bench_file = sim.write_bench_file(work / "twin_bench.toml")
            for index, step in evaluations:
                # the weights the die ended up holding (after stuck-bit and in-situ retraining, if any)
                final = next(n for n in (f"{step.weights}-programmed", step.weights) if n in recorded)
                weights = recorded[final]
                twin = program_and_evaluate(bench_file, work / f"recorded_{final}.h5", evaluate=True,
                                            gate_ms=step.gate_ms, progress=tick)
                chip_decisions = _recorded_decisions(session, windows.get(index), weights, twin.evaluation.n_samples)
                result = session.results.get(f"evaluation_{step.weights}", {})
                ev = twin.evaluation
                agreement = (float(np.mean(chip_decisions == ev.predictions))
                             if chip_decisions is not None and len(chip_decisions) == len(ev.predictions) else None)
                report.accuracy.append(AccuracyCheck(
                    step.weights, ev.n_samples, result.get("on_chip_accuracy"), ev.on_chip_accuracy, agreement,
                    len(result["stuck_bits"]) if "stuck_bits" in result else None, len(twin.program.stuck)))
        report.readings = compare_readings(session, params, read_raw(die), windows, loaded)
    return report


# -- what the session recorded ------------------------------------------------------------


def _step_windows(session: RecordedSession) -> dict[int, tuple[float, float]]:
    """Step index -> (start, end) time of its run."""
    return {s["index"]: (s["start_s"], s["end_s"] if np.isfinite(s["end_s"]) else np.inf) for s in session.steps}


def _recorded_stuck_bits(session: RecordedSession) -> list[tuple[int, int, int, int, int]]:
    """Stuck latch bits that the recorded programming found (they become the twin's)."""
    return sorted({(b["matrix"], b["row"], b["column"], b["bit"], b["held"])
                   for result in session.results.values() for b in result.get("stuck_bits", [])})


def _batches(session: RecordedSession, window: tuple[float, float]):
    """(gate_ms, counts) of every answered RUN_BATCH inside a time window, in order."""
    n_out = session.chip.n_outputs
    t = session.transactions
    for i in np.flatnonzero((t["op"] == Opcode.RUN_BATCH) & (t["status"] == Status.OK)):
        if window[0] <= t["time_s"][i] <= window[1]:
            gate_ms, count, _ = parse_codes_request(session.request(i))
            yield gate_ms, parse_run_batch(session.response(i), count, n_out)


def _recorded_decisions(session: RecordedSession, window: tuple[float, float] | None, weights,
                        n_test: int) -> np.ndarray | None:
    """The class the chip chose for each test sample, from the recorded RUN_BATCH answers of one step.

    The test split is the step's last ``n_test`` patterns (in-situ rounds classify the training split first).
    """
    if window is None:
        return None
    rates = [counts / (gate_ms * 1e-3) for gate_ms, counts in _batches(session, window)]
    return weights.encoding.classify(np.concatenate(rates)[-n_test:]) if rates else None


# -- readings against the model -------------------------------------------------------------


class _Model:
    """The twin's prediction: the measured die's mean model, with its variance, for one die state.

    Mean: the physics of contract section 1 with the measured absolute gains
    (as the twin and the trainer use them). Variance, propagated layer by
    layer to first order: every synapse's mirror mismatch (the measured
    per-bit spread, bits weighted 1, 2, 4) and every neuron's gain-fit error.
    """

    def __init__(self, params: DieParameters) -> None:
        self.params = params
        self.chip = params.chip
        gains = [absolute_gains(layer) for layer in params.layers]
        self.a_plus = [g[0] for g in gains]
        self.a_minus = [g[1] for g in gains]
        self.rel_error = [np.nan_to_num(np.abs(layer.a_plus_std / layer.a_plus)) for layer in params.layers]
        spread = params.synapse_spread if np.isfinite(params.synapse_spread) else NOMINAL_SYNAPSE_SPREAD
        magnitudes = np.arange(8)
        bits = (magnitudes[:, None] >> np.arange(3)) & 1
        self._bit_var = spread ** 2 * (bits * 4.0 ** np.arange(3)).sum(axis=1)
        """Variance of a magnitude code's mirror sum, per code 0..7, in units of w_lsb squared."""
        self._leak = [NOMINAL_LEAK_A if 0 < l < self.chip.n_layers - 1 else 0.0 for l in range(self.chip.n_layers)]
        self._matrices: tuple[int, list[tuple[np.ndarray, np.ndarray]]] | None = None
        self._cache: tuple | None = None

    def _synapses(self, codes: list[np.ndarray], version: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(mean, variance) of every synapse's transfer, per matrix, for the latch codes."""
        if self._matrices is None or self._matrices[0] != version:
            out = []
            for m, q in enumerate(codes):
                q = np.asarray(q, np.int64)
                a = np.where(q < 0, self.a_minus[m][:, None], self.a_plus[m][:, None]) * NOMINAL_W_LSB
                rel = self.rel_error[m][:, None]
                mean = a * q
                var = a ** 2 * (self._bit_var[np.abs(q)] + (rel * q) ** 2)
                out.append((mean, var))
            self._matrices = (version, out)
        return self._matrices[1]

    def somas(self, codes: list[np.ndarray], version: int, dac: np.ndarray, ext_channel: int | None = None,
              ext_a: float = 0.0) -> list[tuple[np.ndarray, np.ndarray]]:
        """(mean, variance) of every soma's rectified input per layer, for DAC codes (P, n0) or (n0,)."""
        key = (version, dac.tobytes(), dac.shape, ext_channel, ext_a)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        p = self.params
        r = p.bias_gain * np.atleast_2d(dac).astype(np.float64) * self.chip.dac_lsb_a + p.bias_offset_a
        if ext_channel is not None:
            r[:, ext_channel] += ext_a
        z, var = np.maximum(r, 0.0), np.zeros_like(r)
        out = [(z, var)]
        for m, (mean, v) in enumerate(self._synapses(codes, version)):
            r = z @ mean
            var = (z ** 2) @ v + var @ mean ** 2  # kept through the rectifier: near 0 a soma may be on or off
            z = np.maximum(r, 0.0) + self._leak[m + 1]
            out.append((z, var))
        self._cache = (key, out)
        return out

    def mon_a(self, somas, layer: int, neuron: int) -> tuple[float, float]:
        """MON copy a+ * z of one neuron and its model sigma (A)."""
        z, var = somas[layer]
        a, rel = self.a_plus[layer][neuron], self.rel_error[layer][neuron]
        mean = float(a * z[0, neuron])
        return mean, float(np.sqrt(a ** 2 * var[0, neuron] + (rel * mean) ** 2))

    def rates_hz(self, somas) -> tuple[np.ndarray, np.ndarray]:
        """C2F rates (P, n_out) and their model sigma: C2F gain x a+ x z + dark (contract section 4)."""
        z, var = somas[-1]
        gain = self.params.c2f_gain_hz_per_a * self.a_plus[-1]
        signal = gain * z
        return signal + self.params.c2f_dark_hz, np.sqrt(gain ** 2 * var + (self.rel_error[-1] * signal) ** 2)


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
        rec, twin, sig = (np.asarray(v, float) for v in (self.recorded, self.twin, self.sigma))
        z = (rec - twin) / sig
        worst = int(np.argmax(np.abs(z)))
        rms_relative = np.sqrt(np.mean((rec - twin) ** 2) / max(np.mean(twin ** 2), 1e-300))
        return Comparison(quantity, self.unit, len(rec), float(rec.mean() * self.unit_scale),
                          float(twin.mean() * self.unit_scale), float(rms_relative),
                          float(np.sqrt(np.mean(z ** 2))), float(z[worst]), self.where[worst])


def compare_readings(session: RecordedSession, params: DieParameters, raw: dict[str, np.ndarray],
                     windows: dict[int, tuple[float, float]], loaded) -> list[Comparison]:
    """Every recorded MON reading, MEASURE and RUN_BATCH answer against the model, grouped by run."""
    chip = session.chip
    model = _Model(params)
    kinds = {int(row["config"]): _text(row["kind"]) for row in raw["configs"]}
    mon_rows, c2f_rows = raw["mon"], raw["c2f"]
    batch_names = {index: loaded.recipe.steps[index].weights for index in windows
                   if index < len(loaded.recipe.steps) and isinstance(loaded.recipe.steps[index], EvaluateStep)}
    groups: dict[str, _Group] = {}
    patterns_seen: dict[str, int] = {}

    def group(name: str, scale: float, unit: str) -> _Group:
        return groups.setdefault(name, _Group(scale, unit))

    cursor = {"mon": 0, "c2f": 0}

    def matched(table: str, same: Callable[[np.ndarray], bool]) -> int | None:
        """The characterisation-file row that stored this reading (rows are appended in reading order;
        the row must hold the identical value). None outside characterisation."""
        rows = raw[table]
        for k in range(cursor[table], min(cursor[table] + MATCH_LOOKAHEAD, len(rows))):
            if same(rows[k]):
                cursor[table] = k + 1
                return k
        return None

    def label(rows: np.ndarray, k: int) -> str:
        kind = kinds.get(int(rows["config"][k]), "?")
        return KIND_LABELS.get(kind, kind)

    def step_at(t: float) -> int | None:
        return next((i for i, (a, b) in windows.items() if a <= t <= b), None)

    # state of the die as the transactions set it
    codes = [np.zeros(chip.matrix_shape(m), np.int8) for m in range(chip.n_matrices)]
    version = 0
    dac = np.zeros(chip.n_inputs, np.int64)
    ext_channel: int | None = None
    monitor: tuple[int, int] | None = None
    events = [(float(t), 0, i) for i, t in enumerate(session.transactions["time_s"])]
    monitor_readings = np.flatnonzero((session.readings["role"] == b"monitor")
                                      & (session.readings["quantity"] == b"current"))
    events += [(float(session.readings["time_s"][i]), 1, int(i)) for i in monitor_readings]
    events.sort()
    for t, is_reading, i in events:
        if is_reading:
            value = float(session.readings["value"][i])
            k = matched("mon", lambda r: r["current_a"] == value)
            if monitor is None or k is None:
                continue  # only characterisation readings say what EXT_IN carried
            if kinds.get(int(mon_rows["config"][k])) == "linear_range":
                continue  # the model is linear; that run drives somas beyond their onset on purpose
            ext_a = float(mon_rows["ext_in_a"][k]) if ext_channel is not None else 0.0
            layer, neuron = monitor
            predicted, model_sigma = model.mon_a(model.somas(codes, version, dac, ext_channel, ext_a), layer, neuron)
            sigma = np.sqrt((READING_NOISE_FRAC * predicted) ** 2 + MON_FLOOR_A ** 2 + model_sigma ** 2)
            group(f"MON current, layer {layer}, {label(mon_rows, k)}", 1e9, "nA").add(
                value, predicted, sigma, [f"L{layer} n{neuron}"])
            continue
        row = session.transactions[i]
        if row["status"] != Status.OK:
            continue
        op, request = int(row["op"]), session.request(i)
        if op == Opcode.RESET:
            codes = [np.zeros_like(c) for c in codes]
            dac[:] = 0
            ext_channel, monitor, version = None, None, version + 1
        elif op in (Opcode.WRITE_WEIGHTS, Opcode.READ_WEIGHTS):
            m, first, count, packed = parse_weights_request(request)
            if op == Opcode.READ_WEIGHTS:
                packed = session.response(i)
            cols = chip.matrix_shape(m)[1]
            codes[m][first:first + count] = nibbles_to_signed(unpack_rows(packed, count, cols))
            version += 1
        elif op == Opcode.SET_INPUTS:
            first, count, values = parse_codes_request(request)
            dac[first:first + count] = values
        elif op == Opcode.ROUTE_EXT_IN:
            channel = parse_u16(request)
            ext_channel = None if channel == DISCONNECT else channel
        elif op == Opcode.SET_MONITOR:
            layer, neuron = parse_monitor_request(request)
            monitor = None if neuron is None else (layer, neuron)
        elif op == Opcode.MEASURE:
            measured = parse_measure(session.response(i), chip.n_outputs)
            k = matched("c2f", lambda r: np.array_equal(r["counts"], measured.counts))
            if k is None:
                continue
            rates, rates_sigma = model.rates_hz(model.somas(codes, version, dac, ext_channel))
            expected = rates[0] * measured.actual_gate_s
            sigma = _count_sigma(expected, rates_sigma[0] * measured.actual_gate_s)
            group(f"C2F counts, {label(c2f_rows, k)}", 1.0, "counts").add(
                measured.counts, expected, sigma, [f"out {k}" for k in range(chip.n_outputs)])
        elif op == Opcode.RUN_BATCH:
            gate_ms, count, flat = parse_codes_request(request)
            patterns = flat.reshape(count, chip.n_inputs)
            counts = parse_run_batch(session.response(i), count, chip.n_outputs)
            rates, rates_sigma = model.rates_hz(model.somas(codes, version, patterns))
            expected = rates * gate_ms * 1e-3
            step = step_at(t)
            name = batch_names.get(step, "?") if step is not None else "?"
            first = patterns_seen.get(name, 0)  # test sample index: batches are split to fit the payload
            patterns_seen[name] = first + count
            group(f"RUN_BATCH counts, {name}", 1.0, "counts").add(
                counts, expected, _count_sigma(expected, rates_sigma * gate_ms * 1e-3),
                [f"sample {first + p} out {k}" for p in range(count) for k in range(chip.n_outputs)])
    return [g.summary(name) for name, g in groups.items() if g.recorded]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _count_sigma(expected: np.ndarray, model_sigma: np.ndarray) -> np.ndarray:
    """Counting statistics, reading noise and the model's own sigma of an expected C2F count."""
    expected = np.maximum(expected, 0.0)
    return np.sqrt(expected + (READING_NOISE_FRAC * expected) ** 2 + model_sigma ** 2 + 1.0)
