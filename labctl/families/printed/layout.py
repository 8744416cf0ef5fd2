"""The layout file of a test-structure sample (printed-bench.md 2.4, format ``pnc-ts-layout/1``).

The layout file is the truth about what was drawn on a PNC-TS sample: which
structure sits on which pads and rail group, and every component's drawn
geometry and value (the Sobol rule of 2.3 is informative only). Readers shall
refuse unknown keys (2.4), so the schema is strict: a misspelt key is one line
naming the file, the structure and the key, before the bench is touched.

The parsed records are plain frozen dataclasses; nothing downstream sees TOML
or pydantic.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from labctl.errors import ConfigError
from labctl.families.printed.printable import ACT_COMPONENTS, NEG_COMPONENTS
from labctl.toml_files import parse_toml, read_user_file, schema_problem

FORMAT = "pnc-ts-layout/1"
FRAME = "PF-144"
ID_PAD = "D24"
"""Reserved on every sample (2.1): the ID ladder's drive; its taps are S45 and S46."""
ID_TAPS = ("S45", "S46")

_PAD = re.compile(r"(D|S|VDD|VSS)(\d{2})")
_PAD_COUNT = {"D": 24, "S": 46, "VDD": 35, "VSS": 35}


def pad_number(pad: str, kind: str) -> int:
    """``"S13"`` -> 13 when ``pad`` is a pad of ``kind`` (D, S, VDD, VSS) of frame PF-144 (2.1)."""
    match = _PAD.fullmatch(pad)
    if match is None or match.group(1) != kind or not 1 <= int(match.group(2)) <= _PAD_COUNT[kind]:
        raise ValueError(f"{pad!r} is not a {kind} pad of PF-144 ({kind}01 to {kind}{_PAD_COUNT[kind]:02d})")
    return int(match.group(2))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _finite_positive(value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{value!r} must be a finite positive number")
    return value


class _Resistor(_Strict):
    layer: Literal["RH", "RL"]
    W_um: float
    L_um: float
    R_ohm: float

    _positive = field_validator("W_um", "L_um", "R_ohm")(_finite_positive)


class _Transistor(_Strict):
    W_um: float
    L_um: float

    _positive = field_validator("W_um", "L_um")(_finite_positive)


class _CellPads(_Strict):
    IN: str
    OUT: str
    VDD: str
    VSS: str


class _Act(_Strict):
    id: str = Field(min_length=1)
    kind: Literal["ACT"]
    design: str = Field(min_length=1)
    pads: _CellPads
    R1: _Resistor
    R2: _Resistor
    T1: _Transistor
    T2: _Transistor


class _Neg(_Strict):
    id: str = Field(min_length=1)
    kind: Literal["NEG"]
    design: str = Field(min_length=1)
    pads: _CellPads
    R1: _Resistor
    R2: _Resistor
    R3: _Resistor
    R4: _Resistor
    R5: _Resistor
    T: _Transistor


class _ChainPads(_Strict):
    DRIVE: str
    KELVIN: str | None = None
    TAPS: list[str] = Field(default_factory=list)


class _Chain(_Strict):
    id: str = Field(min_length=1)
    kind: Literal["RCHAIN", "RES", "ID"]
    design: str | None = None
    pads: _ChainPads
    resistors: list[_Resistor] = Field(min_length=1)


class _Inks(_Strict):
    RH_ohm_sq: float
    RL_ohm_sq: float

    _positive = field_validator("RH_ohm_sq", "RL_ohm_sq")(_finite_positive)


class _Bleed(_Strict):
    pads: list[str]
    R_ohm: float
    W_um: float
    L_um: float

    _positive = field_validator("R_ohm", "W_um", "L_um")(_finite_positive)


class _LayoutSchema(_Strict):
    format: Literal["pnc-ts-layout/1"]
    layout: str = Field(min_length=1)
    id_code: int = Field(ge=0, le=24)
    process: str = Field(min_length=1)
    sample: str = Field(min_length=1)
    frame: Literal["PF-144"]
    inks: _Inks
    bleed: _Bleed
    structure: list[Annotated[Union[_Act, _Neg, _Chain], Field(discriminator="kind")]] = Field(min_length=1)


# -- the parsed records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Resistor:
    """One drawn resistor: its layer, drawn W and L (um) and the value drawn at the nominal ink (ohm)."""

    layer: str
    w_um: float
    l_um: float
    r_ohm: float

    @property
    def squares(self) -> float:
        """L / W: the resistor is ``R_s`` times this (1.2), before line-width bias."""
        return self.l_um / self.w_um


@dataclass(frozen=True)
class Transistor:
    w_um: float
    l_um: float


@dataclass(frozen=True)
class CellStructure:
    """An ACT or NEG structure on its own rail group (2.3)."""

    id: str
    kind: str
    design: str
    input_pad: str
    output_pad: str
    rail_group: int
    resistors: dict[str, Resistor]
    transistors: dict[str, Transistor]

    def drawn_components(self) -> dict[str, float]:
        """Component values in the cell map's names (R in ohm, W/L in um): ACT R1 R2 W1 L1 W2 L2, NEG R1..R5 W L."""
        values = {name: r.r_ohm for name, r in self.resistors.items()}
        if self.kind == "ACT":
            for index, name in ((1, "T1"), (2, "T2")):
                values[f"W{index}"] = self.transistors[name].w_um
                values[f"L{index}"] = self.transistors[name].l_um
            order = ACT_COMPONENTS
        else:
            values["W"], values["L"] = self.transistors["T"].w_um, self.transistors["T"].l_um
            order = NEG_COMPONENTS
        return {name: values[name] for name in order}


@dataclass(frozen=True)
class ResistorStructure:
    """A resistor chain, single resistor or the ID ladder (2.3): bottom end at GND, drive end first."""

    id: str
    kind: str
    drive_pad: str
    kelvin_pad: str | None
    taps: tuple[str, ...]
    resistors: tuple[Resistor, ...]


@dataclass(frozen=True)
class Layout:
    """A PNC-TS layout file, read and checked (2.4)."""

    path: Path | None
    text: str
    layout: str
    id_code: int
    process: str
    sample: str
    rh_ohm_sq: float
    rl_ohm_sq: float
    bleed_pads: tuple[str, ...]
    bleed: Resistor
    cells: tuple[CellStructure, ...]
    resistor_structures: tuple[ResistorStructure, ...]

    def cell(self, structure_id: str) -> CellStructure:
        for cell in self.cells:
            if cell.id == structure_id:
                return cell
        raise KeyError(structure_id)

    def ink_ohm_sq(self, layer: str) -> float:
        """The nominal sheet resistance the drawn values were computed with (2.4 ``inks``)."""
        return self.rh_ohm_sq if layer == "RH" else self.rl_ohm_sq


def load_layout(path: str | Path) -> Layout:
    """Read and check a layout file; ConfigError (one line naming the file and key) on any problem."""
    return parse_layout_text(read_user_file(path, "layout file"), source=Path(path))


def parse_layout_text(text: str, source: Path | None = None) -> Layout:
    where = f"layout file {source}" if source else "layout file"
    raw = parse_toml(text, where)
    try:
        schema = _LayoutSchema.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_describe(exc, raw)}") from None
    try:
        return _records(schema, text, source)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _describe(exc: ValidationError, raw: dict) -> str:
    """The first validation error as ``structure[3] (A04).R1.W_um must be ...``."""
    err = exc.errors()[0]
    loc = [str(part) for part in err["loc"]]
    if len(loc) >= 2 and loc[0] == "structure" and loc[1].isdigit():
        index = int(loc[1])
        items = raw.get("structure") or []
        name = items[index].get("id") if index < len(items) and isinstance(items[index], dict) else None
        tail = [part for part in loc[2:] if part not in ("ACT", "NEG", "RCHAIN", "RES", "ID")]
        loc = [f"structure[{index}]" + (f" ({name})" if name else ""), *tail]
    key = ".".join(loc) or "(top level)"
    if err["type"] == "union_tag_invalid":
        return f"{key} kind must be ACT, NEG, RCHAIN, RES or ID"
    return schema_problem(err, key)


def _resistor(r: _Resistor) -> Resistor:
    return Resistor(r.layer, r.W_um, r.L_um, r.R_ohm)


def _cell(item: _Act | _Neg) -> CellStructure:
    pads = item.pads
    pad_number(pads.IN, "D")
    pad_number(pads.OUT, "S")
    group = pad_number(pads.VDD, "VDD")
    if pad_number(pads.VSS, "VSS") != group:
        raise ValueError(f"structure {item.id}: pads VDD {pads.VDD} and VSS {pads.VSS} are not one rail group")
    if isinstance(item, _Act):
        resistors = {"R1": _resistor(item.R1), "R2": _resistor(item.R2)}
        transistors = {"T1": Transistor(item.T1.W_um, item.T1.L_um), "T2": Transistor(item.T2.W_um, item.T2.L_um)}
    else:
        resistors = {name: _resistor(getattr(item, name)) for name in ("R1", "R2", "R3", "R4", "R5")}
        transistors = {"T": Transistor(item.T.W_um, item.T.L_um)}
    return CellStructure(item.id, item.kind, item.design, pads.IN, pads.OUT, group, resistors, transistors)


def _chain(item: _Chain) -> ResistorStructure:
    pads = item.pads
    pad_number(pads.DRIVE, "D")
    for pad in ([pads.KELVIN] if pads.KELVIN else []) + list(pads.TAPS):
        pad_number(pad, "S")
    if len(pads.TAPS) != len(item.resistors) - 1:
        raise ValueError(f"structure {item.id}: {len(pads.TAPS)} TAPS for {len(item.resistors)} resistors "
                         f"(TAPS[i] lies after resistors[i]; the last ends at GND)")
    if item.kind == "ID" and (pads.DRIVE != ID_PAD or tuple(pads.TAPS) != ID_TAPS):
        raise ValueError(f"structure {item.id}: the ID ladder is D24 -> S45 -> S46 -> GND (2.2)")
    return ResistorStructure(item.id, item.kind, pads.DRIVE, pads.KELVIN, tuple(pads.TAPS),
                             tuple(_resistor(r) for r in item.resistors))


def _records(schema: _LayoutSchema, text: str, source: Path | None) -> Layout:
    cells = tuple(_cell(item) for item in schema.structure if isinstance(item, (_Act, _Neg)))
    chains = tuple(_chain(item) for item in schema.structure if isinstance(item, _Chain))
    ids = [item.id for item in schema.structure]
    duplicate = next((i for i in ids if ids.count(i) > 1), None)
    if duplicate:
        raise ValueError(f"structure id {duplicate!r} appears twice")
    groups = [cell.rail_group for cell in cells]
    shared = next((g for g in groups if groups.count(g) > 1), None)
    if shared:
        raise ValueError(f"rail group {shared} carries two structures (each circuit has its own group, 2.3)")
    circuit_inputs = {cell.input_pad for cell in cells}
    chain_drives = {chain.drive_pad for chain in chains}
    if circuit_inputs & chain_drives:
        raise ValueError(f"pad {sorted(circuit_inputs & chain_drives)[0]} drives both a circuit and a resistor "
                         "structure")
    for pad in schema.bleed.pads:
        pad_number(pad, "D")
    bleed = Resistor("RH", schema.bleed.W_um, schema.bleed.L_um, schema.bleed.R_ohm)
    return Layout(source, text, schema.layout, schema.id_code, schema.process, schema.sample,
                  schema.inks.RH_ohm_sq, schema.inks.RL_ohm_sq, tuple(schema.bleed.pads), bleed, cells, chains)
