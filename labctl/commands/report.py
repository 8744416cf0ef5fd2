"""report: a characterisation file summarised as an HTML page and a PNG."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from labctl import families
from labctl.commands import add_command
from labctl.errors import ConfigError


def register(sub) -> None:
    s = add_command(sub, "report", "Summarise a characterisation file: gain histograms per layer, fit residuals, "
                                   "worst neurons, linear range, drift; writes <name>-report.html (self-contained) "
                                   "and <name>-report.png. A run interrupted before its fits gives a partial report.",
                    "examples:\n  labctl report die.h5            # die-report.html, die-report.png next to die.h5\n"
                    "  labctl report die.h5 --out reports/")
    s.add_argument("calibration", type=Path, help="characterisation file (HDF5) written by labctl characterise")
    s.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="folder for the report files (default: the characterisation file's folder)")
    s.set_defaults(handler=report)


def report(args: argparse.Namespace) -> int:
    family = families.of_file(args.calibration, "characterisation file")
    if not family.reporter:
        raise ConfigError(f"device family {family.name} writes no characterisation report")
    written = families.load_object(family.reporter, f"reporter of family {family.name}")(args.calibration, args.out)
    for missing in written.missing:
        print(f"partial report: {missing}", file=sys.stderr)
    print(f"report: {' and '.join(map(str, written.paths))}")
    return 0
