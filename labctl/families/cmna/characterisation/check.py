"""Does a stored characterisation still hold for the die on the bench? (`labctl check`)

Repeats the first recorded chain configuration at its recorded drive levels
and compares every reading with the one recorded then: a die that drifted,
was damaged, or is another die shows up within seconds. A common factor
(drift of all gains, which per-layer normalisation absorbs) is reported
separately from neuron-by-neuron changes, which are what would spoil tailored
weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from labctl.families.cmna.bench import Bench
from labctl.families.cmna.characterisation.configurations import config_from_params
from labctl.families.cmna.characterisation.probing import PILOT_LEVEL, ProbeSettings, Prober, chain_nodes
from labctl.errors import DataFileError
from labctl.families.cmna.storage import read_chip, read_raw

MAX_NODES = 40
"""Neurons re-read per check: enough to see a change, few enough to take seconds."""
COMMON_LIMIT = 0.02
"""A common gain change above 2 % means the die's operating point moved (temperature, supply)."""
NEURON_LIMIT = 0.03
"""A neuron whose reading changed by more than 3 % beyond the common factor no longer fits its gain."""


@dataclass
class CheckResult:
    holds: bool
    common_change: float
    worst_neuron_change: float
    worst_neuron: tuple[int, int]
    n_readings: int
    message: str


def check_characterisation(bench: Bench, calibration_path) -> CheckResult:
    recorded_chip = read_chip(calibration_path)
    if recorded_chip.serial != bench.chip.serial:
        raise DataFileError(f"{calibration_path} characterises die {recorded_chip.serial!r}; "
                            f"the bench holds die {bench.chip.serial!r}")
    raw = read_raw(calibration_path)
    done = raw.finished_configs()
    chains = [r for r in raw.configs if r["kind"] == b"chain" and int(r["config"]) in done]
    if not chains:
        raise DataFileError(f"{calibration_path}: no finished chain configuration to repeat")
    row = chains[0]
    params = json.loads(row["params"])
    config_id = int(row["config"])
    config = config_from_params(bench.chip, "chain", params)
    recorded = raw.mon[(raw.mon["config"] == config_id) & (raw.mon["level"] != PILOT_LEVEL)]
    if not len(recorded):
        raise DataFileError(f"{calibration_path}: the chain configuration has no MON readings to compare with")
    nodes = chain_nodes(config)
    step = max(1, len(nodes) // MAX_NODES)
    picked = set(nodes[::step])
    bench.power_up()
    bench.bridge.reset()
    prober = Prober(bench, None, ProbeSettings())  # a check records nothing: the file stays as it was
    prober.program(config.codes)
    new, old, who = [], [], []
    for code in np.unique(recorded["drive"]):
        prober.drive_chain(config, int(code))
        for l, n in sorted(picked):
            hit = recorded[(recorded["drive"] == code) & (recorded["layer"] == l) & (recorded["neuron"] == n)]
            if len(hit):
                bench.bridge.set_monitor(l, n)
                new.append(bench.read_mon())
                old.append(float(hit["current_a"][0]))
                who.append((l, n))
    bench.bridge.set_inputs([0] * bench.chip.n_inputs)
    new_a, old_a = np.array(new), np.array(old)
    keep = old_a > 1e-9  # readings of neurons that are on; off ones show leakage only
    ratio = new_a[keep] / old_a[keep]
    common = float(np.median(ratio)) - 1.0
    change = ratio / (1.0 + common) - 1.0
    worst = int(np.argmax(np.abs(change)))
    worst_who = [w for w, k in zip(who, keep) if k][worst]
    # single readings are noisy (0.2 to 1 %, section 1): a neuron counts as changed beyond 5 robust sigma
    robust_sigma = 1.4826 * float(np.median(np.abs(change - np.median(change))))
    holds = abs(common) <= COMMON_LIMIT and abs(change[worst]) <= max(NEURON_LIMIT, 5 * robust_sigma)
    verdict = "holds" if holds else "no longer holds: characterise again"
    message = (f"characterisation {verdict} (common gain change {common:+.2%}, largest neuron change "
               f"{change[worst]:+.2%} at layer {worst_who[0]} neuron {worst_who[1]}, {int(keep.sum())} readings)")
    return CheckResult(holds, common, float(change[worst]), worst_who, int(keep.sum()), message)
