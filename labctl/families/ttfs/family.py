"""The TTFS family behind the device-family seam (seed 003's RC-Spike dies, contract docs/specs/ttfs-bench.md).

This module only translates between the seam's records and the TTFS stages,
each in its own module: bench plan :mod:`.bench` (ratings, wiring proof,
power order), link :mod:`.link`, characteriser :mod:`.characterisation`,
model :mod:`.model` and training :mod:`.training`, programming
:mod:`.programming`, on-chip evaluation :mod:`.evaluation` and energy
:mod:`.energy`. The simulator (:mod:`.sim`) is never imported here.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from labctl.errors import ConfigError, LabctlError
from labctl.families.seam import (RECIPES_DIR, CharacterisationOutcome, DeviceDescription, OnChipOutcome,
                                  StepContext, StepOptions, TrainingOutcome)
from labctl.families.ttfs.identify import DieDescription, is_ttfs_identify
from labctl.families.ttfs.options import STEP_OPTIONS, CharacteriseOptions, EvaluateOptions, TrainOptions

FAMILY_NAME = "ttfs"
PARTS = ("RCS-S", "RCS-L")
INPUT_RANGE_NS = (0.0, 2540.0)
"""Input spike times: 8-bit codes of 10 ns (contract 1.8); 255 is no spike."""


def describe_die(chip: DieDescription) -> DeviceDescription:
    """The family-blind description of a die from its IDENTIFY answer."""
    top = chip.max_code
    return DeviceDescription(
        family=FAMILY_NAME, part=chip.part, serial=chip.serial, geometry=tuple(chip.layer_sizes),
        weight_levels=tuple(float(v) for v in range(-top, top + 1)), input_range=INPUT_RANGE_NS, input_unit="ns",
        details=(("firmware", f"{chip.firmware[0]}.{chip.firmware[1]}, device protocol {chip.protocol}"),
                 ("bridge", f"max payload {chip.max_payload} B, window up to {chip.max_window_ns} ns"),
                 ("synapses", f"signed SONOS codes -{top}..+{top}, {chip.i_lsb_a:g} A per step (nominal)"),
                 ("time base", f"inputs {chip.input_lsb_s:g} s per code, TDC {chip.tdc_lsb_s:g} s per code")),
        attrs={"family": FAMILY_NAME, "part": chip.part, "serial": chip.serial,
               "layer_sizes": list(chip.layer_sizes)})


class TtfsFamily:
    """Implements :class:`labctl.families.seam.DeviceFamily` for RC-Spike TTFS dies."""

    name = FAMILY_NAME
    summary = ("time-to-first-spike RC-Spike dies (seed 003): signed SONOS synapse codes, MOSFET current sources "
               "into membrane capacitors, first-spike classes from TDCs")
    parts = PARTS
    bench_roles = ("supply", "threshold", "rev_exc", "rev_inh", "probe", "sync")
    step_options: Mapping[str, type] = STEP_OPTIONS
    simulator = "labctl.families.ttfs.sim.serve"
    commands = None
    bench_file_parser = "labctl.families.ttfs.bench:parse_ttfs_bench_text"
    reporter = "labctl.families.ttfs.report.page:write_report"
    replayer = "labctl.families.ttfs.replay:replay"
    gui = "labctl.families.ttfs.gui.panels"
    shipped_recipes: Mapping[str, Path] = {"RCS-S": RECIPES_DIR / "ttfs_iris.toml",
                                           "RCS-L": RECIPES_DIR / "ttfs_fashion.toml"}

    def recognises(self, identify_payload: bytes) -> bool:
        return is_ttfs_identify(identify_payload)

    def owns_file(self, attrs: Mapping[str, Any]) -> bool:
        return attrs.get("family") == FAMILY_NAME

    def describe(self, bench_file: Path, context: StepContext) -> tuple[DeviceDescription, dict[str, str]]:
        from labctl.families.ttfs.bench import open_ttfs_bench

        with open_ttfs_bench(bench_file, power=False, **context.bench_options) as bench:
            return describe_die(bench.chip), bench.identities()

    def characterise(self, out: Path, options: CharacteriseOptions, context: StepContext) -> CharacterisationOutcome:
        from labctl.families.ttfs.characterisation.characterise import characterise_die

        if context.bench_file is None:
            raise ConfigError("characterise needs a bench file")
        result = characterise_die(context.bench_file, out, progress=context.progress, announce=context.announce,
                                  force=context.force, **context.bench_options)
        p = result.params
        chip = DieDescription(serial=p.serial, part=p.part, layer_sizes=tuple(p.layer_sizes))
        return CharacterisationOutcome(out, describe_die(chip), result.summary_lines, result.summary, result)

    def train(self, calibration: Path, out: Path, options: TrainOptions, context: StepContext) -> TrainingOutcome:
        from labctl.families.ttfs.storage import read_parameters
        from labctl.families.ttfs.tasks import larger_spikes_earlier, load_task
        from labctl.families.ttfs.training.trainer import train_ttfs
        from labctl.families.ttfs.weights import write_weights
        from labctl.files import refuse_existing

        refuse_existing(out, force=context.force, what="weights file")
        params = read_parameters(calibration)
        data = load_task(options.dataset, seed=options.seed, data_dir=options.data_dir,
                         label_column=options.label_column)
        trained = train_ttfs(params, data, method=options.method, epochs=options.epochs, seed=options.seed,
                             split_seed=options.seed, progress=context.progress, on_epoch=context.on_epoch,
                             calibration_file=str(calibration),
                             larger_earlier=larger_spikes_earlier(options.dataset, options.spike_order),
                             time_budget_s=None if options.budget_minutes is None else 60.0 * options.budget_minutes)
        weights = replace(trained.weights, label_column=options.label_column or "",
                          data_dir=str(options.data_dir or ""))
        write_weights(out, weights)
        chosen = (f", validation {', '.join(f'{k} {v:.1%}' for k, v in trained.validation_accuracy.items())}"
                  if trained.validation_accuracy else "")
        line = (f"codes for die {weights.serial} on {weights.dataset} ({weights.method}{chosen}; "
                f"{weights.seconds:.1f} s): model accuracy {weights.software_accuracy:.1%} on "
                f"{len(data.y_test)} test samples -> {out}")
        record = {"dataset": weights.dataset, "die_serial": weights.serial, "method": weights.method,
                  "seed": options.seed, "software_accuracy": weights.software_accuracy,
                  "spike_order": "larger-earlier" if weights.encoding.larger_earlier else "smaller-earlier",
                  "validation_accuracy": dict(trained.validation_accuracy), "losses": list(trained.losses),
                  "seconds": weights.seconds}
        return TrainingOutcome(out, weights.dataset, weights.software_accuracy, line, record, weights, trained)

    def program(self, weights: Path, options: StepOptions, context: StepContext, *, evaluate: bool) -> OnChipOutcome:
        from labctl.families.ttfs.bench import open_ttfs_bench
        from labctl.families.ttfs.evaluation import classify_on_chip
        from labctl.families.ttfs.patterns import patterns_per_frame
        from labctl.families.ttfs.programming import check_codes_for_die, program_codes
        from labctl.families.ttfs.tasks import load_task
        from labctl.families.ttfs.weights import read_weights

        if context.bench_file is None:
            raise ConfigError("program and evaluate need a bench file")
        trained = read_weights(weights)
        data = (load_task(trained.dataset, seed=trained.split_seed, data_dir=Path(trained.data_dir) if trained.data_dir
                          else None, label_column=trained.label_column or None) if evaluate else None)
        with open_ttfs_bench(context.bench_file, progress=context.progress, announce=context.announce,
                             **context.bench_options) as bench:
            check_codes_for_die(trained.part, trained.serial, trained.layer_sizes, bench.chip, str(weights))
            report = program_codes(bench.link, trained.codes, progress=context.progress)
            bench.link.set_timing(int(trained.window_ns))
            bench.link.set_bias_times([int(c) for c in trained.bias_time_codes])
            result, failure = None, None
            if evaluate:
                assert data is not None and isinstance(options, EvaluateOptions)
                codes = trained.encoding.encode(data.X_test)
                result = classify_on_chip(bench.link, codes, data.y_test, data.n_classes, progress=context.progress)
                n_power = min(len(codes) if options.power_patterns is None else options.power_patterns,
                              patterns_per_frame(bench.chip, 0, bench.chip.n_layers - 1))  # 3.5: one frame
                if n_power:
                    try:
                        result = replace(result, energy=bench.measure_energy(codes[:n_power]))
                    except LabctlError as error:  # the classification is done: keep it, raise after the records
                        failure = error
        lines = [f"programmed {sum(c.size for c in trained.codes)} synapses of die {trained.serial}: "
                 f"{report.rows_programmed} rows written, {len(report.stuck)} cells hold another code"
                 + ("" if report.verified else " (" + ", ".join(
                     f"m{s.matrix}[{s.row},{s.column}] {s.held:+d} for {s.wanted:+d}" for s in report.stuck[:5]) + ")")]
        extra: dict[str, Any] = {"die_serial": trained.serial, "stuck_cells": len(report.stuck),
                                 "rows_programmed": report.rows_programmed}
        if result is not None:
            lines.append(f"on chip: {result.accuracy:.1%} of {len(result.labels)} test samples (model "
                         f"{trained.software_accuracy:.1%}); no output fired on {result.no_spike_fraction:.1%}, "
                         f"{result.ties} ties")
            extra |= {"no_spike_fraction": result.no_spike_fraction, "ties": result.ties}
            if failure is not None:
                lines.append(f"energy per inference not measured: {failure}")
                extra |= {"energy_error": str(failure)}
            if result.energy is not None:
                e = result.energy
                lines.append(f"energy per inference {e.energy_per_inference_j * 1e12:.3g} ± "
                             f"{e.energy_se_j * 1e12:.2g} pJ (dynamic {e.dynamic_power_w * 1e9:.4g} nW over a "
                             f"{e.period_s * 1e6:.4g} us period; idle {e.idle_power_w * 1e3:.4g} mW removed)")
                extra |= {"energy_per_inference_j": e.energy_per_inference_j, "energy_se_j": e.energy_se_j,
                          "supply_power_w": e.supply_power_w, "idle_power_w": e.idle_power_w,
                          "dynamic_power_w": e.dynamic_power_w}
        return OnChipOutcome(
            verified=report.verified, summary_lines=tuple(lines),
            on_chip_accuracy=result.accuracy if result else None, software_accuracy=trained.software_accuracy,
            n_samples=len(result.labels) if result else 0, json_extra=extra, result=(report, result), failure=failure)

    def write_records(self, run_dir: Path, weights_name: str, outcome: OnChipOutcome) -> list[Path]:
        """evaluation_<name>.json: the common figures, the confusion matrix, each output's spike times, and per
        test pattern its class and every output's TDC code (the report's per-class histograms)."""
        from labctl.files import atomic_write_text

        _, result = outcome.result
        record = outcome.as_json()
        if result is not None:
            record |= {"confusion": result.confusion.tolist(),
                       "output_spike_times_ns": [t.tolist() for t in result.output_times_ns()],
                       "labels": result.labels.tolist(), "output_tdc": result.output_tdc.tolist()}
        return [atomic_write_text(run_dir / f"evaluation_{weights_name}.json", json.dumps(record, indent=2))]


FAMILY = TtfsFamily()
