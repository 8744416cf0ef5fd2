"""What ``labctl sim serve`` and ``labctl demo`` start for a TTFS part (the family's simulator entry, docs/families.md).

The generic commands import this module by name only when a simulated bench
is asked for, so no pipeline module imports a simulator.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterable

from labctl.errors import ConfigError
from labctl.sim.loopback_bench import ServedBench
from labctl.families.ttfs.sim.bench import WIRINGS, SimulatedTtfsBench
from labctl.families.ttfs.sim.parts import PARTS as _PARTS
from labctl.families.ttfs.sim.twin import StuckCell, twin_bench

PARTS = tuple(_PARTS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """TTFS's own ``sim serve`` options."""
    parser.add_argument("--wiring", default="default", choices=tuple(WIRINGS),
                        help="TTFS instrument set: default (two B2902A, contract 3.3), 2636b (2636B + two 2450, "
                             "SYNC into scope channel 2), swapped_rails (a wiring fault the power-up refuses)")


def serve_options(args: argparse.Namespace) -> dict:
    """The values of TTFS's own ``sim serve`` options, as keywords of :func:`start` and
    :func:`start_twin` (``--wiring`` is shared
    with other families: a wiring that is not TTFS's is refused here)."""
    if args.wiring not in WIRINGS:
        raise ConfigError(f"--wiring {args.wiring}: not a TTFS wiring (TTFS wirings: {', '.join(WIRINGS)})")
    return {"wiring": args.wiring}


def start(part: str, seed: int, *, realtime: bool = False, served: bool = True,
          wiring: str = "default") -> ServedBench:
    """A freshly drawn die of ``part`` on a simulated bench (``served``: the clock follows wall time when ahead)."""
    return ServedBench(SimulatedTtfsBench(part, seed, realtime=realtime, served=served, wiring=wiring),
                       f"simulated {part} seed {seed}")


def start_twin(characterisation: Path, *, realtime: bool = False, served: bool = True, wiring: str = "default",
               stuck_cells: Iterable[StuckCell] = ()) -> ServedBench:
    """The digital twin of a characterised die (:mod:`.twin`): it answers with the recorded serial;
    ``stuck_cells`` are cells a recorded programming read back short of their target (replay)."""
    sim = twin_bench(characterisation, stuck_cells=stuck_cells, realtime=realtime, served=served, wiring=wiring)
    return ServedBench(sim, f"twin of die {sim.die.chip.serial} ({characterisation})")
