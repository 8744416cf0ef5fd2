"""Commands only the CMNA family has: ``labctl check`` (does a stored characterisation still hold?)."""

from __future__ import annotations

import argparse
from pathlib import Path

from labctl.commands import BENCH_HELP, add_command


def register(sub) -> None:
    s = add_command(sub, "check", "CMNA: tell in seconds whether a stored characterisation still holds for the die "
                                  "on the bench (exit 0: holds, 1: characterise again).",
                    "example:\n  labctl check --bench bench.toml --calibration die.h5")
    s.add_argument("--bench", type=Path, required=True, help=BENCH_HELP)
    s.add_argument("--calibration", type=Path, required=True, help="characterisation file (HDF5) of the die")
    s.set_defaults(handler=check)


def check(args: argparse.Namespace) -> int:
    from labctl.families.cmna.workflow import run_check

    result = run_check(args.bench, args.calibration)
    print(result.message)
    return 0 if result.holds else 1
