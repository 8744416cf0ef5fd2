"""Bridge framing and payload codec: the contract's worked examples, CRC, round trips, status errors."""

import struct

import numpy as np
import pytest
from cobs import cobs
from hypothesis import given
from hypothesis import strategies as st

from labctl.families.cmna.chip import ChipDescription
from labctl.drivers.bridge_protocol import (
    STATUS_ERRORS,
    BadArgumentError,
    BadLengthError,
    BadOpcodeError,
    BadVersionError,
    BridgeError,
    BridgeProtocolError,
    BusyError,
    HardwareFaultError,
    Status,
    split_status,
    status_answer,
)
from labctl.families.cmna.protocol import (
    Opcode,
    StatusFlag,
    identify_answer,
    measure_answer,
    monitor_request,
    parse_identify,
    parse_measure,
    parse_monitor_request,
    parse_status,
    weights_request,
)
from labctl.drivers.framing import (
    FrameError,
    FrameSplitter,
    crc16,
    decode_packet,
    encode_packet,
    wire_bytes_needed,
)
from labctl.errors import InstrumentError
from labctl.families.cmna.latch_codes import pack_rows, signed_to_nibbles, unpack_rows

# (seq, op, payload, packet, wire) of contract section 2
WORKED_EXAMPLES = [
    (7, Opcode.IDENTIFY, "", "01 07 01 00 00 40 dd", "04 01 07 01 01 03 40 dd 00"),
    (8, Opcode.SET_MONITOR, "01 03 00", "01 08 22 03 00 01 03 00 b9 d7", "05 01 08 22 03 03 01 03 03 b9 d7 00"),
    (9, Opcode.WRITE_WEIGHTS, "00 02 00 01 00 a1 70 3f 00", "01 09 10 09 00 00 02 00 01 00 a1 70 3f 00 c2 4a",
     "05 01 09 10 09 01 02 02 02 01 04 a1 70 3f 03 c2 4a 00"),
    (10, Opcode.MEASURE, "64 00", "01 0a 30 02 00 64 00 c5 e9", "05 01 0a 30 02 02 64 03 c5 e9 00"),
]

CHIP = ChipDescription(serial="CMNA-L-000003", protocol=1, firmware=(1, 2), layer_sizes=(196, 100, 50, 10),
                       magnitude_bits=3, dac_bits=12, dac_lsb_a=1e-10, c2f_gain_hz_per_a=1e12,
                       max_gate_ms=1000, max_payload=1024)


def test_crc_check_value():
    assert crc16(b"123456789") == 0x29B1


@pytest.mark.parametrize("seq, op, payload, packet, wire", WORKED_EXAMPLES)
def test_worked_examples_encode(seq, op, payload, packet, wire):
    assert encode_packet(seq, op, bytes.fromhex(payload)) == bytes.fromhex(wire)
    assert cobs.decode(bytes.fromhex(wire)[:-1]) == bytes.fromhex(packet)


@pytest.mark.parametrize("seq, op, payload, packet, wire", WORKED_EXAMPLES)
def test_worked_examples_decode(seq, op, payload, packet, wire):
    frames = FrameSplitter().feed(bytes.fromhex(wire))
    assert len(frames) == 1
    p = decode_packet(frames[0])
    assert (p.version, p.seq, p.op, p.payload) == (1, seq, op, bytes.fromhex(payload))


def test_worked_example_payloads_from_builders():
    """The builders produce the example payloads: the WRITE_WEIGHTS row 1, -2, 0, 7, -7, 3, 0 packs to a1 70 3f 00."""
    row = pack_rows(signed_to_nibbles(np.array([[1, -2, 0, 7, -7, 3, 0]])))
    assert row == bytes.fromhex("a1 70 3f 00")
    assert weights_request(0, 2, 1, row) == bytes.fromhex(WORKED_EXAMPLES[2][2])
    assert monitor_request(1, 3) == bytes.fromhex(WORKED_EXAMPLES[1][2])
    assert parse_monitor_request(monitor_request(1, 3)) == (1, 3)
    assert parse_monitor_request(monitor_request(9, None)) == (9, None)


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=2100))
def test_packet_round_trip(seq, op, payload):
    wire = encode_packet(seq, op, payload)
    assert wire.index(0) == len(wire) - 1, "COBS leaves exactly one zero: the delimiter"
    p = decode_packet(wire[:-1])
    assert (p.version, p.seq, p.op, p.payload) == (1, seq, op, payload)


@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=600)), max_size=6),
       st.lists(st.integers(1, 97), min_size=1, max_size=40), st.booleans())
def test_splitter_reassembles_any_chunking(packets, cuts, lone_zeros):
    """Frames come back whole however the stream is cut; lone 0x00 (resync) yields nothing."""
    stream = b"".join((b"\x00" if lone_zeros else b"") + encode_packet(*p) for p in packets)
    splitter, frames, pos, i = FrameSplitter(), [], 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        frames += splitter.feed(stream[pos:pos + step])
        pos, i = pos + step, i + 1
    assert [(d.seq, d.op, d.payload) for d in map(decode_packet, frames)] == packets
    assert splitter.pending == b""


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=1500), st.data())
def test_wire_bytes_needed_never_overshoots(seq, op, payload, data):
    """A reader may ask for this many bytes without blocking past the end of the frame."""
    wire = encode_packet(seq, op, payload)
    k = data.draw(st.integers(0, len(wire) - 1))
    assert 1 <= wire_bytes_needed(wire[:k]) <= len(wire) - k
    if k >= 8:  # header readable: the bound is tight up to COBS overhead
        assert k + wire_bytes_needed(wire[:k]) >= len(payload) + 9


@given(st.binary(min_size=1, max_size=300), st.data())
def test_any_flipped_packet_byte_is_rejected(payload, data):
    raw = bytearray(cobs.decode(encode_packet(3, Opcode.RUN_BATCH, payload)[:-1]))
    raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    with pytest.raises(FrameError):
        decode_packet(cobs.encode(bytes(raw)))


def test_frame_errors():
    with pytest.raises(FrameError, match="COBS"):
        decode_packet(b"\x05\x01\x02")
    with pytest.raises(FrameError, match="shorter"):
        decode_packet(cobs.encode(b"\x01\x02\x03"))
    good = encode_packet(1, Opcode.STATUS)[:-1]
    with pytest.raises(FrameError) as exc:
        decode_packet(good[:-1] + bytes([good[-1] ^ 1]))
    assert not exc.value.header_length_mismatch


def test_header_length_mismatch_keeps_the_header():
    """CRC passes but N disagrees: the bridge must be able to answer BAD_LENGTH to (seq, op)."""
    body = struct.pack("<BBBH", 1, 42, Opcode.MEASURE, 5) + b"\x64\x00"
    frame = cobs.encode(body + crc16(body).to_bytes(2, "little"))
    with pytest.raises(FrameError) as exc:
        decode_packet(frame)
    assert exc.value.header_length_mismatch
    assert (exc.value.header.seq, exc.value.header.op, exc.value.header.payload) == (42, Opcode.MEASURE, b"\x64\x00")


def test_odd_width_rows_ignore_the_spare_nibble():
    """Contract section 4: the unused high nibble of an odd-width row is ignored and reads back as 0."""
    codes = np.array([[1, 2, 3], [0xF, 0x8, 0x7]], np.uint8)
    packed = pack_rows(codes)
    assert packed == bytes([0x21, 0x03, 0x8F, 0x07])
    dirty = bytes([0x21, 0xA3, 0x8F, 0xF7])  # spare nibbles set
    np.testing.assert_array_equal(unpack_rows(dirty, 2, 3), codes)
    assert pack_rows(unpack_rows(dirty, 2, 3)) == packed


def test_identify_round_trip_keeps_nominal_values():
    """f32 fields come back as the decimal they stand for (1e-10 A, not 1.0000000133e-10 A)."""
    payload = identify_answer(CHIP)
    assert len(payload) == 3 + 16 + 1 + 2 * 4 + 1 + 1 + 4 + 4 + 2 + 2
    assert parse_identify(payload) == CHIP
    with pytest.raises(BridgeProtocolError, match="IDENTIFY"):
        parse_identify(payload[:-1])


def test_status_payload():
    s = parse_status(status_answer(0b1010, 123456, 26.5))
    assert s.flags == StatusFlag.OVERSTRESS | StatusFlag.GATE_OVERRUN
    assert (s.uptime_ms, s.temperature_c) == (123456, 26.5)


def test_measure_rates_use_the_actual_gate():
    counts = np.array([1500, 0, 3], np.uint32)
    m = parse_measure(measure_answer(150_000, counts), 3)
    assert m.actual_gate_s == pytest.approx(0.150)
    np.testing.assert_allclose(m.rates_hz, [10_000.0, 0.0, 20.0])
    with pytest.raises(BridgeProtocolError, match="MEASURE"):
        parse_measure(measure_answer(150_000, counts), 4)


EXPECTED_ERRORS = {
    Status.BAD_LENGTH: BadLengthError, Status.BAD_OPCODE: BadOpcodeError, Status.BAD_ARGUMENT: BadArgumentError,
    Status.BUSY: BusyError, Status.HW_FAULT: HardwareFaultError, Status.BAD_VERSION: BadVersionError,
}


@pytest.mark.parametrize("status", [s for s in Status if s != Status.OK])
def test_every_status_maps_to_its_exception(status):
    assert STATUS_ERRORS[status] is EXPECTED_ERRORS[status]
    with pytest.raises(EXPECTED_ERRORS[status]) as exc:
        split_status(Opcode.RUN_BATCH, bytes([status]))
    assert isinstance(exc.value, BridgeError) and isinstance(exc.value, InstrumentError)
    message = str(exc.value)
    assert "\n" not in message and "RUN_BATCH" in message and status.name in message


def test_ok_status_and_malformed_answers():
    assert split_status(Opcode.STATUS, b"\x00abc") == b"abc"
    with pytest.raises(BridgeProtocolError, match="unknown status 0x42"):
        split_status(Opcode.STATUS, b"\x42")
    with pytest.raises(BridgeProtocolError, match="without a status byte"):
        split_status(Opcode.STATUS, b"")
