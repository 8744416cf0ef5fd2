"""A bench file with roles swapped is refused before any pad leaves its rating (contract section 4).

The issue: with two roles swapped in a valid bench file, ``identify`` passed
and ``characterise`` ramped VDD to 1.8 V on the wrong pad; the die was
overstressed and the message blamed "the supply wiring". Now
:meth:`Bench.power_up` proves the wiring first (:mod:`labctl.families.cmna.wiring`):
the unpowered VDD pad alone draws nanoamperes at 1.5 mV, a routed EXT_IN settles
near 0.65 V under 20 nA, and the MON copy follows SET_MONITOR.

Every pad's operating point is watched after every command an emulated SMU
receives and after every bridge operation (:class:`PadWatch`): VDD never above
1.80 V nor 2 mA, EXT_IN never above VDD (but for the contract's 2 mV probe),
never above 1.8 V, never more than 500 nA; MON never outside 0 to 0.9 V, never
more than 500 nA. These are the *recommended* ratings, stricter than the
damage the simulated die models.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest

from labctl.cli import main
from labctl.errors import SafetyError
from labctl.families.cmna import ratings
from labctl.families.cmna.bench import Bench
from labctl.families.cmna.latch_codes import signed_to_nibbles
from labctl.families.cmna.protocol import StatusFlag
from labctl.families.cmna.sim.bench import WIRINGS, SimulatedBench
from labctl.families.cmna.sim.die import SimulatedDie
from labctl.families.cmna.sim.die_pads import EXT_IN_ABS_MAX_A
from labctl.sim.pads import OperatingPoint, Pad, solve_operating_point

PADS = ("VDD", "EXT_IN", "MON")
ROLES = ("supply", "source", "monitor")
PAD_OF_ROLE = dict(zip(ROLES, PADS))
PERMUTATIONS = list(itertools.permutations(PADS))
SEED = 7
EPS_V = 1e-6
EPS_A = 1e-12
READING = re.compile(r"MEAS[a-z]*:(CURR|VOLT)[a-z]*\?|measure\.[iv]\(\)", re.IGNORECASE)
"""A reading query in the section 5 subsets (SCPI ``:MEASure:CURRent?``, TSP ``smua.measure.i()``)."""


# -- the watch ------------------------------------------------------------------------------------


class PadWatch:
    """Checks every pad against its recommended rating after each SMU command and bridge operation."""

    def __init__(self, sim: SimulatedBench) -> None:
        self.sim = sim
        self.violations: list[str] = []
        self.vdd_max_v = 0.0
        self.measurements = 0
        for name, emulator in sim.emulators.items():
            emulator.execute = self._wrap_instrument(name, emulator.execute)
        for op in ("route_ext_in", "set_monitor", "set_dac", "reset", "write_latches"):
            setattr(sim.die, op, self._wrap_bridge(op, getattr(sim.die, op)))

    def _wrap_instrument(self, name: str, execute):
        def watched(line: str):
            answer = execute(line)
            if READING.search(line):
                self.measurements += 1
            self.check(f"{name} {line!r}")
            return answer
        return watched

    def _wrap_bridge(self, op: str, method):
        def watched(*args):
            result = method(*args)
            self.check(f"bridge {op}{args!r}")
            return result
        return watched

    def check(self, where: str) -> None:
        pads = self.sim.die.pads
        vdd, ext, mon = (pads[p].operating_point() for p in PADS)
        vdd_v = vdd.voltage_v if vdd.voltage_v is not None else 0.0
        self.vdd_max_v = max(self.vdd_max_v, vdd_v)
        problems = []
        if vdd.voltage_v is not None:
            if not -EPS_V <= vdd.voltage_v <= ratings.VDD_V + EPS_V or vdd.current_a > ratings.VDD_CURRENT_LIMIT_A:
                problems.append(f"VDD {vdd.voltage_v:.4g} V {vdd.current_a:.3g} A")
        if ext.voltage_v is not None:
            probe_ok = ext.voltage_v <= 2e-3  # the contract's wiring probe, harmless unpowered
            if (not probe_ok and ext.voltage_v > vdd_v + EPS_V) or not -EPS_V <= ext.voltage_v <= 1.8 + EPS_V:
                problems.append(f"EXT_IN at {ext.voltage_v:.4g} V with VDD at {vdd_v:.4g} V")
            if not -EPS_A <= ext.current_a <= ratings.EXT_IN_MAX_A:
                problems.append(f"EXT_IN carries {ext.current_a:.3g} A")
        if mon.voltage_v is not None:
            if not -EPS_V <= mon.voltage_v <= ratings.MON_V + EPS_V:
                problems.append(f"MON at {mon.voltage_v:.4g} V")
            if not -EPS_A <= mon.current_a <= ratings.MON_MAX_A:
                problems.append(f"MON sinks {mon.current_a:.3g} A")
        if problems:
            self.violations.append(f"{where}: {'; '.join(problems)}")


# -- helpers ----------------------------------------------------------------------------------------


def bench_text(sim: SimulatedBench, pads: tuple[str, str, str]) -> str:
    """The simulated bench's file with supply, source and monitor bound to the channels of ``pads``."""
    lines = [line for line in sim.bench_text.splitlines() if not re.match(r"(supply|source|monitor) =", line)]
    for role, pad in zip(ROLES, pads):
        name, channel = sim.wiring.pads[pad]
        lines.append(f'{role} = "{name}:{channel}"')
    return "\n".join(lines) + "\n"


def label(sim: SimulatedBench, pad: str) -> str:
    name, channel = sim.wiring.pads[pad]
    return f"{name}:{channel}"


def assert_healthy(sim: SimulatedBench, watch: PadWatch) -> None:
    assert not sim.die.damaged, sim.die.damage_cause
    assert not sim.die.status()[0] & StatusFlag.OVERSTRESS
    assert not watch.violations, watch.violations[:5]


def all_off(sim: SimulatedBench) -> bool:
    return not any(sim.channel_of(pad).output_on for pad in PADS)


def expected_refusal(pads: tuple[str, str, str]) -> tuple[str, str]:
    """(the two roles the message must name as swapped, how it ends) for a permutation."""
    role_at = {pad: role for role, pad in zip(ROLES, pads)}
    if pads[0] != "VDD":  # the supply is wrong: refused unpowered, naming the role that reaches VDD
        return f"supply and {role_at['VDD']} look swapped", "nothing was powered"
    return "source and monitor look swapped", "the die was powered down again"


@pytest.fixture
def sim_factory(tmp_path):
    sims: list[SimulatedBench] = []

    def start(wiring: str = "default", seed: int = SEED) -> SimulatedBench:
        sim = SimulatedBench("CMNA-777", seed=seed, wiring=wiring).start()
        sim.watch = PadWatch(sim)
        sim.folder = tmp_path
        sims.append(sim)
        return sim

    yield start
    for sim in sims:
        sim.stop()


def write(sim: SimulatedBench, pads: tuple[str, str, str], name: str = "bench.toml") -> Path:
    path = sim.folder / name
    path.write_text(bench_text(sim, pads))
    return path


# -- every permutation, every instrument set ---------------------------------------------------------


@pytest.mark.parametrize("wiring", list(WIRINGS))
@pytest.mark.parametrize("pads", PERMUTATIONS, ids=["-".join(p) for p in PERMUTATIONS])
def test_every_permutation_of_the_roles_is_proven_or_refused_within_the_ratings(sim_factory, wiring, pads) -> None:
    sim = sim_factory(wiring)
    path = write(sim, pads)
    start_s = sim.clock.now()
    if pads == PADS:
        with Bench.from_file(path) as bench:
            bench.power_up()
            assert bench.powered and not bench.bridge.status().flags & StatusFlag.SUPPLY_OUT_OF_RANGE
            # the proof costs four readings (the fifth is the power-up's own VDD check), nothing else waits
            assert sim.watch.measurements <= 5
            assert sim.clock.now() - start_s < 0.15
            # and leaves the die as the power-up always did: EXT_IN unrouted at 0 A, MON held at 0.9 V
            assert bench.ext_in_channel is None
            assert sim.channel_of("EXT_IN").mode == "I" and sim.channel_of("EXT_IN").level["I"] == 0.0
            assert sim.channel_of("EXT_IN").limit["V"] == pytest.approx(1.8)
            assert sim.channel_of("MON").mode == "V" and sim.channel_of("MON").level["V"] == ratings.MON_V
            bench.route_ext_in(2)
            bench.set_ext_in(100e-9)
            bench.bridge.set_monitor(0, 2)
            assert bench.read_mon() > 30e-9
    else:
        with pytest.raises(SafetyError) as refused:
            with Bench.from_file(path) as bench:
                bench.power_up()
        message = str(refused.value)
        swapped, ending = expected_refusal(pads)
        assert "\n" not in message and message.startswith("bench file roles: "), message
        assert swapped in message and message.endswith(ending), message
        # the roles are named with the channels the bench file gave them
        for role in swapped.removesuffix(" look swapped").split(" and "):
            assert f"{role} ({label(sim, pads[ROLES.index(role)])})" in message, message
        if ending == "nothing was powered":
            assert sim.watch.vdd_max_v <= 2e-3  # VDD never rose beyond the probe
    assert all_off(sim)
    assert_healthy(sim, sim.watch)


@pytest.mark.parametrize("open_pad, match", [
    ("VDD", r"supply \(smu_b:2\) does not reach VDD and no role does .*check the supply wiring; nothing was powered$"),
    ("EXT_IN", r"source \(smu_a:1\) does not reach EXT_IN.*, nor does monitor .*powered down again$"),
    ("MON", r"monitor \(smu_b:1\) does not reach MON: held at 0.9 V .*powered down again$"),
])
def test_a_channel_wired_to_nothing_is_refused(sim_factory, open_pad, match) -> None:
    sim = sim_factory()
    sim.channel_of(open_pad).attach(None)  # the channel's cable is off: its pad floats
    path = write(sim, PADS)
    with pytest.raises(SafetyError, match=match):
        with Bench.from_file(path) as bench:
            bench.power_up()
    assert all_off(sim)
    assert_healthy(sim, sim.watch)


def test_swapped_source_and_monitor_with_the_real_monitor_unplugged_is_refused(sim_factory) -> None:
    sim = sim_factory()
    sim.channel_of("MON").attach(None)  # the source role's channel (on MON in this file) is unplugged
    path = write(sim, ("VDD", "MON", "EXT_IN"))
    with pytest.raises(SafetyError, match="source and monitor look swapped"):
        with Bench.from_file(path) as bench:
            bench.power_up()
    assert_healthy(sim, sim.watch)


def test_a_fast_bench_integrates_the_proofs_readings_at_one_nplc(sim_factory) -> None:
    sim = sim_factory()
    with Bench.from_file(write(sim, PADS), nplc=0.01) as bench:
        bench.power_up()
        assert sim.channel_of("VDD").nplc["I"] == 0.01  # the bench's own integration is back
    with pytest.raises(SafetyError, match="source and monitor look swapped"):
        with Bench.from_file(write(sim, ("VDD", "MON", "EXT_IN"), "swapped.toml"), nplc=0.01) as bench:
            bench.power_up()
    assert_healthy(sim, sim.watch)


# -- the command line ----------------------------------------------------------------------------------


def test_characterise_with_swapped_roles_exits_with_one_line_and_a_healthy_die(sim_factory, capsys) -> None:
    sim = sim_factory()
    path = write(sim, ("EXT_IN", "VDD", "MON"))
    assert main(["--no-progress", "identify", "--bench", str(path)]) == 0  # powers nothing: cannot tell
    capsys.readouterr()
    status = main(["--no-progress", "characterise", "--bench", str(path), "--out", str(sim.folder / "die.h5")])
    err = capsys.readouterr().err.strip().splitlines()  # a plan line ("22 of 22 runs to do"), then the refusal
    errors = [line for line in err if line.startswith("error: ")]
    assert status == 2 and "Traceback" not in "\n".join(err)
    assert len(errors) == 1 and errors[0] == err[-1], err
    assert errors[0].startswith("error: bench file roles: supply (smu_a:1) does not reach VDD"), err
    assert "source (smu_b:2) does" in errors[0]
    assert errors[0].endswith("supply and source look swapped; nothing was powered")
    assert all_off(sim)
    assert_healthy(sim, sim.watch)
    assert main(["--no-progress", "identify", "--bench", str(path)]) == 0
    assert "DAMAGED" not in capsys.readouterr().out


def test_identify_says_a_damaged_die_in_words(sim_factory, capsys) -> None:
    sim = sim_factory()
    vdd = sim.channel_of("VDD")  # somebody else's script drives VDD past its absolute maximum
    vdd.set_level("V", 2.1)
    vdd.set_output(True)
    sim.die.status()
    vdd.set_output(False)
    assert sim.die.damaged
    assert main(["--no-progress", "identify", "--bench", str(write(sim, PADS))]) == 0
    assert "DIE DAMAGED OR OVERSTRESSED" in capsys.readouterr().out


# -- a die kept powered by an earlier session ----------------------------------------------------------


def _program_and_keep(sim: SimulatedBench, path: Path) -> list[np.ndarray]:
    codes = [np.eye(*sim.die.chip.matrix_shape(m), dtype=np.int8) * 5 for m in range(sim.die.chip.n_matrices)]
    with Bench.from_file(path, keep_powered=True) as bench:
        bench.power_up()
        for m, c in enumerate(codes):
            bench.bridge.write_weights(m, signed_to_nibbles(c))
    assert sim.channel_of("VDD").output_on
    return [sim.die.read_latches(m, 0, c.shape[0]) for m, c in enumerate(codes)]


def test_a_kept_powered_die_is_taken_over_and_proven_without_dropping_vdd(sim_factory) -> None:
    sim = sim_factory()
    path = write(sim, PADS)
    held = _program_and_keep(sim, path)
    levels: list[float] = []
    vdd_pad = sim.die.pads["VDD"]
    original = sim.watch.check

    def check(where: str) -> None:
        original(where)
        point = vdd_pad.operating_point()
        levels.append(point.voltage_v if point.voltage_v is not None else 0.0)

    sim.watch.check = check
    with Bench.from_file(path) as bench:
        bench.power_up()
        assert min(levels) >= ratings.VDD_IN_RANGE_V[0]  # VDD never left its window during the takeover
        assert not bench.bridge.status().flags & StatusFlag.LATCHES_UNWRITTEN
        assert all(np.array_equal(bench.bridge.read_weights(m), h) for m, h in enumerate(held))
    assert all_off(sim)
    assert_healthy(sim, sim.watch)


def test_a_kept_powered_die_is_not_taken_over_through_a_swapped_supply(sim_factory) -> None:
    sim = sim_factory()
    held = _program_and_keep(sim, write(sim, PADS))
    readings_before = sim.watch.measurements
    with pytest.raises(SafetyError, match=r"^bench file roles: the die is already powered .* supply \(smu_a:1\) "
                                          r"reads .*: it is not the channel holding VDD; no output was touched"):
        with Bench.from_file(write(sim, ("EXT_IN", "VDD", "MON"), "swapped.toml")) as bench:
            bench.power_up()
    assert sim.watch.measurements - readings_before == 2  # two readings, nothing else
    # nothing was touched: VDD still held, the latches still hold the weights, no pad left its rating
    assert sim.channel_of("VDD").output_on and sim.channel_of("VDD").level["V"] == pytest.approx(ratings.VDD_V)
    assert not sim.die.status()[0] & (StatusFlag.SUPPLY_OUT_OF_RANGE | StatusFlag.LATCHES_UNWRITTEN)
    assert all(np.array_equal(sim.die.read_latches(m, 0, h.shape[0]), h) for m, h in enumerate(held))
    assert_healthy(sim, sim.watch)
    with Bench.from_file(write(sim, PADS)) as bench:  # the right file takes it over and powers it down
        bench.power_up()
    assert all_off(sim)
    assert_healthy(sim, sim.watch)


def test_a_kept_powered_die_with_source_and_monitor_swapped_is_refused_and_powered_down(sim_factory) -> None:
    sim = sim_factory()
    _program_and_keep(sim, write(sim, PADS))
    with pytest.raises(SafetyError, match="source and monitor look swapped; the die was powered down again"):
        with Bench.from_file(write(sim, ("VDD", "MON", "EXT_IN"), "swapped.toml")) as bench:
            bench.power_up()
    assert all_off(sim)
    assert_healthy(sim, sim.watch)


# -- the simulator follows the contract's pad behaviour ------------------------------------------------


class Held:
    """A noiseless SMU output on one pad."""

    def __init__(self, pad: Pad, mode: str, level: float, limit: float) -> None:
        self.pad, self.mode, self.level, self.limit = pad, mode, level, limit
        pad.attach(self)

    def drive(self, pad: Pad) -> OperatingPoint:
        return solve_operating_point(pad.current_into, self.mode, self.level, self.limit, True)  # type: ignore[arg-type]

    def point(self) -> OperatingPoint:
        return self.drive(self.pad)


def test_the_simulated_pads_behave_as_the_contract_says_for_the_proof() -> None:
    die = SimulatedDie("CMNA-777", seed=SEED)
    # unpowered, at 2 mV: VDD draws the quiescent current x V / 1.2 V (a few nA), EXT_IN and MON under 10 pA
    for pad, low, high in (("VDD", 1e-9, 10e-9), ("EXT_IN", -10e-12, 10e-12), ("MON", -10e-12, 10e-12)):
        point = Held(die.pads[pad], "V", 2e-3, 1e-6).point()
        assert low <= point.current_a <= high, (pad, point)
        die.pads[pad].attach(None)
    assert Held(die.pads["VDD"], "V", 2e-3, 1e-6).point().current_a == pytest.approx(2e-6 * 2e-3 / 1.2, rel=1e-3)
    # the proof's thresholds sit between them with margin
    assert ratings.VDD_PROBE_WINDOW_A[0] < 0.5 * ratings.VDD_PROBE_EXPECTED_A
    assert ratings.PAD_PROBE_MAX_A >= 10 * 10e-12
    # powered: 20 nA into a routed EXT_IN settles near 0.5-0.7 V; unrouted it runs to compliance
    die.pads["VDD"].attach(None)
    Held(die.pads["VDD"], "V", 1.8, 2e-3)
    ext = Held(die.pads["EXT_IN"], "I", ratings.EXT_IN_PROOF_A, ratings.EXT_IN_PROOF_COMPLIANCE_V)
    die.route_ext_in(0)
    assert 0.5 <= ext.point().voltage_v <= 0.7 and not ext.point().in_compliance
    die.route_ext_in(None)
    assert ext.point().in_compliance and ext.point().voltage_v == ratings.EXT_IN_PROOF_COMPLIANCE_V
    assert ext.point().current_a < EXT_IN_ABS_MAX_A


@pytest.mark.parametrize("pads", [("EXT_IN", "VDD", "MON"), ("VDD", "MON", "EXT_IN")], ids=["supply-source", "source-monitor"])
def test_without_the_proof_the_watch_sees_the_swap_hurt_the_die(sim_factory, monkeypatch, pads) -> None:
    """The issue, reproduced with the proof switched off: the watch is not blind."""
    from labctl.families.cmna.wiring import WiringProof

    monkeypatch.setattr(WiringProof, "prove_supply_unpowered", lambda self: None)
    monkeypatch.setattr(WiringProof, "prove_source_and_monitor", lambda self: None)
    sim = sim_factory()
    with pytest.raises(Exception):
        with Bench.from_file(write(sim, pads)) as bench:
            bench.power_up()
            bench.route_ext_in(1)
            bench.set_ext_in(100e-9)
            bench.bridge.set_monitor(0, 1)
            bench.read_mon()
            bench.bridge.measure(10)
    assert sim.watch.violations
