"""The lab workflow steps as functions the CLI, the demo, recipes and the GUI share.

Each step takes paths and options, does one stage of the pipeline
(bench -> measurements -> fits -> model -> weights -> latches) and returns
what it produced; none prints. Keeping them here means the command line and
the GUI cannot drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Collection

from labctl.families.cmna.bench import Bench
from labctl.drivers.bridge_protocol import BridgeStatus
from labctl.families.cmna.chip import ChipDescription
from labctl.families.cmna.options import TRAINING_METHODS
from labctl.families.cmna.ratings import DEFAULT_GATE_MS
from labctl import files
from labctl.families.cmna.characterisation.characterise import Targets, characterise, check_gate, check_output
from labctl.families.cmna.characterisation.check import CheckResult, check_characterisation
from labctl.families.cmna.characterisation.probing import ProbeSettings
from labctl.errors import ConfigError, DataFileError
from labctl.families.cmna.evaluation import EvaluationResult, evaluate_on_chip
from labctl.families.cmna.power import DEFAULT_PRESENTATION_RATE_HZ, PowerMeasurement, measure_power
from labctl.families.cmna.storage import describe, file_sha256, load_die_parameters, load_weights, save_weights
from labctl.families.cmna.programming import ProgramReport, check_weights_for_die, program_weights
from labctl.families.cmna.weights import WeightSet

if TYPE_CHECKING:
    from labctl.families.cmna.stuck_bits import StuckBitResult

Progress = Callable[[str, int, int], None]


def run_characterisation(bench_file: Path, out: Path, *, method: str = "both", n_configs: int | None = None,
                         settings: ProbeSettings | None = None, setting_overrides: dict | None = None,
                         targets: Targets | None = None,
                         resume: bool = False, force: bool = False, given: Collection[str] | None = None,
                         progress: Progress | None = None,
                         announce: Callable[[str], None] | None = None, bench_options: dict | None = None):
    """``bench_options`` go to :class:`Bench` (e.g. ``transcript``/``on_reading`` for a session record).

    An existing ``out`` is refused before the bench is opened unless ``force``
    (:func:`~labctl.families.cmna.characterisation.characterise.check_output`);
    ``given`` names the options the user set (a resume says which stored ones it keeps).
    """
    check_output(out, resume=resume, force=force)
    with Bench.from_file(bench_file, **(bench_options or {})) as bench:
        return characterise(bench, out, method=method, settings=settings, setting_overrides=setting_overrides,
                            n_configs=n_configs, targets=targets, resume=resume, force=force, given=given,
                            progress=progress, announce=announce)


def run_check(bench_file: Path, calibration: Path) -> CheckResult:
    with Bench.from_file(bench_file) as bench:
        return check_characterisation(bench, calibration)


def run_training(calibration: Path, dataset_name: str, out: Path, *, naive: bool = False,
                 method: str = "auto", hidden: tuple[int, ...] | None = None, epochs: int | None = None,
                 seed: int = 0, label_column: str | None = None, cache_dir: Path | None = None,
                 progress: Callable | None = None, announce: Callable[[str], None] | None = None,
                 force: bool = False, power_weight: float = 0.0, power_budget_w: float | None = None):
    """Train weights for the characterised die in ``calibration`` and save them to ``out``.

    With ``method="finetune"`` the naive weights are the pre-training's
    reference network (what a lab without characterisation would program),
    and the tailored ones that network's population version fine-tuned for
    this die; with ``"scratch"`` both are trained from random weights.
    ``progress(epoch, epochs, loss, accuracy)`` follows the epochs; ``announce``
    gets a sentence before a pre-training that is not in the cache yet.
    An existing ``out`` is refused at once unless ``force``.

    ``power_weight`` (alpha) or ``power_budget_w`` make it power-aware: the
    power-blind tailored weights are trained first, then fine-tuned under
    their own input encoding with the power term (:mod:`power_aware`).
    """
    from labctl.train.datasets import load_dataset
    from labctl.families.cmna.training.network_map import map_network
    from labctl.families.cmna.training.trainer import SMALL_NETWORK_SYNAPSES, finetune, train_weights

    if method not in TRAINING_METHODS:
        raise ConfigError(f"unknown training method {method!r}: use one of {', '.join(TRAINING_METHODS)}")
    files.refuse_existing(out, force=force, what=describe(out))
    params = load_die_parameters(calibration)
    dataset = load_dataset(dataset_name, seed=seed, label_column=label_column)
    sizes = map_network(params.chip, dataset.n_features, dataset.n_classes, hidden).layer_sizes_used  # refused now
    if method == "auto":
        synapses = sum(a * b for a, b in zip(sizes, sizes[1:]))
        method = "scratch" if synapses <= SMALL_NETWORK_SYNAPSES else "finetune"
    if method == "scratch":
        weights, report = train_weights(params, dataset, hidden=hidden, seed=seed, epochs=epochs, naive=naive,
                                        progress=progress)
    else:
        from labctl.families.cmna.training.population import cached_pretraining, pretrain_population

        if announce and cached_pretraining(params.chip, dataset, hidden=hidden, cache_dir=cache_dir) is None:
            announce(f"pre-training for the {params.chip.part} population on {dataset.name} "
                     "(once per part and data set; cached)")
        pretrained = pretrain_population(params.chip, dataset, hidden=hidden, cache_dir=cache_dir, progress=progress)
        if naive:
            weights = pretrained.reference(params.chip, dataset)
            report = pretrained.reference_report(weights, dataset)
        else:
            weights, report = finetune(params, dataset, pretrained, seed=seed, epochs=epochs, progress=progress)
    if power_weight or power_budget_w is not None:
        weights, report = _trained_for_power(params, dataset, weights, power_weight, power_budget_w,
                                             seed=seed, epochs=epochs, progress=progress)
    weights.calibration_sha256 = file_sha256(calibration)
    weights.provenance = replace(weights.provenance, split_seed=seed, training_method=method,
                                 **({"label_column": label_column} if label_column else {}))
    save_weights(out, weights)
    return weights, report


def _trained_for_power(params, dataset, blind: WeightSet, power_weight: float, power_budget_w: float | None, *,
                       seed: int, epochs: int | None, progress: Callable | None):
    """The power-blind weights fine-tuned towards the goal under their own encoding, the goal recorded."""
    from labctl.families.cmna.training.power_aware import (
        POWER_AWARE_LEARNING_RATE,
        POWER_AWARE_STEPS,
        PowerGoal,
        power_term_for,
        record_power_goal,
    )
    from labctl.families.cmna.training.trainer import finetune

    if blind.naive:
        raise ConfigError("power-aware training needs the measured die: not with --naive")
    term = power_term_for(params, blind, PowerGoal(power_weight, power_budget_w), dataset)
    weights, report = finetune(params, dataset, blind, seed=seed, epochs=epochs, progress=progress, power=term,
                               steps=POWER_AWARE_STEPS, learning_rate=POWER_AWARE_LEARNING_RATE)
    record_power_goal(weights, term)
    return weights, report


@dataclass
class OnChipResult:
    program: ProgramReport
    evaluation: EvaluationResult | None
    retraining: "StuckBitResult | None" = None
    """Stuck-bit retraining and in-situ rounds, when a characterisation was given."""
    weights: WeightSet | None = None
    """The weights the die holds at the end (retrained ones if any)."""
    programmed_file: Path | None = None
    """Where retrained weights were saved (None when the trained ones went in unchanged)."""
    class_names: list[str] = field(default_factory=list)
    """Class names of the weights' data set, when it was loaded (evaluation, retraining)."""
    power: PowerMeasurement | None = None
    """Supply readings over the test patterns, when evaluation measured power."""


def program_and_evaluate(bench_file: Path, weights_file: Path, *, evaluate: bool = False,
                         dataset_name: str | None = None,
                         calibration: Path | None = None, in_situ_rounds: int = 1,
                         programmed_out: Path | None = None, keep_powered: bool = False, gate_ms: int | None = None,
                         presentation_rate_hz: float = DEFAULT_PRESENTATION_RATE_HZ, power_patterns: int | None = None,
                         progress: Progress | None = None, bench_options: dict | None = None) -> OnChipResult:
    """Power up, program and verify (latches are volatile), then optionally classify the test split.

    The test split is classified with ``evaluate`` or when ``dataset_name``
    names the data set (it must be the one the weights were trained on).

    With ``calibration`` (the characterisation the weights were trained on)
    programming retrains around stuck latch bits and runs ``in_situ_rounds``
    rounds of measuring the training split on the die and fine-tuning on
    what it showed (:mod:`labctl.families.cmna.stuck_bits`); the weights the die then holds
    are saved to ``programmed_out`` (default: ``<weights>-programmed.h5``
    next to the weights file, which is never overwritten) and evaluated.

    After the classification, the supply is read while each of the first
    ``power_patterns`` test patterns is held (None: all, as ``labctl evaluate``;
    0: no power measurement), energies at ``presentation_rate_hz``
    (:mod:`labctl.families.cmna.power`); the figures are in ``OnChipResult.power``.
    """
    weights = load_weights(weights_file)
    # every input is checked before anything is powered
    dataset = dataset_of(weights, dataset_name) if evaluate or dataset_name is not None or calibration else None
    params = None
    if calibration is not None:
        if weights.calibration_sha256 and weights.calibration_sha256 != file_sha256(calibration):
            raise DataFileError(f"{weights_file} was trained on another characterisation than {calibration}")
        params = load_die_parameters(calibration)
    with Bench.from_file(bench_file, keep_powered=keep_powered, **(bench_options or {})) as bench:
        check_weights_for_die(weights, bench.chip, source=str(weights_file))
        check_gate(bench.chip, gate_ms or DEFAULT_GATE_MS)
        bench.power_up()
        retraining = programmed_file = None
        if params is None:
            report = program_weights(bench.bridge, bench.chip, weights, progress=progress)
        else:
            from labctl.families.cmna.stuck_bits import program_with_stuck_bit_retraining

            retraining = program_with_stuck_bit_retraining(bench, params, dataset, weights,
                                                           seed=weights.provenance.seed or 0,
                                                           in_situ_rounds=in_situ_rounds, progress=progress)
            report = retraining.program
            if retraining.retrained:
                weights = retraining.weights
                programmed_file = programmed_out or weights_file.with_name(f"{weights_file.stem}-programmed.h5")
                save_weights(programmed_file, weights)
        evaluation = power = None
        if evaluate or dataset_name is not None:
            evaluation = evaluate_on_chip(bench.bridge, weights, dataset.X_test, dataset.y_test,
                                          n_classes=len(dataset.class_names), gate_ms=gate_ms or DEFAULT_GATE_MS,
                                          progress=progress)
            if power_patterns != 0:
                power = measure_power(bench, weights, weights.encoding.encode(dataset.X_test[:power_patterns]),
                                      params=params, presentation_rate_hz=presentation_rate_hz, progress=progress)
        return OnChipResult(report, evaluation, retraining, weights, programmed_file,
                            list(dataset.class_names) if dataset is not None else [], power)


def dataset_of(weights: WeightSet, dataset_name: str | None = None):
    """The data set (same split) the weights were trained on; ``dataset_name`` must name the same one."""
    from labctl.train.datasets import load_dataset

    recorded = weights.provenance
    source = recorded.dataset_source or weights.dataset
    if dataset_name is not None and dataset_name not in (source, weights.dataset):
        raise ConfigError(f"the weights were trained on {weights.dataset!r}, not on {dataset_name!r}")
    return load_dataset(source, seed=recorded.split_seed or 0, label_column=recorded.label_column)


def write_on_chip_record(run_dir: Path, weights_name: str, result: OnChipResult) -> list[Path]:
    """``evaluation_<name>.json`` (accuracy, per-class accuracy, confusion, stuck bits, retraining, power) and
    ``confusion_<name>.csv`` in the run folder, ``power_<name>.csv`` (per pattern) when power was measured;
    ``programming_<name>.json`` when nothing was evaluated."""
    program = result.program
    record: dict = {
        "weights": weights_name, "die_serial": result.weights.die_serial if result.weights else None,
        "verified": program.verified,
        "stuck_bits": [{"matrix": b.matrix, "row": b.row, "column": b.column, "bit": b.bit, "held": b.held}
                       for b in program.stuck],
    }
    if result.retraining is not None:
        record |= {"programming_rounds": result.retraining.rounds,
                   "stuck_bits_compensated": len(result.retraining.defects),
                   "latches_hold_trained_codes": result.retraining.matches,
                   "in_situ_rounds": len(result.retraining.estimates)}
    written = []
    evaluation = result.evaluation
    if evaluation is not None:
        names = result.class_names
        record |= evaluation.as_json() | {"class_names": names}
        rows = [",".join(["true \\ predicted", *names])]
        rows += [",".join([name, *map(str, row)]) for name, row in zip(names, evaluation.confusion)]
        written.append(files.atomic_write_text(Path(run_dir) / f"confusion_{weights_name}.csv", "\n".join(rows) + "\n"))
    if result.power is not None:
        record |= result.power.as_json()
        written.append(files.atomic_write_text(Path(run_dir) / f"power_{weights_name}.csv", result.power.csv_text()))
    written.append(files.atomic_write_text(
        Path(run_dir) / f"{'programming' if evaluation is None else 'evaluation'}_{weights_name}.json",
        json.dumps(record, indent=2, default=float)))
    return written


@dataclass(frozen=True)
class BenchIdentity:
    """What an unpowered bench reports: the die (IDENTIFY), its STATUS, the instruments' IDNs."""

    chip: ChipDescription
    status: BridgeStatus
    instruments: dict[str, str]
    bench_text: str


def identify_bench(bench_file: Path, bench_options: dict | None = None) -> BenchIdentity:
    """Open the bench without powering anything and say what is there."""
    bench = Bench.from_file(bench_file, **(bench_options or {}))
    bench.open()
    try:
        return BenchIdentity(bench.chip, bench.bridge.status(), bench.instrument_identities(), bench.config.text)
    finally:
        bench.disconnect()
