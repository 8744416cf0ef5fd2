"""The TTFS bench (ttfs-bench.md 3, 4, 5) against a simulated bench over loopback sockets.

Safety: the power sequence of 5.2 read from the die's own pad log (VDD before
the biases, VTH last; the reverse on exit, also on an exception), ratings
refused before anything is sent (4, 5.3), a wiring fault refusing power (5.1).
Measurement: a membrane trace's start level and threshold crossing, the probe
chain's gain and offset, and the energy per inference, each against the
simulator's hidden truth.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from labctl.errors import ConfigError, SafetyError
from labctl.families.ttfs.bench import RATINGS, open_ttfs_bench, parse_ttfs_bench_text
from labctl.families.ttfs.patterns import NO_SPIKE
from labctl.families.ttfs.sim.bench import SimulatedTtfsBench
from labctl.families.ttfs.sim.charge import pattern_charges
from labctl.families.ttfs.sim.probe import GROUP_DELAY_NS

PADS = ("vdd", "vth", "e_exc", "e_inh")
ROP = {"vdd": 1.80, "vth": 0.80, "e_exc": 0.40, "e_inh": 1.70}


def _first(log, condition, after: int = 0) -> int:
    """Index of the first pad-log entry (from ``after``) whose pads satisfy ``condition``."""
    return next(i for i, (_, pads) in enumerate(log) if i >= after and condition(pads))


def _check_sequence(log) -> None:
    """5.2 on the die's pads: up in order with the 5.1 proofs, then down in the reverse order."""
    up = _first(log, lambda p: p.vdd >= 1.71)
    assert all(max(p.vth, p.e_exc, p.e_inh) <= 2e-3 for _, p in log[:up])  # only the 1.5 mV contact probe
    proofs = [p for _, p in log[up:] if max(p.vth, p.e_exc, p.e_inh) == pytest.approx(0.60)]
    assert len(proofs) == 3  # one bias at a time, at 0.60 V
    at = {pad: _first(log, lambda p, pad=pad: abs(getattr(p, pad) - ROP[pad]) < 1e-9, up) for pad in PADS[1:]}
    assert at["e_inh"] < at["e_exc"] < at["vth"]  # VTH last
    top = _first(log, lambda p: all(abs(getattr(p, pad) - ROP[pad]) < 1e-9 for pad in PADS))
    leave = {pad: _first(log, lambda p, pad=pad: getattr(p, pad) < ROP[pad] - 1e-9, top) for pad in PADS}
    gone = {pad: _first(log, lambda p, pad=pad: getattr(p, pad) == 0.0, top) for pad in PADS}
    assert gone["vth"] < leave["e_exc"] and gone["e_exc"] < leave["e_inh"] and gone["e_inh"] < leave["vdd"]
    steps = {pad: np.abs(np.diff([getattr(p, pad) for _, p in log])) for pad in PADS}
    assert steps["vdd"].max() <= 0.1 + 1e-9  # 5.2 step 3
    assert max(steps[pad][steps[pad] != 0.6].max() for pad in PADS[1:]) <= 0.2 + 1e-9  # step 5 (proof steps aside)


def _outputs_off(sim: SimulatedTtfsBench) -> bool:
    return not any(sim.channel_of(pad).output_on for pad in ("VDD", "VTH", "EREV_EXC", "EREV_INH"))


def test_power_up_and_down_follow_5_2(tmp_path):
    with SimulatedTtfsBench("RCS-S", 1) as sim:
        path = sim.write_bench_file(tmp_path / "bench.toml")
        with open_ttfs_bench(path) as bench:
            assert dataclasses.asdict(sim.die.pads) | ROP == dataclasses.asdict(sim.die.pads)
            flags, _, _ = sim.die.status()
            assert flags & 0b1000_1011 == 0  # supply, overstress, bias, time base all fine
            assert bench.bias_v("threshold") == 0.80
            assert bench.identities()["scope"].startswith("KEYSIGHT TECHNOLOGIES,DSOX3024T")
            assert bench.measure_voltage("supply") == pytest.approx(1.80, abs=1e-4)
        assert _outputs_off(sim) and not sim.die.damaged
        _check_sequence(sim.die.pad_log)


def test_opened_without_power_it_identifies_and_touches_no_output(tmp_path):
    with SimulatedTtfsBench("RCS-S", 1) as sim:
        path = sim.write_bench_file(tmp_path / "bench.toml")
        with sim.instrument_servers["smu_a"].recording() as sent:
            with open_ttfs_bench(path, power=False) as bench:
                assert (bench.chip.part, bench.chip.serial) == ("RCS-S", "RCS-S-000001")
                with pytest.raises(SafetyError, match="not powered"):
                    bench.set_bias("threshold", 0.8)
        assert not [line for line in sent if line.startswith((":SOUR", ":OUTP", ":SENS"))]
        assert sim.die.pad_log == [] and _outputs_off(sim)


def test_an_exception_powers_down_in_the_same_order(tmp_path):
    with SimulatedTtfsBench("RCS-S", 1, wiring="2636b") as sim:
        path = sim.write_bench_file(tmp_path / "bench.toml")
        with pytest.raises(RuntimeError, match="boom"):
            with open_ttfs_bench(path):
                raise RuntimeError("boom")
        assert _outputs_off(sim) and not sim.die.damaged
        _check_sequence(sim.die.pad_log)


def test_ratings_are_refused_before_anything_is_sent(tmp_path):
    with SimulatedTtfsBench("RCS-S", 2) as sim:
        path = sim.write_bench_file(tmp_path / "bench.toml")
        with open_ttfs_bench(path) as bench:
            servers = [sim.instrument_servers[name] for name in ("smu_a", "smu_b")]
            pads = sim.die.pads
            refused = [("threshold", 1.25), ("rev_exc", 0.75), ("rev_inh", 1.35), ("supply", 1.95), ("supply", 1.60)]
            for role, volts in refused:
                with servers[0].recording() as a, servers[1].recording() as b:
                    with pytest.raises(SafetyError, match="refused"):
                        bench.set_bias(role, volts)
                assert a == [] and b == [], f"{role} {volts} V sent {a + b}"
            assert sim.die.pads == pads
            bench.set_bias("supply", 1.75)
            with pytest.raises(SafetyError, match="above the VDD setpoint"):
                bench.set_bias("rev_inh", 1.78)  # inside 1.40-1.80 V, but never above VDD (section 4)
            bench.set_bias("threshold", 1.0)
            assert sim.die.pads.vth == pytest.approx(1.0) and sim.die.pads.vdd == pytest.approx(1.75)


def test_a_wiring_fault_refuses_power(tmp_path):
    with SimulatedTtfsBench("RCS-S", 2, wiring="swapped_rails") as sim:
        path = sim.write_bench_file(tmp_path / "bench.toml")
        with pytest.raises(SafetyError, match=r"rev_exc \(smu_b:2\).*EREV_INH moved"):
            with open_ttfs_bench(path):
                pass
        assert _outputs_off(sim) and not sim.die.damaged
        # only VTH's proof (the first) and the faulty one ran: no bias ever went past the 0.60 V proof level
        assert max(max(p.vth, p.e_exc, p.e_inh) for _, p in sim.die.pad_log) == pytest.approx(0.60)
        assert sim.die.pad_log[-1][1].vdd == 0.0


def test_a_rail_in_compliance_is_a_fault_that_powers_down(tmp_path):
    with SimulatedTtfsBench("RCS-S", 2) as sim:
        path = sim.write_bench_file(tmp_path / "bench.toml")
        stages = []
        one_line = (r"^rev_exc \(EREV_EXC, smu_b:1\) is in compliance: "
                    r"reads -0\.00\d+ A at a 0\.001 A limit; bench powered down$")
        with pytest.raises(SafetyError, match=one_line):
            with open_ttfs_bench(path, progress=lambda stage, done, total: stages.append((done, total))) as bench:
                assert stages[-1] == (4, 4)
                short = sim.die.die_pads["EREV_EXC"]
                short.current_into = lambda v: v / 10e6 - 5e-3  # the rail shorted: it would sink 5 mA
                bench.measure_current("rev_exc")
        assert _outputs_off(sim) and sim.die.pad_log[-1][1] == dataclasses.replace(sim.die.pads, vdd=0.0, vth=0.0,
                                                                                    e_exc=0.0, e_inh=0.0)


def test_bench_file_rules_of_3_3():
    text = SimulatedTtfsBench("RCS-S", 0).bench_text
    assert parse_ttfs_bench_text(text).roles["sync"].channel == "EXT"
    with pytest.raises(ConfigError, match="roles.probe.*needs|SMU role needs|serves two roles|scope"):
        parse_ttfs_bench_text(text.replace('probe = "scope:1"', 'probe = "smu_a:1"'))
    with pytest.raises(ConfigError, match="roles.sync is missing"):
        parse_ttfs_bench_text(text.replace('sync = "scope:EXT"', ""))
    with pytest.raises(ConfigError, match="scope input 'EXT'"):
        parse_ttfs_bench_text(text.replace('probe = "scope:1"', 'probe = "scope:EXT"').replace(
            'sync = "scope:EXT"', 'sync = "scope:2"'))


# -- measurements on one programmed die ---------------------------------------------------------


@pytest.fixture(scope="module")
def programmed(tmp_path_factory):
    """An RCS-S die with a fixed random network, powered at the ROP; bias rows off (a flat start)."""
    rng = np.random.default_rng(11)
    with SimulatedTtfsBench("RCS-S", 7) as sim:
        path = sim.write_bench_file(tmp_path_factory.mktemp("ttfs") / "bench.toml")
        with open_ttfs_bench(path) as bench:
            for m in range(bench.chip.n_matrices):
                bench.link.write_synapses(m, rng.integers(-5, 16, bench.chip.matrix_shape(m)))
            yield sim, bench, rng


def test_a_held_row_carries_its_verify_point_currents_through_the_rails(programmed):
    sim, bench, _ = programmed
    rows, cols = bench.chip.matrix_shape(0)
    codes = np.zeros((rows, cols), int)
    codes[-1] = 15  # the bias row, +15 everywhere: 30 nA per site at the verify point (1.4)
    before = bench.link.read_synapses(0)
    bench.link.write_synapses(0, codes)
    try:
        released = {role: bench.measure_current(role, nplc=10) for role in ("supply", "rev_exc", "rev_inh")}
        bench.link.hold_row(0, rows - 1)
        held = {role: bench.measure_current(role, nplc=10) for role in ("supply", "rev_exc", "rev_inh")}
        bench.link.hold_row(0, None)
    finally:
        bench.link.write_synapses(0, before)
    sunk = released["rev_exc"] - held["rev_exc"]
    assert sunk == pytest.approx(cols * 30e-9, rel=0.15)  # 16 sites of +15
    assert held["rev_inh"] - released["rev_inh"] == pytest.approx(0.0, abs=0.5e-9)
    assert held["supply"] - released["supply"] == pytest.approx(sunk, rel=0.3)  # the clamp restores it from VDD


def test_chain_calibration_finds_the_buffer_and_scope(programmed):
    sim, bench, _ = programmed
    chain = bench.calibrate_probe_chain()
    gain, offset = sim.scope.true_chain("1")
    truth = sim.die.truth
    assert chain.gain == pytest.approx(truth.mon_gain * gain, abs=1e-3)
    assert chain.offset_v == pytest.approx(truth.mon_offset * gain + offset, abs=1e-3)
    assert 0 < chain.gain_se < 1e-3 and bench.bias_v("threshold") == 0.80 and sim.die.pads.vth == pytest.approx(0.80)
    v_rest = bench.read_membrane(0, 3, None).v  # V_REST through the calibrated chain (1.10)
    assert v_rest.mean() == pytest.approx(truth.v_rest, abs=2e-3)


def test_membrane_trace_starts_at_v0_and_crosses_at_the_threshold(programmed):
    sim, bench, _ = programmed
    bench.link.set_bias_times([255, 255])  # bias rows never on: the membrane waits at V0 for the first input
    try:
        codes = np.array([40, 60, 90, 120])
        tdc = bench.link.apply_patterns(codes[None, :], readout=1)[0]
        fired = np.flatnonzero((tdc != NO_SPIKE) & (tdc > 2500) & (tdc < 12000))
        assert fired.size, f"no hidden neuron fires mid-window: {tdc}"
        neuron = int(fired[0])
        trace = bench.read_membrane(1, neuron, codes)
        bench.link.select_probe(1, neuron)  # the spike time with the mux's +0.5 fF on the membrane, as traced (1.10)
        tdc = bench.link.apply_patterns(codes[None, :], readout=1)[0]
        bench.link.select_probe(1, None)
    finally:
        bench.link.set_bias_times([0, 0])
    cells = sim.die.truth.neurons[0]
    flat = (trace.t_s > 50e-9) & (trace.t_s < 380e-9)
    v0 = sim.die.truth.v_rest - cells.pedestal[neuron]
    assert trace.v[flat].mean() == pytest.approx(v0, abs=2e-3)
    # the crossing is d_i before the TDC's edge; the trace shows it GROUP_DELAY_NS later, and the clamp that
    # follows the edge within the buffer's bandwidth: extrapolate the last 150 ns of the fall to the crossing
    t_cross = (tdc[neuron] + 0.5 - cells.delay_ns[neuron] + GROUP_DELAY_NS) * 1e-9
    fall = (trace.t_s > t_cross - 150e-9) & (trace.t_s < t_cross - 15e-9)
    v_cross = float(np.polyval(np.polyfit(trace.t_s[fall], trace.v[fall], 2), t_cross))
    assert v_cross == pytest.approx(0.80 + cells.offset[neuron], abs=3e-3)
    assert trace.v[trace.t_s < -100e-9].mean() == pytest.approx(sim.die.truth.v_rest, abs=2e-3)


def test_energy_per_inference_matches_the_charge_bookkeeping(programmed):
    sim, bench, rng = programmed
    codes = rng.integers(0, 120, (45, 4))
    clock_before = sim.clock.accounted_s
    reading = bench.measure_energy(codes)
    period_s = 18e-6
    assert reading.period_s == pytest.approx(period_s)
    q = pattern_charges(sim.die.truth, sim.die.synapses, sim.die.pads, codes)
    volts = {name: getattr(sim.die.pads, name) for name in PADS}
    truth_j = float(np.mean(volts["vdd"] * q.q_vdd - volts["e_exc"] * q.q_exc + volts["e_inh"] * q.q_inh))
    assert 1e-12 < truth_j < 10e-12  # contract 8.3: RCS-S 1 to 10 pJ
    assert reading.energy_per_inference_j == pytest.approx(truth_j, rel=0.10)
    assert reading.energy_se_j < 0.05 * truth_j
    assert reading.per_role["rev_exc"] == pytest.approx(-volts["e_exc"] * q.q_exc.mean() / period_s, rel=0.02)
    assert reading.per_role["rev_inh"] == pytest.approx(volts["e_inh"] * q.q_inh.mean() / period_s, rel=0.02)
    assert abs(reading.per_role["threshold"]) < 50e-12  # the bleeder only: noise of 25 pA per reading
    assert reading.idle_power_w == pytest.approx(RATINGS["supply"].rop_v * 0.5e-3, rel=0.2)
    # 12 batches of at least 0.5 s each, accounted on the bench clock (3.5, 3.6)
    assert 12 * 0.5 < sim.clock.accounted_s - clock_before < 12 * 1.3


def test_a_failed_energy_measurement_keeps_the_finished_classification(tmp_path, monkeypatch, capsys):
    """The energy step fails after the test patterns have been classified (injected: ``measure_energy`` raises the
    error a silent supply SMU gives): ``evaluate`` writes the classification's record, then exits non-zero with the
    instrument's one-line error, outputs off."""
    from labctl.cli import main
    from labctl.errors import InstrumentError
    from labctl.families.ttfs.bench import TtfsBench
    from labctl.families.ttfs.encoding import TimeEncoding
    from labctl.families.ttfs.patterns import DEFAULT_WINDOW_NS
    from labctl.families.ttfs.tasks import load_task
    from labctl.families.ttfs.weights import TtfsWeights, write_weights

    def supply_gone(self, codes, **_):
        raise InstrumentError("smu_a: no answer to MEAS:CURR? within 2 s")

    monkeypatch.setattr(TtfsBench, "measure_energy", supply_gone)
    rng = np.random.default_rng(5)
    with SimulatedTtfsBench("RCS-S", 9) as sim:
        bench_file = sim.write_bench_file(tmp_path / "bench.toml")
        chip = sim.die.chip
        weights = TtfsWeights(
            part=chip.part, serial=chip.serial, layer_sizes=tuple(chip.layer_sizes),
            codes=tuple(rng.integers(-3, 12, chip.matrix_shape(m)).astype(np.int8) for m in range(chip.n_matrices)),
            bias_time_codes=np.zeros(chip.n_matrices, np.uint8), encoding=TimeEncoding.of(load_task("iris")),
            window_ns=float(DEFAULT_WINDOW_NS), method="dstd", dataset="iris", split_seed=0, software_accuracy=0.5)
        write_weights(tmp_path / "w.h5", weights)
        capsys.readouterr()
        status = main(["--no-progress", "evaluate", "--bench", str(bench_file), "--weights", str(tmp_path / "w.h5"),
                       "--out-dir", str(tmp_path / "run")])
        err = capsys.readouterr().err.strip().splitlines()
        assert status != 0 and len(err) == 1 and "smu_a: no answer" in err[0], err
        assert _outputs_off(sim)
    record = json.loads((tmp_path / "run" / "evaluation_w.json").read_text())
    assert record["n_samples"] == 45 and len(record["labels"]) == 45 and record["on_chip_accuracy"] is not None
    assert "smu_a: no answer" in record["energy_error"] and "energy_per_inference_j" not in record
