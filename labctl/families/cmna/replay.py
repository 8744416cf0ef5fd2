"""CMNA's part of ``labctl replay``: re-train, evaluate on the die's digital twin, compare every reading.

Called through the family seam (``CmnaFamily.replayer``); the generic
orchestration and the report types are :mod:`labctl.replay`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labctl import families
from labctl.drivers.bridge_protocol import Status
from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.die_parameters import DieParameters
from labctl.families.cmna.programming import StuckBit
from labctl.families.cmna.protocol import Opcode, parse_codes_request, parse_run_batch
from labctl.families.cmna.replay_readings import reading_comparisons
from labctl.families.cmna.storage import RawTables, load_die_parameters, load_weights, read_raw
from labctl.families.cmna.workflow import program_and_evaluate, run_training
from labctl.recipes import LoadedRecipe, RecipeStep
from labctl.replay import AccuracyCheck, Comparison, Progress, ReplayReport, WeightsCheck, step_windows
from labctl.session import RecordedSession, extract


def chip_of(session: RecordedSession) -> ChipDescription:
    """The die as IDENTIFY reported it to the recorded session."""
    return ChipDescription.from_attrs(session.device_attrs)


def replay(session: RecordedSession, loaded: LoadedRecipe, work: Path, tick: Progress) -> ReplayReport:
    """Re-train, evaluate on the twin and compare the readings of a recorded CMNA session."""
    report = ReplayReport(session.path, chip_of(session).serial, loaded.name,
                          sigma_note="reading noise, C2F counting statistics and the twin's own uncertainty (fit "
                                     "errors, synapse mismatch)")
    die = extract(session.path, "characterisation", work / "die.h5")
    params = load_die_parameters(die)
    recorded = {name: load_weights(extract(session.path, f"weights/{name}", work / f"recorded_{name}.h5"))
                for name in session.weights_names}
    report.weights = _retrain(loaded, die, work, recorded, tick)
    windows = step_windows(session)
    evaluations = [(i, s) for i, s in _evaluate_steps(loaded) if s.weights in recorded]
    simulator = families.simulator_of(families.named(session.family))  # the twin, through the seam
    with simulator.start_twin(die, served=False, stuck_bits=_recorded_stuck_bits(session)) as sim:
        bench_file = sim.write_bench_file(work / "twin_bench.toml")
        report.accuracy = [_evaluate_on_twin(session, index, step, recorded, bench_file, work, windows, tick)
                           for index, step in evaluations]
    report.readings = compare_readings(session, params, read_raw(die), windows, loaded)
    return report


def _evaluate_on_twin(session: RecordedSession, index: int, step: RecipeStep, recorded: dict, bench_file: Path,
                      work: Path, windows: dict, tick: Progress) -> AccuracyCheck:
    """Program the weights the die ended up holding (after stuck-bit and in-situ retraining, if any) into
    the twin, classify the test split, and compare with the chip's recorded decisions."""
    final = next(n for n in (f"{step.weights}-programmed", step.weights) if n in recorded)
    twin = program_and_evaluate(bench_file, work / f"recorded_{final}.h5", evaluate=True,
                                gate_ms=step.options.gate_ms, progress=tick)
    ev = twin.evaluation
    chip_decisions = _recorded_decisions(session, windows.get(index), recorded[final], ev.n_samples)
    result = session.results.get(f"evaluation_{step.weights}", {})
    agreement = (float(np.mean(chip_decisions == ev.predictions))
                 if chip_decisions is not None and len(chip_decisions) == len(ev.predictions) else None)
    return AccuracyCheck(step.weights, ev.n_samples, result.get("on_chip_accuracy"), ev.on_chip_accuracy, agreement,
                         len(result["stuck_bits"]) if "stuck_bits" in result else None, len(twin.program.stuck))


def compare_readings(session: RecordedSession, params: DieParameters, raw: RawTables,
                     windows: dict[int, tuple[float, float]], loaded) -> list[Comparison]:
    """Every recorded reading against the model of the die ``params`` describes, grouped by run (the
    family's comparison; ``loaded`` names the weights each evaluation step classified with)."""
    names = {index: step.weights for index, step in _evaluate_steps(loaded) if index in windows}
    return reading_comparisons(session, params, raw, windows, names)


def _evaluate_steps(loaded: LoadedRecipe) -> list[tuple[int, RecipeStep]]:
    """(index, step) of every evaluation step of a recipe."""
    return [(i, s) for i, s in enumerate(loaded.steps) if s.kind == "evaluate"]


def _retrain(loaded, die: Path, work: Path, recorded: dict, tick: Progress) -> list[WeightsCheck]:
    """Train every recorded weight set again from the recorded characterisation; compare the codes."""
    checks = []
    for name, step in loaded.train_steps().items():
        if name not in recorded:
            continue  # the recorded run stopped before this training
        o = step.options
        weights, _ = run_training(
            die, o.dataset, work / f"weights_{name}.h5", naive=o.naive, method=o.method,
            hidden=tuple(o.hidden) if o.hidden else None, epochs=o.epochs, seed=o.seed, label_column=o.label_column,
            progress=lambda e, n, loss, acc, name=name: tick(f"re-training {name}", e, n))
        differing = sum(int(np.sum(a != b)) for a, b in zip(weights.codes, recorded[name].codes))
        checks.append(WeightsCheck(name, differing == 0, differing, sum(c.size for c in weights.codes)))
    return checks


# -- what the session recorded ------------------------------------------------------------


def _recorded_stuck_bits(session: RecordedSession) -> list[StuckBit]:
    """Stuck latch bits that the recorded programming found (they become the twin's), from the run's
    evaluation and programming records."""
    return sorted({StuckBit(int(b["matrix"]), int(b["row"]), int(b["column"]), int(b["bit"]), int(b["held"]))
                   for result in session.results.values() for b in result.get("stuck_bits", [])})


def _batches(session: RecordedSession, window: tuple[float, float]):
    """(gate_ms, counts) of every answered RUN_BATCH inside a time window, in order."""
    n_out = chip_of(session).n_outputs
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
