"""Bench files: which bridge port and which instrument channel serves each role.

A bench file is TOML (contract section 3)::

    [bridge]
    port = "socket://127.0.0.1:7001"
    [instruments.smu_a]
    resource = "TCPIP0::127.0.0.1::5025::SOCKET"
    [roles]
    supply  = "smu_b:2"
    source  = "smu_a:1"
    monitor = "smu_b:1"

Any wiring is legal, one instrument may serve two roles. Every problem is
reported as one line naming the file and the key, before anything is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from labctl.errors import ConfigError
from labctl.toml_files import parse_toml, read_user_file

ROLES = ("supply", "source", "monitor")
"""Roles of contract section 3: supply -> VDD, source -> EXT_IN, monitor -> MON."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BridgeSection(_Strict):
    port: str = Field(min_length=1)
    timeout_s: float = Field(default=0.25, gt=0, le=10)


class InstrumentSection(_Strict):
    resource: str = Field(min_length=1)
    timeout_s: float = Field(default=3.0, gt=0, le=60)


class RolesSection(_Strict):
    supply: str
    source: str
    monitor: str


class BenchSchema(_Strict):
    bridge: BridgeSection
    instruments: dict[str, InstrumentSection] = Field(min_length=1)
    roles: RolesSection
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
    where = f"bench file {source}" if source else "bench file"
    raw = parse_toml(text, where)
    try:
        schema = BenchSchema.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        msg = {"extra_forbidden": "is not a known key", "missing": "is missing"}.get(err["type"], err["msg"])
        if key.startswith("roles.") and err["type"] == "extra_forbidden":
            msg = f"is not a role (roles are {', '.join(ROLES)})"
        raise ConfigError(f"{where}: {key} {msg}") from None
    roles: dict[str, RoleBinding] = {}
    for role in ROLES:
        spec = getattr(schema.roles, role)
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
        name=schema.name,
        bridge_port=schema.bridge.port,
        bridge_timeout_s=schema.bridge.timeout_s,
        instruments=dict(schema.instruments),
        roles=roles,
        text=text,
    )
