"""Subcommands of ``labctl``: one module per group, each with a ``register(subparsers)``.

A command module adds its parsers and sets ``handler`` (a function taking the
parsed arguments and returning the exit status) with ``set_defaults``; the
entry point (:mod:`labctl.cli`) knows nothing else about it.
"""

from __future__ import annotations

import argparse

FORMATTER = argparse.RawDescriptionHelpFormatter
BENCH_HELP = "bench file (TOML): bridge port, instruments and roles; see docs/bench-file.md"


def add_command(sub, name: str, help_: str, example: str) -> argparse.ArgumentParser:
    """A subcommand whose --help starts with what it does and ends with an example."""
    return sub.add_parser(name, help=help_, description=help_, epilog=example, formatter_class=FORMATTER)
