"""TTFS's part of ``labctl replay``: re-train, program and classify on the die's digital twin, compare.

Called through the family seam (``TtfsFamily.replayer``); the generic
orchestration and the report's types are :mod:`labctl.replay`. Every weight
set the recorded run trained is trained again from the recorded
characterisation with the recorded options, and its codes compared (training
is deterministic for a seed). Every evaluation step's recorded weights are then
programmed into the twin (the family simulator's ``start_twin``: a die built
from the recorded characterisation, answering with the recorded serial, its
cells stuck where the recorded programming read them back short) and the
test split classified on it, through the family's own programming and
evaluation. Against what the session recorded in that step:

- the on-chip accuracy, and each test pattern's first-spike class (from the
  recorded APPLY_PATTERNS answers);
- the synapse codes read back (the recorded READ_SYNAPSES answers), cell by
  cell: a read-back is exact, so any difference is a cell the twin does not
  hold as the chip did;
- every output's first-spike time where both fired, in units of the expected
  difference (:mod:`.replay_times`).

Energy is not replayed (``power_patterns = 0`` on the twin): the twin's
supply and idle currents are the simulator's nominal ones, not measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from labctl import families
from labctl.drivers.bridge_protocol import Status
from labctl.families.seam import DeviceFamily, StepContext
from labctl.families.ttfs.die_parameters import TtfsDieParameters
from labctl.families.ttfs.evaluation import first_spike_classes
from labctl.families.ttfs.identify import DieDescription, parse_identify
from labctl.families.ttfs.patterns import (
    NO_SPIKE,
    Timing,
    parse_apply_patterns_answer,
    parse_apply_patterns_request,
    parse_set_timing_request,
)
from labctl.families.ttfs.protocol import Opcode
from labctl.families.ttfs.replay_times import spike_time_sigma_ns
from labctl.families.ttfs.storage import read_parameters
from labctl.families.ttfs.synapse_codes import parse_read_synapses_answer, parse_read_synapses_request
from labctl.families.ttfs.weights import TtfsWeights, read_weights
from labctl.recipes import LoadedRecipe, RecipeStep
from labctl.replay import AccuracyCheck, Comparison, Progress, ReplayReport, WeightsCheck, step_windows
from labctl.session import RecordedSession, extract

TDC_BIN_CENTRE_NS = 0.5
"""A TDC code k reads an edge in [k, k + 1) ns (1.8)."""


@dataclass
class RecordedStep:
    """What one evaluation step's transactions say: the codes read back and the patterns applied."""

    held: list[np.ndarray | None]
    """Per matrix, the codes as last read back in the step (None: never read; programming reads whole matrices)."""
    patterns: list[np.ndarray] = field(default_factory=list)
    """Time codes (P, n_in) of every APPLY_PATTERNS from the input layer, in order (idle batches left out)."""
    tdc: list[np.ndarray] = field(default_factory=list)
    """Their answers: output TDC codes (P, n_out)."""

    def first(self, n: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(time codes, TDC codes) of the step's first ``n`` patterns: the test split (energy batches follow)."""
        if sum(len(p) for p in self.patterns) < n:
            return None
        return np.concatenate(self.patterns)[:n], np.concatenate(self.tdc)[:n]


def replay(session: RecordedSession, loaded: LoadedRecipe, work: Path, tick: Progress) -> ReplayReport:
    """Re-train, program and classify on the twin, and compare a recorded TTFS session (module docstring)."""
    family = loaded.family
    assert family is not None  # replay_session binds the recipe to the session's family
    die = extract(session.path, "characterisation", work / "die.h5")
    params = read_parameters(die)
    paths = {name: extract(session.path, f"weights/{name}", work / f"recorded_{name}.h5")
             for name in session.weights_names}
    recorded = {name: read_weights(path) for name, path in paths.items()}
    report = ReplayReport(session.path, str(session.device_attrs["serial"]), loaded.name,
                          sigma_note="codes: one code; spike times: the fits' standard errors, the unmeasured "
                                     "lambda spread, write residuals, reset and comparator noise, edge jitter and "
                                     "the TDC bin, through the model")
    report.weights = _retrain(family, loaded, die, work, recorded, tick)
    windows, chip = step_windows(session), _chip(session)
    evaluations = [(i, s) for i, s in enumerate(loaded.steps)
                   if s.kind == "evaluate" and s.weights in recorded and i in windows]
    steps = {i: recorded_step(session, windows[i], chip) for i, _ in evaluations}
    stuck = sorted({cell for i, s in evaluations for cell in stuck_cells(steps[i].held, recorded[s.weights].codes)})
    simulator = families.simulator_of(family)  # the twin, through the seam
    with simulator.start_twin(die, served=False, stuck_cells=stuck) as sim:
        bench = sim.write_bench_file(work / "twin_bench.toml")
        for i, step in evaluations:
            check, comparisons = _evaluate_on_twin(family, session, step, paths[step.weights],
                                                   recorded[step.weights], steps[i], bench, params, tick)
            report.accuracy.append(check)
            report.readings += comparisons
    return report


def _retrain(family: DeviceFamily, loaded: LoadedRecipe, die: Path, work: Path, recorded: dict[str, TtfsWeights],
             tick: Progress) -> list[WeightsCheck]:
    """Train every recorded weight set again, through the family, from the recorded characterisation; compare
    the codes (the bias time codes count as codes: they are programmed too)."""
    checks = []
    for name, step in loaded.train_steps().items():
        if name not in recorded:
            continue  # the recorded run stopped before this training
        again = family.train(die, work / f"weights_{name}.h5", step.options, StepContext(progress=tick)).weights
        before = recorded[name]
        pairs = [*zip(again.codes, before.codes), (again.bias_time_codes, before.bias_time_codes)]
        differing = sum(int(np.sum(a != b)) for a, b in pairs)
        checks.append(WeightsCheck(name, differing == 0, differing, sum(b.size for _, b in pairs)))
    return checks


def _evaluate_on_twin(family: DeviceFamily, session: RecordedSession, step: RecipeStep, weights_path: Path,
                      weights: TtfsWeights, recorded: RecordedStep, bench: Path, params: TtfsDieParameters,
                      tick: Progress) -> tuple[AccuracyCheck, list[Comparison]]:
    """Program and classify on the twin as the step did on the chip (energy left out); compare."""
    options = step.options.model_copy(update={"power_patterns": 0})
    outcome = family.program(weights_path, options, StepContext(bench, progress=tick), evaluate=True)
    program, evaluation = outcome.result
    result = session.results.get(f"evaluation_{step.weights}", {})
    n = len(evaluation.labels)
    test = recorded.first(n)
    agreement = None if test is None else float(np.mean(first_spike_classes(test[1]) == evaluation.predictions))
    check = AccuracyCheck(step.weights, n, result.get("on_chip_accuracy"), evaluation.accuracy, agreement,
                          result.get("stuck_cells"), len(program.stuck))
    comparisons = [codes_comparison(step.weights, recorded.held, program.held_codes)]
    if test is not None:
        sigma = spike_time_sigma_ns(params, list(program.held_codes), weights.bias_time_codes, test[0])
        comparisons.append(spike_time_comparison(step.weights, test[1], evaluation.output_tdc, sigma))
    return check, [c for c in comparisons if c is not None]


def codes_comparison(name: str, recorded: list[np.ndarray | None], twin: tuple[np.ndarray, ...]) -> Comparison | None:
    """The codes the chip read back against the twin's, cell by cell (one code: the smallest difference)."""
    cells = [(m, r, c) for m, held in enumerate(recorded) if held is not None for r, c in np.ndindex(held.shape)]
    if not cells:
        return None
    chip_codes = [recorded[m][r, c] for m, r, c in cells]
    twin_codes = [twin[m][r, c] for m, r, c in cells]
    return Comparison.of(f"synapse codes read back, {name}", "code", chip_codes, twin_codes, np.ones(len(cells)),
                         [f"m{m}[{r},{c}]" for m, r, c in cells])


def spike_time_comparison(name: str, recorded_tdc: np.ndarray, twin_tdc: np.ndarray,
                          sigma_ns: np.ndarray) -> Comparison | None:
    """Output first-spike times (TDC bin centres) where the chip, the twin and the model all have a spike."""
    both = (recorded_tdc != NO_SPIKE) & (twin_tdc != NO_SPIKE) & np.isfinite(sigma_ns)
    if not both.any():
        return None
    where = [f"sample {p} out {k}" for p, k in zip(*np.nonzero(both))]
    return Comparison.of(f"first-spike times, {name}", "ns", recorded_tdc[both] + TDC_BIN_CENTRE_NS,
                         twin_tdc[both] + TDC_BIN_CENTRE_NS, sigma_ns[both], where)


def stuck_cells(held: list[np.ndarray | None], wanted: tuple[np.ndarray, ...]) -> list[tuple[int, int, int, int]]:
    """(matrix, row, column, magnitude held) of every cell that read back another code than was written."""
    return [(m, int(r), int(c), int(abs(codes[r, c])))
            for m, codes in enumerate(held) if codes is not None
            for r, c in np.argwhere(codes != np.asarray(wanted[m]))]


# -- what the session recorded ------------------------------------------------------------


def _chip(session: RecordedSession) -> DieDescription:
    """The die as its first answered IDENTIFY described it (with its maximum payload, for the parsers)."""
    t = session.transactions
    first = np.flatnonzero((t["op"] == Opcode.IDENTIFY) & (t["status"] == Status.OK))[0]
    return parse_identify(session.response(int(first)))


def recorded_step(session: RecordedSession, window: tuple[float, float], chip: DieDescription) -> RecordedStep:
    """Walk one step's answered transactions: the codes read back, the input patterns applied and their answers."""
    t = session.transactions
    step = RecordedStep([None] * chip.n_matrices)
    timing = Timing()
    for i in np.flatnonzero((t["status"] == Status.OK) & (t["time_s"] >= window[0]) & (t["time_s"] <= window[1])):
        op, request = int(t["op"][i]), session.request(int(i))
        if op == Opcode.SET_TIMING:
            timing = parse_set_timing_request(request)
        elif op == Opcode.READ_SYNAPSES:
            m, first, count = parse_read_synapses_request(request, chip)
            if step.held[m] is None:
                step.held[m] = np.zeros(chip.matrix_shape(m), np.int8)
            step.held[m][first:first + count] = parse_read_synapses_answer(session.response(int(i)), count,
                                                                           chip.matrix_shape(m)[1])
        elif op == Opcode.APPLY_PATTERNS:
            batch = parse_apply_patterns_request(request, chip, timing)
            if batch.entry == 0 and not batch.idle and batch.readout == chip.n_layers - 1:
                step.patterns.append(batch.codes)
                step.tdc.append(parse_apply_patterns_answer(session.response(int(i)), len(batch.codes),
                                                            chip.layer_sizes[-1]))
    return step
