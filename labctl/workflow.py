"""The lab workflow steps as functions the CLI, the demo, recipes and the GUI share.

Each step takes paths and options, does one stage of the pipeline
(bench -> measurements -> fits -> model -> weights -> latches) and returns
what it produced; none prints. Keeping them here means the command line and
the GUI cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from labctl.bench import Bench
from labctl.calibration.characterise import Targets, characterise
from labctl.calibration.check import CheckResult, check_characterisation
from labctl.calibration.probing import ProbeSettings
from labctl.hdf5_store import file_sha256, load_die_parameters, load_weights, save_weights
from labctl.evaluation import EvaluationResult, evaluate_on_chip
from labctl.programming import ProgramReport, check_weights_for_die, program_weights
from labctl.weights import WeightSet

Progress = Callable[[str, int, int], None]


def run_characterisation(bench_file: Path, out: Path, *, method: str = "both", n_configs: int | None = None,
                         settings: ProbeSettings | None = None, setting_overrides: dict | None = None,
                         targets: Targets | None = None,
                         resume: bool = False, progress: Progress | None = None,
                         announce: Callable[[str], None] | None = None, bench_options: dict | None = None):
    """``bench_options`` go to :class:`Bench` (e.g. ``transcript``/``on_reading`` for a session record)."""
    with Bench.from_file(bench_file, **(bench_options or {})) as bench:
        return characterise(bench, out, method=method, settings=settings, setting_overrides=setting_overrides,
                            n_configs=n_configs, targets=targets,
                            resume=resume, progress=progress, announce=announce)


def run_check(bench_file: Path, calibration: Path) -> CheckResult:
    with Bench.from_file(bench_file) as bench:
        return check_characterisation(bench, calibration)


def run_training(calibration: Path, dataset_name: str, out: Path, *, naive: bool = False,
                 hidden: tuple[int, ...] | None = None, epochs: int | None = None, seed: int = 0,
                 progress: Callable | None = None):
    from labctl.train.datasets import load_dataset
    from labctl.train.trainer import train_weights

    params = load_die_parameters(calibration)
    dataset = load_dataset(dataset_name, seed=seed)
    weights, report = train_weights(params, dataset, hidden=hidden, seed=seed, epochs=epochs, naive=naive,
                                    progress=progress)
    weights.calibration_sha256 = file_sha256(calibration)
    weights.metadata["split_seed"] = str(seed)
    save_weights(out, weights)
    return weights, report


@dataclass
class OnChipResult:
    program: ProgramReport
    evaluation: EvaluationResult | None


def program_and_evaluate(bench_file: Path, weights_file: Path, *, dataset_name: str | None = None,
                         keep_powered: bool = False, gate_ms: int = 20,
                         progress: Progress | None = None, bench_options: dict | None = None) -> OnChipResult:
    """Power up, program and verify (latches are volatile), then optionally classify the test split."""
    weights = load_weights(weights_file)
    with Bench.from_file(bench_file, keep_powered=keep_powered, **(bench_options or {})) as bench:
        check_weights_for_die(weights, bench.chip, source=str(weights_file))
        bench.power_up()
        report = program_weights(bench.bridge, bench.chip, weights, progress=progress)
        evaluation = None
        if dataset_name is not None:
            evaluation = evaluate_dataset(bench, weights, dataset_name, gate_ms=gate_ms, progress=progress)
        return OnChipResult(report, evaluation)


def evaluate_dataset(bench: Bench, weights: WeightSet, dataset_name: str, *, gate_ms: int = 20,
                     progress: Progress | None = None) -> EvaluationResult:
    from labctl.train.datasets import load_dataset

    seed = int(weights.metadata.get("split_seed", 0))
    dataset = load_dataset(dataset_name, seed=seed)
    return evaluate_on_chip(bench.bridge, weights, dataset.X_test, dataset.y_test,
                            n_classes=len(dataset.class_names), gate_ms=gate_ms, progress=progress)
