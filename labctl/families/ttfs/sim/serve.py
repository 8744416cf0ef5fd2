"""What ``labctl sim serve`` and ``labctl demo`` start for a TTFS part (the family's simulator entry, docs/families.md).

The generic commands import this module by name only when a simulated bench
is asked for, so no pipeline module imports a simulator.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

from labctl.errors import ConfigError
from labctl.families.ttfs.sim.bench import WIRINGS, SimulatedTtfsBench
from labctl.families.ttfs.sim.parts import PARTS as _PARTS

PARTS = tuple(_PARTS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """TTFS's own ``sim serve`` options."""
    parser.add_argument("--wiring", default="default", choices=tuple(WIRINGS),
                        help="TTFS instrument set: default (two B2902A, contract 3.3), 2636b (2636B + two 2450, "
                             "SYNC into scope channel 2), swapped_rails (a wiring fault the power-up refuses)")


def serve_options(args: argparse.Namespace) -> dict:
    """The values of TTFS's own ``sim serve`` options, as keywords of :func:`start`."""
    return {"wiring": args.wiring}


class ServedTtfsBench:
    """A simulated TTFS bench as the generic commands see it."""

    def __init__(self, sim: SimulatedTtfsBench, label: str) -> None:
        self.sim = sim
        self.label = label

    def start(self) -> "ServedTtfsBench":
        self.sim.start()
        return self

    def stop(self) -> None:
        self.sim.stop()

    def __enter__(self) -> "ServedTtfsBench":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def write_bench_file(self, path: Path) -> Path:
        return self.sim.write_bench_file(path)

    def bench_seconds(self) -> float:
        """Bench time real hardware would have spent (the virtual clock's accounting)."""
        return self.sim.bench_seconds

    def save_truth(self, path: Path) -> None:
        """The die's hidden truth, for benchmarks that score a characterisation (a pickle: simulator-only data)."""
        Path(path).write_bytes(pickle.dumps(self.sim.die.truth))


def start(part: str, seed: int, *, realtime: bool = False, served: bool = True,
          wiring: str = "default") -> ServedTtfsBench:
    """A freshly drawn die of ``part`` on a simulated bench (``served``: the clock follows wall time when ahead)."""
    return ServedTtfsBench(SimulatedTtfsBench(part, seed, realtime=realtime, served=served, wiring=wiring),
                           f"simulated {part} seed {seed}")


def start_twin(characterisation: Path, **options) -> ServedTtfsBench:
    raise ConfigError("the TTFS family has no twin yet: replay and --from need a recorded die model")
