"""What a die is, as the bridge reports it (IDENTIFY, contract section 2).

labctl never assumes a geometry: every stage takes it from a
:class:`ChipDescription`, which is built from the IDENTIFY answer and stored in
every HDF5 file so that a file can be checked against the die on the bench.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

FAMILY_NAME = "cmna"
"""The family's name in bench files, HDF5 files (attribute ``family``) and ``labctl families``."""

KNOWN_PARTS: dict[tuple[int, ...], str] = {
    (7, 7, 7): "CMNA-777",
    (196, 100, 50, 10): "CMNA-L",
}


@dataclass(frozen=True)
class ChipDescription:
    """Identity and geometry of one die, from IDENTIFY."""

    serial: str
    protocol: int
    firmware: tuple[int, int]
    layer_sizes: tuple[int, ...]
    magnitude_bits: int
    dac_bits: int
    dac_lsb_a: float
    c2f_gain_hz_per_a: float
    max_gate_ms: int
    max_payload: int

    @property
    def part(self) -> str:
        """Product name guessed from the geometry (informational only)."""
        return KNOWN_PARTS.get(tuple(self.layer_sizes), "CMNA-custom")

    @property
    def n_layers(self) -> int:
        return len(self.layer_sizes)

    @property
    def n_inputs(self) -> int:
        return self.layer_sizes[0]

    @property
    def n_outputs(self) -> int:
        return self.layer_sizes[-1]

    @property
    def n_matrices(self) -> int:
        return len(self.layer_sizes) - 1

    def matrix_shape(self, matrix: int) -> tuple[int, int]:
        """(rows, columns) of weight matrix m: rows are layer m, columns layer m+1."""
        if not 0 <= matrix < self.n_matrices:
            raise ValueError(f"matrix {matrix} does not exist (die has {self.n_matrices})")
        return self.layer_sizes[matrix], self.layer_sizes[matrix + 1]

    @property
    def max_magnitude(self) -> int:
        return (1 << self.magnitude_bits) - 1

    @property
    def max_dac_code(self) -> int:
        return (1 << self.dac_bits) - 1

    def as_attrs(self) -> dict[str, object]:
        """Flat attributes for an HDF5 group (tuples become lists)."""
        d = asdict(self)
        d["firmware"] = list(self.firmware)
        d["layer_sizes"] = list(self.layer_sizes)
        d["part"] = self.part
        return d

    @classmethod
    def from_attrs(cls, attrs: dict) -> "ChipDescription":
        return cls(
            serial=str(attrs["serial"]),
            protocol=int(attrs["protocol"]),
            firmware=tuple(int(v) for v in attrs["firmware"]),  # type: ignore[arg-type]
            layer_sizes=tuple(int(v) for v in attrs["layer_sizes"]),
            magnitude_bits=int(attrs["magnitude_bits"]),
            dac_bits=int(attrs["dac_bits"]),
            dac_lsb_a=float(attrs["dac_lsb_a"]),
            c2f_gain_hz_per_a=float(attrs["c2f_gain_hz_per_a"]),
            max_gate_ms=int(attrs["max_gate_ms"]),
            max_payload=int(attrs["max_payload"]),
        )
