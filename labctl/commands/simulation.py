"""demo and sim serve: the commands that start a simulated bench (and so may import labctl.sim)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from labctl.commands import FORMATTER, add_command


def register(sub) -> None:
    s = add_command(sub, "demo", "Start a simulated die, characterise, train tailored and naive weights, "
                                 "program, evaluate on chip, and print the accuracies.",
                    "examples:\n  labctl demo\n  labctl demo --part CMNA-L --seed 3")
    s.add_argument("--part", choices=("CMNA-777", "CMNA-L"), default="CMNA-777")
    s.add_argument("--seed", type=int, default=1, help="which simulated die (default 1)")
    s.add_argument("--dataset", default=None, help="default: iris on CMNA-777, mnist on CMNA-L")
    s.add_argument("--out-dir", type=Path, default=None, help="run folder (default runs/demo-<time>)")
    s.set_defaults(handler=demo)

    sim = add_command(sub, "sim", "The simulated bench: a die, its bridge and SMUs on loopback sockets.",
                      "example:\n  labctl sim serve --part CMNA-777 --seed 3 --bench-out bench.toml")
    simsub = sim.add_subparsers(dest="sim_command", required=True, metavar="SIM_COMMAND")
    s = simsub.add_parser("serve", help="serve a simulated bench until interrupted", formatter_class=FORMATTER,
                          description="Serve a simulated bench (bridge + SMUs over loopback TCP) until Ctrl-C.",
                          epilog="example:\n  labctl sim serve --part CMNA-777 --seed 3 --bench-out bench.toml")
    s.add_argument("--part", choices=("CMNA-777", "CMNA-L"), default="CMNA-777")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--bench-out", type=Path, default=Path("bench.toml"), help="where to write the bench file")
    s.add_argument("--truth-out", type=Path, default=None,
                   help="also write the die's hidden truth (for tests and benchmarks only)")
    s.add_argument("--wiring", default="default", choices=("default", "2636b", "b2901a"),
                   help="instrument set: default (2450 + B2902A), 2636b (2636B + 2450), b2901a (three B2901A)")
    s.add_argument("--realtime", action="store_true", help="wait out gates and integration times (default: virtual clock)")
    s.add_argument("--from", dest="from_file", type=Path, default=None, metavar="DIE_H5",
                   help="serve the digital twin of a characterised die (its die.h5) instead of a drawn one; "
                        "it answers with the recorded serial, so weights trained for that die are accepted")
    s.set_defaults(handler=serve)


def demo(args: argparse.Namespace) -> int:
    from labctl.demo import run_demo

    run_demo(part=args.part, seed=args.seed, dataset=args.dataset, out_dir=args.out_dir,
             show_progress=not args.no_progress)
    return 0


def serve(args: argparse.Namespace) -> int:
    from labctl.families.cmna.sim.bench import SimulatedBench
    from labctl.families.cmna.sim.twin import twin_bench

    if args.from_file is not None:
        sim = twin_bench(args.from_file, realtime=args.realtime, wiring=args.wiring)
        what = f"twin of die {sim.die.chip.serial} ({args.from_file})"
    else:
        sim = SimulatedBench(args.part, args.seed, realtime=args.realtime, wiring=args.wiring)
        what = f"simulated {args.part} seed {args.seed}"
    with sim:
        sim.write_bench_file(args.bench_out)
        if args.truth_out:
            sim.die.truth.save(args.truth_out)
        print(f"serving {what}: bench file {args.bench_out.resolve()}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0
