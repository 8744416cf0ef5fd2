"""The Bench owns safe operation (contract sections 1, 3 and 4), whatever its caller does.

Every command an emulated SMU receives is recorded together with the state of
the three channels wired to VDD, EXT_IN and MON right after it, so the tests
check the sequence the instruments really saw, not what the Bench believes:

- compliance is set before an output turns on (at the moment an output turns
  on, its limit is already the Bench's, not the instrument's reset default);
- VDD ramps up in steps of at most 0.1 V before MON and EXT_IN are driven,
  and ramps down to 0 V after they are off;
- refused setpoints never reach an instrument;
- an exception, Ctrl-C, SIGTERM or SIGHUP inside ``with Bench(...)`` leaves
  every output off, whatever disposition the process inherited (these tests
  pass when pytest itself starts with SIGINT ignored, as a background job
  does: ``tests/test_signals.py`` runs them so); the dispositions come back
  afterwards; ``keep_powered`` keeps only VDD, and only after a normal exit;
- no sequence of public calls (hypothesis) damages the die.
"""

from __future__ import annotations

import math
import os
import signal
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from labctl.families.cmna import ratings
from labctl.families.cmna.bench import Bench
from labctl.drivers.bridge_protocol import HardwareFaultError
from labctl.families.cmna.protocol import StatusFlag
from labctl.errors import SafetyError
from labctl.families.cmna.latch_codes import signed_to_nibbles
from labctl.families.cmna.sim.bench import SimulatedBench

PADS = ("VDD", "EXT_IN", "MON")
EPS = 1e-12


@dataclass(frozen=True)
class PadView:
    """What one emulated SMU channel is doing to its pad."""

    on: bool
    mode: str
    level_v: float
    level_a: float
    limit_a: float
    limit_v: float


class Recorder:
    """Wraps every emulator's ``execute``: (instrument, command, channel states after it)."""

    def __init__(self, sim: SimulatedBench) -> None:
        self.sim = sim
        self.log: list[tuple[str, str, dict[str, PadView]]] = []
        self.start = self.views()
        for name, emulator in sim.emulators.items():
            emulator.execute = self._wrap(name, emulator.execute)

    def _wrap(self, name: str, execute):
        def recorded(line: str):
            answer = execute(line)
            self.log.append((name, line, self.views()))
            return answer

        return recorded

    def views(self) -> dict[str, PadView]:
        out = {}
        for pad in PADS:
            ch = self.sim.channel_of(pad)
            out[pad] = PadView(ch.output_on, ch.mode, ch.level["V"], ch.level["I"], ch.limit["I"], ch.limit["V"])
        return out

    def restart(self) -> None:
        """Forget the log; the present channel states become the starting point."""
        self.log.clear()
        self.start = self.views()

    def check_safe_sequence(self) -> dict[str, int]:
        """Assert the section 3 sequencing rules on every step; return how often each output turned on."""
        prev = self.start
        turned_on = dict.fromkeys(PADS, 0)
        for step, (name, line, now) in enumerate(self.log):
            where = f"step {step}, {name} {line!r}"
            vdd, ext, mon = now["VDD"], now["EXT_IN"], now["MON"]
            if vdd.on:
                assert vdd.mode == "V" and vdd.limit_a <= ratings.VDD_CURRENT_LIMIT_A + EPS, where
                assert vdd.level_v <= ratings.VDD_V + EPS, where
                if prev["VDD"].on:
                    assert abs(vdd.level_v - prev["VDD"].level_v) <= ratings.VDD_RAMP_STEP_V + 1e-9, \
                        f"VDD jumped from {prev['VDD'].level_v} to {vdd.level_v} V at {where}"
            if ext.on or mon.on:
                assert vdd.on and vdd.level_v >= 1.71, f"EXT_IN/MON driven while VDD is not up, {where}"
            if ext.on:
                assert ext.mode == "I" and ext.limit_v <= vdd.level_v + EPS, where
                assert 0.0 <= ext.level_a <= ratings.EXT_IN_MAX_A, where
            if mon.on:
                assert mon.mode == "V" and mon.level_v == ratings.MON_V, where
                assert mon.limit_a <= ratings.MON_CURRENT_LIMIT_A + EPS, where
            # compliance before output on: the limit is the Bench's at the moment an output turns on
            for pad in PADS:
                if now[pad].on and not prev[pad].on:
                    turned_on[pad] += 1
                    p = now[pad]
                    if pad == "VDD":
                        assert p.limit_a == ratings.VDD_CURRENT_LIMIT_A and p.level_v == 0.0, where
                    elif pad == "MON":
                        assert p.limit_a == ratings.MON_CURRENT_LIMIT_A, where
                    else:
                        assert p.limit_v <= ratings.EXT_IN_COMPLIANCE_V and p.level_a == 0.0, where
            if prev["VDD"].on and not vdd.on:
                assert prev["VDD"].level_v <= ratings.VDD_RAMP_STEP_V + 1e-9, f"VDD switched off at {where}"
                assert not ext.on and not mon.on, where
            prev = now
        return turned_on

    def commands(self) -> int:
        return len(self.log)


def all_off(sim: SimulatedBench) -> bool:
    return not any(sim.channel_of(pad).output_on for pad in PADS)


def assert_healthy(sim: SimulatedBench) -> None:
    assert not sim.die.damaged, sim.die.damage_cause
    assert not sim.die.status()[0] & StatusFlag.OVERSTRESS


def measure_something(bench: Bench) -> float:
    bench.power_up()
    bench.route_ext_in(2)
    bench.set_ext_in(200e-9)
    bench.bridge.set_monitor(0, 2)
    return bench.read_mon()


@pytest.fixture(scope="module", params=["default", "2636b", "b2901a"])
def sim(request, tmp_path_factory):
    with SimulatedBench("CMNA-777", seed=7, wiring=request.param) as s:
        s.bench_path = s.write_bench_file(tmp_path_factory.mktemp("bench") / "bench.toml")
        s.recorder = Recorder(s)
        yield s
        assert_healthy(s)


@pytest.fixture
def recorder(sim) -> Recorder:
    sim.recorder.restart()
    return sim.recorder


# -- sequencing ------------------------------------------------------------


def test_power_sequence_as_the_instruments_see_it(sim, recorder) -> None:
    with Bench.from_file(sim.bench_path) as bench:
        assert measure_something(bench) > 100e-9
        up_to = recorder.commands()
        bench.power_down()
    assert all_off(sim)
    assert recorder.check_safe_sequence() == {"VDD": 1, "EXT_IN": 1, "MON": 1}
    # VDD reached 1.80 V before MON and EXT_IN turned on, and went down after they were off
    log = recorder.log
    first_on = min(i for i, (_, _, v) in enumerate(log) if v["EXT_IN"].on or v["MON"].on)
    assert log[first_on - 1][2]["VDD"].level_v == pytest.approx(ratings.VDD_V)
    last_on = max(i for i, (_, _, v) in enumerate(log) if v["EXT_IN"].on or v["MON"].on)
    assert last_on >= up_to and log[last_on + 1][2]["VDD"].level_v == pytest.approx(ratings.VDD_V)
    levels = [v["VDD"].level_v for _, _, v in log if v["VDD"].on]
    assert len(set(np.round(levels, 6))) >= 18  # a ramp of 0.1 V steps each way, not a jump
    assert_healthy(sim)


@pytest.mark.parametrize("current_a", [600e-9, -1e-9, -1e-15, 2e-6, math.nan, math.inf, -math.inf, 1.0])
def test_setpoints_outside_the_ratings_never_reach_an_instrument(sim, recorder, current_a) -> None:
    with Bench.from_file(sim.bench_path) as bench:
        bench.power_up()
        bench.route_ext_in(1)
        before = recorder.commands()
        level_before = sim.channel_of("EXT_IN").level["I"]
        with pytest.raises(SafetyError, match="EXT_IN current"):
            bench.set_ext_in(current_a)
        assert recorder.commands() == before
        assert sim.channel_of("EXT_IN").level["I"] == level_before == 0.0
    assert all_off(sim)
    recorder.check_safe_sequence()


def test_ext_in_needs_power_and_routing(sim, recorder) -> None:
    with Bench.from_file(sim.bench_path) as bench:
        before = recorder.commands()
        with pytest.raises(SafetyError, match="power up first"):
            bench.set_ext_in(100e-9)  # unpowered: the pad would rise above VDD (section 4)
        with pytest.raises(SafetyError, match="only while the die is powered"):
            bench.read_mon()
        bench.route_ext_in(3)  # an FPGA register: legal unpowered, but still no current
        with pytest.raises(SafetyError, match="power up first"):
            bench.set_ext_in(100e-9)
        assert recorder.commands() == before
        bench.power_up()
        bench.route_ext_in(None)
        before = recorder.commands()
        with pytest.raises(SafetyError, match="not routed"):
            bench.set_ext_in(100e-9)  # unrouted: the pad would float to compliance
        for channel in (-1, 7, 0xFFFF):
            with pytest.raises(SafetyError, match="does not exist"):
                bench.route_ext_in(channel)
        assert recorder.commands() == before
        bench.power_down()
        with pytest.raises(SafetyError):
            bench.set_ext_in(100e-9)
    assert all_off(sim)
    recorder.check_safe_sequence()


# -- exits -----------------------------------------------------------------


class Boom(RuntimeError):
    pass


def _raise_boom() -> None:
    raise Boom("script failed mid-measurement")


def _ctrl_c() -> None:
    signal.raise_signal(signal.SIGINT)


def _sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def _sighup() -> None:
    os.kill(os.getpid(), signal.SIGHUP)


HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@pytest.mark.parametrize("keep_powered", [False, True], ids=["plain", "keep_powered"])
@pytest.mark.parametrize("interrupt, expected", [(_raise_boom, Boom), (_ctrl_c, KeyboardInterrupt),
                                                 (_sigterm, KeyboardInterrupt), (_sighup, KeyboardInterrupt)],
                         ids=["exception", "sigint", "sigterm", "sighup"])
def test_exception_or_interrupt_mid_measurement_turns_everything_off(sim, recorder, keep_powered, interrupt,
                                                                      expected) -> None:
    handlers_before = [signal.getsignal(s) for s in HANDLED]
    with pytest.raises(expected):
        with Bench.from_file(sim.bench_path, keep_powered=keep_powered) as bench:
            assert measure_something(bench) > 100e-9
            assert not all_off(sim)
            interrupt()
            bench.read_mon()  # never reached
    assert all_off(sim)
    assert recorder.check_safe_sequence()["VDD"] == 1  # and VDD was ramped down, not dropped
    assert [signal.getsignal(s) for s in HANDLED] == handlers_before
    assert_healthy(sim)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP], ids=["sigint", "sighup"])
def test_an_inherited_ignored_signal_still_turns_everything_off(sim, recorder, signum) -> None:
    """A background job inherits SIGINT ignored, nohup SIGHUP: inside the Bench both still stop safely."""
    previous = signal.signal(signum, signal.SIG_IGN)
    try:
        with pytest.raises(KeyboardInterrupt):
            with Bench.from_file(sim.bench_path) as bench:
                assert measure_something(bench) > 100e-9
                os.kill(os.getpid(), signum)
                bench.read_mon()  # never reached
        assert signal.getsignal(signum) is signal.SIG_IGN  # and ignored again afterwards
    finally:
        signal.signal(signum, previous)
    assert all_off(sim)
    assert recorder.check_safe_sequence()["VDD"] == 1
    assert_healthy(sim)


def test_keep_powered_keeps_only_vdd_and_the_latches(sim, recorder) -> None:
    codes = [np.eye(*sim.die.chip.matrix_shape(m), dtype=np.int8) * 5 for m in range(sim.die.chip.n_matrices)]
    with Bench.from_file(sim.bench_path, keep_powered=True) as bench:
        measure_something(bench)
        for m, c in enumerate(codes):
            bench.bridge.write_weights(m, signed_to_nibbles(c))
    vdd = sim.channel_of("VDD")
    assert vdd.output_on and vdd.level["V"] == pytest.approx(ratings.VDD_V)
    assert not sim.channel_of("EXT_IN").output_on and not sim.channel_of("MON").output_on
    flags = sim.die.status()[0]
    assert not flags & (StatusFlag.SUPPLY_OUT_OF_RANGE | StatusFlag.LATCHES_UNWRITTEN)
    held = [sim.die.read_latches(m, 0, c.shape[0]) for m, c in enumerate(codes)]
    # a later session takes the supply over at its level (no jump, latches kept) and ramps it down at the end
    with Bench.from_file(sim.bench_path) as bench:
        bench.power_up()
        assert not bench.bridge.status().flags & StatusFlag.LATCHES_UNWRITTEN
        assert all(np.array_equal(bench.bridge.read_weights(m), h) for m, h in enumerate(held))
    assert all_off(sim)
    assert recorder.check_safe_sequence()["VDD"] == 1


def test_a_session_that_never_powers_up_ramps_a_kept_supply_down(sim, recorder) -> None:
    with Bench.from_file(sim.bench_path, keep_powered=True) as bench:
        bench.power_up()
    assert sim.channel_of("VDD").output_on
    with Bench.from_file(sim.bench_path):
        pass  # e.g. weights refused before power-up: errors and exits turn every output off
    assert all_off(sim)
    recorder.check_safe_sequence()


# -- no sequence of calls can damage the die -----------------------------------

CURRENTS = st.one_of(
    st.floats(min_value=0.0, max_value=ratings.EXT_IN_MAX_A),
    st.sampled_from([0.0, -0.0, 1e-9, 100e-9, 499.9e-9, 500e-9, 500.0001e-9, 2e-6, 5e-324]),
    st.floats(allow_nan=True, allow_infinity=True),
)
CALLS = st.one_of(
    st.tuples(st.just("power_up")),
    st.tuples(st.just("power_down")),
    st.tuples(st.just("route_ext_in"), st.one_of(st.none(), st.integers(-2, 9))),
    st.tuples(st.just("set_ext_in"), CURRENTS),
    st.tuples(st.just("drive"), st.integers(0, 6), CURRENTS),
    st.tuples(st.just("drive"), st.integers(0, 6), st.floats(min_value=1e-12, max_value=ratings.EXT_IN_MAX_A)),
    st.tuples(st.just("read_mon")),
    st.tuples(st.just("set_inputs"), st.lists(st.integers(0, 4095), min_size=7, max_size=7)),
    st.tuples(st.just("set_monitor"), st.integers(0, 2), st.one_of(st.none(), st.integers(0, 6))),
    st.tuples(st.just("write_weights"), st.integers(0, 1), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("bridge_route"), st.one_of(st.none(), st.integers(0, 6))),
    st.tuples(st.just("reset")),
    st.tuples(st.just("measure"), st.integers(1, 20)),
)


def _refused(bench: Bench, current_a: float) -> bool:
    """The oracle: set_ext_in refuses exactly these (section 1 ratings, section 4 pad rules)."""
    if not 0.0 <= current_a <= ratings.EXT_IN_MAX_A:
        return True
    return current_a > 0 and (not bench.powered or bench.ext_in_channel is None)


def _call(bench: Bench, call: tuple) -> None:
    name, *args = call
    chip = bench.chip
    if name == "drive":  # what a script does most: route, then source
        _call(bench, ("route_ext_in", args[0]))
        _call(bench, ("set_ext_in", args[1]))
    elif name == "set_ext_in":
        refused = _refused(bench, args[0])
        try:
            bench.set_ext_in(args[0])
        except SafetyError:
            assert refused, f"set_ext_in({args[0]!r}) refused inside the ratings"
        else:
            assert not refused, f"set_ext_in({args[0]!r}) accepted outside the ratings"
            if args[0] > 0:
                event("EXT_IN driven into a routed, powered die")
    elif name == "route_ext_in":
        try:
            bench.route_ext_in(args[0])
        except SafetyError:
            assert not 0 <= args[0] < chip.n_inputs
    elif name == "read_mon":
        try:
            assert -1e-9 <= bench.read_mon() <= ratings.MON_CURRENT_LIMIT_A * 1.05
        except SafetyError:
            assert not bench.powered
    elif name in ("power_up", "power_down"):
        getattr(bench, name)()
    elif name == "set_inputs":
        bench.bridge.set_inputs(args[0])
    elif name == "set_monitor":
        bench.bridge.set_monitor(*args)
    elif name == "bridge_route":
        bench.bridge.route_ext_in(args[0])
    elif name == "reset":
        bench.bridge.reset()
    else:  # latch and measurement ops need the supply (section 4: HW_FAULT otherwise)
        try:
            if name == "write_weights":
                m, seed = args
                codes = np.random.default_rng(seed).integers(-7, 8, chip.matrix_shape(m)).astype(np.int8)
                bench.bridge.write_weights(m, signed_to_nibbles(codes))
            else:
                bench.bridge.measure(args[0])
        except HardwareFaultError:
            assert not bench.powered


@pytest.fixture(scope="module")
def open_bench(sim):
    with Bench.from_file(sim.bench_path) as bench:
        yield bench
    assert all_off(sim)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(powered=st.booleans(), calls=st.lists(CALLS, min_size=4, max_size=25))
def test_no_sequence_of_calls_damages_the_die(sim, open_bench, powered, calls) -> None:
    bench = open_bench
    bench.power_down()
    sim.recorder.restart()
    if powered:
        bench.power_up()
    for call in calls:
        _call(bench, call)
        assert_healthy(sim)
    bench.power_down()
    assert all_off(sim)
    sim.recorder.check_safe_sequence()
    assert_healthy(sim)
