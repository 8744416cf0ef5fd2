"""The ``labctl`` command line. Command names and options are a contract (issue 4).

Errors a user can act on (:class:`labctl.errors.LabctlError`) are printed as
one line and exit with status 2; Ctrl-C exits with 130 after the bench has
turned every output off and the data measured so far are on disk.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from labctl import __version__
from labctl.errors import LabctlError

EPILOG_EXAMPLES = {
    "identify": "example:\n  labctl identify --bench bench.toml",
    "characterise": "example:\n  labctl characterise --bench bench.toml --out die.h5 --method both",
    "train": "examples:\n  labctl train --calibration die.h5 --dataset iris --out weights.h5\n"
             "  labctl train --calibration die.h5 --dataset iris --out naive.h5 --naive",
    "program": "example:\n  labctl program --bench bench.toml --weights weights.h5 --keep-powered",
    "evaluate": "example:\n  labctl evaluate --bench bench.toml --weights weights.h5 --dataset iris --json",
    "demo": "examples:\n  labctl demo\n  labctl demo --part CMNA-L --seed 3",
    "sim serve": "example:\n  labctl sim serve --part CMNA-777 --seed 3 --bench-out bench.toml",
}


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="labctl", formatter_class=fmt,
        description="Characterise an analog neural die (CMNA), train weights tailored to it, program and evaluate it.",
        epilog="Start with `labctl demo` (a simulated die, no hardware needed). Each command has --help.")
    p.add_argument("--version", action="version", version=f"labctl {__version__}")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. for logs)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=help_, epilog=EPILOG_EXAMPLES.get(name), formatter_class=fmt)

    bench_help = "bench file (TOML): bridge port, instruments and roles; see docs/bench-file.md"
    s = cmd("identify", "Show what the bridge and each instrument report. Powers nothing up.")
    s.add_argument("--bench", type=Path, required=True, help=bench_help)

    s = cmd("characterise", "Measure every neuron of the die and write raw data and fits to an HDF5 file.")
    s.add_argument("--bench", type=Path, required=True, help=bench_help)
    s.add_argument("--out", type=Path, required=True, help="characterisation file to write (HDF5)")
    s.add_argument("--method", choices=("network", "mon", "both"), default="both",
                   help="network: through the output counters (paper); mon: direct probing on MON; both (default): each checks the other")
    s.add_argument("--configs", type=int, default=None, help="chain configurations (default: 7 on CMNA-777, 8 on larger dies)")
    s.add_argument("--levels", type=int, default=6, help="drive levels per configuration (default 6)")
    s.add_argument("--gate-ms", type=int, default=200, help="C2F gate per reading in ms (default 200)")

    s = cmd("train", "Train signed 3-bit weights tailored to a characterised die (or naive ones).")
    s.add_argument("--calibration", type=Path, required=True, help="characterisation file (HDF5) of the die")
    s.add_argument("--dataset", required=True, help="iris, wine, breast_cancer, digits, mnist, or a CSV path")
    s.add_argument("--out", type=Path, required=True, help="weights file to write (HDF5)")
    s.add_argument("--naive", action="store_true", help="ignore the measured gains (nominal die): the baseline")
    s.add_argument("--hidden", type=str, default=None, help="hidden layer sizes, e.g. 7 or 100,50 (default: the die's)")
    s.add_argument("--epochs", type=int, default=None, help="training epochs (default: per data set)")
    s.add_argument("--seed", type=int, default=0, help="seed for the data split and initialisation")

    s = cmd("program", "Write weights into the die's latches, read back and verify.")
    s.add_argument("--bench", type=Path, required=True, help=bench_help)
    s.add_argument("--weights", type=Path, required=True, help="weights file (HDF5) trained for this die")
    s.add_argument("--keep-powered", action="store_true",
                   help="leave VDD on after a normal exit so the volatile latches keep the weights (EXT_IN, MON off)")

    s = cmd("evaluate", "Program the weights, then classify the test split on the die through RUN_BATCH.")
    s.add_argument("--bench", type=Path, required=True, help=bench_help)
    s.add_argument("--weights", type=Path, required=True, help="weights file (HDF5) trained for this die")
    s.add_argument("--dataset", required=True, help="the data set the weights were trained on")
    s.add_argument("--gate-ms", type=int, default=20, help="C2F gate per pattern in ms (default 20)")
    s.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    s = cmd("demo", "Start a simulated die, characterise, train tailored and naive weights, program, evaluate.")
    s.add_argument("--part", choices=("CMNA-777", "CMNA-L"), default="CMNA-777")
    s.add_argument("--seed", type=int, default=1, help="which simulated die (default 1)")
    s.add_argument("--dataset", default=None, help="default: iris on CMNA-777, mnist on CMNA-L")
    s.add_argument("--out-dir", type=Path, default=None, help="run folder (default runs/demo-<time>)")

    sim = cmd("sim", "The simulated bench: a die, its bridge and SMUs on loopback sockets.")
    simsub = sim.add_subparsers(dest="sim_command", required=True, metavar="SIM_COMMAND")
    s = simsub.add_parser("serve", help="serve a simulated bench until interrupted", formatter_class=fmt,
                          description="Serve a simulated bench (bridge + SMUs over loopback TCP) until Ctrl-C.",
                          epilog=EPILOG_EXAMPLES["sim serve"])
    s.add_argument("--part", choices=("CMNA-777", "CMNA-L"), default="CMNA-777")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--bench-out", type=Path, default=Path("bench.toml"), help="where to write the bench file")
    s.add_argument("--truth-out", type=Path, default=None, help="also write the die's hidden truth (tests, benchmarks)")
    s.add_argument("--wiring", default="default", help="instrument set: default (2450 + B2902A), 2636b, b2901a")
    s.add_argument("--realtime", action="store_true", help="wait out gates and integration times (default: virtual clock)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except LabctlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: every output is off; data measured so far are kept", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from labctl.progress import progress_bars

    show = not args.no_progress
    if args.command == "identify":
        return _identify(args)
    if args.command == "characterise":
        from labctl.calibration.probing import ProbeSettings
        from labctl.workflow import run_characterisation

        settings = ProbeSettings(levels=args.levels, gate_ms=args.gate_ms)
        with progress_bars(show) as progress:
            result = run_characterisation(args.bench, args.out, method=args.method, n_configs=args.configs,
                                          settings=settings, progress=progress)
        _print_characterisation(result, args.out)
        return 0
    if args.command == "train":
        from labctl.workflow import run_training

        hidden = tuple(int(v) for v in args.hidden.split(",")) if args.hidden else None
        weights, report = run_training(args.calibration, args.dataset, args.out, naive=args.naive, hidden=hidden,
                                       epochs=args.epochs, seed=args.seed)
        kind = "naive" if args.naive else "tailored"
        print(f"{kind} weights for die {weights.die_serial} on {weights.dataset}: "
              f"software accuracy {weights.software_accuracy:.1%} -> {args.out}")
        return 0
    if args.command in ("program", "evaluate"):
        from labctl.workflow import program_and_evaluate

        with progress_bars(show and not getattr(args, "json", False)) as progress:
            result = program_and_evaluate(args.bench, args.weights,
                                          dataset_name=getattr(args, "dataset", None),
                                          keep_powered=getattr(args, "keep_powered", False),
                                          gate_ms=getattr(args, "gate_ms", 20), progress=progress)
        _print_program(result.program)
        if result.evaluation is not None:
            ev = result.evaluation
            if args.json:
                print(json.dumps(ev.as_json()))
            else:
                print(f"on-chip accuracy {ev.on_chip_accuracy:.1%} ({ev.n_samples} samples); "
                      f"software predicted {ev.software_accuracy:.1%}")
        return 0
    if args.command == "demo":
        from labctl.demo import run_demo

        run_demo(part=args.part, seed=args.seed, dataset=args.dataset, out_dir=args.out_dir, show_progress=show)
        return 0
    if args.command == "sim":
        return _sim_serve(args)
    raise AssertionError(args.command)


def _identify(args: argparse.Namespace) -> int:
    from labctl.bench import Bench

    bench = Bench.from_file(args.bench)
    bench.open()
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
        bench._close_connections()
    return 0


def _print_characterisation(result, out: Path) -> None:
    print(f"characterisation written to {out} ({result.summary['configurations']} configurations, "
          f"{result.summary['mon_readings']} MON readings, {result.summary['c2f_gates']} C2F gates)")
    for l, layer in enumerate(result.params.layers):
        info = result.summary["layers"][l]
        print(f"  layer {l}: {len(layer.a_plus)} neurons, a+ spread {layer.a_plus.std():.1%}, "
              f"typical error {info['rms_rel_std_a_plus']:.2%}, flagged {info['flagged']}")


def _print_program(report) -> None:
    if report.verified:
        print(f"programmed and verified ({report.attempts} pass{'es' if report.attempts > 1 else ''})")
    else:
        print(f"programmed; {len(report.stuck)} stuck latch bit(s) will not take:")
        for b in report.stuck:
            print(f"  matrix {b.matrix} row {b.row} column {b.column} bit {b.bit} stuck at {b.held}")


def _sim_serve(args: argparse.Namespace) -> int:
    from labctl.sim.bench import SimulatedBench

    with SimulatedBench(args.part, args.seed, realtime=args.realtime, wiring=args.wiring) as sim:
        sim.write_bench_file(args.bench_out)
        if args.truth_out:
            sim.die.truth.save(args.truth_out)
        print(f"serving simulated {args.part} seed {args.seed}: bench file {args.bench_out.resolve()}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
