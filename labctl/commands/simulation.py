"""demo and sim serve: the commands that start a simulated bench (and so import a family's simulator).

They are family-blind: ``--part`` names a part, the family that makes it
supplies its simulator module (:attr:`DeviceFamily.simulator`), imported here
and nowhere in the pipeline.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from labctl import families
from labctl.commands import FORMATTER, add_command
from labctl.families import simulator_of


def register(sub) -> None:
    s = add_command(sub, "demo", "Start a simulated device, run its part's shipped recipe (characterise, train "
                                 "tailored and naive weights, program, evaluate on chip) and print the accuracies. "
                                 "PNC-TS (printed): characterise the print run, train variation-aware and baseline "
                                 "designs, print sample K0 of each in the same run and verify it. RCS-S (time-to-first-"
                                 "spike): train through the measured circuit and the mapped ANN baseline, program "
                                 "both and classify on chip (about 5 minutes).",
                    "examples:\n  labctl demo\n  labctl demo --part CMNA-L --seed 3\n  labctl demo --part PNC-TS --seed 7"
                    "\n  labctl demo --part RCS-S --seed 2")
    runnable = families.demo_parts()
    s.add_argument("--part", choices=runnable, default=runnable[0] if runnable else None)
    s.add_argument("--seed", type=int, default=1, help="which simulated device, or print run sim-<seed> (default 1)")
    s.add_argument("--dataset", default=None, help="default: the shipped recipe's (iris on CMNA-777, PNC-TS and "
                                                   "RCS-S, mnist on CMNA-L)")
    s.add_argument("--out-dir", type=Path, default=None, help="run folder (default runs/demo-<time>)")
    s.set_defaults(handler=demo)

    sim = add_command(sub, "sim", "The simulated bench: a device, its bridge and instruments on loopback sockets.",
                      "example:\n  labctl sim serve --part CMNA-777 --seed 3 --bench-out bench.toml")
    simsub = sim.add_subparsers(dest="sim_command", required=True, metavar="SIM_COMMAND")
    parts = families.simulated_parts()
    s = simsub.add_parser("serve", help="serve a simulated bench until interrupted", formatter_class=FORMATTER,
                          description="Serve a simulated bench (bridge + instruments over loopback TCP) until Ctrl-C.",
                          epilog="example:\n  labctl sim serve --part CMNA-777 --seed 3 --bench-out bench.toml")
    s.add_argument("--part", choices=parts, default=parts[0] if parts else None)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--bench-out", type=Path, default=Path("bench.toml"), help="where to write the bench file")
    s.add_argument("--realtime", action="store_true", help="wait out gates and integration times (default: virtual clock)")
    s.add_argument("--truth-out", type=Path, default=None,
                   help="also write the device's hidden truth (for tests and benchmarks only)")
    s.add_argument("--from", dest="from_file", type=Path, default=None, metavar="CHARACTERISATION_H5",
                   help="serve the digital twin of a characterised device (its die.h5) instead of a drawn one; "
                        "it answers with the recorded serial, so weights trained for that device are accepted")
    _add_simulator_arguments(s)
    s.set_defaults(handler=serve)
    for family in families.installed().values():  # a family's own sim commands (printed: sim print)
        add_sim_commands = getattr(simulator_of(family), "add_sim_commands", None) if family.simulator else None
        if add_sim_commands is not None:
            add_sim_commands(simsub)


def _add_simulator_arguments(parser: argparse.ArgumentParser) -> None:
    """Each family's own ``sim serve`` options. An option two families share (``--wiring``) appears once with the
    union of their choices; the serving family's ``serve_options`` refuses a value that is not its own."""
    seen: dict[str, argparse.Action] = {}
    for family in families.installed().values():
        if not family.simulator:
            continue
        scratch = argparse.ArgumentParser(add_help=False)
        simulator_of(family).add_arguments(scratch)
        for action in scratch._actions:
            shared = seen.get(action.dest)
            if shared is None:
                seen[action.dest] = parser._add_action(action)
            elif shared.choices is not None and action.choices is not None:
                shared.choices = tuple(dict.fromkeys((*shared.choices, *action.choices)))
                shared.help = f"{shared.help}; {action.help}"


def demo(args: argparse.Namespace) -> int:
    from labctl.demo import run_demo

    run_demo(part=args.part, seed=args.seed, dataset=args.dataset, out_dir=args.out_dir,
             show_progress=not args.no_progress)
    return 0


def serve(args: argparse.Namespace) -> int:
    if args.from_file is not None:
        family = families.of_file(args.from_file, "characterisation file")
        module = simulator_of(family)
        sim = module.start_twin(args.from_file, realtime=args.realtime, **module.serve_options(args))
    else:
        family = families.for_part(args.part)
        module = simulator_of(family)
        sim = module.start(args.part, args.seed, realtime=args.realtime, **module.serve_options(args))
    return serve_until_interrupted(sim, args.bench_out, args.truth_out)


def serve_until_interrupted(sim, bench_out: Path, truth_out: Path | None) -> int:
    """Write the bench file (and the truth, if asked), then serve until Ctrl-C: every ``sim`` subcommand ends so."""
    with sim:
        sim.write_bench_file(bench_out)
        if truth_out:
            sim.save_truth(truth_out)
        print(f"serving {sim.label}: bench file {bench_out.resolve()}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0
