"""TTFS bridge protocol (docs/specs/ttfs-bench.md 2, 8.1, 8.2): the contract's packets byte for byte,
codec round trips and refusals, and the client against the simulated bridge over a real ``socket://`` port."""

from __future__ import annotations

import numpy as np
import pytest
from cobs import cobs

from labctl.drivers.bridge_protocol import (
    BadArgumentError,
    BadLengthError,
    BridgeProtocolError,
    HardwareFaultError,
    Status,
    split_status,
    status_answer,
)
from labctl.drivers.framing import FrameSplitter, decode_packet, encode_packet
from labctl.families.cmna.family import CmnaFamily
from labctl.families.cmna.protocol import identify_answer as cmna_identify_answer
from labctl.sim.bridge_server import Fault, FaultPlan
from labctl.families.cmna.sim.die import SimulatedDie as CmnaDie
from labctl.families.ttfs.identify import DieDescription, identify_answer, is_ttfs_identify, parse_identify
from labctl.families.ttfs.link import TtfsBridge
from labctl.families.ttfs.patterns import (
    NO_SPIKE,
    PatternBatch,
    Timing,
    apply_patterns_answer,
    apply_patterns_request,
    bias_times_request,
    parse_apply_patterns_answer,
    parse_apply_patterns_request,
    parse_bias_times_request,
    parse_set_timing_request,
    patterns_per_frame,
    set_timing_request,
    tdc_to_seconds,
)
from labctl.families.ttfs.probe_ops import (
    Monitors,
    hold_row_request,
    monitors_answer,
    parse_hold_row_request,
    parse_monitors,
    parse_select_probe_request,
    select_probe_request,
)
from labctl.families.ttfs.protocol import (
    STATUS_FLAG_WORDS,
    MalformedRequestError,
    Opcode,
    RequestArgumentError,
    RequestLengthError,
    StatusFlag,
    parse_status,
)
from labctl.families.ttfs.synapse_codes import (
    WriteOutcome,
    pack_codes,
    parse_read_synapses_answer,
    parse_read_synapses_request,
    parse_write_synapses_answer,
    parse_write_synapses_request,
    read_synapses_request,
    write_synapses_answer,
    write_synapses_request,
)
from labctl.families.ttfs.sim.bridge import SimulatedTtfsDie, TtfsBridgeServer
from labctl.families.ttfs.sim.die import run_patterns

RCS_S = DieDescription(serial="RCS-S-24A-0113", part="RCS-S", layer_sizes=(4, 16, 3))
RCS_L = DieDescription(serial="RCS-L-000001", part="RCS-L", layer_sizes=(784, 256, 128, 10))


def hexb(text: str) -> bytes:
    return bytes.fromhex(text)


# -- the contract's packets (2.8, 8.1, 8.2) -----------------------------------------------

IDENTIFY_ANSWER = hexb("""
        00
        03 54 54 46 53 01 00
        52 43 53 2d 53 2d 32 34 41 2d 30 31 31 33 00 00
        52 43 53 2d 53 00 00 00
        03 04 00 10 00 03 00
        04 08 77 cc 2b 32 5f 70 89 30 e8 fd
        5f 70 09 31 65 9c e8 29 66 66 a6 3f 00 20""")

# (seq, op, payload, packet, wire): requests and answers of 2.8, 8.1 and 8.2
TRANSCRIPTS = [
    (0x21, Opcode.IDENTIFY, "", "01 21 01 00 00 97 cd", "04 01 21 01 01 03 97 cd 00"),
    (0x21, Opcode.IDENTIFY | 0x80, IDENTIFY_ANSWER.hex(),
     "01 21 81 41 00" + IDENTIFY_ANSWER.hex() + "34 21",
     """05 01 21 81 41 01 07 03 54 54 46 53 01 0f 52 43 53 2d 53 2d 32 34
        41 2d 30 31 31 33 01 06 52 43 53 2d 53 01 01 03 03 04 02 10 02 03
        19 04 08 77 cc 2b 32 5f 70 89 30 e8 fd 5f 70 09 31 65 9c e8 29 66
        66 a6 3f 04 20 34 21 00"""),
    (0x22, Opcode.WRITE_SYNAPSES, "01 00 10 00 01 00 03 f1 00", "01 22 10 09 00 01 00 10 00 01 00 03 f1 00 9b 37",
     "05 01 22 10 09 02 01 02 10 02 01 03 03 f1 03 9b 37 00"),
    (0x22, Opcode.WRITE_SYNAPSES | 0x80, "00 01 00 00 00", "01 22 90 05 00 00 01 00 00 00 c1 20", None),
    (0x23, Opcode.SELECT_PROBE, "01 05 00", "01 23 22 03 00 01 05 00 c6 58", "05 01 23 22 03 03 01 05 03 c6 58 00"),
    (0x24, Opcode.SET_TIMING, "80 3e 00 00", "01 24 20 04 00 80 3e 00 00 9f ec",
     "05 01 24 20 04 03 80 3e 01 03 9f ec 00"),
    (0x2c, Opcode.HOLD_ROW, "00 04 00", "01 2c 23 03 00 00 04 00 8e 93", "05 01 2c 23 03 01 02 04 03 8e 93 00"),
    (0x2a, Opcode.APPLY_PATTERNS, "00 00 02 01 00 02 00 29 a0 0b 08 ff ff ff ff",
     "01 2a 30 0f 00 00 00 02 01 00 02 00 29 a0 0b 08 ff ff ff ff 19 85",
     "05 01 2a 30 0f 01 01 03 02 01 02 02 0b 29 a0 0b 08 ff ff ff ff 19 85 00"),
    (0x2a, Opcode.APPLY_PATTERNS | 0x80, "00 ff ff 2c 0f 9b 1a ff ff ff ff ff ff",
     "01 2a b0 0d 00 00 ff ff 2c 0f 9b 1a ff ff ff ff ff ff 86 d7",
     "05 01 2a b0 0d 01 0f ff ff 2c 0f 9b 1a ff ff ff ff ff ff 86 d7 00"),
]


@pytest.mark.parametrize("seq, op, payload, packet, wire", TRANSCRIPTS)
def test_contract_packets_frame_byte_for_byte(seq, op, payload, packet, wire):
    encoded = encode_packet(seq, op, hexb(payload))
    assert cobs.decode(encoded[:-1]) == hexb(packet)
    if wire is not None:
        assert encoded == hexb(wire)
        (frame,) = FrameSplitter().feed(hexb(wire))
        decoded = decode_packet(frame)
        assert (decoded.seq, decoded.op, decoded.payload) == (seq, op, hexb(payload))


def test_identify_example_decodes_and_reencodes():
    body = split_status(Opcode.IDENTIFY, IDENTIFY_ANSWER)
    die = parse_identify(body)
    assert die == RCS_S
    assert (die.n_layers, die.layer_sizes) == (3, (4, 16, 3))
    assert (die.matrix_shape(0), die.matrix_shape(1)) == ((5, 16), (17, 3))
    assert (die.input_lsb_s, die.tdc_lsb_s, die.max_window_ns, die.i_lsb_a) == (1e-8, 1e-9, 65000, 2e-9)
    assert (die.c_membrane_f, die.v_rest_v, die.max_payload, die.max_code) == (1.033e-13, 1.3, 8192, 15)
    assert identify_answer(die) == body
    assert len(identify_answer(RCS_L)) == 66


def test_section_2_8_payloads_from_the_builders():
    assert pack_codes([3, -15, 0]) == hexb("03 f1 00")
    request = write_synapses_request(1, 16, [[3, -15, 0]], mode=0)
    assert request == hexb("01 00 10 00 01 00 03 f1 00")
    write = parse_write_synapses_request(request, RCS_S)
    assert (write.matrix, write.mode, write.first_row, write.codes.tolist()) == (1, 0, 16, [[3, -15, 0]])
    answer = split_status(Opcode.WRITE_SYNAPSES, hexb("00 01 00 00 00"))
    assert parse_write_synapses_answer(answer) == WriteOutcome(1, 0)
    assert write_synapses_answer(WriteOutcome(1, 0)) == answer
    assert select_probe_request(1, 5) == hexb("01 05 00")
    assert parse_select_probe_request(hexb("01 05 00"), RCS_S) == (1, 5)
    assert set_timing_request(16000, 0) == hexb("80 3e 00 00")
    assert parse_set_timing_request(hexb("80 3e 00 00")) == Timing(16000, 0)
    assert hold_row_request(0, 4) == hexb("00 04 00")
    assert parse_hold_row_request(hexb("00 04 00"), RCS_S) == (0, 4)


def test_section_8_2_apply_patterns_exchange():
    codes = np.array([[41, 160, 11, 8], [255, 255, 255, 255]], np.uint8)
    request = apply_patterns_request(PatternBatch(codes, entry=0, readout=2, repeats=1))
    assert request == hexb("00 00 02 01 00 02 00 29 a0 0b 08 ff ff ff ff")
    batch = parse_apply_patterns_request(request, RCS_S)
    assert (batch.entry, batch.readout, batch.repeats, batch.idle) == (0, 2, 1, False)
    assert np.array_equal(batch.codes, codes)
    body = split_status(Opcode.APPLY_PATTERNS, hexb("00 ff ff 2c 0f 9b 1a ff ff ff ff ff ff"))
    tdc = parse_apply_patterns_answer(body, 2, 3)
    assert tdc.tolist() == [[0xFFFF, 3884, 6811], [0xFFFF] * 3]
    assert apply_patterns_answer(tdc) == body
    times = tdc_to_seconds(tdc, RCS_S)
    assert times[0, 1] == pytest.approx(3884.5e-9) and np.isinf(times[0, 0])
    assert patterns_per_frame(RCS_S, 0, 2) == 1365  # the table of 2.5
    assert [patterns_per_frame(RCS_L, e, r) for e, r in ((0, 3), (1, 2), (2, 3))] == [10, 31, 63]
    assert patterns_per_frame(RCS_S, 0, 1) == 255 and patterns_per_frame(RCS_S, 1, 2) == 511


# -- round trips and refusals -----------------------------------------------------------------


def test_codec_round_trips():
    rng = np.random.default_rng(1)
    codes = rng.integers(-15, 16, (17, 3))
    write = parse_write_synapses_request(write_synapses_request(1, 0, codes, mode=1), RCS_S)
    assert (write.matrix, write.mode, write.first_row) == (1, 1, 0) and np.array_equal(write.codes, codes)
    assert parse_read_synapses_request(read_synapses_request(0, 2, 3), RCS_S) == (0, 2, 3)
    assert np.array_equal(parse_read_synapses_answer(pack_codes(codes), 17, 3), codes)
    assert parse_bias_times_request(bias_times_request([7, 255]), RCS_S) == (7, 255)
    assert parse_select_probe_request(select_probe_request(0, 3), RCS_S) == (0, 3)
    assert parse_select_probe_request(select_probe_request(9, None), RCS_S) == (9, None)
    assert parse_hold_row_request(hold_row_request(1, None), RCS_S) == (1, None)
    assert parse_set_timing_request(set_timing_request(65000, 200)) == Timing(65000, 200)
    patterns = rng.integers(0, 256, (5, 16))
    batch = PatternBatch(patterns, entry=1, readout=2, repeats=7, idle=True)
    parsed = parse_apply_patterns_request(apply_patterns_request(batch), RCS_S)
    assert (parsed.entry, parsed.readout, parsed.repeats, parsed.idle) == (1, 2, 7, True)
    assert np.array_equal(parsed.codes, patterns)
    monitors = Monitors(1.8, 0.8, 0.4, 1.7, 1.3)
    assert parse_monitors(monitors_answer(monitors)) == monitors
    flags = StatusFlag.TDC_OVERFLOW | StatusFlag.ENDURANCE
    status = parse_status(status_answer(flags, 1234, 25.5))
    assert status.flags == flags and isinstance(status.flags, StatusFlag) and status.uptime_ms == 1234
    assert set(STATUS_FLAG_WORDS) == set(StatusFlag)
    assert parse_identify(identify_answer(RCS_L)) == RCS_L


MALFORMED = [
    # (parser, payload, error, words in the message)
    (lambda p: parse_write_synapses_request(p, RCS_S), "01 00 10 00", RequestLengthError, "too short"),
    (lambda p: parse_write_synapses_request(p, RCS_S), "01 00 10 00 01 00 03 f1", RequestLengthError,
     "expected 9"),
    (lambda p: parse_write_synapses_request(p, RCS_S), "02 00 00 00 01 00 03", RequestArgumentError,
     "matrix 2 does not exist"),
    (lambda p: parse_write_synapses_request(p, RCS_S), "01 00 10 00 02 00 00 00 00 00 00 00",
     RequestArgumentError, "rows 16..17 outside 0..16"),
    (lambda p: parse_write_synapses_request(p, RCS_S), "01 02 10 00 01 00 03 f1 00", RequestArgumentError,
     "mode 2"),
    (lambda p: parse_write_synapses_request(p, RCS_S), "01 00 10 00 01 00 03 f0 00", RequestArgumentError,
     "code -16"),
    (lambda p: parse_read_synapses_request(p, RCS_S), "00 00 00 06 00 00", RequestLengthError, "expected 5"),
    (lambda p: parse_read_synapses_request(p, RCS_S), "00 00 00 06 00", RequestArgumentError, "outside 0..4"),
    (parse_set_timing_request, "e7 03 00 00", RequestArgumentError, "999 ns"),
    (parse_set_timing_request, "80 3e 00", RequestLengthError, "expected 4"),
    (lambda p: parse_bias_times_request(p, RCS_S), "03 00 00 00", RequestArgumentError, "3 bias times"),
    (lambda p: parse_bias_times_request(p, RCS_S), "02 00", RequestLengthError, "expected 3"),
    (lambda p: parse_bias_times_request(p, RCS_S), "", RequestLengthError, "too short"),
    (lambda p: parse_select_probe_request(p, RCS_S), "00 04 00", RequestArgumentError, "reference 4"),
    (lambda p: parse_select_probe_request(p, RCS_S), "02 03 00", RequestArgumentError, "neuron 3 of layer 2"),
    (lambda p: parse_hold_row_request(p, RCS_S), "00 05 00", RequestArgumentError, "row 5 outside 0..4"),
    (lambda p: parse_apply_patterns_request(p, RCS_S), "00 00 02 01 00", RequestLengthError, "too short"),
    (lambda p: parse_apply_patterns_request(p, RCS_S), "00 00 02 01 00 01 00 29 a0 0b", RequestLengthError,
     "expected 11"),
    (lambda p: parse_apply_patterns_request(p, RCS_S), "02 00 02 01 00 01 00 29 a0 0b 08",
     RequestArgumentError, "reserved"),
    (lambda p: parse_apply_patterns_request(p, RCS_S), "00 00 00 01 00 01 00 29 a0 0b 08",
     RequestArgumentError, "readout layer 0"),
    (lambda p: parse_apply_patterns_request(p, RCS_S), "00 02 03 01 00 01 00 00", RequestArgumentError,
     "entry layer 2"),
    (lambda p: parse_apply_patterns_request(p, RCS_S), "00 00 02 00 00 01 00 29 a0 0b 08",
     RequestArgumentError, "0 repeats"),
    (lambda p: parse_apply_patterns_request(p, RCS_S), "00 00 02 01 00 00 00", RequestArgumentError,
     "no pattern"),
    (lambda p: parse_apply_patterns_request(p, RCS_S, Timing(16000, 200)), "00 00 02 ff ff 01 00 29 a0 0b 08",
     RequestArgumentError, "at most 10 s"),
    (lambda p: parse_identify(p), IDENTIFY_ANSWER[1:-1].hex(), BridgeProtocolError, "expected 64"),
    (lambda p: parse_identify(p), "01" + IDENTIFY_ANSWER[2:].hex(), BridgeProtocolError, "not a TTFS"),
    (lambda p: parse_apply_patterns_answer(p, 2, 3), "ff ff 2c 0f", BridgeProtocolError, "expected 12"),
    (lambda p: parse_read_synapses_answer(p, 1, 3), "03 f0 00", BridgeProtocolError, "outside -15..+15"),
    (lambda p: parse_read_synapses_answer(p, 1, 3), "03 f1", BridgeProtocolError, "expected 1 x 3"),
    (parse_monitors, "00 00 80 3f", BridgeProtocolError, "expected 20"),
    (parse_write_synapses_answer, "01 00 00", BridgeProtocolError, "expected 4"),
]


@pytest.mark.parametrize("parse, payload, error, words", MALFORMED)
def test_malformed_payloads_are_refused_in_one_line(parse, payload, error, words):
    with pytest.raises(error, match=words) as info:
        parse(hexb(payload))
    assert "\n" not in str(info.value)
    if isinstance(info.value, MalformedRequestError):
        expected = Status.BAD_LENGTH if error is RequestLengthError else Status.BAD_ARGUMENT
        assert info.value.status == expected


def test_builders_refuse_what_a_bridge_would():
    with pytest.raises(RequestArgumentError, match="code 16"):
        write_synapses_request(0, 0, [[16] * 16])
    with pytest.raises(RequestArgumentError, match="window 999"):
        set_timing_request(999)
    with pytest.raises(RequestArgumentError, match="0..255"):
        apply_patterns_request(PatternBatch(np.array([[256, 0, 0, 0]]), readout=2))
    with pytest.raises(RequestArgumentError, match="readout layer 0"):
        apply_patterns_request(PatternBatch(np.zeros((1, 4), np.uint8), entry=0, readout=0))


def test_cmna_and_ttfs_never_recognise_each_other():
    assert not CmnaFamily().recognises(split_status(Opcode.IDENTIFY, IDENTIFY_ANSWER))
    assert not CmnaFamily().recognises(identify_answer(RCS_L))
    assert is_ttfs_identify(identify_answer(RCS_S))
    assert not is_ttfs_identify(cmna_identify_answer(CmnaDie("CMNA-777", seed=3).chip))


# -- the client against the simulated bridge over socket:// ---------------------------------------------


@pytest.fixture
def served():
    servers, links = [], []

    def start(seed: int = 5, faults: FaultPlan | None = None, timeout_s: float = 5.0, **die_options):
        server = TtfsBridgeServer(SimulatedTtfsDie("RCS-S", seed, **die_options), faults=faults).start()
        link = TtfsBridge(server.url, timeout_s=timeout_s).open()
        servers.append(server)
        links.append(link)
        return server, link

    yield start
    for link in links:
        link.close()
    for server in servers:
        server.stop()


def test_identify_over_socket_gives_the_contract_geometry(served):
    server, link = served(seed=7)
    assert link.port.startswith("socket://")
    die = link.identify()
    assert (die.part, die.layer_sizes, die.protocol, die.max_payload) == ("RCS-S", (4, 16, 3), 3, 8192)
    assert [die.matrix_shape(m) for m in range(die.n_matrices)] == [(5, 16), (17, 3)]
    assert sum(r * c for r, c in map(die.matrix_shape, range(die.n_matrices))) == 131  # 1.1
    assert die.serial == "RCS-S-000007"
    assert link.status().flags == StatusFlag(0)
    assert link.read_monitors().v_rest == pytest.approx(1.3, abs=0.02)


def test_codes_written_read_back_and_survive_a_power_cycle(served):
    server, link = served(seed=6)
    rng = np.random.default_rng(2)
    w0, w1 = rng.integers(-15, 16, (5, 16)), rng.integers(-15, 16, (17, 3))
    assert np.array_equal(link.read_synapses(0), np.zeros((5, 16)))  # a new die ships with every code 0
    assert link.write_synapses(0, w0) == WriteOutcome(5, 0)
    assert link.write_synapses(1, w1) == WriteOutcome(17, 0)
    assert link.write_synapses(1, w1) == WriteOutcome(0, 0)  # mode 0: rows that read back equal are skipped
    assert link.write_synapses(1, w1[3:5], first_row=3, mode=1) == WriteOutcome(2, 0)
    assert np.array_equal(link.read_synapses(0), w0) and np.array_equal(link.read_synapses(1), w1)
    assert np.array_equal(link.read_synapses(1, first_row=16, count=1), w1[16:])

    link.set_timing(20000, 3)
    server.die.set_pads(vth=0.0, e_exc=0.0, e_inh=0.0)
    server.die.set_pads(vdd=0.0)
    flags = link.status().flags
    assert flags & StatusFlag.SUPPLY_OUT_OF_RANGE and flags & StatusFlag.TIMEBASE_UNLOCKED
    with pytest.raises(HardwareFaultError):
        link.read_synapses(0)
    with pytest.raises(HardwareFaultError):
        link.apply_patterns([[0, 0, 0, 0]])
    server.die.set_pads(vdd=1.8)
    server.die.set_pads(e_inh=1.7, e_exc=0.4, vth=0.8)
    assert np.array_equal(link.read_synapses(0), w0) and np.array_equal(link.read_synapses(1), w1)
    assert server.die.timing == Timing(20000, 3)  # the bridge's registers survive the die's power cycle


def test_a_stuck_cell_fails_verify_and_reads_what_it_holds(served):
    server, link = served(seed=5)  # this die has one stuck cell in matrix 0
    (row,), (col,) = np.nonzero(server.die.truth.matrices[0].stuck_max < 15)
    reachable = int(server.die.truth.matrices[0].stuck_max[row, col])
    codes = np.full((5, 16), 15)
    assert link.write_synapses(0, codes) == WriteOutcome(5, 1)
    assert link.status().flags & StatusFlag.VERIFY_FAILED
    expected = codes.copy()
    expected[row, col] = reachable
    assert np.array_equal(link.read_synapses(0), expected)
    assert link.write_synapses(0, codes).rows_programmed == 1  # mode 0 retries only the row that differs
    link.reset()
    assert not link.status().flags & StatusFlag.VERIFY_FAILED


def test_bridge_refuses_as_the_contract_says(served):
    server, link = served()
    link.hold_row(0, 4)
    with pytest.raises(BadArgumentError, match="row is held"):
        link.write_synapses(0, np.zeros((1, 16)))
    with pytest.raises(BadArgumentError):
        link.apply_patterns([[0, 0, 0, 0]])
    link.hold_row(0, None)
    with pytest.raises(BadArgumentError):
        link.request(Opcode.SET_BIAS_TIMES, bytes([1, 0]))
    with pytest.raises(BadLengthError):
        link.request(Opcode.SET_TIMING, bytes([0x80, 0x3e]))
    with pytest.raises(BadArgumentError):
        link.request(Opcode.WRITE_SYNAPSES, hexb("00 00 00 00 01 00") + bytes([16] * 16))
    assert np.array_equal(link.read_synapses(0), np.zeros((5, 16)))  # nothing was written
    assert link.request(Opcode.WRITE_SYNAPSES, hexb("00 00 00 00 00 00")) == hexb("00 00 00 00")  # count 0: no-op


def test_apply_patterns_matches_the_die_physics_across_frames(served):
    server, link = served(seed=11, noise=False)
    rng = np.random.default_rng(3)
    w0, w1 = rng.integers(-4, 16, (5, 16)), rng.integers(-15, 16, (17, 3))
    link.write_synapses(0, w0)
    link.write_synapses(1, w1)
    link.set_bias_times([0, 30])
    patterns = rng.integers(0, 256, (1500, 4)).astype(np.uint8)  # more than the 1365 one frame carries
    before = server.executions[Opcode.APPLY_PATTERNS]
    tdc = link.apply_patterns(patterns)
    assert server.executions[Opcode.APPLY_PATTERNS] - before == 2
    die = server.die
    direct = run_patterns(die.truth, die.synapses, die.pads, patterns, bias_codes=np.array([0, 30]))
    assert tdc.dtype == np.uint16 and np.array_equal(tdc, direct.tdc[2])
    assert (tdc != NO_SPIKE).any() and (tdc == NO_SPIKE).any()
    assert link.status().flags & StatusFlag.TDC_OVERFLOW
    hidden = link.apply_patterns(patterns[:300], readout=1)  # 255 a frame: two frames
    assert np.array_equal(hidden, direct.tdc[1][:300])
    assert (link.apply_patterns(patterns[:5], idle=True) == NO_SPIKE).all()


def test_apply_patterns_with_noise_matches_the_physics_frame_by_frame(served):
    server, link = served(seed=12)
    rng = np.random.default_rng(4)
    link.write_synapses(0, rng.integers(0, 16, (5, 16)))
    link.write_synapses(1, rng.integers(-15, 16, (17, 3)))
    patterns = rng.integers(0, 200, (1400, 4)).astype(np.uint8)
    die = server.die
    noise = np.random.default_rng(np.random.SeedSequence([12, 2]))  # the board's pattern noise, same seed
    tdc = link.apply_patterns(patterns)
    frames = [patterns[:1365], patterns[1365:]]
    expected = np.concatenate([run_patterns(die.truth, die.synapses, die.pads, f, rng=noise).tdc[2] for f in frames])
    assert np.array_equal(tdc, expected)


@pytest.mark.parametrize("fault", [Fault.CORRUPT, Fault.DISCONNECT_AFTER, Fault.DROP])
def test_a_lost_answer_is_replayed_not_executed_twice(served, fault):
    server, link = served(faults=FaultPlan(), timeout_s=0.3, noise=False)
    link.write_synapses(0, np.full((5, 16), 12))
    link.write_synapses(1, np.full((17, 3), 3))
    server.faults.at = {server.requests: {fault}}
    tdc = link.apply_patterns(np.zeros((3, 4), np.uint8))
    assert server.executions[Opcode.APPLY_PATTERNS] == 1  # dropped: the resend runs it; else answered from replay
    assert (tdc != NO_SPIKE).all()
    server.faults.at = {server.requests: {fault}}
    assert link.write_synapses(1, np.full((17, 3), -2)) == WriteOutcome(17, 0)  # the replay answers, no wear
    assert int(server.die.cycles[1].max()) == 2
