"""The printed family's bench file (printed-bench.md 4.6): instruments, probe card and the sample on it.

::

    family = "printed"
    name = "printed bench 1"
    [instruments.mainframe]
    resource = "TCPIP0::127.0.0.1::5025::SOCKET"
    [instruments.smu]
    resource = "TCPIP0::127.0.0.1::5026::SOCKET"
    [probe_card]
    model = "PC-PNC-144"
    shunt_ohm = 1000.0                 # optional
    [sample]
    kind = "test-structures"           # or "network" with job = "..."
    layout = "pnc-ts-a.toml"
    process = "sim-7"
    id = "sim-7/PNC-TS-A/S0"

The instrument sections are the generic bench file's (:class:`labctl.bench_file.InstrumentSection`,
VISA resource checked before anything is opened), the TOML reading and its
one-line errors are :mod:`labctl.toml_files`'. Paths are relative to the bench
file; the sample's process must equal its layout's or job's, else the run is
refused before anything is switched (4.6).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from labctl.bench_file import InstrumentSection
from labctl.errors import ConfigError
from labctl.toml_files import parse_toml, read_user_file, schema_problem

if TYPE_CHECKING:
    from labctl.families.printed.layout import Layout
    from labctl.families.printed.print_job import PrintJob

FAMILY = "printed"
PROBE_CARD = "PC-PNC-144"
DEFAULT_SHUNT_OHM = 1000.0
"""The card's shunt per D pad (4.2: 1.000 kohm +-0.05 %)."""
SAMPLE_KINDS = ("test-structures", "network")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Instruments(_Strict):
    mainframe: InstrumentSection
    smu: InstrumentSection


class _ProbeCard(_Strict):
    model: Literal["PC-PNC-144"]
    shunt_ohm: float = Field(default=DEFAULT_SHUNT_OHM, gt=0, le=1e6)


class _Sample(_Strict):
    kind: Literal["test-structures", "network"]
    layout: str | None = Field(default=None, min_length=1)
    job: str | None = Field(default=None, min_length=1)
    process: str = Field(min_length=1)
    id: str = Field(min_length=1)

    @model_validator(mode="after")
    def _file_of_its_kind(self) -> "_Sample":
        wanted, other = ("layout", "job") if self.kind == "test-structures" else ("job", "layout")
        if getattr(self, other) is not None:
            raise ValueError(f"{other} is not a key of a {self.kind} sample (it names its {wanted})")
        if getattr(self, wanted) is None:
            raise ValueError(f"{wanted} is missing (a {self.kind} sample names its {wanted} file)")
        return self


class _BenchSchema(_Strict):
    family: Literal["printed"]
    name: str = "printed bench"
    instruments: _Instruments
    probe_card: _ProbeCard
    sample: _Sample


@dataclass(frozen=True)
class PrintedBenchConfig:
    """A printed bench file, checked; ``sample_file`` is absolute (resolved against the bench file)."""

    path: Path | None
    text: str
    name: str
    mainframe: InstrumentSection
    smu: InstrumentSection
    shunt_ohm: float
    sample_kind: str
    sample_file: Path
    process: str
    sample_id: str

    @property
    def family(self) -> str:
        return FAMILY

    @property
    def bridge_port(self) -> None:
        """A printed bench has no bridge (the seam's bench-file parsers all answer this; the lock skips it)."""
        return None

    @property
    def instruments(self) -> dict[str, InstrumentSection]:
        return {"mainframe": self.mainframe, "smu": self.smu}

    @property
    def where(self) -> str:
        return f"bench file {self.path}" if self.path else "bench file"


def load_printed_bench_file(path: str | Path) -> PrintedBenchConfig:
    """Read and check a printed bench file; ConfigError (one line naming file and key) on any problem."""
    return parse_printed_bench_text(read_user_file(path, "bench file"), source=Path(path))


def parse_printed_bench_text(text: str, source: Path | None = None) -> PrintedBenchConfig:
    where = f"bench file {source}" if source else "bench file"
    raw = parse_toml(text, where)
    try:
        schema = _BenchSchema.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {schema_problem(exc.errors()[0])}") from None
    sample = schema.sample
    relative = Path(sample.layout or sample.job or "")
    base = source.parent if source is not None else Path.cwd()
    return PrintedBenchConfig(
        path=source, text=text, name=schema.name, mainframe=schema.instruments.mainframe,
        smu=schema.instruments.smu, shunt_ohm=schema.probe_card.shunt_ohm, sample_kind=sample.kind,
        sample_file=relative if relative.is_absolute() else (base / relative).resolve(),
        process=sample.process, sample_id=sample.id)


def require_same_process(config: PrintedBenchConfig, file_process: str, what: str) -> None:
    """ConfigError when the sample's layout or job (``what``) is for another print run (4.6)."""
    if file_process != config.process:
        raise ConfigError(f"{config.where}: sample.process is {config.process!r}, but {what} "
                          f"{config.sample_file} is for process {file_process!r}: refused before anything is "
                          "switched")


# -- the sample on the card ------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplePlan:
    """What the bench must know about the sample to keep it safe (2.1 to 2.5, 4.4), from its layout or job.

    ``circuit_inputs`` maps each D pad that reaches EGT gates or NEG inputs to
    the rail groups of the circuits it drives: it may leave +-0.2 V only while
    one of those groups is at full rails (4.4). ``resistor_pads`` drive only
    resistor structures (+-0.5 V). ``pad_nets`` names what each used pad
    reaches, for messages.
    """

    kind: str
    id_code: int
    process: str
    circuit_inputs: dict[str, frozenset[int]]
    resistor_pads: tuple[str, ...]
    bias_pad: str | None
    cells_per_group: dict[int, int]
    pad_nets: dict[str, str]
    layout: "Layout | None" = None
    job: "PrintJob | None" = None

    def net_of(self, pad: str) -> str:
        return self.pad_nets.get(pad, "unused")


def load_sample(config: PrintedBenchConfig) -> SamplePlan:
    """The sample's layout (test structures) or print job (network), checked against the bench file's process."""
    if config.sample_kind == "test-structures":
        from labctl.families.printed.layout import load_layout

        layout = load_layout(config.sample_file)
        require_same_process(config, layout.process, "layout file")
        return _plan_of_layout(layout)
    from labctl.families.printed.print_job import read_job

    job = read_job(config.sample_file)
    require_same_process(config, job.process, "print job")
    return _plan_of_job(job)


def _plan_of_layout(layout: "Layout") -> SamplePlan:
    inputs: dict[str, set[int]] = {}
    nets: dict[str, str] = {}
    for cell in layout.cells:
        inputs.setdefault(cell.input_pad, set()).add(cell.rail_group)
        nets[cell.input_pad] = ", ".join(filter(None, [nets.get(cell.input_pad), f"{cell.id}.IN"]))
        nets[cell.output_pad] = f"{cell.id}.OUT"
    resistor_pads = []
    for chain in layout.resistor_structures:
        nets[chain.drive_pad] = f"{chain.id} drive"
        for index, tap in enumerate(chain.taps):
            nets[tap] = f"{chain.id} tap {index + 1}"
        if chain.kelvin_pad:
            nets[chain.kelvin_pad] = f"{chain.id} Kelvin"
        if chain.kind != "ID":
            resistor_pads.append(chain.drive_pad)
    groups = {cell.rail_group: 1 for cell in layout.cells}
    return SamplePlan("test-structures", layout.id_code, layout.process,
                      {pad: frozenset(g) for pad, g in inputs.items()}, tuple(resistor_pads), None, groups, nets,
                      layout=layout)


NETWORK_RAIL_GROUP = 1
"""Every cell of a printed network sits on rail group 1 (2.5)."""


def _plan_of_job(job: "PrintJob") -> SamplePlan:
    nets = {p.pad: p.net for p in job.pads}
    driven = [p.pad for p in job.pads if p.role in ("input", "bias")]
    bias = next((p.pad for p in job.pads if p.role == "bias"), None)
    return SamplePlan("network", job.id_code, job.process,
                      {pad: frozenset({NETWORK_RAIL_GROUP}) for pad in driven}, (), bias,
                      {NETWORK_RAIL_GROUP: len(job.cells)}, nets, job=job)
