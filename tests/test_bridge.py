"""Bridge client against the simulated bridge and die over socket:// (contract sections 2 and 4).

Every op, request splitting on a CMNA-L, the bridge's check order and replay,
and one test per injected fault: the client must survive it and the server's
execution counter must show that nothing ran twice.
"""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from labctl.drivers.bridge import Transaction
from labctl.drivers.bridge_protocol import (
    BadArgumentError,
    BridgeError,
    BridgeTimeoutError,
    BusyError,
    HardwareFaultError,
    Status,
)
from labctl.families.cmna.link import Bridge
from labctl.families.cmna.protocol import Opcode, StatusFlag
from labctl.drivers.framing import FrameSplitter, Packet, crc16, decode_packet, encode_packet
from labctl.families.cmna.latch_codes import pack_rows, signed_to_nibbles
from labctl.families.cmna.sim.bridge_server import BridgeServer
from labctl.sim.bridge_server import Fault, FaultPlan
from labctl.sim.clock import VirtualClock
from labctl.families.cmna.sim.die import SimulatedDie
from labctl.sim.pads import solve_operating_point

FAST = dict(timeout_s=0.1, max_attempts=5, busy_backoff_s=0.002)


class Supply:
    """The supply SMU reduced to what the die needs: 1.8 V, 2 mA compliance, output on."""

    def drive(self, pad):
        return solve_operating_point(pad.current_into, "V", 1.8, 2e-3, True)


class Bench:
    def __init__(self, part: str, faults: FaultPlan | None, seed: int, **bridge_kwargs) -> None:
        self.die = SimulatedDie(part, seed=seed, clock=VirtualClock())
        self.die.pads["VDD"].attach(Supply())
        self.server = BridgeServer(self.die, faults=faults).start()
        self.log: list[Transaction] = []
        self.bridge = Bridge(self.server.url, transcript=self.log.append, **(FAST | bridge_kwargs))

    def inject(self, *faults: Fault) -> None:
        """Apply ``faults`` to the next request the server receives."""
        self.server.faults.at = {self.server.requests: set(faults)}

    def close(self) -> None:
        self.bridge.close()
        self.server.stop()


@pytest.fixture
def make_bench():
    benches: list[Bench] = []

    def make(part: str = "CMNA-777", faults: FaultPlan | None = None, seed: int = 3, open_: bool = True,
             **bridge_kwargs) -> Bench:
        bench = Bench(part, faults, seed, **bridge_kwargs)
        benches.append(bench)
        if open_:
            bench.bridge.open()
        return bench

    yield make
    for bench in benches:
        bench.close()


def held(die: SimulatedDie, matrix: int, written: np.ndarray, first_row: int = 0) -> np.ndarray:
    """What the latches hold after writing ``written``: the die's stuck bits win (contract section 1)."""
    out = written.copy()
    for m, row, col, bit, value in die.truth.stuck_bits:
        r = row - first_row
        if m == matrix and 0 <= r < out.shape[0]:
            out[r, col] = (int(out[r, col]) & ~(1 << bit) & 0xF) | (value << bit)
    return out


def expected_rates_hz(die: SimulatedDie, codes: np.ndarray) -> np.ndarray:
    """Noiseless C2F rates: gain x drift x output soma current + dark rate (contract section 4)."""
    out = die.soma_outputs(np.atleast_2d(codes))[-1]
    drift = die.truth.drift_factor(die.clock.now())
    return die.truth.c2f_gain_hz_per_a * drift * out + die.truth.c2f_dark_hz


def program_diagonal(bridge: Bridge, magnitude: int = 7) -> None:
    """Every matrix a +magnitude diagonal: output k follows input k (CMNA-777)."""
    for m in range(bridge.chip.n_matrices):
        rows, cols = bridge.chip.matrix_shape(m)
        bridge.write_weights(m, signed_to_nibbles(magnitude * np.eye(rows, cols, dtype=int)))


# -- every op -------------------------------------------------------------------------


def test_identify_is_the_die(make_bench):
    bench = make_bench()
    assert bench.bridge.identify() == bench.die.chip
    assert bench.bridge.chip.serial == "CMNA-777-000003"


def test_status_and_reset(make_bench):
    bench = make_bench()
    bench.bridge.identify()
    status = bench.bridge.status()
    flags, uptime_ms, temperature_c = bench.die.status()
    assert status.flags == flags == StatusFlag.LATCHES_UNWRITTEN  # power-up leaves latches random
    assert status.uptime_ms == uptime_ms
    assert status.temperature_c == pytest.approx(temperature_c, abs=1e-5)
    bench.bridge.reset()
    assert bench.bridge.status().flags == StatusFlag(0)
    for m in range(2):
        assert not bench.bridge.read_weights(m).any()


def test_weights_round_trip_show_what_latches_hold(make_bench):
    bench = make_bench(seed=11)
    chip = bench.bridge.identify()
    rng = np.random.default_rng(0)
    for m in range(chip.n_matrices):
        codes = rng.integers(0, 16, chip.matrix_shape(m), dtype=np.uint8)
        bench.bridge.write_weights(m, codes)
        np.testing.assert_array_equal(bench.bridge.read_weights(m), held(bench.die, m, codes))
    part = rng.integers(0, 16, (2, 7), dtype=np.uint8)
    bench.bridge.write_weights(1, part, first_row=4)
    np.testing.assert_array_equal(bench.bridge.read_weights(1, first_row=4, row_count=2),
                                  held(bench.die, 1, part, first_row=4))
    np.testing.assert_array_equal(bench.bridge.read_weights(1), bench.die.read_latches(1, 0, 7))


def test_measure_counts_follow_the_die_physics(make_bench):
    bench = make_bench()
    bridge = bench.bridge
    bridge.identify()
    bridge.reset()
    program_diagonal(bridge)
    codes = np.array([1000, 600, 200, 0, 800, 400, 1200])
    bridge.set_inputs(codes)
    want = expected_rates_hz(bench.die, codes)[0]
    m = bridge.measure(1000)
    assert 1.0 <= m.actual_gate_s <= 1.0 + 200e-6
    np.testing.assert_allclose(m.rates_hz, m.counts / m.actual_gate_s)
    np.testing.assert_allclose(m.rates_hz, want, rtol=0.04, atol=30)
    assert m.rates_hz[0] > 10_000 and m.rates_hz[3] < 200  # input 3 is off: dark rate plus leakage
    assert bench.die.clock.now() == pytest.approx(1.0, abs=1e-3), "one gate of bench time"


def test_run_batch_rates_and_dac_restored(make_bench):
    bench = make_bench()
    bridge = bench.bridge
    bridge.identify()
    bridge.reset()
    program_diagonal(bridge)
    bridge.set_inputs([500] * 7)
    patterns = np.outer(np.arange(1, 6), [300, 200, 100, 0, 400, 250, 150])
    want = expected_rates_hz(bench.die, patterns)
    batch = bridge.run_batch(patterns, 500)
    assert batch.counts.shape == (5, 7) and batch.counts.dtype == np.uint32
    np.testing.assert_array_equal(batch.rates_hz, batch.counts / 0.5)
    np.testing.assert_allclose(batch.rates_hz, want, rtol=0.05, atol=40)
    after = bridge.measure(1000)  # the DAC codes are back to 500 on every channel
    np.testing.assert_allclose(after.rates_hz, expected_rates_hz(bench.die, np.full(7, 500))[0], rtol=0.04, atol=30)


def test_route_ext_in(make_bench):
    bench = make_bench()
    bench.bridge.route_ext_in(3)
    assert bench.die.pad_state.ext_in_routed
    bench.bridge.route_ext_in(None)
    assert not bench.die.pad_state.ext_in_routed
    with pytest.raises(BadArgumentError, match="ROUTE_EXT_IN"):
        bench.bridge.route_ext_in(7)


def test_set_monitor_copies_the_neuron_and_disconnects_whatever_the_layer(make_bench):
    bench = make_bench()
    bridge = bench.bridge
    bridge.identify()
    bridge.reset()
    program_diagonal(bridge)
    codes = np.array([900, 700, 500, 300, 100, 0, 0])
    bridge.set_inputs(codes)
    bridge.set_monitor(1, 2)
    y = bench.die.soma_outputs(codes)[1][0, 2]
    drift = bench.die.truth.drift_factor(bench.die.clock.now())
    assert bench.die.mon_copy_a() == pytest.approx(bench.die.truth.mon_gain * drift * y, rel=1e-9)
    assert bench.die.mon_copy_a() > 20e-9
    bridge.set_monitor(200, None)  # neuron 0xFFFF: layer byte ignored
    assert bench.die.mon_copy_a() == 0.0
    with pytest.raises(BadArgumentError, match="SET_MONITOR"):
        bridge.set_monitor(3, 0)


def test_unpowered_die_answers_hw_fault_but_fpga_registers_work(make_bench):
    bench = make_bench()
    bench.bridge.identify()
    bench.die.pads["VDD"].attach(None)
    with pytest.raises(HardwareFaultError, match="WRITE_WEIGHTS"):
        bench.bridge.write_weights(0, np.zeros((7, 7), np.uint8))
    with pytest.raises(HardwareFaultError, match="MEASURE"):
        bench.bridge.measure(10)
    bench.bridge.set_inputs([100] * 7)
    bench.bridge.route_ext_in(0)
    bench.bridge.set_monitor(0, 0)
    assert bench.bridge.status().flags & StatusFlag.SUPPLY_OUT_OF_RANGE
    assert bench.server.executions[Opcode.WRITE_WEIGHTS] == 0


def test_transcript_records_every_exchange(make_bench):
    bench = make_bench()
    bench.bridge.set_inputs([1, 2, 3], first_channel=2)
    t = bench.log[-1]
    assert (t.op, t.status, t.attempts, t.response) == (Opcode.SET_INPUTS, Status.OK, 1, b"")
    assert t.request == bytes.fromhex("0200 0300 0100 0200 0300")
    assert bench.log[0].op == Opcode.STATUS, "the first request after opening is harmless"
    with pytest.raises(BadArgumentError):
        bench.bridge.measure(0)
    assert bench.log[-1].status == Status.BAD_ARGUMENT


def test_threads_share_one_bridge(make_bench):
    bench = make_bench()
    bench.bridge.identify()
    errors: list[BaseException] = []

    def work():
        try:
            for _ in range(20):
                bench.bridge.status()
                bench.bridge.set_inputs([7] * 7)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert bench.server.executions[Opcode.SET_INPUTS] == 60
    assert all(t.attempts == 1 for t in bench.log)


# -- splitting to the maximum payload (CMNA-L) ----------------------------------------------


def test_cmna_l_weights_split_to_fit_the_payload(make_bench):
    bench = make_bench("CMNA-L", seed=5)
    chip = bench.bridge.identify()
    rng = np.random.default_rng(1)
    codes = [rng.integers(0, 16, chip.matrix_shape(m), dtype=np.uint8) for m in range(3)]
    bench.log.clear()
    for m in range(3):
        bench.bridge.write_weights(m, codes[m])
    writes = [t for t in bench.log if t.op == Opcode.WRITE_WEIGHTS]
    assert len(writes) == 10 + 3 + 1  # 196 rows of 50 bytes: 20 per request; 100 rows of 25 bytes: 40
    assert max(len(t.request) for t in writes) <= 1024
    assert bench.server.executions[Opcode.WRITE_WEIGHTS] == len(writes)
    bench.log.clear()
    for m in range(3):
        got = bench.bridge.read_weights(m)
        np.testing.assert_array_equal(got, held(bench.die, m, codes[m]))
        np.testing.assert_array_equal(got, bench.die.read_latches(m, 0, chip.matrix_shape(m)[0]))
    reads = [t for t in bench.log if t.op == Opcode.READ_WEIGHTS]
    assert all(1 + len(t.response) <= 1024 for t in reads)
    assert len(reads) == 10 + 3 + 1  # 1023 // 50 = 20 rows per answer, 1023 // 25 = 40


def test_cmna_l_run_batch_split_keeps_pattern_order(make_bench):
    bench = make_bench("CMNA-L", seed=5)
    bridge = bench.bridge
    chip = bridge.identify()
    bridge.reset()
    bridge.write_weights(0, signed_to_nibbles(np.eye(196, 100, dtype=int) * 7))
    bridge.write_weights(1, signed_to_nibbles(np.eye(100, 50, dtype=int) * 7))
    bridge.write_weights(2, signed_to_nibbles(np.eye(50, 10, dtype=int) * 7))
    patterns = np.zeros((7, chip.n_inputs), int)
    patterns[:, :10] = np.arange(1, 8)[:, None] * 400  # pattern p drives the outputs (p + 1) times harder
    bench.log.clear()
    batch = bridge.run_batch(patterns, 1000)
    sent = [t for t in bench.log if t.op == Opcode.RUN_BATCH]
    assert [len(t.request) for t in sent] == [4 + 2 * 196 * 2] * 3 + [4 + 196 * 2]
    assert all(1 + len(t.response) <= 1024 for t in sent)
    assert batch.counts.shape == (7, 10)
    np.testing.assert_allclose(batch.rates_hz, expected_rates_hz(bench.die, patterns), rtol=0.06, atol=40)
    assert np.all(np.diff(batch.rates_hz.mean(axis=1)) > 0)


# -- the bridge's own rules, seen through raw packets (contract section 4) --------------------------


class RawLink:
    """A bare socket speaking frames, to send what the client never would."""

    def __init__(self, server: BridgeServer) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=0.3)
        self.splitter = FrameSplitter()

    def ask(self, frame: bytes) -> Packet | None:
        self.sock.sendall(frame)
        try:
            while True:
                data = self.sock.recv(4096)
                if not data:
                    return None
                frames = self.splitter.feed(data)
                if frames:
                    return decode_packet(frames[0])
        except TimeoutError:
            return None

    def status_of(self, seq: int, op: int, payload: bytes = b"", version: int = 1) -> Status | None:
        answer = self.ask(encode_packet(seq, op, payload, version=version))
        return None if answer is None else Status(answer.payload[0])

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(make_bench):
    bench = make_bench("CMNA-777", open_=False)
    link = RawLink(bench.server)
    yield bench, link
    link.close()


def _frame_with_header_length(seq: int, op: int, payload: bytes, n: int, version: int = 1) -> bytes:
    from cobs import cobs
    body = bytes([version, seq, op]) + n.to_bytes(2, "little") + payload
    return cobs.encode(body + crc16(body).to_bytes(2, "little")) + b"\x00"


def test_check_order(raw):
    bench, link = raw
    # version before length, length before opcode, opcode before the op's length rule, ...
    assert link.status_of(1, 0x7F, b"", version=2) == Status.BAD_VERSION
    answer = link.ask(_frame_with_header_length(2, 0x7F, b"", 3, version=2))
    assert Status(answer.payload[0]) == Status.BAD_VERSION
    answer = link.ask(_frame_with_header_length(3, Opcode.MEASURE, b"\x64\x00", 5))
    assert (answer.seq, answer.op, Status(answer.payload[0])) == (3, Opcode.MEASURE | 0x80, Status.BAD_LENGTH)
    assert link.status_of(4, 0x7F, bytes(1025)) == Status.BAD_LENGTH
    assert link.status_of(5, 0x7F) == Status.BAD_OPCODE
    assert link.status_of(6, Opcode.MEASURE, b"\x00\x00\x00") == Status.BAD_LENGTH
    assert link.status_of(7, Opcode.MEASURE, b"\x00\x00") == Status.BAD_ARGUMENT
    assert link.status_of(8, Opcode.MEASURE, (1001).to_bytes(2, "little")) == Status.BAD_ARGUMENT
    bench.die.pads["VDD"].attach(None)
    assert link.status_of(9, Opcode.MEASURE, (1).to_bytes(2, "little")) == Status.HW_FAULT
    assert link.status_of(10, Opcode.STATUS, b"x") == Status.BAD_LENGTH
    assert sum(bench.server.executions.values()) == 0


def test_answers_that_would_not_fit_are_refused(raw):
    bench, link = raw
    request = (1).to_bytes(2, "little") + (37).to_bytes(2, "little") + bytes(2 * 7 * 37)
    assert link.status_of(1, Opcode.RUN_BATCH, request) == Status.BAD_ARGUMENT  # 1 + 37 * 28 > 1024
    request = (1).to_bytes(2, "little") + (36).to_bytes(2, "little") + bytes(2 * 7 * 36)
    assert link.status_of(2, Opcode.RUN_BATCH, request) == Status.OK
    assert link.status_of(3, Opcode.RUN_BATCH, b"\x01\x00\x00\x00") == Status.BAD_ARGUMENT  # P = 0


def test_bad_argument_and_count_zero_leave_the_die_as_it_was(raw):
    bench, link = raw
    assert link.status_of(1, Opcode.RESET) == Status.OK
    before = [bench.die.read_latches(m, 0, 7) for m in range(2)]
    rows = pack_rows(np.full((2, 7), 5, np.uint8))
    assert link.status_of(2, Opcode.WRITE_WEIGHTS, bytes([0, 6, 0, 2, 0]) + rows) == Status.BAD_ARGUMENT
    assert link.status_of(3, Opcode.WRITE_WEIGHTS, bytes([0, 0, 0, 2, 0]) + rows[:-1]) == Status.BAD_LENGTH
    assert link.status_of(4, Opcode.WRITE_WEIGHTS, bytes([0, 6, 0, 0, 0])) == Status.OK
    assert link.status_of(5, Opcode.SET_INPUTS, bytes([0, 0, 0, 0])) == Status.OK
    codes = np.array([1, 2, 3, 4096], "<u2").tobytes()
    assert link.status_of(6, Opcode.SET_INPUTS, bytes([0, 0, 4, 0]) + codes) == Status.BAD_ARGUMENT
    for m in range(2):
        np.testing.assert_array_equal(bench.die.read_latches(m, 0, 7), before[m])


def test_replay_same_seq_and_op_survives_reconnects(raw):
    bench, link = raw
    first = link.ask(encode_packet(20, Opcode.MEASURE, b"\x64\x00"))
    t = bench.die.clock.now()
    link.close()
    other = RawLink(bench.server)
    again = other.ask(encode_packet(20, Opcode.MEASURE, b"\x64\x00"))
    assert again == first and bench.die.clock.now() == t
    assert bench.server.executions[Opcode.MEASURE] == 1
    assert other.status_of(20, Opcode.STATUS) == Status.OK, "same seq, other op: executed"
    fresh = other.ask(encode_packet(20, Opcode.MEASURE, b"\x64\x00"))
    assert fresh.payload != first.payload and bench.server.executions[Opcode.MEASURE] == 2
    assert other.status_of(21, Opcode.MEASURE, b"\x00\x00") == Status.BAD_ARGUMENT
    assert other.status_of(21, Opcode.MEASURE, b"\x00\x00") == Status.BAD_ARGUMENT, "errors replay too"
    bench.inject(Fault.BUSY)
    assert other.status_of(22, Opcode.MEASURE, b"\x64\x00") == Status.BUSY
    assert other.status_of(22, Opcode.MEASURE, b"\x64\x00") == Status.BUSY, "BUSY replays: retry needs a new seq"
    assert bench.server.executions[Opcode.MEASURE] == 2
    other.close()


def test_damaged_frames_get_no_answer(raw):
    bench, link = raw
    frame = bytearray(encode_packet(1, Opcode.STATUS))
    frame[3] ^= 0x10
    assert link.ask(bytes(frame)) is None
    assert link.status_of(1, Opcode.STATUS) == Status.OK


# -- faults: the client survives, nothing executes twice ------------------------------------------


def _write_row(bench: Bench) -> None:
    bench.bridge.write_weights(0, np.full((1, 7), 9, np.uint8), first_row=6)


@pytest.mark.parametrize("fault", [Fault.DROP, Fault.CORRUPT, Fault.DISCONNECT_BEFORE, Fault.DISCONNECT_AFTER])
def test_lost_request_or_answer_is_resent_with_the_same_seq(make_bench, fault):
    bench = make_bench()
    bench.bridge.identify()
    bench.inject(fault)
    _write_row(bench)
    t = bench.log[-1]
    assert t.attempts == 2 and t.status == Status.OK
    assert bench.server.executions[Opcode.WRITE_WEIGHTS] == 1
    row = np.full((1, 7), 9, np.uint8)
    np.testing.assert_array_equal(bench.bridge.read_weights(0, 6, 1), held(bench.die, 0, row, 6))


def test_measure_after_lost_answer_spends_one_gate(make_bench):
    """A replayed MEASURE returns the first reading: the die's clock advanced by one gate only."""
    bench = make_bench()
    bench.bridge.identify()
    bench.bridge.reset()
    start = bench.die.clock.now()
    bench.inject(Fault.DISCONNECT_AFTER)
    m = bench.bridge.measure(100)
    assert bench.die.clock.now() - start == pytest.approx(m.actual_gate_s, abs=1e-6)
    assert bench.server.executions[Opcode.MEASURE] == 1


def test_late_answers_are_discarded_as_stale(make_bench):
    bench = make_bench(faults=FaultPlan(latency_s=0.25))
    bench.bridge.identify()
    bench.inject(Fault.LATENCY)
    bench.bridge.set_inputs([11] * 7)
    assert bench.log[-1].attempts >= 2
    # the replays of the retries arrive late; the next requests must not take them for their answer
    for _ in range(3):
        assert bench.bridge.status().uptime_ms == bench.die.status()[1]
        assert bench.bridge.identify() == bench.die.chip
    assert bench.server.executions[Opcode.SET_INPUTS] == 1


def test_busy_is_retried_with_a_new_seq(make_bench):
    bench = make_bench()
    bench.bridge.identify()
    bench.inject(Fault.BUSY)
    bench.bridge.set_inputs([5] * 7)
    t = bench.log[-1]
    assert t.attempts == 2 and t.status == Status.OK
    assert t.seq == (bench.log[-2].seq + 2) & 0xFF, "BUSY retry takes a new seq"
    assert bench.server.executions[Opcode.SET_INPUTS] == 1


def test_die_busy_on_another_link_answers_busy(make_bench):
    bench = make_bench()
    bench.bridge.identify()
    client = threading.Thread(target=bench.bridge.status)
    with bench.die.lock:  # "the die is busy with a measurement asked for over another link"
        client.start()
        time.sleep(0.05)
    client.join()
    assert bench.log[-1].attempts >= 2 and bench.log[-1].status == Status.OK


def test_busy_forever_gives_busy_error(make_bench):
    bench = make_bench(faults=FaultPlan(), max_attempts=3)
    bench.server.faults.probability = {Fault.BUSY: 1.0}
    with pytest.raises(BusyError, match="STATUS"):
        bench.bridge.status()
    assert bench.log[-1].attempts == 3


def test_gate_overrun_rates_use_the_actual_gate(make_bench):
    bench = make_bench(faults=FaultPlan(overrun_ms=50.0))
    bridge = bench.bridge
    bridge.identify()
    bridge.reset()
    program_diagonal(bridge)
    bridge.set_inputs([800] * 7)
    want = expected_rates_hz(bench.die, np.full(7, 800))[0]
    bench.inject(Fault.OVERRUN)
    m = bridge.measure(100)
    assert 0.150 <= m.actual_gate_s <= 0.150 + 200e-6
    np.testing.assert_allclose(m.rates_hz, want, rtol=0.06, atol=60)  # counts / 0.1 s would be 50 % high
    assert bridge.status().flags & StatusFlag.GATE_OVERRUN
    bridge.reset()
    assert not bridge.status().flags & StatusFlag.GATE_OVERRUN
    program_diagonal(bridge)
    bench.inject(Fault.OVERRUN)
    batch = bridge.run_batch(np.full((3, 7), 800), 100)
    np.testing.assert_array_equal(batch.rates_hz, batch.counts / 0.1)  # RUN_BATCH: the requested gate
    assert bridge.status().flags & StatusFlag.GATE_OVERRUN


def test_fragmented_answers(make_bench):
    bench = make_bench(faults=FaultPlan(fragment_bytes=2, probability={Fault.FRAGMENT: 1.0}))
    chip = bench.bridge.identify()
    codes = np.random.default_rng(2).integers(0, 16, (7, 7), dtype=np.uint8)
    bench.bridge.write_weights(1, codes)
    np.testing.assert_array_equal(bench.bridge.read_weights(1), held(bench.die, 1, codes))
    assert chip == bench.die.chip
    assert all(t.attempts == 1 for t in bench.log)


def test_stale_bytes_after_connecting(make_bench):
    bench = make_bench(faults=FaultPlan(stale_on_connect=True))
    assert bench.bridge.identify() == bench.die.chip
    bench.inject(Fault.DISCONNECT_AFTER)  # reconnect: the new connection starts with junk again
    bench.bridge.set_inputs([3] * 7)
    assert bench.bridge.status().uptime_ms == bench.die.status()[1]
    assert bench.server.executions[Opcode.SET_INPUTS] == 1
    assert bench.server.executions[Opcode.STATUS] == 2


def test_seeded_random_faults_soak(make_bench):
    plan = FaultPlan(seed=7, latency_s=0.15, probability={
        Fault.DROP: 0.05, Fault.CORRUPT: 0.05, Fault.BUSY: 0.05, Fault.LATENCY: 0.03,
        Fault.DISCONNECT_BEFORE: 0.02, Fault.DISCONNECT_AFTER: 0.02, Fault.FRAGMENT: 0.1})
    bench = make_bench(faults=plan, max_attempts=10)
    bridge = bench.bridge
    bridge.identify()
    for i in range(60):
        bridge.set_inputs([i] * 7)
    assert bench.server.executions[Opcode.SET_INPUTS] == 60
    assert bench.server.requests > 60, "faults were injected"
    assert max(t.attempts for t in bench.log) >= 2


# -- giving up ------------------------------------------------------------------------------------


def test_gives_up_after_bounded_attempts(make_bench):
    bench = make_bench(faults=FaultPlan(probability={Fault.DROP: 1.0}), open_=False, timeout_s=0.05,
                       max_attempts=4)
    start = time.monotonic()
    with pytest.raises(BridgeTimeoutError) as exc:
        bench.bridge.open()
    assert time.monotonic() - start < 1.5
    message = str(exc.value)
    assert "\n" not in message and "STATUS" in message and "4 attempts" in message
    assert bench.server.url in message
    assert bench.server.requests == 4
    assert not bench.bridge.is_open


def test_server_gone_mid_session(make_bench):
    bench = make_bench(max_attempts=3, timeout_s=0.05)
    bench.server.stop()
    with pytest.raises(BridgeTimeoutError, match="STATUS.*cannot open bridge port"):
        bench.bridge.status()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("url", [f"socket://127.0.0.1:{_free_port()}", "/dev/ttyACM_no_such_bridge", "COM97"])
def test_unreachable_port_is_one_line_naming_it(url):
    start = time.monotonic()
    with pytest.raises(BridgeError) as exc:
        Bridge(url).open()
    assert time.monotonic() - start < 5.0
    assert url in str(exc.value) and "\n" not in str(exc.value)
