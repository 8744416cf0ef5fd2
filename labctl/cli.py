"""The ``labctl`` entry point. Command names and options are a contract (issue 4).

Commands live in :mod:`labctl.commands`, one module per group. Errors a user
can act on (:class:`labctl.errors.LabctlError`) print as one line and exit
with status 2; Ctrl-C exits with 130 after the bench has turned every output
off and the data measured so far are on disk.
"""

from __future__ import annotations

import argparse
import sys

from labctl import __version__
from labctl.commands import pipeline, report, session, simulation
from labctl.errors import LabctlError

COMMAND_GROUPS = (pipeline, simulation, session, report)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="labctl", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Characterise an analog neural die (CMNA), train weights tailored to it, program and evaluate it.",
        epilog="Start with `labctl demo` (a simulated die, no hardware needed). Each command has --help.")
    p.add_argument("--version", action="version", version=f"labctl {__version__}")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. for logs)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except LabctlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: every output is off; data measured so far are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
