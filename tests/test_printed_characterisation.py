"""The printed process characterisation (printed-bench.md 2.3, 7): numbers, not just runs.

Part 1 (always): a stand-in PNC-TS sample with *known* truth behind the
mainframe and B2902A emulators: every resistor is ``R_s L / (W + dW) (1 + u)``
with ``u ~ U(-eps, eps)`` (1.2, 1.6), every cell's etas are a smooth function
of its printed components (linear in their logarithms, so the cell map's form
holds exactly) and its supply current follows the same tanh. The run must
recover R_s, dW, eps and every structure's etas within their stated
uncertainties, store the file of 7 and meet the bench-time goal.

Part 2 (when the process simulator serves PNC-TS, helper A's
``labctl.families.printed.sim.serve``): the same against the simulator's own
physics, compared with its truth.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from labctl.drivers.keysight_34980a import dac_channel
from labctl.errors import ConfigError
from labctl.families.printed.characterisation.characterise import characterise_process
from labctl.families.printed.characterisation.plan import SweepPlan
from labctl.families.printed.characterisation.transfer_fit import tanh_form
from labctl.families.printed.characterisation.variation import (estimate_eps, excess_spread, replica_term,
                                                                resistor_term)
from labctl.families.printed.layout import CellStructure, Layout, load_layout
from labctl.families.printed.process_calibration import read as read_calibration
from labctl.sim.clock import VirtualClock
from labctl.sim.instrument_server import InstrumentServer
from labctl.sim.pads import Pad
from labctl.sim.switch_emulator import SwitchMeasureEmulator
from test_printed_bench import RailB2902AEmulator, bench_text


TRUE_RH, TRUE_RL, TRUE_DW, TRUE_EPS = 52_600.0, 23.8, 1.6, 0.08


def _truth_etas(kind: str, c: dict[str, float]) -> np.ndarray:
    """A smooth, made-up component -> eta law, linear in log components (the map's own form)."""
    if kind == "ACT":
        return np.array([0.15 + 0.08 * math.log(c["R1"] / 1e6), 0.80 + 0.10 * math.log(c["R2"] / 15e3),
                         0.20 + 0.30 * math.log(c["W1"] / c["L1"] / 1.5),
                         12.0 * math.exp(1.5 * math.log(c["W2"] / c["L2"] / 14.0))])
    return np.array([0.10 + 0.05 * math.log(c["R1"] / c["R2"] / 4.0), 1.00 + 0.10 * math.log(c["R3"] / 2e5),
                     0.10 + 0.20 * math.log(c["R4"] / c["R5"]), 8.0 * math.exp(0.8 * math.log(c["W"] / c["L"] / 12.5))])


@dataclass
class TruthCell:
    cell: CellStructure
    eta: np.ndarray
    supply_a: float
    input_ohm: float | None


class StandInSample:
    """A PNC-TS sample with a known truth (module docstring), wired to the emulators' callbacks."""

    def __init__(self, layout: Layout, mainframe: SwitchMeasureEmulator, smu: RailB2902AEmulator, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.mainframe, self.smu = mainframe, smu
        self.open_pads: set[str] = set()
        self.printed = lambda r: ((TRUE_RH if r.layer == "RH" else TRUE_RL) * r.l_um / (r.w_um + TRUE_DW)
                                  * (1 + rng.uniform(-TRUE_EPS, TRUE_EPS)))
        self.chains = {c.drive_pad: (c, [self.printed(r) for r in c.resistors]) for c in layout.resistor_structures}
        self.bleed = {pad: self.printed(layout.bleed) for pad in layout.bleed_pads}
        self.cells: dict[int, TruthCell] = {}
        for cell in layout.cells:
            printed = {n: v * (1 + rng.uniform(-TRUE_EPS, TRUE_EPS)) for n, v in cell.drawn_components().items()}
            for name, r in cell.resistors.items():
                printed[name] *= (TRUE_RH if r.layer == "RH" else TRUE_RL) / (50e3 if r.layer == "RH" else 25.0) \
                    * r.w_um / (r.w_um + TRUE_DW)
            self.cells[cell.rail_group] = TruthCell(cell, _truth_etas(cell.kind, printed), 3e-4 * (1 + cell.rail_group / 50),
                                                    100e3 * (1 + rng.uniform(-TRUE_EPS, TRUE_EPS)) if cell.kind == "NEG" else None)

    def group(self) -> int | None:
        closed = [c - 8000 for c in self.mainframe.closed if 8001 <= c <= 8035]
        return closed[0] if closed else None

    def dac(self, pad: str) -> float:
        level = self.mainframe.dac_output_v(dac_channel(int(pad[1:])))
        return 0.0 if level is None else level

    def load_ohm(self, pad: str) -> float | None:
        if pad in self.open_pads:
            return None
        if pad in self.chains:
            return sum(self.chains[pad][1])
        conductance = 1 / self.bleed[pad] if pad in self.bleed else 0.0
        for truth in self.cells.values():
            if truth.cell.input_pad == pad and truth.input_ohm:
                conductance += 1 / truth.input_ohm
        return 1 / conductance if conductance else None

    def current(self, pad: str) -> float:
        load = self.load_ohm(pad)
        return 0.0 if load is None else self.dac(pad) / (1000.0 + load)

    def rails_up(self) -> TruthCell | None:
        truth = self.cells.get(self.group() or 0)
        if truth is None:
            return None
        v = [self.smu.channel(c).level["V"] if self.smu.channel(c).output_on else 0.0 for c in "12"]
        return truth if v[0] > 1.9 and v[1] < -1.9 else None

    def transition(self, truth: TruthCell) -> float:
        v_in = self.dac(truth.cell.input_pad) - 1000 * self.current(truth.cell.input_pad)
        return math.tanh((v_in - truth.eta[2]) * truth.eta[3]), v_in

    def read_node(self, channel: int) -> float:
        if 7001 <= channel <= 7024:
            return 1000.0 * self.current(f"D{channel - 7000:02d}")
        pad = f"S{channel - 7024:02d}"
        if pad in self.open_pads:
            return 0.0
        for drive, (chain, values) in self.chains.items():
            nodes = ([chain.kelvin_pad] if chain.kelvin_pad else []) + list(chain.taps)
            if pad in nodes:
                below = values if pad == chain.kelvin_pad else values[chain.taps.index(pad) + 1:]
                return self.current(drive) * sum(below)
        truth = self.rails_up()
        if truth is not None and pad == truth.cell.output_pad:
            t, v_in = self.transition(truth)
            sign = 1.0 if truth.cell.kind == "ACT" else -1.0
            return sign * (truth.eta[0] + truth.eta[1] * t)
        return 0.0

    def rail_current(self, voltage_v: float) -> float:
        truth = self.cells.get(self.group() or 0)
        if truth is None:
            return voltage_v * 1e-12
        t = self.transition(truth)[0] if self.rails_up() is not None else 0.0
        return voltage_v / 2.0 * truth.supply_a * (1 + 0.3 * t)


class StandInRail(Pad):
    def __init__(self, sample: StandInSample) -> None:
        super().__init__()
        self.sample = sample

    def current_into(self, voltage_v: float) -> float:
        return self.sample.rail_current(voltage_v)


def run_stand_in(folder: Path, plan: SweepPlan, open_pads: tuple[str, ...] = (), progress=None):
    """Serve a stand-in PNC-TS sample (seed 11) and characterise it into ``folder / process.h5``."""
    from labctl.families.printed.sim.ts_layout import write_layout

    layout_path = write_layout(folder / "layout.toml", "sim-7", "sim-7/PNC-TS-A/S0")
    clock = VirtualClock()
    mainframe, smu = SwitchMeasureEmulator(clock=clock, seed=3), RailB2902AEmulator(clock=clock, seed=4)
    sample = StandInSample(load_layout(layout_path), mainframe, smu, seed=11)
    sample.open_pads.update(open_pads)
    mainframe.read_node = sample.read_node
    for name in "12":
        smu.channel(name).attach(StandInRail(sample))
    with InstrumentServer(mainframe) as mf_server, InstrumentServer(smu) as smu_server:
        bench_file = folder / "bench.toml"
        bench_file.write_text(bench_text(mf_server.resource, smu_server.resource))
        outcome = characterise_process(bench_file, folder / "process.h5", plan=plan, pause=clock.advance,
                                       progress=progress)
    return outcome, sample, clock


@pytest.fixture(scope="module")
def stand_in_run(tmp_path_factory) -> tuple:
    stages: list[tuple[str, int, int]] = []
    outcome, sample, clock = run_stand_in(tmp_path_factory.mktemp("ts"), SweepPlan.quick(),
                                          progress=lambda *a: stages.append(a))
    return outcome, sample, clock, stages


def test_stand_in_recovers_sheet_resistance_line_width_and_eps(stand_in_run) -> None:
    outcome, _, _, _ = stand_in_run
    assert outcome.rh_ohm_sq == pytest.approx(TRUE_RH, abs=3 * outcome.rh_ohm_sq_se)
    assert outcome.rh_ohm_sq_se / outcome.rh_ohm_sq < 0.03
    assert outcome.rl_ohm_sq == pytest.approx(TRUE_RL, abs=3 * outcome.rl_ohm_sq_se)
    assert outcome.dw_um == pytest.approx(TRUE_DW, abs=max(3 * outcome.dw_um_se, 0.5))
    assert outcome.eps == pytest.approx(TRUE_EPS, abs=max(2.5 * outcome.eps_se, 0.3 * TRUE_EPS))
    assert 0.002 < outcome.eps_se < 0.04


def test_stand_in_etas_match_the_truth_within_their_se(stand_in_run) -> None:
    outcome, sample, _, _ = stand_in_run
    fitted = {r.cell.id: r for r in outcome.analysis.cells}
    assert outcome.structures_fitted >= 33
    for truth in sample.cells.values():
        result = fitted[truth.cell.id]
        if not result.used:
            assert result.flags and abs(truth.eta[2]) > 1.3, (truth.cell.id, result.flags, truth.eta)
            continue
        # the stand-in's outputs are exactly the tanh form: the residual is the DMM's noise and the DAC grid
        assert result.fit.rms_v < 1e-3
        v = np.linspace(-1.5, 1.5, 301)
        err = tanh_form(v, result.fit.eta) - tanh_form(v, truth.eta)
        assert np.sqrt(np.mean(err ** 2)) < 2e-3, truth.cell.id


def test_stand_in_file_layout(stand_in_run) -> None:
    outcome, _, clock, stages = stand_in_run
    with h5py.File(outcome.path, "r") as f:
        assert (f.attrs["family"], f.attrs["kind"], f.attrs["process"]) == ("printed", "process-calibration", "sim-7")
        assert {"created", "labctl_version", "bench_seconds", "layout", "sample"} <= set(f.attrs)
        points = f["raw/points"][()]
        assert np.sum(points["direction"] != 2) == 35 * SweepPlan.quick().points_per_structure
        assert 35 * 8 <= np.sum(points["direction"] == 2) <= 35 * 9  # the transition refinement (plan.py)
        assert set(np.unique(points["structure"])) == {c.encode() for c in [f"A{i:02d}" for i in range(1, 19)]
                                                       + [f"N{i:02d}" for i in range(1, 18)]}
        act = f["fits/ACT"][()]
        assert len(act) == 18 and "drawn_R1" in act.dtype.names and act["eta"].shape == (18, 4)
        assert len(f["fits/resistors"][()]) == 16
        assert f["raw/identification"].attrs["code"] == 1
    calibration = read_calibration(outcome.path)
    assert calibration.process == "sim-7" and calibration.eps == pytest.approx(outcome.eps)
    assert ("fit", 1, 1) == stages[-1] and ("structures", 35, 35) in stages
    bench_s = clock.accounted_s + outcome.host_wait_s
    assert bench_s < 600.0


def test_eps_estimator_is_unbiased_for_uniform_variation() -> None:
    """The estimator itself (variation.py), on resistor residuals drawn from U(-eps, eps)."""
    rng = np.random.default_rng(0)
    estimates = []
    for _ in range(300):
        r = rng.uniform(-0.1, 0.1, 16)
        estimates.append(estimate_eps([resistor_term("resistors", r - r.mean(), 15, 1e-3)]).eps)
    assert np.mean(estimates) == pytest.approx(0.1, rel=0.03)


def _replica_groups(rng: np.random.Generator, eps: float, extra_sd: np.ndarray, jacobian: np.ndarray,
                    groups: int = 12, replicas: int = 3) -> list:
    """Replica groups of a cell whose targets move with its designable parts (u ~ U(-eps, eps) through
    ``jacobian``) plus a spread those parts do not explain (``extra_sd``, normal)."""
    terms = []
    for g in range(groups):
        u = rng.uniform(-eps, eps, (replicas, jacobian.shape[1]))
        y = u @ jacobian.T + rng.normal(0.0, 1.0, (replicas, len(extra_sd))) * extra_sd
        terms.append(replica_term(f"NEG/G{g}", y, np.full_like(y, 1e-6), jacobian))
    return terms


def test_a_cell_kind_that_spreads_beyond_eps_is_left_out_and_its_excess_measured() -> None:
    """Resistors anchor eps; a kind whose replicas spread more than eps explains (kit parts the designer
    does not choose) is left out of eps, and its excess sd is recovered per target."""
    rng = np.random.default_rng(1)
    jacobian = np.array([[0.2, 0.0], [0.0, 0.3], [0.1, 0.1], [0.0, 0.5]])
    extra = np.array([0.03, 0.0, 0.15, 0.0])
    resistors = [resistor_term("resistors", (r := rng.uniform(-0.1, 0.1, 40)) - r.mean(), 39, 1e-3)]
    terms = resistors + _replica_groups(rng, 0.10, extra, jacobian)
    estimate = estimate_eps(terms)
    assert estimate.excluded == ("NEG",) and estimate.by_source["NEG"][0] > 0.2
    assert estimate.eps == pytest.approx(0.10, abs=2.5 * estimate.se)
    excess = excess_spread(terms, estimate.eps)["NEG"]
    assert excess[0] == pytest.approx(0.03, rel=0.35) and excess[2] == pytest.approx(0.15, rel=0.35)
    assert excess[1] < 0.01 and excess[3] < 0.02
    consistent = resistors + _replica_groups(rng, 0.10, np.zeros(4), jacobian)   # eps explains every spread
    assert estimate_eps(consistent).excluded == ()
    assert np.all(excess_spread(consistent, 0.10)["NEG"] < 0.02)


def test_characterisation_refuses_an_existing_file_and_a_network_bench(tmp_path: Path) -> None:
    out = tmp_path / "process.h5"
    out.write_text("complete")
    with pytest.raises(ConfigError, match="exists .*use --force"):
        characterise_process(tmp_path / "bench.toml", out)
    assert out.read_text() == "complete"


def test_structures_that_do_not_answer_are_skipped_and_flagged(tmp_path: Path) -> None:
    plan = SweepPlan(forward_v=tuple(np.linspace(-1.5, 1.5, 13)), backward_v=(1.0, 0.0, -1.0))
    outcome, _, _ = run_stand_in(tmp_path, plan, open_pads=("S05", "D03", "D20"))
    flags = dict(outcome.flagged)
    assert flags["A05"] == "no_output" and flags["N02"] == "no_input"
    assert outcome.calibration is not None and outcome.structures_fitted >= 31
    with h5py.File(outcome.path, "r") as f:
        done = dict(f["raw/done"][()].tolist())
        contact = {row["pad"]: row["answered"] for row in f["raw/contact"][()]}
    assert done[b"N02"] == b"no_input" and done[b"A05"] == b"no_output" and done[b"H2"] == b"no_input"
    assert not contact[b"D03"] and not contact[b"D20"] and contact[b"D01"]


def test_an_interrupted_run_keeps_its_readings_in_the_partial_file(tmp_path: Path) -> None:
    def stop(stage: str, done: int, total: int) -> None:
        if stage == "structures" and done == 3:
            raise KeyboardInterrupt

    plan = SweepPlan(forward_v=tuple(np.linspace(-1.5, 1.5, 13)), backward_v=(1.0, 0.0, -1.0))
    with pytest.raises(KeyboardInterrupt):
        run_stand_in(tmp_path, plan, progress=stop)
    assert not (tmp_path / "process.h5").exists()
    with h5py.File(tmp_path / "process.partial.h5", "r") as f:
        points = f["raw/points"][()]
        assert set(np.unique(points["structure"])) == {b"A01", b"A02", b"A03"}
        assert np.sum(points["direction"] != 2) == 3 * plan.points_per_structure and len(f["raw/resistors"][()]) == 5 * 5


# ---------------------------------------------------------------- part 2: the process simulator


def _sim_available() -> bool:
    return all(importlib.util.find_spec(f"labctl.families.printed.sim.{m}") is not None
               for m in ("bench", "ts_sample", "transfer"))


@pytest.mark.skipif(not _sim_available(), reason="the process simulator's bench is not there yet")
def test_simulated_pnc_ts_sample(tmp_path: Path) -> None:
    """A PNC-TS sample of the process simulator (run sim-7, eps 0.10), against the simulator's own truth:
    its run (R_s), its printed cells solved densely (``cell_curve``)."""
    from labctl.families.printed.characterisation.transfer_fit import fit_transfer
    from labctl.families.printed.sim.bench import SimulatedPrintedBench
    from labctl.families.printed.sim.process import draw_run
    from labctl.families.printed.sim.transfer import cell_curve
    from labctl.families.printed.sim.ts_layout import write_layout
    from labctl.families.printed.sim.ts_sample import build_ts_sample

    run = draw_run(7)
    sample = build_ts_sample(run, 0.10, seed=7)
    served = SimulatedPrintedBench(sample, 7).start()
    try:
        write_layout(tmp_path / "layout.toml", run.process_id, f"{run.process_id}/PNC-TS-A/S0")
        bench_file = served.write_text(tmp_path / "bench.toml", served.bench_text("sim", [
            'kind = "test-structures"', 'layout = "layout.toml"', f'process = "{run.process_id}"',
            f'id = "{run.process_id}/PNC-TS-A/S0"']))
        outcome = characterise_process(bench_file, tmp_path / "process.h5", plan=SweepPlan.quick(),
                                       pause=served.clock.advance)
    finally:
        served.stop()
    assert outcome.calibration is not None and outcome.structures_fitted >= 30
    flags = dict(outcome.flagged)
    for spread_neg in ("N05", "N08"):  # designed to switch beyond +1.5 V: unmeasurable designs, not contact faults
        assert "transition_outside" in flags[spread_neg] and "no_output" not in flags[spread_neg]
    assert served.clock.accounted_s + outcome.host_wait_s < 600.0
    assert outcome.eps == pytest.approx(0.10, abs=max(2.5 * outcome.eps_se, 0.03))
    assert outcome.rh_ohm_sq == pytest.approx(run.rh_ohm_sq, abs=3 * outcome.rh_ohm_sq_se)
    assert outcome.rl_ohm_sq == pytest.approx(run.rl_ohm_sq, abs=3 * outcome.rl_ohm_sq_se)
    v = np.linspace(-1.5, 1.5, 301)
    for result in (r for r in outcome.analysis.cells if r.used):
        true = cell_curve(sample.cells[result.cell.id].parts, run.material, v).v_out
        ideal = fit_transfer(result.cell.kind, v, true).eta   # the truth's own best tanh form
        error = tanh_form(v, result.fit.eta) - tanh_form(v, ideal)
        # quick plan (reference plan: ACT <= 5.2 mV). The simulated NEG is 30 to 70 mV from any tanh (1.9 says
        # <= 20 mV), so its "best tanh" depends on where the points lie: a looser bound there
        limit = 12e-3 if result.cell.kind == "ACT" else 25e-3
        assert np.sqrt(np.mean(error ** 2)) < limit, result.cell.id
    _ports_match_the_truth(outcome, sample, run)


def _ports_match_the_truth(outcome, sample, run) -> None:
    """The loading the printed network shows (contract 1.3, 1.5) is measured: each structure's output source
    resistance at its high level (the DMM's 10 Mohm as the known load) and each NEG's input line (its pad's
    shunt current less the bleed), against the printed cell solved alone; the maps carry them."""
    from labctl.families.printed.sim.transfer import cell_curve

    for result in (r for r in outcome.analysis.cells if r.used):
        parts = sample.cells[result.cell.id].parts
        ends = cell_curve(parts, run.material, [-1.5, 1.5])
        high = int(np.argmax(ends.v_out))
        loaded = cell_curve(parts, run.material, [[-1.5, 1.5][high]], load_ohm=10e6).v_out[0]
        r_true = 10e6 * (ends.v_out[high] - loaded) / loaded
        r_out, r_se = result.ports["r_out_ohm"]
        assert r_out == pytest.approx(r_true, abs=max(3 * r_se, 0.1 * r_true)), result.cell.id
        if result.cell.kind == "NEG":
            v = np.linspace(-1.5, 1.5, 31)
            slope, i0 = np.polyfit(v, cell_curve(parts, run.material, v).i_in, 1)
            assert result.ports["r_in_ohm"][0] == pytest.approx(1 / slope, rel=0.05), result.cell.id
            assert result.ports["i_in0_a"][0] == pytest.approx(i0, rel=0.05, abs=2e-8), result.cell.id
    calibration = outcome.calibration
    assert calibration.act.has_target("r_out_ohm") and calibration.act.has_target("r_out_low_ohm")
    assert all(calibration.neg.has_target(t) for t in ("r_out_ohm", "r_out_low_ohm", "r_in_ohm", "i_in0_a"))
