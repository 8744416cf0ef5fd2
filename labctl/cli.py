"""The ``labctl`` entry point. Command names and options are a contract (issue 4).

Commands live in :mod:`labctl.commands`, one module per group. Exit statuses:

- 0: done;
- 2: an error a user can act on (:class:`labctl.errors.LabctlError`, one
  line), among them ``bench in use: ...`` when another client holds the bench
  (:mod:`labctl.bench_lock`; nothing was touched);
- 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP):
  interrupted; the bench has turned every output off and the data measured so
  far are on disk;
- 3: an output may still be on (an instrument that does not answer could not
  be turned off, or VDD was kept up because EXT_IN or MON could not be): a
  warning names each, whatever else happened; turn them off by hand.

After a run that opened a bench, the CLI says what the bench really left
(:class:`labctl.shutdown.ShutdownReport`): "every output is off" only when
every output went off, the outputs kept on as asked (``--keep-powered``), or
a warning. A command that names a bench file holds the bench's lock for the
whole run, and SIGINT, SIGTERM and SIGHUP lead to the same safe shutdown
whatever disposition labctl inherited (:mod:`labctl.shutdown`); ``labctl gui``
keeps the default dispositions (its Qt loop runs no Python between events).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Iterator

from labctl import __version__, shutdown
from labctl.commands import pipeline, report, session, simulation
from labctl.errors import LabctlError

COMMAND_GROUPS = (pipeline, simulation, session, report)
EXIT_ERROR = 2
EXIT_LEFT_ON = 3
"""An output may still be on: the warning names it."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="labctl", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Characterise a neural device (a CMNA die, a printed process), train weights or a design "
                    "tailored to it, program or print it, and evaluate it on the device.",
        epilog="Start with `labctl demo` (a simulated die, no hardware needed). Each command has --help.\n"
               "Exit status: 0 done, 2 error (one line), 128+N interrupted by signal N (130: Ctrl-C), "
               "3 an output may still be on (a warning names it).")
    p.add_argument("--version", action="version", version=f"labctl {__version__}")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (e.g. for logs)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "gui":  # Qt's event loop would hold a Python handler back until the next event
        return _run(args)
    with shutdown.signals_handled():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    interrupted: KeyboardInterrupt | None = None
    with shutdown.collecting() as reports:
        try:
            with _bench_held(args):
                status = args.handler(args)
        except LabctlError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = EXIT_ERROR
        except KeyboardInterrupt as exc:
            interrupted = exc  # alive until the report is out: later signals wait (labctl.shutdown)
            status = 128 + shutdown.signal_number(exc)
        return _say_what_was_left(shutdown.final_state(reports), status, interrupted)


@contextlib.contextmanager
def _bench_held(args: argparse.Namespace) -> Iterator[None]:
    """A command on a bench file holds that bench for its whole run, steps and gaps between them included.

    The bench objects of each step take the same lock again (re-entrant in one process), so
    another client is refused from the first moment to the last, before anything is touched
    (a bench file without ``family`` would otherwise be asked IDENTIFY first).
    """
    bench_file = getattr(args, "bench", None)
    if bench_file is None or args.command == "gui":
        yield
        return
    from labctl.bench_file import load_bench_file
    from labctl.bench_lock import lock_bench

    with lock_bench(load_bench_file(bench_file)):
        yield


def _say_what_was_left(reports: list[shutdown.ShutdownReport], status: int,
                       interrupted: KeyboardInterrupt | None) -> int:
    """Tell the truth about the outputs: what is still on (exit 3), what was kept on as asked, or all off."""
    left = [what for r in reports for what in r.left_on]
    kept = [what for r in reports for what in r.kept_on]
    if interrupted is not None:
        if not reports:
            print("interrupted before any output was switched; data measured so far are kept", file=sys.stderr)
        elif not left and not kept:
            print("interrupted: every output is off; data measured so far are kept", file=sys.stderr)
        else:
            print("interrupted; data measured so far are kept", file=sys.stderr)
    if kept:
        print(f"kept on as asked: {'; '.join(kept)}; every other output is off" if not left else
              f"kept on as asked: {'; '.join(kept)}", file=sys.stderr)
    if left:
        print(f"WARNING: could not turn everything off; still on: {'; '.join(left)}. "
              "Turn these off at the instruments.", file=sys.stderr)
        return EXIT_LEFT_ON
    return status


if __name__ == "__main__":
    sys.exit(main())
