"""TTFS's IDENTIFY answer: the die's record and how a TTFS bridge is recognised (docs/specs/ttfs-bench.md 2.3).

Its own module because every other codec depends on it: the record's geometry
(layer sizes, bits, maximum payload) is what the parsers of requests check
against, while the record itself depends on nothing but the shared opcodes
(:mod:`.protocol`). Recognition (offset 0 = 0x03, ``TTFS``, the exact length)
is what tells a TTFS bridge from a CMNA one on the same port.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from labctl.drivers.bridge_protocol import BridgeError, BridgeProtocolError, check_length, f32_value
from labctl.families.ttfs.protocol import WINDOW_NS, Opcode

DEVICE_PROTOCOL = 0x03
"""IDENTIFY offset 0 of a TTFS bridge (CMNA answers 0x01; 0x02 is reserved)."""
FAMILY_TAG = b"TTFS"
SERIAL_BYTES = 16
PART_BYTES = 8


@dataclass(frozen=True)
class DieDescription:
    """An IDENTIFY answer: the die's geometry and nominal constants."""

    serial: str
    part: str
    layer_sizes: tuple[int, ...]
    firmware: tuple[int, int] = (1, 0)
    protocol: int = DEVICE_PROTOCOL
    magnitude_bits: int = 4
    time_bits: int = 8
    input_lsb_s: float = 1e-8
    tdc_lsb_s: float = 1e-9
    max_window_ns: int = WINDOW_NS[1]
    i_lsb_a: float = 2e-9
    c_membrane_f: float = 1.033e-13
    v_rest_v: float = 1.3
    max_payload: int = 8192

    @property
    def n_layers(self) -> int:
        return len(self.layer_sizes)

    @property
    def n_matrices(self) -> int:
        return self.n_layers - 1

    def matrix_shape(self, m: int) -> tuple[int, int]:
        """Rows (layer m's neurons plus the bias row) x columns (layer m+1's neurons) of matrix m (2.4)."""
        return self.layer_sizes[m] + 1, self.layer_sizes[m + 1]

    @property
    def max_code(self) -> int:
        return (1 << self.magnitude_bits) - 1


_IDENTIFY_HEAD = struct.Struct(f"<B4sBB{SERIAL_BYTES}s{PART_BYTES}sB")
_IDENTIFY_TAIL = struct.Struct("<BBffHfffH")


def identify_answer(die: DieDescription) -> bytes:
    sizes = die.layer_sizes
    return (_IDENTIFY_HEAD.pack(die.protocol, FAMILY_TAG, *die.firmware, die.serial.encode("ascii"),
                                die.part.encode("ascii"), len(sizes))
            + struct.pack(f"<{len(sizes)}H", *sizes)
            + _IDENTIFY_TAIL.pack(die.magnitude_bits, die.time_bits, die.input_lsb_s, die.tdc_lsb_s,
                                  die.max_window_ns, die.i_lsb_a, die.c_membrane_f, die.v_rest_v, die.max_payload))


def parse_identify(payload: bytes) -> DieDescription:
    """IDENTIFY answer (after the status byte) of a TTFS bridge; anything else raises BridgeProtocolError."""
    if len(payload) < _IDENTIFY_HEAD.size:
        raise BridgeProtocolError(f"IDENTIFY payload has only {len(payload)} bytes, a TTFS answer has at least "
                                  f"{_IDENTIFY_HEAD.size + _IDENTIFY_TAIL.size}")
    protocol, tag, major, minor, serial, part, n_layers = _IDENTIFY_HEAD.unpack_from(payload)
    if protocol != DEVICE_PROTOCOL or tag != FAMILY_TAG:
        raise BridgeProtocolError(f"IDENTIFY answer is not a TTFS die's (device protocol 0x{protocol:02x}, "
                                  f"tag {tag!r}; expected 0x03 and b'TTFS')")
    check_length(Opcode.IDENTIFY.name, payload, _IDENTIFY_HEAD.size + 2 * n_layers + _IDENTIFY_TAIL.size)
    if n_layers < 2:
        raise BridgeProtocolError(f"IDENTIFY reports {n_layers} layers; a TTFS die has at least 2")
    sizes = struct.unpack_from(f"<{n_layers}H", payload, _IDENTIFY_HEAD.size)
    if min(sizes) < 1:
        raise BridgeProtocolError(f"IDENTIFY reports an empty layer: sizes {sizes}")
    tail = _IDENTIFY_TAIL.unpack_from(payload, _IDENTIFY_HEAD.size + 2 * n_layers)
    mag_bits, time_bits, input_lsb, tdc_lsb, max_window, i_lsb, c_mem, v_rest, max_payload = tail
    return DieDescription(
        serial=_ascii(serial), part=_ascii(part), layer_sizes=tuple(sizes), firmware=(major, minor),
        protocol=protocol, magnitude_bits=mag_bits, time_bits=time_bits, input_lsb_s=f32_value(input_lsb),
        tdc_lsb_s=f32_value(tdc_lsb), max_window_ns=max_window, i_lsb_a=f32_value(i_lsb),
        c_membrane_f=f32_value(c_mem), v_rest_v=f32_value(v_rest), max_payload=max_payload)


def _ascii(field: bytes) -> str:
    return field.rstrip(b"\0").decode("ascii", errors="replace")


def is_ttfs_identify(payload: bytes) -> bool:
    """The recognition rule of 2.3: offset 0 = 0x03, offsets 1..4 = ``TTFS`` and the exact length."""
    try:
        parse_identify(payload)
    except BridgeError:
        return False
    return True
