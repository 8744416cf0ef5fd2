"""Bridge packet framing: COBS + CRC-16/CCITT-FALSE (contract section 2, "Framing").

Pure functions that turn (seq, op, payload) into wire bytes and back, plus an
incremental splitter for the byte stream. Both the host client
(:mod:`labctl.drivers.bridge`) and the simulated bridge use them, so the two
ends can never disagree on the format.

A decoded packet is ``version | seq | op | N (u16 LE) | payload (N) | CRC (u16 LE)``;
the CRC covers everything before it. On the wire it is COBS-encoded and
followed by one 0x00 delimiter.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

from cobs import cobs

PROTOCOL_VERSION = 1
DELIMITER = b"\x00"
HEADER = struct.Struct("<BBBH")
"""version, seq, op, payload length N."""
CRC_BYTES = 2
OVERHEAD = HEADER.size + CRC_BYTES
"""Bytes a decoded packet has besides its payload."""
MAX_WIRE_FRAME = 2 * (OVERHEAD + 0xFFFF)
"""No valid frame is longer; a splitter drops anything beyond (line noise without a delimiter)."""


class FrameError(ValueError):
    """A frame that is not a valid packet; the bridge drops it, the host ignores it.

    ``header`` is set only when the CRC passed but the header's N disagrees with
    the bytes received: the packet is genuine, so a bridge answers it
    BAD_LENGTH (or BAD_VERSION) instead of dropping it (contract section 4).
    """

    def __init__(self, message: str, header: "Packet | None" = None) -> None:
        super().__init__(message)
        self.header = header

    @property
    def header_length_mismatch(self) -> bool:
        return self.header is not None


@dataclass(frozen=True)
class Packet:
    """One decoded packet. ``op`` of a response carries bit 7 (op OR 0x80)."""

    version: int
    seq: int
    op: int
    payload: bytes


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor (check 0x29B1)."""
    return binascii.crc_hqx(data, 0xFFFF)


def encode_packet(seq: int, op: int, payload: bytes = b"", version: int = PROTOCOL_VERSION) -> bytes:
    """Wire bytes of one packet: COBS(header + payload + CRC) followed by the 0x00 delimiter."""
    body = HEADER.pack(version, seq, op, len(payload)) + payload
    return cobs.encode(body + crc16(body).to_bytes(2, "little")) + DELIMITER


def decode_packet(frame: bytes) -> Packet:
    """Decode one frame (the bytes between delimiters, delimiter excluded).

    Raises :class:`FrameError` on bad COBS, a frame too short for a header, a
    failed CRC, or (with ``header`` set) a header length that disagrees with
    the payload received.
    """
    try:
        raw = cobs.decode(frame)
    except cobs.DecodeError as exc:
        raise FrameError(f"bad COBS encoding: {exc}") from None
    if len(raw) < OVERHEAD:
        raise FrameError(f"frame of {len(raw)} bytes is shorter than a packet header and CRC")
    if crc16(raw[:-CRC_BYTES]) != int.from_bytes(raw[-CRC_BYTES:], "little"):
        raise FrameError("CRC mismatch")
    version, seq, op, length = HEADER.unpack_from(raw)
    packet = Packet(version, seq, op, raw[HEADER.size:-CRC_BYTES])
    if length != len(packet.payload):
        raise FrameError(f"header says {length} payload bytes, packet holds {len(packet.payload)}", packet)
    return packet


def wire_bytes_needed(partial: bytes) -> int:
    """Fewest further wire bytes that can complete the frame whose start is ``partial``.

    Lets a reader ask the port for a whole frame in one or two reads instead of
    byte by byte: before the header is readable the bound is the smallest
    possible frame; afterwards it follows from N (COBS adds at least one byte,
    the delimiter another). Always at least 1.
    """
    header = _cobs_prefix(partial, HEADER.size)
    length = 0 if header is None else header[3] | header[4] << 8
    return max(1, OVERHEAD + length + 2 - len(partial))


def _cobs_prefix(partial: bytes, count: int) -> bytes | None:
    """The first ``count`` decoded bytes of an unfinished COBS frame, or None if not yet known."""
    out = bytearray()
    i = 0
    while len(out) < count:
        if i >= len(partial) or partial[i] == 0:
            return None
        code = partial[i]
        out += partial[i + 1:i + code]
        i += code
        if i < len(partial) and code != 0xFF:
            out.append(0)  # a complete block followed by more data stood for a zero byte
    return bytes(out[:count])


class FrameSplitter:
    """Accumulates stream bytes and returns complete frames (delimiter removed).

    Empty frames (a lone 0x00, as sent to resynchronise) are skipped. A run of
    bytes longer than any valid frame is dropped as line noise.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> bytes:
        """Bytes received after the last delimiter (the start of the next frame)."""
        return bytes(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        if DELIMITER not in data:
            self._buffer += data
            if len(self._buffer) > MAX_WIRE_FRAME:
                self._buffer.clear()
            return []
        self._buffer += data
        *frames, rest = self._buffer.split(DELIMITER)
        self._buffer = bytearray(rest)
        return [bytes(f) for f in frames if f]

    def clear(self) -> None:
        self._buffer.clear()
