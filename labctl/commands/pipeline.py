"""identify, characterise, train, program, evaluate: the pipeline's steps on a bench."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from labctl.commands import BENCH_HELP, add_command
from labctl.errors import ConfigError
from labctl.progress import progress_bars


def register(sub) -> None:
    s = add_command(sub, "identify", "Show what the bridge and each instrument report. Powers nothing up.",
                    "example:\n  labctl identify --bench bench.toml")
    s.add_argument("--bench", type=Path, required=True, help=BENCH_HELP)
    s.set_defaults(handler=identify)

    s = add_command(sub, "characterise", "Measure every neuron of the die; write raw data and fits to HDF5.",
                    "example:\n  labctl characterise --bench bench.toml --out die.h5 --method both")
    s.add_argument("--bench", type=Path, required=True, help=BENCH_HELP)
    s.add_argument("--out", type=Path, required=True, help="characterisation file to write (HDF5)")
    s.add_argument("--method", choices=("network", "mon", "both"), default="both",
                   help="network: through the output counters (the paper's way); mon: direct probing on MON; "
                        "both (default): each checks the other")
    s.add_argument("--configs", type=int, default=None,
                   help="chain configurations (default: 7 on CMNA-777, 8 on larger dies; with a target: the most)")
    s.add_argument("--levels", type=int, default=None, help="drive levels per configuration (default 6; 4 on large dies)")
    s.add_argument("--gate-ms", type=int, default=None, help="C2F gate per reading in ms (default 200; 100 on large dies)")
    s.add_argument("--nplc", type=float, default=None, help="SMU integration per reading in power-line cycles "
                                                             "(default 1; 0.2 on large dies)")
    s.add_argument("--target-a-plus", type=float, default=None, metavar="REL",
                   help="stop when every layer's a+ is known to this relative error (e.g. 0.01)")
    s.add_argument("--target-ratio", type=float, default=None, metavar="REL",
                   help="... and a-/a+ to this relative error (e.g. 0.02)")
    s.add_argument("--time-budget", type=float, default=None, metavar="S", help="stop after this much bench time")
    s.add_argument("--max-configs", type=int, default=40, help="configuration budget with a target (default 40)")
    s.add_argument("--linear-range", choices=("off", "input", "all"), default=None,
                   help="whose onset of compression to measure: input: the input layer's somas (EXT_IN); all: "
                        "every layer's, one more run per deeper layer, fed through synapses (CMNA-L: 3 runs, about "
                        "50 s; with a target, raise --max-configs by as many); off: none. Default: all on small "
                        "dies, input on large ones. Later operating points stay below the lowest onset found")
    s.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out without repeating finished configurations")
    s.set_defaults(handler=characterise)

    s = add_command(sub, "check", "Tell in seconds whether a stored characterisation still holds for the die on "
                                  "the bench (exit 0: holds, 1: characterise again).",
                    "example:\n  labctl check --bench bench.toml --calibration die.h5")
    s.add_argument("--bench", type=Path, required=True, help=BENCH_HELP)
    s.add_argument("--calibration", type=Path, required=True, help="characterisation file (HDF5) of the die")
    s.set_defaults(handler=check)

    s = add_command(sub, "train", "Train signed 3-bit weights tailored to a characterised die (or naive ones).",
                    "Large networks (MNIST on CMNA-L) are fine-tuned from a network pre-trained once per part and\n"
                    "data set on the contract's population of dies (the first run pre-trains for a few minutes,\n"
                    "later ones load it from the cache and take seconds); small ones are trained from scratch.\n\n"
                    "examples:\n  labctl train --calibration die.h5 --dataset iris --out weights.h5\n"
                    "  labctl train --calibration die.h5 --dataset iris --out naive.h5 --naive\n"
                    "  labctl train --calibration die.h5 --dataset samples.csv --label-column species --out w.h5")
    s.add_argument("--calibration", type=Path, required=True, help="characterisation file (HDF5) of the die")
    s.add_argument("--dataset", required=True,
                   help="iris, wine, breast_cancer, digits, mnist (5,000 images at 14x14), or a CSV path "
                        "(header row, numeric features, class in the last column or --label-column)")
    s.add_argument("--label-column", default=None, help="CSV data: the column that holds the class")
    s.add_argument("--out", type=Path, required=True, help="weights file to write (HDF5)")
    s.add_argument("--naive", action="store_true",
                   help="ignore the measured gains (nominal die): the baseline a lab without characterisation gets")
    s.add_argument("--method", choices=("auto", "finetune", "scratch"), default="auto",
                   help="finetune: adapt the pre-trained network in seconds; scratch: train for this die from "
                        "random weights (the paper's way; seconds for Iris, a minute for MNIST); auto (default): "
                        "scratch for small networks, finetune for large ones")
    s.add_argument("--cache-dir", type=Path, default=None,
                   help="where pre-trained networks are kept (default ~/.cache/labctl or $XDG_CACHE_HOME/labctl)")
    s.add_argument("--hidden", type=str, default=None, help="hidden layer sizes, e.g. 7 or 100,50 (default: the die's)")
    s.add_argument("--epochs", type=int, default=None, help="training epochs (default: per data set)")
    s.add_argument("--seed", type=int, default=0, help="seed for the data split and initialisation")
    s.set_defaults(handler=train)

    s = add_command(sub, "program", "Write weights into the die's latches, read them back and verify.",
                    "example:\n  labctl program --bench bench.toml --weights weights.h5 --keep-powered")
    s.add_argument("--bench", type=Path, required=True, help=BENCH_HELP)
    s.add_argument("--weights", type=Path, required=True, help="weights file (HDF5) trained for this die")
    s.add_argument("--keep-powered", action="store_true",
                   help="leave VDD on after a normal exit so the volatile latches keep the weights (EXT_IN, MON off)")
    _add_retraining_options(s)
    s.set_defaults(handler=program_or_evaluate, evaluate=False, dataset=None, json=False, gate_ms=20, out_dir=None)

    s = add_command(sub, "evaluate", "Program the weights, then classify the test split on the die (RUN_BATCH).",
                    "examples:\n  labctl evaluate --bench bench.toml --weights weights.h5 --json\n"
                    "  labctl evaluate --bench bench.toml --weights weights.h5 --calibration die.h5 --out-dir run/")
    s.add_argument("--bench", type=Path, required=True, help=BENCH_HELP)
    s.add_argument("--weights", type=Path, required=True, help="weights file (HDF5) trained for this die")
    s.add_argument("--dataset", default=None,
                   help="the data set the weights were trained on (default: the one named in the weights file)")
    s.add_argument("--gate-ms", type=int, default=20, help="C2F gate per pattern in ms (default 20)")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of a sentence")
    s.add_argument("--out-dir", type=Path, default=None,
                   help="also write evaluation_<weights>.json (accuracy, per-class accuracy, confusion matrix, "
                        "stuck bits) and confusion_<weights>.csv into this folder")
    _add_retraining_options(s)
    s.set_defaults(handler=program_or_evaluate, evaluate=True, keep_powered=False)


def _add_retraining_options(s) -> None:
    s.add_argument("--calibration", type=Path, default=None,
                   help="the characterisation the weights were trained on: programming then retrains around stuck "
                        "latch bits and fine-tunes on the die's own outputs for the training split (in-situ)")
    s.add_argument("--in-situ-rounds", type=int, default=1, metavar="N",
                   help="with --calibration: rounds of measuring the training split and fine-tuning (default 1)")
    s.add_argument("--programmed-out", type=Path, default=None, metavar="PATH",
                   help="with --calibration: where the weights the die ends up holding are saved "
                        "(default <weights>-programmed.h5; the input file is never overwritten)")


def identify(args: argparse.Namespace) -> int:
    from labctl.families.cmna.bench import Bench

    bench = Bench.from_file(args.bench).open()
    try:
        chip = bench.chip
        print(f"bridge  {bench.config.bridge_port}: die {chip.serial} ({chip.part}), layers "
              f"{'-'.join(map(str, chip.layer_sizes))}, firmware {chip.firmware[0]}.{chip.firmware[1]}, "
              f"protocol {chip.protocol}, max payload {chip.max_payload} B, max gate {chip.max_gate_ms} ms")
        status = bench.bridge.status()
        print(f"status  flags {status.flags!r}, die temperature {status.temperature_c:.2f} degC")
        for name, idn in bench.instrument_identities().items():
            print(f"{name:<7} {idn}")
        for role, b in bench.config.roles.items():
            print(f"role    {role:<8}-> {b.instrument}:{b.channel}")
    finally:
        bench.disconnect()
    return 0


def characterise(args: argparse.Namespace) -> int:
    from labctl.bench_file import load_bench_file
    from labctl.families.cmna.characterisation.characterise import Targets, linear_range_overrides
    from labctl.progress import console
    from labctl.families.cmna.workflow import run_characterisation

    load_bench_file(args.bench)  # a malformed bench file fails before anything is created
    overrides = {k: v for k, v in (("levels", args.levels), ("gate_ms", args.gate_ms), ("nplc", args.nplc))
                 if v is not None} | linear_range_overrides(args.linear_range)
    targets = Targets(a_plus=args.target_a_plus, ratio=args.target_ratio, time_budget_s=args.time_budget,
                      max_configurations=args.max_configs)
    with progress_bars(not args.no_progress) as progress:
        result = run_characterisation(args.bench, args.out, method=args.method, n_configs=args.configs,
                                      setting_overrides=overrides, targets=targets, resume=args.resume, progress=progress,
                                      announce=lambda m: console.print(m))
    s = result.summary
    print(f"characterisation written to {args.out} ({s['configurations']} configurations, "
          f"{s['mon_readings']} MON readings, {s['c2f_gates']} C2F gates)")
    for l, layer in enumerate(result.params.layers):
        info = s["layers"][l]
        ratio = info.get("rms_rel_std_ratio")
        print(f"  layer {l}: {len(layer.a_plus)} neurons, a+ spread {layer.a_plus.std():.1%}, "
              f"a+ known to {info['rms_rel_std_a_plus']:.2%}"
              + (f", a-/a+ to {ratio:.2%}" if ratio is not None else "") + f", flagged {info['flagged']}")
    drift = s.get("drift", {})
    if "rate_per_min" in drift:
        print(f"  gain drift {drift['rate_per_min']:+.3%} ± {drift['rate_std_per_min']:.3%} per minute over "
              f"{drift['times_s'][-1]:.0f} s of bench time ({len(drift['factor'])} reference runs)"
              + (": DRIFT FLAGGED, consider characterising again" if drift["flagged"] else ""))
    return 0


def check(args: argparse.Namespace) -> int:
    from labctl.families.cmna.workflow import run_check

    result = run_check(args.bench, args.calibration)
    print(result.message)
    return 0 if result.holds else 1


def train(args: argparse.Namespace) -> int:
    from labctl.progress import console
    from labctl.families.cmna.workflow import run_training

    hidden = tuple(int(v) for v in args.hidden.split(",")) if args.hidden else None
    with progress_bars(not args.no_progress) as progress:
        weights, report = run_training(args.calibration, args.dataset, args.out, naive=args.naive,
                                       method=args.method, hidden=hidden, epochs=args.epochs, seed=args.seed,
                                       label_column=args.label_column, cache_dir=args.cache_dir,
                                       progress=lambda epoch, epochs, loss, acc: progress("training", epoch, epochs),
                                       announce=lambda m: console.print(m))
    kind = "naive" if args.naive else "tailored"
    how = {"finetune": "pre-trained reference" if args.naive else "fine-tuned",
           "scratch": "trained from scratch"}[weights.metadata["training_method"]]
    print(f"{kind} weights for die {weights.die_serial} on {weights.dataset} ({how}, {report.seconds:.1f} s): "
          f"software accuracy {weights.software_accuracy:.1%} -> {args.out}")
    return 0


def program_or_evaluate(args: argparse.Namespace) -> int:
    from labctl.families.cmna.workflow import program_and_evaluate

    if args.calibration is None and (args.programmed_out is not None or args.in_situ_rounds != 1):
        raise ConfigError("--in-situ-rounds and --programmed-out need --calibration (the die's characterisation)")
    with progress_bars(not args.no_progress and not args.json) as progress:
        result = program_and_evaluate(args.bench, args.weights, evaluate=args.evaluate, dataset_name=args.dataset,
                                      calibration=args.calibration, in_situ_rounds=args.in_situ_rounds,
                                      programmed_out=args.programmed_out, keep_powered=args.keep_powered,
                                      gate_ms=args.gate_ms, progress=progress)
    report = result.program
    retraining = result.retraining
    if not args.json and retraining is not None and retraining.retrained:
        print(f"retrained {len(retraining.trainings)} time(s) ({len(retraining.defects)} stuck bit(s) compensated, "
              f"{len(retraining.estimates)} in-situ round(s)); the die holds {retraining.weights.dataset} weights "
              f"saved to {result.programmed_file}")
    if args.out_dir is not None:
        from labctl.families.cmna.workflow import write_on_chip_record

        args.out_dir.mkdir(parents=True, exist_ok=True)
        write_on_chip_record(args.out_dir, args.weights.stem, result)
    if not args.json:
        if retraining is not None and retraining.matches:
            print(f"programmed and verified: the latches hold the codes the weights were trained with"
                  f" ({len(retraining.defects)} stuck bit(s) built in)")
        elif report.verified:
            print(f"programmed and verified ({report.attempts} pass{'es' if report.attempts > 1 else ''})")
        else:
            print(f"programmed; {len(report.stuck)} stuck latch bit(s) will not take:")
            for b in report.stuck:
                print(f"  matrix {b.matrix} row {b.row} column {b.column} bit {b.bit} stuck at {b.held}")
    ev = result.evaluation
    if ev is not None:
        if args.json:
            print(json.dumps(ev.as_json() | {"stuck_bits": len(report.stuck)}))
        else:
            print(f"on-chip accuracy {ev.on_chip_accuracy:.1%} ({ev.n_samples} samples); "
                  f"software predicted {ev.software_accuracy:.1%}")
    return 0
