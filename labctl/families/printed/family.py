"""The printed family behind the device-family seam (seeds 000-002, contract docs/specs/printed-bench.md).

Printed neuromorphic circuits cannot be reprogrammed, so the stages map onto
the seam as: characterise the *process* on a test-structure sample
(:mod:`.characterisation`), train a bespoke design (:mod:`.training`), export
and print it (``labctl export``, :mod:`.export`), and verify the printed
sample (``labctl evaluate --design``, :mod:`.verification`); ``program``
refuses. This module only translates between the seam's records and those
stages; the simulator (:mod:`.sim`) is never imported here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from labctl.errors import ConfigError
from labctl.families.printed.options import (DEFAULT_HIDDEN, STEP_OPTIONS, CharacteriseOptions, EvaluateOptions,
                                             TrainOptions)
from labctl.families.seam import (RECIPES_DIR, CharacterisationOutcome, DeviceDescription, OnChipOutcome,
                                  StepContext, StepOptions, TrainingOutcome)

FAMILY_NAME = "printed"
PARTS = ("PNC-TS", "PNC-NET")
"""The test-structure sample (contract 2.3) and a printed network (2.5)."""
CELL_BOUNDS_WORDS = {"fixed": "at the reference designs", "measured": "within the measured region",
                     "printable": "within the printable ranges only (the calibration has no measured region)"}
"""How the train summary says where the cells were kept (Provenance.cell_bounds)."""
INPUT_RANGE_V = (-1.5, 1.5)
"""What a circuit input pad may carry while its rails are up (contract 4.4)."""


def describe_sample(config, identity) -> DeviceDescription:
    """The family-blind description of the sample on the bench (its bench file and the ID ladder read);
    a printed network's geometry is its print job's layers."""
    from labctl.families.printed.bench_file import load_sample

    part = "PNC-TS" if config.sample_kind == "test-structures" else "PNC-NET"
    job = load_sample(config).job
    geometry = tuple(job.layers) if job is not None else ()
    return DeviceDescription(
        family=FAMILY_NAME, part=part, serial=config.sample_id, geometry=geometry,
        weight_levels=(), input_range=INPUT_RANGE_V, input_unit="V",
        details=(("process", config.process), ("ID code", f"{identity.code} read from the ladder"),
                 ("file", str(config.sample_file))),
        attrs={"family": FAMILY_NAME, "part": part, "sample": config.sample_id, "process": config.process,
               "id_code": int(identity.code)})


class PrintedFamily:
    """Implements :class:`labctl.families.seam.DeviceFamily` for printed neuromorphic circuits."""

    name = FAMILY_NAME
    summary = ("printed neuromorphic circuits (seeds 000-002): printed crossbars, ptanh and negative-weight cells "
               "of EGTs; characterise the process, train a bespoke design, print, verify")
    parts = PARTS
    bench_roles = ("mainframe", "smu")
    step_options: Mapping[str, type] = STEP_OPTIONS
    simulator = "labctl.families.printed.sim.serve"
    commands = "labctl.families.printed.commands:register"
    bench_file_parser = "labctl.families.printed.bench_file:parse_printed_bench_text"
    reporter = "labctl.families.printed.report.page:write_report"
    replayer = None
    gui = "labctl.families.printed.gui.panels"
    shipped_recipes: Mapping[str, Path] = {"PNC-TS": RECIPES_DIR / "printed_iris.toml"}

    def recognises(self, identify_payload: bytes) -> bool:
        return False  # no bridge: a printed bench file always names its family

    def owns_file(self, attrs: Mapping[str, Any]) -> bool:
        return attrs.get("family") == FAMILY_NAME

    def describe(self, bench_file: Path, context: StepContext) -> tuple[DeviceDescription, dict[str, str]]:
        from labctl.families.printed.bench import identify_sample

        config, identity, instruments = identify_sample(bench_file)
        return describe_sample(config, identity), instruments

    def characterise(self, out: Path, options: CharacteriseOptions, context: StepContext) -> CharacterisationOutcome:
        from labctl.families.printed.characterisation import characterise_process

        if context.bench_file is None:
            raise ConfigError("characterise needs a bench file")
        outcome = characterise_process(context.bench_file, out, progress=context.progress, announce=context.announce,
                                       force=context.force)
        description = DeviceDescription(FAMILY_NAME, "PNC-TS", outcome.sample, (), (), INPUT_RANGE_V, "V")
        return CharacterisationOutcome(out, description, tuple(outcome.summary_lines), outcome.summary, outcome)

    def train(self, calibration: Path, out: Path, options: TrainOptions, context: StepContext) -> TrainingOutcome:
        from labctl.families.printed import process_calibration
        from labctl.families.printed.dataset import load_task
        from labctl.families.printed.training import train_design
        from labctl.files import refuse_existing

        refuse_existing(out, force=context.force, what="design file")
        cal = process_calibration.read(calibration)
        data = load_task(options.dataset, label_column=options.label_column or "label", seed=options.seed)
        hidden = options.hidden or [DEFAULT_HIDDEN]
        if len(hidden) != 1:
            raise ConfigError("--hidden: a printed design has one hidden layer (e.g. --hidden 3)")
        design = train_design(cal, data, hidden=hidden[0], power_weight=options.power_weight,
                              nominal=options.nominal, fixed_circuits=options.fixed_circuits, seed=options.seed,
                              progress=context.progress, on_epoch=context.on_epoch)
        design.write(out)
        p = design.prediction
        line = (f"printed design for process {design.process} on {Path(options.dataset).name} "
                f"({design.provenance.train_seconds:.1f} s): software {p.software_accuracy:.1%}, predicted over "
                f"printed samples {p.test_mean:.1%} (90 %: {p.test_q05:.1%} to {p.test_q95:.1%}), predicted power "
                f"{p.power_w * 1e3:.4g} mW; cells {CELL_BOUNDS_WORDS.get(design.provenance.cell_bounds, 'unchecked')} "
                f"-> {out}")
        record = {"dataset": options.dataset, "process": design.process, "software_accuracy": p.software_accuracy,
                  "predicted_accuracy": p.test_mean, "predicted_q05": p.test_q05, "predicted_q95": p.test_q95,
                  "predicted_power_w": p.power_w, "seconds": design.provenance.train_seconds}
        return TrainingOutcome(out, options.dataset, p.software_accuracy, line, record, design)

    def program(self, weights: Path, options: StepOptions, context: StepContext, *, evaluate: bool) -> OnChipOutcome:
        from labctl.families.printed.verification import verify_printed

        if not evaluate:
            raise ConfigError("a printed circuit cannot be programmed: export the design (labctl export), print it, "
                              "then verify the sample with labctl evaluate --design")
        assert isinstance(options, EvaluateOptions)
        if context.bench_file is None:
            raise ConfigError("evaluate needs a bench file")
        result = verify_printed(context.bench_file, weights, power_patterns=options.power_patterns,
                                progress=context.progress, bench_options=context.bench_options)
        return OnChipOutcome(verified=True, summary_lines=tuple(result.summary_lines()),
                             on_chip_accuracy=result.printed_accuracy, software_accuracy=result.software_accuracy,
                             n_samples=result.n_samples, json_extra=result.as_json(), result=result)

    def write_records(self, run_dir: Path, weights_name: str, outcome: OnChipOutcome) -> list[Path]:
        """evaluation_<name>.json with the printed and predicted figures and the confusion matrix."""
        import json

        from labctl.files import atomic_write_text

        result = outcome.result
        record = outcome.as_json() | {"confusion": result.confusion.tolist()}
        return [atomic_write_text(run_dir / f"evaluation_{weights_name}.json", json.dumps(record, indent=2))]


FAMILY = PrintedFamily()
