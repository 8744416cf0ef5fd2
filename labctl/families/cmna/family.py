"""The CMNA family behind the device-family seam (seed 004's current-mode die, contract cmna-bench.md).

This module only translates between the seam's typed records and the CMNA
stages (:mod:`labctl.families.cmna.workflow`); the stages themselves live in
their own modules: description :mod:`.chip`, bench plan :mod:`.bench` and
:mod:`.ratings`, link :mod:`.link`, characteriser :mod:`.characterisation`,
model :mod:`.training.die_model`, simulator :mod:`.sim` (never imported here).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from labctl.drivers.bridge_protocol import BridgeStatus
from labctl.errors import ConfigError
from labctl.families.cmna import chip as chip_module
from labctl.families.cmna.options import STEP_OPTIONS, CharacteriseOptions, EvaluateOptions, ProgramOptions, TrainOptions
from labctl.families.seam import (
    RECIPES_DIR,
    CharacterisationOutcome,
    DeviceDescription,
    OnChipOutcome,
    StepContext,
    TrainingOutcome,
)



def describe_chip(chip: chip_module.ChipDescription, status: BridgeStatus | None = None) -> DeviceDescription:
    """The family-blind description of a die from its IDENTIFY answer (and STATUS, when read)."""
    from labctl.families.cmna.protocol import StatusFlag, status_words

    top = chip.max_magnitude
    state = (("status", f"{status_words(StatusFlag(status.flags))}; die temperature {status.temperature_c:.2f} degC"),
             ) if status is not None else ()
    return DeviceDescription(
        family=chip_module.FAMILY_NAME, part=chip.part, serial=chip.serial, geometry=tuple(chip.layer_sizes),
        weight_levels=tuple(float(v) for v in range(-top, top + 1)),
        input_range=(0.0, chip.max_dac_code * chip.dac_lsb_a), input_unit="A",
        details=(("firmware", f"{chip.firmware[0]}.{chip.firmware[1]}, protocol {chip.protocol}"),
                 ("bridge", f"max payload {chip.max_payload} B, max gate {chip.max_gate_ms} ms"),
                 ("bias DAC", f"{chip.dac_bits} bits, LSB {chip.dac_lsb_a:g} A"),
                 ("C2F", f"{chip.c2f_gain_hz_per_a:g} Hz/A nominal")) + state,
        attrs=chip.as_attrs())


class CmnaFamily:
    """Implements :class:`labctl.families.seam.DeviceFamily` for CMNA dies."""

    name = chip_module.FAMILY_NAME
    summary = "current-mode analog neural dies (seed 004): signed 3-bit latches, bias DACs, C2F output counters"
    parts = tuple(chip_module.KNOWN_PARTS.values())
    bench_roles = ("supply", "source", "monitor")
    step_options: Mapping[str, type] = STEP_OPTIONS
    simulator = "labctl.families.cmna.sim.serve"
    commands = "labctl.families.cmna.commands:register"
    reporter = "labctl.families.cmna.report.page:write_report"
    replayer = "labctl.families.cmna.replay:replay"
    gui = "labctl.families.cmna.gui.panels"
    shipped_recipes = {"CMNA-777": RECIPES_DIR / "iris_cmna777.toml", "CMNA-L": RECIPES_DIR / "mnist_cmnal.toml"}

    def recognises(self, identify_payload: bytes) -> bool:
        from labctl.drivers.bridge_protocol import BridgeError
        from labctl.families.cmna.protocol import parse_identify

        try:
            return parse_identify(identify_payload).protocol == 1
        except (BridgeError, ValueError, UnicodeError):
            return False

    def owns_file(self, attrs: Mapping[str, Any]) -> bool:
        # every file written before the seam is a CMNA file; newer ones carry family = "cmna"
        return "family" not in attrs

    def describe(self, bench_file: Path, context: StepContext) -> tuple[DeviceDescription, dict[str, str]]:
        from labctl.families.cmna.workflow import identify_bench

        found = identify_bench(bench_file, context.bench_options)
        return describe_chip(found.chip, found.status), found.instruments

    def characterise(self, out: Path, options: CharacteriseOptions, context: StepContext) -> CharacterisationOutcome:
        from labctl.families.cmna.characterisation.characterise import Targets, linear_range_overrides
        from labctl.families.cmna.workflow import run_characterisation

        overrides = {k: v for k, v in (("levels", options.levels), ("gate_ms", options.gate_ms),
                                       ("nplc", options.nplc)) if v is not None}
        targets = Targets(a_plus=options.target_a_plus, ratio=options.target_ratio,
                          time_budget_s=options.time_budget_s, max_configurations=options.max_configs)
        result = run_characterisation(context.bench_file, out, method=options.method, n_configs=options.configs,
                                      setting_overrides=overrides | linear_range_overrides(options.linear_range),
                                      targets=targets, resume=options.resume, force=context.force,
                                      given=options.model_fields_set, progress=context.progress,
                                      announce=context.announce, bench_options=context.bench_options)
        return CharacterisationOutcome(out, describe_chip(result.params.chip), tuple(_characterisation_lines(result, out)),
                                       result.summary, result)

    def train(self, calibration: Path, out: Path, options: TrainOptions, context: StepContext) -> TrainingOutcome:
        from labctl.families.cmna.workflow import run_training

        progress, on_epoch = context.progress, context.on_epoch

        def epoch_done(epoch: int, epochs: int, loss: float, accuracy: float) -> None:
            if progress:
                progress("training", epoch, epochs)
            if on_epoch:
                on_epoch(epoch, epochs, loss, accuracy)

        weights, report = run_training(
            calibration, options.dataset, out, naive=options.naive, method=options.method,
            hidden=tuple(options.hidden) if options.hidden else None, epochs=options.epochs, seed=options.seed,
            label_column=options.label_column, cache_dir=options.cache_dir, announce=context.announce,
            progress=epoch_done, force=context.force, power_weight=options.power_weight,
            power_budget_w=options.power_budget)
        kind = "naive" if options.naive else "tailored"
        how = {"finetune": "pre-trained reference" if options.naive else "fine-tuned",
               "scratch": "trained from scratch"}[weights.provenance.training_method]
        line = (f"{kind} weights for die {weights.die_serial} on {weights.dataset} ({how}, {report.seconds:.1f} s): "
                f"software accuracy {weights.software_accuracy:.1%}{_power_words(weights)} -> {out}")
        return TrainingOutcome(out, weights.dataset, weights.software_accuracy, line, _training_record(report), weights,
                               report)

    def program(self, weights: Path, options: ProgramOptions, context: StepContext, *,
                evaluate: bool) -> OnChipOutcome:
        from labctl.families.cmna.workflow import program_and_evaluate

        calibration = options.calibration or self._run_calibration(weights, options, context)
        if calibration is None and (options.programmed_out is not None or options.in_situ_rounds != 1):
            raise ConfigError("--in-situ-rounds and --programmed-out need --calibration (the die's characterisation)")
        gate_ms = options.gate_ms if isinstance(options, EvaluateOptions) else None
        dataset = options.dataset if isinstance(options, EvaluateOptions) else None
        power = ({"presentation_rate_hz": options.presentation_rate, "power_patterns": options.power_patterns}
                 if isinstance(options, EvaluateOptions) else {})
        result = program_and_evaluate(context.bench_file, weights, evaluate=evaluate, dataset_name=dataset,
                                      calibration=calibration, in_situ_rounds=options.in_situ_rounds,
                                      programmed_out=options.programmed_out, keep_powered=options.keep_powered,
                                      gate_ms=gate_ms, progress=context.progress,
                                      bench_options=context.bench_options, **power)
        ev = result.evaluation
        return OnChipOutcome(
            verified=result.program.verified or bool(result.retraining and result.retraining.matches),
            summary_lines=tuple(_on_chip_lines(result)),
            on_chip_accuracy=ev.on_chip_accuracy if ev else None,
            software_accuracy=ev.software_accuracy if ev else result.weights.software_accuracy,
            n_samples=ev.n_samples if ev else 0,
            json_extra=((ev.as_json() if ev else {}) | (result.power.as_json() if result.power else {})
                        | {"stuck_bits": len(result.program.stuck)}),
            files=(result.programmed_file,) if result.programmed_file else (), result=result)

    @staticmethod
    def _run_calibration(weights: Path, options: ProgramOptions, context: StepContext) -> Path | None:
        """In a recipe run, tailored weights are retrained around stuck bits with the run's characterisation."""
        from labctl.families.cmna.storage import load_weights

        if context.calibration is None or not options.retrain or load_weights(weights).naive:
            return None
        return context.calibration

    def write_records(self, run_dir: Path, weights_name: str, outcome: OnChipOutcome) -> list[Path]:
        """evaluation_<name>.json and confusion_<name>.csv (programming_<name>.json without evaluation)."""
        from labctl.families.cmna.workflow import write_on_chip_record

        return write_on_chip_record(run_dir, weights_name, outcome.result)


TRAINING_RECORD_KEYS = ("dataset", "die_serial", "naive", "seed", "epochs", "best_epoch", "losses", "train_accuracies",
                        "software_accuracy", "ideal_accuracy", "train_accuracy", "seconds")


def _training_record(report) -> dict[str, Any]:
    """What training_<name>.json keeps of a training run."""
    return {k: getattr(report, k) for k in TRAINING_RECORD_KEYS}


def _characterisation_lines(result, out: Path) -> list[str]:
    s = result.summary
    lines = [f"characterisation written to {out} ({s['configurations']} configurations, "
             f"{s['mon_readings']} MON readings, {s['c2f_gates']} C2F gates)"]
    for l, (layer, flags) in enumerate(zip(result.params.layers, result.flags)):
        info = s["layers"][l]
        ratio = info.get("rms_rel_std_ratio")
        lines.append(f"  layer {l}: {len(layer.a_plus)} neurons, a+ spread {layer.a_plus.std():.1%}, "
                     f"a+ known to {info['rms_rel_std_a_plus']:.2%}"
                     + (f", a-/a+ to {ratio:.2%}" if ratio is not None else "") + f", flagged {flags.count()}")
    drift = s.get("drift", {})
    if "rate_per_min" in drift:
        lines.append(f"  gain drift {drift['rate_per_min']:+.3%} ± {drift['rate_std_per_min']:.3%} per minute over "
                     f"{drift['times_s'][-1]:.0f} s of bench time ({len(drift['factor'])} reference runs)"
                     + (": DRIFT FLAGGED, consider characterising again" if drift["flagged"] else ""))
    supply = s.get("supply")  # issue 14: the supply-current model and how well it predicts unseen states
    if supply:
        coefficients = ", ".join(f"{name} {supply[key]:.2f} ± {std:.2f}" for name, key, std in
                                 zip(("soma", "driver", "synapse"), ("soma", "drive", "synapse"), supply["std"][1:]))
        lines.append(f"  supply current {supply['quiescent_a'] * 1e6:.3f} ± {supply['std'][0] * 1e6:.3f} uA quiescent "
                     f"+ branch currents x ({coefficients}) at VDD {supply['vdd_v']:.3f} V, {supply['n_fitted']} "
                     f"states fitted; on {supply['n_held_out']} states not fitted: residual rms "
                     f"{supply['held_out_rms']:.2%}, max {supply['held_out_max']:.2%}")
    return lines


def _on_chip_lines(result) -> list[str]:
    report, retraining = result.program, result.retraining
    lines = []
    if retraining is not None and retraining.retrained:
        lines.append(f"retrained {len(retraining.trainings)} time(s) ({len(retraining.defects)} stuck bit(s) "
                     f"compensated, {len(retraining.estimates)} in-situ round(s)); the die holds "
                     f"{retraining.weights.dataset} weights saved to {result.programmed_file}")
    if retraining is not None and retraining.matches:
        lines.append(f"programmed and verified: the latches hold the codes the weights were trained with"
                     f" ({len(retraining.defects)} stuck bit(s) built in)")
    elif report.verified:
        lines.append(f"programmed and verified ({report.attempts} pass{'es' if report.attempts > 1 else ''})")
    else:
        lines.append(f"programmed; {len(report.stuck)} stuck latch bit(s) will not take:")
        lines += [f"  matrix {b.matrix} row {b.row} column {b.column} bit {b.bit} stuck at {b.held}"
                  for b in report.stuck]
    ev = result.evaluation
    if ev is not None:
        lines.append(f"on-chip accuracy {ev.on_chip_accuracy:.1%} ({ev.n_samples} samples); "
                     f"software predicted {ev.software_accuracy:.1%}")
    if result.power is not None:
        lines += result.power.summary_lines()
    return lines



FAMILY = CmnaFamily()


def _power_words(weights) -> str:
    """The predicted network power, and the goal it was trained to, for the training line."""
    if not math.isfinite(weights.predicted_network_power_w):
        return ""
    p = weights.provenance
    goal = (f", budget {p.power_budget_w:.3g} W" if p.power_budget_w is not None else
            f", power weight {p.power_weight:g}" if p.power_weight else "")
    return f", predicted network power {weights.predicted_network_power_w * 1e6:.3g} uW{goal}"
