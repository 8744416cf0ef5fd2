"""What ``labctl sim serve`` and ``labctl demo`` start for a CMNA part (the family's simulator entry).

The generic commands import this module by name (``CmnaFamily.simulator``)
only when a simulated bench is asked for, so no pipeline module imports a
simulator.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from labctl.errors import ConfigError
from labctl.sim.loopback_bench import ServedBench
from labctl.families.cmna.programming import StuckBit
from labctl.families.cmna.sim.bench import WIRINGS, SimulatedBench

PARTS = ("CMNA-777", "CMNA-L")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CMNA's own ``sim serve`` options."""
    parser.add_argument("--wiring", default="default", choices=tuple(WIRINGS),
                        help="CMNA instrument set: default (2450 + B2902A), 2636b (2636B + 2450), b2901a (three "
                             "B2901A)")


def serve_options(args: argparse.Namespace) -> dict:
    """The values of CMNA's own ``sim serve`` options, as keywords of :func:`start` and :func:`start_twin`
    (``--wiring`` is shared with other families: a wiring that is not CMNA's is refused here)."""
    if args.wiring not in WIRINGS:
        raise ConfigError(f"--wiring {args.wiring}: not a CMNA wiring (CMNA wirings: {', '.join(WIRINGS)})")
    return {"wiring": args.wiring}


def start(part: str, seed: int, *, realtime: bool = False, served: bool = True,
          wiring: str = "default") -> ServedBench:
    """A freshly drawn die of ``part``.

    ``served``: the bench's clock never stands still (STATUS uptime, temperature
    and drift follow wall time when it runs ahead of the accounted gates), as
    for a bench other clients talk to; ``served=False`` keeps time purely
    virtual, so a run (the demo) reproduces for its seed.
    """
    return ServedBench(SimulatedBench(part, seed, realtime=realtime, served=served, wiring=wiring),
                       f"simulated {part} seed {seed}")


def start_twin(characterisation: Path, *, realtime: bool = False, served: bool = True, wiring: str = "default",
               stuck_bits: list[StuckBit] | None = None) -> ServedBench:
    """The digital twin of a characterised die: it answers with the recorded serial; ``stuck_bits`` are
    latch bits a recorded programming found stuck (replay)."""
    from labctl.families.cmna.sim.twin import twin_bench

    sim = twin_bench(characterisation, stuck_bits=stuck_bits, realtime=realtime, served=served, wiring=wiring)
    return ServedBench(sim, f"twin of die {sim.die.chip.serial} ({characterisation})")
