"""Every wiring of the simulated bench works through the same Bench code (contract sections 3 and 4).

A bench file may bind the roles to any instrument channel: a 2450 plus a
B2902A (default), a 2636B serving EXT_IN and MON from its two channels with a
2450 on VDD (the usual 2636B wiring), or three single-channel B2901As. The
Bench opens each from its bench file, powers the die, drives a known current
into EXT_IN and reads the copy on MON; the reading must be the physics of
section 1 (MON = mon_gain x a+ x input) for the channel driven, whatever
instruments carry the roles.
"""

from __future__ import annotations

import numpy as np
import pytest

from labctl.families.cmna.bench import Bench
from labctl.families.cmna.protocol import StatusFlag
from labctl.families.cmna.sim.bench import SimulatedBench

EXT_IN_A = 100e-9
READINGS = 5


# channels whose a+ differs from every other layer-0 neuron's by more than the reading's tolerance
# (seed 5: channel 6 lies 0.8 % from channel 2, closer than MON can tell apart, so b2901a drives channel 5)
@pytest.mark.parametrize("wiring, channel", [("default", 3), ("2636b", 0), ("b2901a", 5)])
def test_wiring_powers_drives_reads_and_powers_down(tmp_path, wiring: str, channel: int) -> None:
    with SimulatedBench("CMNA-777", seed=5, wiring=wiring) as sim:
        bench_file = sim.write_bench_file(tmp_path / f"{wiring}.toml")
        with Bench.from_file(bench_file) as bench:
            bench.power_up()
            # VDD at the pad, as the supply SMU measures it (readings carry the die's 0.2-1 % noise),
            # and the bridge agrees the supply is in range
            truth = sim.die.truth
            vdd = np.mean([bench.read("supply", "voltage") for _ in range(READINGS)])
            assert vdd == pytest.approx(1.80, abs=4 * truth.noise_frac * 1.8 / np.sqrt(READINGS))
            assert not bench.bridge.status().flags & StatusFlag.SUPPLY_OUT_OF_RANGE
            assert sim.channel_of("VDD").output_on and sim.channel_of("VDD").mode == "V"

            bench.route_ext_in(channel)
            bench.set_ext_in(EXT_IN_A)
            bench.bridge.set_monitor(0, channel)
            mon = np.array([bench.read_mon() for _ in range(READINGS)])
            # EXT_IN is a current source in its linear range: it forces 100 nA and sits below VDD
            assert sim.channel_of("EXT_IN").mode == "I"
            assert 0.0 < bench.read("source", "voltage") < 1.8

            # section 1: MON = mon_gain x d x (d x a+ x (input + bias offset at code 0 + leakage))
            d = truth.drift_factor(sim.clock.now())
            soma_input_a = EXT_IN_A + truth.bias_offset_a[channel]
            expected = truth.mon_gain * d * d * truth.a_plus[0][channel] * (soma_input_a + truth.leak_a[0][channel])
            sigma = truth.noise_frac * expected / np.sqrt(READINGS)
            # 4 sigma of the mean of READINGS readings (die noise 0.2-1 %) plus 0.1 %: 1.0 % of MON on seed 5
            tolerance = 4 * sigma + 1e-3 * expected
            assert abs(mon.mean() - expected) < tolerance, (mon.mean(), expected)
            # and the channel's own gain shows: the same input on any other neuron of layer 0 would read
            # outside that band (seed 5: the nearest other a+ is 11 %, 3.8 % and 3.9 % away for channels 3, 0, 5)
            others = np.delete(truth.a_plus[0], channel)
            other_mon = expected * others / truth.a_plus[0][channel]
            assert np.min(np.abs(other_mon - mon.mean())) > tolerance, (mon.mean(), other_mon, tolerance)

            bench.power_down()
            for pad in ("VDD", "EXT_IN", "MON"):
                assert not sim.channel_of(pad).output_on, pad
            assert not sim.die.damaged, sim.die.damage_cause
            status = bench.bridge.status()
            assert status.flags & StatusFlag.SUPPLY_OUT_OF_RANGE  # unpowered now
            assert not status.flags & StatusFlag.OVERSTRESS
