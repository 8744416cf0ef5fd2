"""Bench files: which device family, which bridge port and which instrument channel serves each role.

A bench file is TOML (contract section 3)::

    family = "cmna"              # optional: otherwise the device's IDENTIFY answer decides
    [bridge]
    port = "socket://127.0.0.1:7001"
    [instruments.smu_a]
    resource = "TCPIP0::127.0.0.1::5025::SOCKET"
    [roles]
    supply  = "smu_b:2"
    source  = "smu_a:1"
    monitor = "smu_b:1"

Any wiring is legal, one instrument may serve two roles. The roles are the
family's (:attr:`DeviceFamily.bench_roles`); without a ``family`` key they
must be those of an installed family. Every problem is reported as one line
naming the file and the key, before anything is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from labctl.errors import ConfigError
from labctl.toml_files import parse_toml, read_user_file, schema_problem

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BridgeSection(_Strict):
    port: str = Field(min_length=1)
    timeout_s: float = Field(default=0.25, gt=0, le=10)


class InstrumentSection(_Strict):
    resource: str = Field(min_length=1)
    timeout_s: float = Field(default=3.0, gt=0, le=60)

    @field_validator("resource")
    @classmethod
    def _visa_resource(cls, value: str) -> str:
        """A VISA resource name (e.g. TCPIP0::192.0.2.5::5025::SOCKET), checked before anything is opened."""
        from pyvisa import rname

        try:
            rname.parse_resource_name(value)
        except rname.InvalidResourceName as exc:
            raise ValueError(f"{value!r} is not a VISA resource name ({exc}); e.g. "
                             "\"TCPIP0::192.0.2.5::5025::SOCKET\" or \"USB0::0x05E6::0x2450::SERIAL::INSTR\"") from None
        return value


class BenchSchema(_Strict):
    family: str | None = Field(default=None, min_length=1)
    bridge: BridgeSection
    instruments: dict[str, InstrumentSection] = Field(min_length=1)
    roles: dict[str, str] = Field(min_length=1)
    name: str = "bench"


@dataclass(frozen=True)
class RoleBinding:
    """One role served by one channel of one named instrument."""

    role: str
    instrument: str
    channel: str


@dataclass(frozen=True)
class BenchConfig:
    path: Path | None
    family: str | None
    """The family the file names (None: IDENTIFY decides)."""
    name: str
    bridge_port: str
    bridge_timeout_s: float
    instruments: dict[str, InstrumentSection]
    roles: dict[str, RoleBinding]
    text: str
    """The file's text, stored in every HDF5 file for provenance."""


def load_bench_file(path: str | Path) -> BenchConfig:
    """Read and validate a bench file; raise ConfigError naming the key at fault."""
    return parse_bench_text(read_user_file(path, "bench file"), source=Path(path))


def parse_bench_text(text: str, source: Path | None = None) -> BenchConfig:
    """A bridge bench file (this module's schema), or the bench file of a family that has its own layout.

    A family whose bench has no bridge (the printed family: a switch/measure
    mainframe and an SMU) names its own parser (:attr:`DeviceFamily.bench_file_parser`);
    the file must then say ``family = "..."``. What every parser returns has
    ``path``, ``family``, ``name``, ``bridge_port`` (None without a bridge),
    ``instruments`` (name -> section with ``resource``) and ``text``.
    """
    where = f"bench file {source}" if source else "bench file"
    raw = parse_toml(text, where)
    parser = _family_parser(raw.get("family"))
    if parser is not None:
        return parser(text, source)
    return parse_bridge_bench_text(text, source, raw)


def parse_bridge_bench_text(text: str, source: Path | None = None, raw: dict | None = None) -> BenchConfig:
    """A bridge bench file of this module's schema, its roles those of its family; a bridge family with
    further channel rules (TTFS: scope inputs) names a parser that calls this one first, then checks them."""
    where = f"bench file {source}" if source else "bench file"
    raw = parse_toml(text, where) if raw is None else raw
    try:
        schema = BenchSchema.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {schema_problem(exc.errors()[0])}") from None
    _check_role_names(schema, where)
    roles: dict[str, RoleBinding] = {}
    for role, spec in schema.roles.items():
        instrument, sep, channel = spec.partition(":")
        if not sep or not instrument or not channel:
            raise ConfigError(f"{where}: roles.{role} = {spec!r} must be INSTRUMENT:CHANNEL, e.g. \"smu_a:1\"")
        if instrument not in schema.instruments:
            known = ", ".join(sorted(schema.instruments))
            raise ConfigError(f"{where}: roles.{role} names instrument {instrument!r}, not in [instruments] (have: {known})")
        roles[role] = RoleBinding(role, instrument, channel)
    pairs = [(b.instrument, b.channel) for b in roles.values()]
    for role, binding in roles.items():
        if pairs.count((binding.instrument, binding.channel)) > 1:
            raise ConfigError(f"{where}: roles.{role}: channel {binding.instrument}:{binding.channel} serves two roles")
    return BenchConfig(
        path=source,
        family=schema.family,
        name=schema.name,
        bridge_port=schema.bridge.port,
        bridge_timeout_s=schema.bridge.timeout_s,
        instruments=dict(schema.instruments),
        roles=roles,
        text=text,
    )


def _family_parser(name: object):
    """The bench-file parser of the family ``name`` names, if it has its own (None: this module's schema)."""
    from labctl import families

    if not isinstance(name, str) or name not in families.installed():
        return None
    spec = getattr(families.named(name), "bench_file_parser", None)
    return families.load_object(spec, f"bench-file parser of family {name}") if spec else None


def _check_role_names(schema: BenchSchema, where: str) -> None:
    """The roles must be those of the named family, or of some installed family when none is named."""
    from labctl import families

    if schema.family is not None:
        try:
            candidates = [families.named(schema.family)]
        except ConfigError as exc:
            raise ConfigError(f"{where}: family: {exc}") from None
    else:
        candidates = list(families.installed().values())
    given = list(schema.roles)
    best = min(candidates, key=lambda f: len(set(f.bench_roles) ^ set(given)))
    for role in given:
        if role not in best.bench_roles:
            raise ConfigError(f"{where}: roles.{role} is not a role (roles are {', '.join(best.bench_roles)})")
    for role in best.bench_roles:
        if role not in given:
            raise ConfigError(f"{where}: roles.{role} is missing")
