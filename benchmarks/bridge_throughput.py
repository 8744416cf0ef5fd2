"""RUN_BATCH throughput over loopback: the software path against the gate-bound ceiling.

Starts a simulated CMNA-777 and CMNA-L bench (die with a 1.8 V supply, bridge
server on a loopback port, virtual clock: gates cost no wall time), programs
random weights and streams random DAC patterns through ``Bridge.run_batch``.

It prints, per part, how many patterns fit one request (contract section 4:
request and answer within the maximum payload), the software path's
patterns/s (client + link + server + die model), how much of that time the die
model alone takes, and the ceiling a real bench reaches when every pattern
costs one gate: 1000 / gate_ms patterns/s.

Usage: ``python benchmarks/bridge_throughput.py [--patterns N] [--gates 1 10 100]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from labctl.families.cmna.link import Bridge
from labctl.families.cmna.sim.bridge_server import BridgeServer
from labctl.sim.clock import VirtualClock
from labctl.families.cmna.sim.die import PARTS, SimulatedDie
from labctl.sim.pads import OperatingPoint, Pad, solve_operating_point

TARGET_PATTERNS_PER_S = {"CMNA-L": 5000}
"""Requirement for the software path (2 CMNA-L patterns per 1024-byte request)."""


class Supply:
    """The supply SMU at 1.8 V, 2 mA compliance (contract section 3), reduced to its operating point."""

    def drive(self, pad: Pad) -> OperatingPoint:
        return solve_operating_point(pad.current_into, "V", 1.8, 2e-3, True)


def bench_part(part: str, n_patterns: int, gate_ms: int, seed: int = 1) -> dict[str, float]:
    die = SimulatedDie(part, seed=seed, clock=VirtualClock())
    die.pads["VDD"].attach(Supply())
    rng = np.random.default_rng(seed)
    with BridgeServer(die) as server, Bridge(server.url) as bridge:
        chip = bridge.identify()
        for m in range(chip.n_matrices):
            bridge.write_weights(m, rng.integers(0, 16, chip.matrix_shape(m), dtype=np.uint8))
        patterns = rng.integers(0, 2000, (n_patterns, chip.n_inputs))
        bridge.run_batch(patterns[:50], gate_ms)  # warm-up
        requests = []
        bridge.transcript = requests.append
        start = time.perf_counter()
        bridge.run_batch(patterns, gate_ms)
        elapsed = time.perf_counter() - start
        bridge.transcript = None
        per_request = max(len(r.request) - 4 for r in requests) // (2 * chip.n_inputs)
        chunks = [patterns[i:i + per_request] for i in range(0, min(n_patterns, 2000), per_request)]
        start = time.perf_counter()
        for chunk in chunks:
            die.run_batch(gate_ms, chunk)
        die_s_per_pattern = (time.perf_counter() - start) / sum(len(c) for c in chunks)
    return {"per_request": per_request, "requests_per_s": len(requests) / elapsed,
            "patterns_per_s": n_patterns / elapsed, "die_share": die_s_per_pattern * n_patterns / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patterns", type=int, default=10_000, help="patterns per part (default 10000)")
    parser.add_argument("--gates", type=int, nargs="+", default=[1, 10, 100], help="gates in ms for the ceiling")
    args = parser.parse_args()
    ceilings = [f"gate {g} ms" for g in args.gates]
    header = f"{'part':<9} {'pat/req':>7} {'req/s':>8} {'software pat/s':>15} {'die model':>10}  " + \
        "  ".join(f"{c:>12}" for c in ceilings)
    print(header)
    print("-" * len(header))
    for part in PARTS:
        r = bench_part(part, args.patterns, args.gates[0])
        target = TARGET_PATTERNS_PER_S.get(part)
        verdict = "" if target is None else f"   target {target}: {'met' if r['patterns_per_s'] >= target else 'MISSED'}"
        print(f"{part:<9} {r['per_request']:>7d} {r['requests_per_s']:>8.0f} {r['patterns_per_s']:>15.0f} "
              f"{r['die_share']:>9.0%}  " + "  ".join(f"{1000 / g:>12.0f}" for g in args.gates) + verdict)
    print("\nsoftware pat/s: client + loopback + bridge server + die model, virtual clock (no gate time).")
    print("die model: share of that time spent in SimulatedDie.run_batch itself.")
    print("gate columns: the ceiling of a real bench, one gate per pattern (1000 / gate_ms patterns/s).")


if __name__ == "__main__":
    main()
