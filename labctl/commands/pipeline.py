"""identify, characterise, train, program, evaluate, families: the pipeline's steps, for any device family.

These commands are family-blind: the bench file (its ``family`` key, or the
device's IDENTIFY answer) or the HDF5 file names the family, and the family's
step-option schema supplies the options (:mod:`labctl.options`), so a
choice or a default is written once, in the family.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from labctl import families
from labctl.commands import BENCH_HELP, add_command
from labctl.errors import ConfigError
from labctl.families.seam import DeviceFamily, StepContext
from labctl.options import add_options, options_from_args
from labctl.progress import progress_bars


FORCE_HELP = ("replace an existing --out (otherwise refused at once; the old file stays usable until the new one "
              "is complete)")


def register(sub) -> None:
    installed = list(families.installed().values())

    def options_of(stage: str):
        return [f.step_options[stage] for f in installed if stage in f.step_options]

    s = add_command(sub, "families", "List the installed device families, their parts, bench roles and options.",
                    "example:\n  labctl families")
    s.set_defaults(handler=list_families)

    s = add_command(sub, "identify", "Show what the device and each instrument report. Powers nothing up.",
                    "example:\n  labctl identify --bench bench.toml")
    s.add_argument("--bench", type=Path, required=True, help=BENCH_HELP)
    s.set_defaults(handler=identify)

    s = add_command(sub, "characterise", "Measure the device on the bench; write raw data and fits to HDF5.",
                    "example:\n  labctl characterise --bench bench.toml --out die.h5 --method both")
    s.add_argument("--bench", type=Path, required=True, help=BENCH_HELP)
    s.add_argument("--out", type=Path, required=True,
                   help="characterisation file to write (HDF5); the run writes <stem>.partial.h5 next to it until "
                        "it is complete")
    s.add_argument("--force", action="store_true", help=FORCE_HELP)
    add_options(s, options_of("characterise"))
    s.set_defaults(handler=characterise)

    s = add_command(sub, "train", "Train weights tailored to a characterised device (or naive ones).",
                    "Large CMNA networks (MNIST on CMNA-L) are fine-tuned from a network pre-trained once per part\n"
                    "and data set on the contract's population of dies (the first run pre-trains for a few minutes,\n"
                    "later ones load it from the cache and take seconds); small ones are trained from scratch.\n"
                    "Power-aware training (--power-weight, --power-budget) trains the power-blind weights first,\n"
                    "then fine-tunes them under their own input encoding; see docs/training.md.\n\n"
                    "examples:\n  labctl train --calibration die.h5 --dataset iris --out weights.h5\n"
                    "  labctl train --calibration die.h5 --dataset iris --out naive.h5 --naive\n"
                    "  labctl train --calibration die.h5 --dataset iris --out low-power.h5 --power-weight 0.9\n"
                    "  labctl train --calibration die.h5 --dataset iris --out budget.h5 --power-budget 4e-6\n"
                    "  labctl train --calibration die.h5 --dataset samples.csv --label-column species --out w.h5")
    s.add_argument("--calibration", type=Path, required=True,
                   help="characterisation file (HDF5) of the device (printed: of the process)")
    s.add_argument("--out", type=Path, required=True, help="weights file (printed: design file) to write (HDF5)")
    s.add_argument("--force", action="store_true", help=FORCE_HELP)
    add_options(s, options_of("train"))
    s.set_defaults(handler=train)

    s = add_command(sub, "program", "Write weights into the device, read them back and verify.",
                    "example:\n  labctl program --bench bench.toml --weights weights.h5 --keep-powered")
    s.add_argument("--bench", type=Path, required=True, help=BENCH_HELP)
    s.add_argument("--weights", type=Path, required=True, help="weights file (HDF5) trained for this device")
    add_options(s, options_of("program"))
    s.set_defaults(handler=program_or_evaluate, stage="program", json=False, out_dir=None)

    s = add_command(sub, "evaluate", "Program the weights (a printed circuit: verify the printed design), then "
                                     "classify the test split on the device.",
                    "examples:\n  labctl evaluate --bench bench.toml --weights weights.h5 --json\n"
                    "  labctl evaluate --bench bench.toml --weights weights.h5 --calibration die.h5 --out-dir run/\n"
                    "  labctl evaluate --bench printed.toml --design design.h5 --json")
    s.add_argument("--bench", type=Path, required=True, help=BENCH_HELP)
    s.add_argument("--weights", "--design", dest="weights", type=Path, required=True,
                   help="weights file (HDF5) trained for this device, or the design (HDF5) a printed sample was "
                        "printed from")
    s.add_argument("--json", action="store_true",
                   help="print one JSON object (on_chip_accuracy, software_accuracy, n_samples, and the family's "
                        "figures) instead of sentences")
    s.add_argument("--out-dir", type=Path, default=None,
                   help="also write the evaluation record (accuracy, per-class accuracy, confusion matrix, ...) "
                        "into this folder")
    add_options(s, options_of("evaluate"))
    s.set_defaults(handler=program_or_evaluate, stage="evaluate")

    for family in installed:
        if family.commands:
            families.load_object(family.commands, f"commands of family {family.name}")(sub)


def bench_family(bench_file: Path) -> DeviceFamily:
    """The family of the bench in ``bench_file``; a malformed file fails here, before anything is created."""
    from labctl.bench_file import load_bench_file

    return families.for_bench(load_bench_file(bench_file))


def list_families(args: argparse.Namespace) -> int:
    for family in families.installed().values():
        print(f"{family.name}: {family.summary}")
        print(f"  parts       {', '.join(family.parts)}")
        print(f"  bench roles {', '.join(family.bench_roles)}")
        print(f"  stages      {', '.join(family.step_options)}")
        print(f"  simulator   {family.simulator or '(none)'}")
        print(f"  recipes     {', '.join(f'{p}: {r.name}' for p, r in family.shipped_recipes.items()) or '(none)'}")
    return 0


def identify(args: argparse.Namespace) -> int:
    from labctl.bench_file import load_bench_file

    config = load_bench_file(args.bench)
    family = families.for_bench(config)
    description, identities = family.describe(args.bench, StepContext(bench_file=args.bench))
    if config.bridge_port is not None:
        print(f"bridge  {config.bridge_port}")
    for line in description.lines():
        print(line)
    for name, idn in identities.items():
        print(f"{name:<7} {idn}")
    roles = getattr(config, "roles", {})
    width = max(map(len, roles), default=0)
    for role, b in roles.items():
        print(f"role    {role:<{width}} -> {b.instrument}:{b.channel}")
    return 0


def characterise(args: argparse.Namespace) -> int:
    from labctl.progress import console

    family = bench_family(args.bench)
    options = options_from_args(family.step_options["characterise"], args)
    with progress_bars(not args.no_progress) as progress:
        context = StepContext(args.bench, progress, console.print, force=args.force)
        outcome = family.characterise(args.out, options, context)
    for line in outcome.summary_lines:
        print(line)
    return 0


def train(args: argparse.Namespace) -> int:
    from labctl.progress import console

    family = families.of_file(args.calibration, "characterisation file")
    options = options_from_args(family.step_options["train"], args)
    with progress_bars(not args.no_progress) as progress:
        context = StepContext(None, progress, console.print, force=args.force)
        outcome = family.train(args.calibration, args.out, options, context)
    print(outcome.summary_line)
    return 0


def program_or_evaluate(args: argparse.Namespace) -> int:
    family = bench_family(args.bench)
    trained_for = families.of_file(args.weights, "weights file")
    if trained_for.name != family.name:
        raise ConfigError(f"{args.weights} holds {trained_for.name} weights, but the bench holds a "
                          f"{family.name} device")
    options = options_from_args(family.step_options[args.stage], args)
    with progress_bars(not args.no_progress and not args.json) as progress:
        outcome = family.program(args.weights, options, StepContext(args.bench, progress),
                                 evaluate=args.stage == "evaluate")
    if args.out_dir is not None:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        family.write_records(args.out_dir, args.weights.stem, outcome)
    if args.json:
        print(json.dumps(outcome.as_json(), default=float))
    else:
        for line in outcome.summary_lines:
            print(line)
    if outcome.failure is not None:
        raise outcome.failure
    return 0
